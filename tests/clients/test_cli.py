"""`fedledger` command-line errors: bad input is a usage error naming the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fedledger.cli import cli
from fedledger.devnet.process import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., Result]:
    runner = CliRunner()

    def _run(*args: str) -> Result:
        base = ["--project-dir", str(ROOT), "--run-dir", str(tmp_path / "run")]
        return runner.invoke(cli, [*base, *args], catch_exceptions=False)

    return _run


def test_help__every_command(run: Callable[..., Result]) -> None:
    for args in (
        [],
        ["devnet"],
        ["devnet", "up"],
        ["devnet", "down"],
        ["devnet", "status"],
        ["deploy"],
        ["gov"],
        ["gov", "propose"],
        ["gov", "vote"],
        ["gov", "queue"],
        ["gov", "execute"],
        ["gov", "list"],
        ["account"],
        ["account", "new"],
        ["account", "show"],
        ["trainer", "run"],
        ["aggregator", "run"],
        ["demo"],
    ):
        result = run(*args, "--help")
        assert result.exit_code == 0, (args, result.output)
        assert "Usage:" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["devnet", "up", "--profile", "mainnet"], "'mainnet' is not one of"),
        (["devnet", "up", "--port", "70000"], "70000 is not in the range"),
        (
            ["gov", "propose", "--set", "task.BOGUS=1", "--description", "x", "--account", "dev:1"],
            "unknown parameter 'BOGUS' for task",
        ),
        (
            ["gov", "propose", "--set", "task.AGGREGATION_RULE=mean", "--description", "x", "--account", "1"],
            "bad value",
        ),
        (
            ["gov", "propose", "--set", "task.MIN_UPDATES=3", "--account", "1"],
            "Missing option '--description'",
        ),
        (["gov", "vote", "abc", "--support", "for", "--account", "1"], "'abc' is not a proposal id"),
        (["gov", "vote", "12", "--support", "maybe", "--account", "1"], "'maybe' is not one of"),
        (["gov", "vote", "12", "--support", "for", "--account", "alice"], "bad account 'alice'"),
        (["gov", "queue", "12"], "Missing option '--account'"),
        (["gov", "list"], "no devnet is running"),
        (["deploy"], "no devnet is running"),
        (["demo", "--trainers", "1"], "1 is not in the range"),
        (["demo", "--rule", "fedavg"], "'fedavg' is not one of"),
        (["demo", "--dp-noise", "-1"], "-1.0 is not in the range"),
        (["demo", "--dp-delta", "1"], "1.0 is not in the range"),
        (
            ["trainer", "run", "--shard", "0/2", "--account", "1", "--dp-sgd-noise", "0"],
            "0.0 is not in the range",
        ),
        (
            ["trainer", "run", "--shard", "0/2", "--account", "1", "--privacy-budget", "-2"],
            "-2.0 is not in the range",
        ),
    ],
)
def test_bad_arguments__usage_error(
    run: Callable[..., Result], args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEDLEDGER_ACCOUNT", raising=False)
    monkeypatch.delenv("FEDLEDGER_RPC_URL", raising=False)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_gov__dead_rpc_endpoint__clear_error(run: Callable[..., Result]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run("gov", "list", "--rpc-url", url)
    assert result.exit_code == 1
    assert f"no JSON-RPC node answers at {url}" in result.output


def test_devnet_status_and_down__nothing_running(run: Callable[..., Result]) -> None:
    status = run("devnet", "status")
    assert status.exit_code == 1 and "no devnet running" in status.output
    down = run("devnet", "down")
    assert down.exit_code == 0 and "no devnet running" in down.output
