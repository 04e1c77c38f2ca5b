"""Scenarios: a chain profile, how many trainers and repetitions, which workloads; each
repetition on a fresh Anvil (`run_chain`), set up by `setup_federation` and measured by
`run_workload` (or `decompose_workload`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from chainload.federation import CHAIN_ID, Federation, advance_round, setup_federation
from chainload.harness import (
    Decomposition,
    Measurement,
    ThroughputError,
    Workload,
    decompose_workload,
    process_cpu_seconds,
    reset_base_fee,
    run_workload,
    wait_for_cadence,
)
from chainload.workloads import WORKLOADS
from fedledger.chain.rpc import client_version
from fedledger.devnet import Profile, running_devnet

# Workloads that need trainers of their own: a trainer commits once per round, and these
# commit in the same round as `commits`.
OWN_TRAINERS = frozenset({"batched"})
LATER_PREFIX = "later_"  # a workload run in round 1 is reported as later_<name>


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A chain profile and how often to measure on it. Every repetition gets a fresh Anvil
    with `per_repetition` trainers (plus `batch_trainers` for the batched workload) registered,
    so each one measures the same chain state.

    `workloads` run in round 0 (alternating their order); then, if `later_workloads` is not
    empty, round 0 is closed and round 1 opened (`advance_round`) and they run in round 1 with
    the same `per_repetition` trainers: a trainer's later commit, not its first."""

    name: str
    profile: Profile
    per_repetition: int  # trainers (and transfer senders) per repetition
    repetitions: int
    workloads: tuple[str, ...] = ("transfers", "commits")
    decompositions: int = 0  # more chains on which the workloads run with mining paused
    batch_trainers: int = 0  # trainers whose signed commitments the `batched` workload carries
    relayers: int = 0  # senders of the `batched` workload's transactions
    later_workloads: tuple[str, ...] = ()


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
    commits_sent: int  # to round 0, by all workloads
    later_round_commits: int | None = None  # round 1's, when later workloads ran
    later_commits_sent: int | None = None


@dataclass
class ScenarioResult:
    scenario: Scenario
    anvil: str = ""
    setup_gas: dict[str, int] = field(default_factory=dict)
    commit_gas_limit: int = 0
    later_commit_gas_limit: int | None = None
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


def build_workload(name: str, federation: Federation, per_repetition: int) -> Workload:
    """Workload `name` with its trainers: the first `per_repetition` of the federation's, or the
    rest for a workload in `OWN_TRAINERS`."""
    trainers = federation.trainers
    own = name in OWN_TRAINERS
    return WORKLOADS[name](federation, trainers[per_repetition:] if own else trainers[:per_repetition])


def run_chain(
    result: ScenarioResult, repetition: int, *, decompose: bool, run_dir: Path, log: Callable[[str], None]
) -> None:
    """Starts Anvil with the scenario's profile, sets up, runs every workload once (alternating
    their order) in round 0, then (not in a decomposition) the later workloads in round 1;
    checks each round's commit count, stops Anvil."""
    scenario = result.scenario
    label = f"{scenario.name} {'decomposition' if decompose else 'repetition'} {repetition}"
    folder = run_dir / f"{scenario.name}-{'d' if decompose else 'r'}{repetition}"
    per = scenario.per_repetition
    with running_devnet(scenario.profile, run_dir=folder) as devnet:
        federation = setup_federation(
            devnet.url, folder, per + scenario.batch_trainers, relayer_count=scenario.relayers
        )
        idle = idle_cpu(devnet.pid)
        log(f"{label}: {len(federation.trainers)} trainers registered ({federation.setup_seconds:.0f} s)")
        result.anvil = client_version(federation.ledger.w3)
        result.setup_gas, result.commit_gas_limit = federation.setup_gas, federation.commit_gas

        def measure(name: str, workload: Workload) -> None:
            measurement = run_workload(
                devnet.url, workload, federation.nonces, chain_id=CHAIN_ID, node_pid=devnet.pid
            )
            result.runs.append((repetition, measurement))
            log(
                f"  {name}: {measurement.tx_per_second:,.0f} tx/s, {measurement.items_per_second:,.0f} items/s, "
                f"{measurement.blocks} blocks"
            )

        def prepare() -> None:
            """Every workload starts from the same base fee and Anvil's own block cadence."""
            reset_base_fee(devnet.url)
            if scenario.profile.block_time and not decompose:  # a decomposition stops mining
                wait_for_cadence(devnet.url, scenario.profile.block_time)

        commits_sent = 0
        for name in workload_order(scenario.workloads, repetition):
            workload = build_workload(name, federation, per)
            commits_sent += workload.commits
            prepare()
            if decompose:
                parts = decompose_workload(
                    devnet.url, workload, federation.nonces, chain_id=CHAIN_ID, node_pid=devnet.pid
                )
                result.decompositions.append(parts)
                log(
                    f"  {name}: submit {parts.submit_us_per_tx:.0f} us/tx, mine {parts.mine_us_per_tx:.0f} us/tx"
                )
                continue
            measure(name, workload)
        round_commits = federation.ledger.round_state(0).commits
        later_sent: int | None = None
        later_commits: int | None = None
        if scenario.later_workloads and not decompose:
            later_round = advance_round(federation)
            result.later_commit_gas_limit = federation.commit_gas
            log(f"  round {later_round} open")
            later_sent = 0
            for name in workload_order(scenario.later_workloads, repetition):
                workload = build_workload(name, federation, per)
                workload = replace(workload, name=LATER_PREFIX + workload.name)
                later_sent += workload.commits
                prepare()
                measure(workload.name, workload)
            later_commits = federation.ledger.round_state(later_round).commits
    if round_commits != commits_sent:
        raise ThroughputError(f"{label}: round 0 has {round_commits} commits, {commits_sent} were sent")
    if later_commits != later_sent:
        raise ThroughputError(f"{label}: round 1 has {later_commits} commits, {later_sent} were sent")
    result.chains.append(
        ChainRun(
            repetition=repetition,
            decomposition=decompose,
            setup_seconds=federation.setup_seconds,
            idle_node_cpu=idle,
            round_commits=round_commits,
            commits_sent=commits_sent,
            later_round_commits=later_commits,
            later_commits_sent=later_sent,
        )
    )


def idle_cpu(pid: int, seconds: float = 1.0) -> float | None:
    """Cores process `pid` keeps busy over `seconds` (Anvil with an empty pool: block production)."""
    before = process_cpu_seconds(pid)
    time.sleep(seconds)
    after = process_cpu_seconds(pid)
    return None if before is None or after is None else (after - before) / seconds
