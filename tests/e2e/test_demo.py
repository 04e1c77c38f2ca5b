"""`fedledger demo` end to end on a real Anvil: deploy with ape, register, open a round, pass a
governance vote, and stop Anvil. Takes about 35 s (the vote stays open for 20 s)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fedledger.chain.ape_cli import ApeScriptError
from fedledger.demo import DemoOptions, run_demo
from fedledger.devnet import find

ROOT = Path(__file__).resolve().parents[2]


def process_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def test_demo__runs_governance_to_execution_and_cleans_up(tmp_path: Path) -> None:
    lines: list[str] = []
    summary = run_demo(DemoOptions(project=ROOT, run_dir=tmp_path / "demo"), echo=lines.append)

    assert summary.ok
    assert summary.chain_id == 31337
    assert set(summary.addresses) == {
        "FedToken",
        "FedTimelock",
        "StakingRegistry",
        "FederatedTask",
        "FedGovernor",
    }
    assert summary.trainers_registered == 4 and summary.aggregators_registered == 2
    assert summary.round == 0 and summary.round_phase == "COMMIT"
    assert summary.proposal_state == "EXECUTED" and summary.proposals_executed == 1
    assert (summary.parameter_before, summary.parameter_after) == ("FEDAVG", "MEDIAN")
    assert summary.parameter_changed
    assert summary.round_0_rule == "FEDAVG"  # a running round keeps the rule it opened with
    assert summary.initial_model["placeholder"] == "true"
    assert summary.transactions == 27 and summary.gas_used > 0
    assert summary.anvil_stopped and process_gone(summary.anvil_pid)
    assert not (tmp_path / "demo" / "anvil.json").exists()
    assert summary.wall_time_s < 120

    # The last line is the JSON summary; the log names each step with its gas.
    assert json.loads(lines[-1]) == json.loads(summary.to_json())
    log = "\n".join(lines)
    for step in ("deploying with the ape script", "register TRAINER", "castVote For", "queue", "execute"):
        assert step in log
    assert "PLACEHOLDER" in log


def test_demo__failure_midway__still_stops_anvil(tmp_path: Path) -> None:
    """No ape project where the demo looks for one: the deploy step fails, Anvil must not stay."""
    lines: list[str] = []
    with pytest.raises(ApeScriptError):
        run_demo(DemoOptions(project=tmp_path, run_dir=tmp_path / "demo"), echo=lines.append)
    pids = [int(m.group(1)) for line in lines if (m := re.search(r"pid (\d+)", line))]
    assert pids, lines
    assert process_gone(pids[0])
    assert find(tmp_path / "demo") is None
