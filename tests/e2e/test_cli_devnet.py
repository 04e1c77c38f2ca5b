"""`fedledger devnet up`, `deploy`, `gov list`, `devnet down` as a user runs them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from fedledger.cli import cli
from fedledger.devnet.anvil import find, stop

ROOT = Path(__file__).resolve().parents[2]


def test_cli__devnet_deploy_down(tmp_path: Path) -> None:
    run_dir, deployments = tmp_path / "run", tmp_path / "deployments"
    runner = CliRunner()
    base = ["--project-dir", str(ROOT), "--run-dir", str(run_dir), "--deployments-dir", str(deployments)]

    def fedledger(*args: str) -> str:
        result = runner.invoke(cli, [*base, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    try:
        assert "devnet up: http://127.0.0.1:" in fedledger("devnet", "up", "--profile", "sei-like")
        assert "answers chain id 713715" in fedledger("devnet", "status")
        output = fedledger("deploy", "--placeholder-model", "--voting-period", "5")
        assert "--network sei:seilike:node" in output and "PLACEHOLDER" in output
        assert (deployments / "713715.json").exists()
        assert "no proposals yet" in fedledger("gov", "list")
        devnet = find(run_dir)
        assert devnet is not None
        assert "devnet down: stopped pid" in fedledger("devnet", "down")
        assert not devnet.is_running()
    finally:
        stop(run_dir)
    assert find(run_dir) is None
