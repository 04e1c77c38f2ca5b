"""README, "Bring your own model and data": every command of the section, as written, in order.

They run from a scratch folder holding a copy of examples/ (so `fedledger new` and
`pip install -e` write nothing into the clone) in a scratch virtual environment layered over
this one: `pip install -e` installs the user's packages there, never into the project's
environment. `fedledger` is that environment's `python -m fedledger` with the run and
deployments folders in the scratch folder; `make demo ARGS=...` is what the Makefile runs,
`fedledger demo ...`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from fedledger.devnet.anvil import stop
from tests.docs import commands
from tests.e2e.federation import PROJECT

README = PROJECT / "README.md"
SECTION = "Bring your own model and data"


class Sandbox:
    """A scratch folder and a virtual environment that sees this one's packages."""

    def __init__(self, root: Path) -> None:
        self.cwd = root / "work"
        self.run_dir = root / "run"
        shutil.copytree(PROJECT / "examples", self.cwd / "examples")
        venv = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        self.python = str(venv / "bin" / "python")
        site = subprocess.run(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # addsitedir (not a bare path) so the project environment's own .pth files, the
        # editable install of fedledger among them, are read too.
        project_site = sysconfig.get_paths()["purelib"]
        Path(site, "project-environment.pth").write_text(f"import site; site.addsitedir({project_site!r})\n")

    def argv(self, command: list[str]) -> list[str]:
        """The process that runs one README command."""
        fedledger = [
            self.python,
            "-m",
            "fedledger",
            "--project-dir",
            str(PROJECT),
            "--run-dir",
            str(self.run_dir),
            "--deployments-dir",
            str(self.run_dir / "deployments"),
        ]
        match command:
            case ["make", "demo", arguments] if arguments.startswith("ARGS="):
                return [*fedledger, "demo", *arguments.removeprefix("ARGS=").split()]
            case ["fedledger", *rest]:
                return [*fedledger, *rest]
            case ["pip", *rest]:
                return [self.python, "-m", "pip", *rest, "--no-input", "--disable-pip-version-check"]
        raise AssertionError(f"the README test does not know how to run {command}")

    def run(self, command: list[str]) -> str:
        result = subprocess.run(
            self.argv(command), cwd=self.cwd, capture_output=True, text=True, timeout=600, check=False
        )
        assert result.returncode == 0, (
            f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        return result.stdout


def _summary(output: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return summary


def test_readme__bring_your_own_model__commands_run_as_written(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    outputs: dict[str, str] = {}
    try:
        for command in commands(README, SECTION):
            outputs[" ".join(command)] = sandbox.run(command)
    finally:
        stop(sandbox.run_dir)

    demos = {line: _summary(output) for line, output in outputs.items() if " demo" in f" {line}"}
    assert len(demos) == 3, list(outputs)
    for line, summary in demos.items():
        assert summary["ok"] is True, (line, summary)
    tabular, scaffolded, flower = demos.values()
    assert tabular["app"].startswith("tabular") and tabular["centralized_accuracy"] is not None
    assert tabular["final_accuracy"] >= tabular["centralized_accuracy"] - 0.05
    assert "clinic" in scaffolded["app"] and scaffolded["final_accuracy"] is not None
    assert flower["final_accuracy"] is not None
    # The scaffold wrote its package into the scratch folder, not into the clone.
    assert (sandbox.cwd / "clinic-risk" / "pyproject.toml").exists()
    assert not (PROJECT / "clinic-risk").exists()
    status = next(output for line, output in outputs.items() if line.startswith("fedledger status"))
    assert "round 0: INACTIVE (not started)" in status and "model spec: sha256 0x" in status, status
