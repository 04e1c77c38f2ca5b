"""`fedledger new NAME`: a ready app package to start from, the way `flwr new` makes one.

    NAME/
        pyproject.toml          the package, with the `fedledger.apps` entry point NAME
        README.md               how to install, test, run and change it
        MODULE/__init__.py
        MODULE/app.py           the model, data loading, training loop and evaluation
        data/train.csv          sample data (scikit-learn's wine data, see sample_data.py)
        data/test.csv
        tests/test_app.py       the app's tests on the sample data

MODULE is NAME in lower case with dashes as underscores (`my-app` -> `my_app`). The templates
are package data in `templates/`; `{{name}}`, `{{project}}` and `{{module}}` are filled in.
"""

from __future__ import annotations

import keyword
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fedledger.app.loader import BUILTIN_APPS
from fedledger.chain.errors import FedledgerError

__all__ = ["AppName", "AppNameError", "TargetExistsError", "app_name", "write_app"]

NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Module names an app package must not take: it would hide the package the app itself imports.
RESERVED_MODULES = frozenset({"fedledger", "torch", "numpy", "pytest", "tests", "test", "data", "app"})
# Template -> where it goes (MODULE is replaced); files without `.tmpl` are copied as they are.
TEMPLATES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "MODULE/__init__.py",
    "app.py.tmpl": "MODULE/app.py",
    "test_app.py.tmpl": "tests/test_app.py",
    "data/train.csv": "data/train.csv",
    "data/test.csv": "data/test.csv",
}


class AppNameError(FedledgerError, ValueError):
    """NAME cannot name an app package."""


class TargetExistsError(FedledgerError, FileExistsError):
    """The directory to write the app into exists and is not empty (and `force` was not given)."""


@dataclass(frozen=True)
class AppName:
    """The names of one app: as given (`name`, the entry point and directory), as a pip project
    (`project`, normalized) and as a Python package (`module`)."""

    name: str
    project: str
    module: str


def app_name(name: str) -> AppName:
    """`name`'s project and module names; `AppNameError` when it cannot name an app."""
    if not NAME_PATTERN.fullmatch(name):
        raise AppNameError(
            f"app name {name!r} is not valid: it must start with a letter and hold only letters, "
            "digits, '-' and '_'"
        )
    project = re.sub(r"[-_.]+", "-", name).lower()
    module = project.replace("-", "_")
    builtins = {re.sub(r"[-_.]+", "-", builtin).lower(): builtin for builtin in BUILTIN_APPS}
    if project in builtins:
        raise AppNameError(f"app name {name!r} is taken by the built-in app {builtins[project]!r}")
    if keyword.iskeyword(module) or module in RESERVED_MODULES or module in sys.stdlib_module_names:
        raise AppNameError(
            f"app name {name!r} would make a Python package {module!r} that hides another "
            "(a keyword, a standard library module or one the app imports): choose another name"
        )
    return AppName(name=name, project=project, module=module)


def write_app(name: str, directory: Path, *, force: bool = False) -> Path:
    """Writes the app package `directory/name/` and returns its path.

    Parameters
    ----------
    name
        The app's name: its directory, its entry point (`--app NAME`) and, normalized, its pip
        project; a letter, then letters, digits, '-' and '_'; not a built-in app's name.
    directory
        Where to create `name/` (created if missing).
    force
        Write even if `name/` exists and is not empty: the generated files are overwritten,
        any other file is left alone.

    Raises
    ------
    AppNameError
        `name` cannot name an app (see `app_name`).
    TargetExistsError
        `directory/name` exists and is not an empty directory, and `force` is false.
    """
    names = app_name(name)
    target = directory / name
    if target.exists() and not target.is_dir():
        raise TargetExistsError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise TargetExistsError(f"{target} exists and is not empty (--force writes the app over it)")
    templates = resources.files(__package__).joinpath("templates")
    for source, destination in TEMPLATES.items():
        path = target / destination.replace("MODULE", names.module)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = templates.joinpath(source).read_text(encoding="utf-8")
        if source.endswith(".tmpl"):
            text = render(text, names)
        path.write_text(text, encoding="utf-8")
    return target


def render(template: str, names: AppName) -> str:
    """`template` with `{{name}}`, `{{project}}` and `{{module}}` filled in."""
    for key, value in (("name", names.name), ("project", names.project), ("module", names.module)):
        template = template.replace("{{" + key + "}}", value)
    if "{{" in template:
        raise AssertionError(f"unfilled placeholder in a template: {template[template.index('{{') :][:40]!r}")
    return template
