"""`fedledger new`: the generated app package installs, loads by entry point, trains, passes its
own tests and lints clean; bad names and occupied directories are refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import fedledger
from fedledger.scaffold import AppNameError, TargetExistsError, app_name, write_app
from fedledger.scaffold.command import new
from fedledger.scaffold.sample_data import wine_csv_files

NAME = "wine-quality"
MODULE = "wine_quality"
CLIENTS = Path(fedledger.__file__).resolve().parent.parent  # this checkout's clients/
GENERATED_FILES = {
    "pyproject.toml",
    "README.md",
    f"{MODULE}/__init__.py",
    f"{MODULE}/app.py",
    "data/train.csv",
    "data/test.csv",
    "tests/test_app.py",
}


def run(
    args: list[str], *, pythonpath: list[Path], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(path) for path in pythonpath)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(NAME, tmp_path_factory.mktemp("apps"))


def test_write_app__writes_the_package(generated: Path) -> None:
    files = {str(path.relative_to(generated)) for path in generated.rglob("*") if path.is_file()}

    assert generated.name == NAME
    assert files == GENERATED_FILES


def test_write_app__pyproject__declares_the_entry_point(generated: Path) -> None:
    project = tomllib.loads((generated / "pyproject.toml").read_text())

    assert project["project"]["name"] == NAME
    assert project["project"]["dependencies"] == ["fedledger", "torch"]
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["project"]["entry-points"]["fedledger.apps"] == {NAME: f"{MODULE}.app:app"}


def test_write_app__sample_data__is_the_seeded_wine_split(generated: Path) -> None:
    pytest.importorskip("sklearn")
    expected = wine_csv_files()

    for filename, text in expected.items():
        assert (generated / "data" / filename).read_text() == text
    assert len(expected["train.csv"].splitlines()) - 1 == 142
    assert len(expected["test.csv"].splitlines()) - 1 == 36


def test_generated_app__passes_its_own_tests(generated: Path) -> None:
    # ape's pytest plugin is not needed by the app's tests and costs seconds to load.
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:ape_test"],
        pythonpath=[generated, CLIENTS],
        cwd=generated,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed" in result.stdout


def test_generated_app__installed__loads_by_entry_point_and_trains(generated: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(generated),
        ],
        pythonpath=[],
    )
    assert install.returncode == 0, install.stdout + install.stderr
    script = f"""
import json, sys
from pathlib import Path
from fedledger.app.api import Context
from fedledger.app.loader import load_app, resolve_reference

app = load_app({NAME!r})
data = Path({str(generated / "data")!r})
train = app.load_data(Context(data_path=data / "train.csv", partition_id=0, num_partitions=2))
test = app.load_data(Context(data_path=data / "test.csv", purpose="evaluate"))
initial = app.initial_weights(Context())
result = app.train(initial, train, Context(round=0, seed=3))
print(json.dumps({{
    "reference": resolve_reference({NAME!r}),
    "module_file": sys.modules[{MODULE!r} + ".app"].__file__,
    "samples": result.num_samples,
    "before": app.evaluate(initial, test, Context(purpose="evaluate")).metrics["accuracy"],
    "after": app.evaluate(result.weights, test, Context(purpose="evaluate")).metrics["accuracy"],
}}))
"""

    result = run([sys.executable, "-c", script], pythonpath=[target, CLIENTS], cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["reference"] == f"{MODULE}.app:app"
    assert Path(report["module_file"]).is_relative_to(target)
    assert report["samples"] == 71  # every other row of 142
    assert report["after"] > report["before"]


def test_generated_app__is_ruff_clean(generated: Path) -> None:
    ruff = [sys.executable, "-m", "ruff"]

    check = run([*ruff, "check", "--no-cache", "."], pythonpath=[], cwd=generated)
    format_check = run([*ruff, "format", "--no-cache", "--check", "."], pythonpath=[], cwd=generated)

    assert check.returncode == 0, check.stdout + check.stderr
    assert format_check.returncode == 0, format_check.stdout + format_check.stderr


@pytest.mark.parametrize(
    ("name", "project", "module"),
    [("my-app", "my-app", "my_app"), ("My_App2", "my-app2", "my_app2"), ("a--b__c", "a-b-c", "a_b_c")],
)
def test_app_name__normalizes_project_and_module(name: str, project: str, module: str) -> None:
    names = app_name(name)

    assert (names.name, names.project, names.module) == (name, project, module)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must start with a letter"),
        ("9lives", "must start with a letter"),
        ("-app", "must start with a letter"),
        ("my.app", "only letters, digits"),
        ("my app", "only letters, digits"),
        ("../escape", "only letters, digits"),
        ("mnist-cnn", "built-in app 'mnist-cnn'"),
        ("MNIST_BN", "built-in app 'mnist-bn'"),
        ("tabular", "built-in app 'tabular'"),
        ("fedledger", "hides another"),
        ("torch", "hides another"),
        ("json", "hides another"),
        ("class", "hides another"),
    ],
)
def test_write_app__bad_name__raises(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(AppNameError, match=message):
        write_app(name, tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_write_app__existing_empty_directory__writes_into_it(tmp_path: Path) -> None:
    (tmp_path / NAME).mkdir()

    assert write_app(NAME, tmp_path) == tmp_path / NAME
    assert (tmp_path / NAME / MODULE / "app.py").is_file()


def test_write_app__existing_directory__raises_unless_forced(tmp_path: Path) -> None:
    target = write_app(NAME, tmp_path)
    (target / MODULE / "app.py").write_text("# edited\n")
    (target / "notes.txt").write_text("mine\n")

    with pytest.raises(TargetExistsError, match="is not empty"):
        write_app(NAME, tmp_path)
    assert (target / MODULE / "app.py").read_text() == "# edited\n"

    write_app(NAME, tmp_path, force=True)
    assert "class Net" in (target / MODULE / "app.py").read_text()
    assert (target / "notes.txt").read_text() == "mine\n"


def test_write_app__target_is_a_file__raises_even_forced(tmp_path: Path) -> None:
    (tmp_path / NAME).write_text("")

    with pytest.raises(TargetExistsError, match="not a directory"):
        write_app(NAME, tmp_path, force=True)


def test_new__prints_the_path_and_next_steps(tmp_path: Path) -> None:
    result = CliRunner().invoke(new, [NAME, "--directory", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert (tmp_path / NAME / "pyproject.toml").is_file()
    assert str(tmp_path / NAME) in result.output
    assert f"pip install -e {tmp_path / NAME}" in result.output
    assert f"fedledger demo --app {NAME} --data {tmp_path / NAME}/data/train.csv" in result.output


def test_new__in_working_directory__prints_relative_paths(tmp_path: Path) -> None:
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(new, [NAME])

    assert result.exit_code == 0, result.output
    assert f"pip install -e {NAME}\n" in result.output


@pytest.mark.parametrize("name", ["9lives", "tabular"])
def test_new__bad_name__usage_error(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(new, [name, "--directory", str(tmp_path)])

    assert result.exit_code == 2
    assert "Invalid value for NAME" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_new__existing_directory__one_line_error_then_force_writes(tmp_path: Path) -> None:
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "keep.txt").write_text("")

    refused = CliRunner().invoke(new, [NAME, "--directory", str(tmp_path)])
    forced = CliRunner().invoke(new, [NAME, "--directory", str(tmp_path), "--force"])

    assert refused.exit_code == 2
    assert "is not empty (--force writes the app over it)" in refused.output
    assert "Traceback" not in refused.output
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / NAME / MODULE / "app.py").is_file()
