"""Scenarios: a chain profile, how many trainers and repetitions, which workloads; each
repetition on a fresh Anvil (`run_chain`), set up by `setup_federation` and measured by
`run_workload` (or `decompose_workload`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chainload.federation import CHAIN_ID, setup_federation
from chainload.harness import (
    Decomposition,
    Measurement,
    ThroughputError,
    decompose_workload,
    process_cpu_seconds,
    run_workload,
)
from chainload.workloads import WORKLOADS
from fedledger.chain.rpc import client_version
from fedledger.devnet import Profile, running_devnet


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A chain profile and how often to measure on it. Every repetition gets a fresh Anvil
    with `per_repetition` trainers registered, so each one measures the same chain state."""

    name: str
    profile: Profile
    per_repetition: int  # trainers (and transfer senders) per repetition
    repetitions: int
    workloads: tuple[str, ...] = ("transfers", "commits")
    decompositions: int = 0  # more chains on which the workloads run with mining paused


@dataclass(frozen=True, kw_only=True)
class ChainRun:
    """One fresh Anvil of a scenario."""

    repetition: int
    decomposition: bool
    setup_seconds: float
    # Cores Anvil kept busy with an empty pool after the setup: its work per block (it grows
    # with the state, so every repetition starts from the same state).
    idle_node_cpu: float | None
    round_commits: int  # round 0's on-chain commit count at the end
    commits_sent: int


@dataclass
class ScenarioResult:
    scenario: Scenario
    anvil: str = ""
    setup_gas: dict[str, int] = field(default_factory=dict)
    commit_gas_limit: int = 0
    chains: list[ChainRun] = field(default_factory=list)
    runs: list[tuple[int, Measurement]] = field(default_factory=list)  # (repetition, measurement)
    decompositions: list[Decomposition] = field(default_factory=list)

    def of(self, workload: str) -> list[Measurement]:
        return [m for _, m in self.runs if m.workload == workload]


def workload_order(names: Sequence[str], repetition: int) -> list[str]:
    """Alternates which workload goes first, so drift (of the machine, or of the chain as it
    grows) hits both alike."""
    return list(names) if repetition % 2 == 0 else list(reversed(names))


def run_scenario(scenario: Scenario, run_dir: Path, log: Callable[[str], None]) -> ScenarioResult:
    """The scenario's repetitions, then its decompositions, each on a fresh Anvil."""
    result = ScenarioResult(scenario)
    for repetition in range(scenario.repetitions):
        run_chain(result, repetition, decompose=False, run_dir=run_dir, log=log)
    for repetition in range(scenario.decompositions):
        run_chain(result, repetition, decompose=True, run_dir=run_dir, log=log)
    return result


def run_chain(
    result: ScenarioResult, repetition: int, *, decompose: bool, run_dir: Path, log: Callable[[str], None]
) -> None:
    """Starts Anvil with the scenario's profile, sets up, runs every workload once (alternating
    their order), checks round 0's commit count, stops Anvil."""
    scenario = result.scenario
    label = f"{scenario.name} {'decomposition' if decompose else 'repetition'} {repetition}"
    folder = run_dir / f"{scenario.name}-{'d' if decompose else 'r'}{repetition}"
    with running_devnet(scenario.profile, run_dir=folder) as devnet:
        federation = setup_federation(devnet.url, folder, scenario.per_repetition)
        idle = idle_cpu(devnet.pid)
        log(f"{label}: {scenario.per_repetition} trainers registered ({federation.setup_seconds:.0f} s)")
        result.anvil = client_version(federation.ledger.w3)
        result.setup_gas, result.commit_gas_limit = federation.setup_gas, federation.commit_gas
        commits_sent = 0
        for name in workload_order(scenario.workloads, repetition):
            workload = WORKLOADS[name](federation, federation.trainers)
            commits_sent += workload.commits
            if decompose:
                parts = decompose_workload(
                    devnet.url, workload, federation.nonces, chain_id=CHAIN_ID, node_pid=devnet.pid
                )
                result.decompositions.append(parts)
                log(
                    f"  {name}: submit {parts.submit_us_per_tx:.0f} us/tx, mine {parts.mine_us_per_tx:.0f} us/tx"
                )
                continue
            measurement = run_workload(
                devnet.url, workload, federation.nonces, chain_id=CHAIN_ID, node_pid=devnet.pid
            )
            result.runs.append((repetition, measurement))
            log(f"  {name}: {measurement.tx_per_second:,.0f} tx/s, {measurement.blocks} blocks")
        round_commits = federation.ledger.round_state(0).commits
    if round_commits != commits_sent:
        raise ThroughputError(f"{label}: round 0 has {round_commits} commits, {commits_sent} were sent")
    result.chains.append(
        ChainRun(
            repetition=repetition,
            decomposition=decompose,
            setup_seconds=federation.setup_seconds,
            idle_node_cpu=idle,
            round_commits=round_commits,
            commits_sent=commits_sent,
        )
    )


def idle_cpu(pid: int, seconds: float = 1.0) -> float | None:
    """Cores process `pid` keeps busy over `seconds` (Anvil with an empty pool: block production)."""
    before = process_cpu_seconds(pid)
    time.sleep(seconds)
    after = process_cpu_seconds(pid)
    return None if before is None or after is None else (after - before) / seconds
