"""One full round of 1,000 trainers through a real chain and IPFS: `scale_1000_round_seconds`.

    python bench/scale.py [--trainers 1000] [--workers 2] [--aggregators 2] [--relayers 4]
                          [--batch-size 100] [--out PATH] [--run-dir DIR]

writes bench/results/scale.json.

The chain is Anvil with the Sei-like profile (10M gas per block, a block every 0.4 s), the
storage a local IPFS daemon (Kubo RPC API), the model the task's CNN (~47k parameters), the data
the MNIST training digits split IID over the trainers. Setup is not timed: deploy with the
project's ape script (the initial model pinned to IPFS), fund, stake and register every trainer
and aggregator through the throughput harness (`chainload`), open round 0, start the aggregators
as real `fedledger aggregator run` processes. Then one round, timed by phase:

1. train: each simulated trainer trains the global model on its shard, encodes and seals the
   update and signs its commitment (EIP-712). `--workers` processes share the trainers; in a
   real federation they train in parallel on their own machines, so this phase is the
   simulation's cost, reported apart from the protocol's (`protocol_seconds`).
2. commit: relayers (`fedledger.relayer`, one thread each) submit the signed commitments in
   `commitBatch`es of `--batch-size`; the last one closes the commit window.
3. reveal: each batch's trainers pin their files to IPFS (as trainers do once the Reveal phase
   has begun), then its relayer proves their openings against the batch's root
   (`revealBatch`); batches go through at once, so reveals are in flight while other files are
   still being published (`publish`: until the last file was pinned). The last reveal closes
   the reveal window.
4. aggregate: the aggregator services fetch and verify every update against its commitment,
   aggregate (FedAvg), pin the new model and attest; the quorum's last attestation finalizes.
   Timed from the last reveal to the finalization the benchmark sees (polled every 0.05 s).

`scale_1000_round_seconds` is the round's wall time, opening to finalization, with the
simulated training included; memory: each aggregator process's peak resident set (VmHWM).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import click
from chainload.federation import setup_federation
from chainload.rundir import run_directory
from scale_trainers import RoundInputs, SealedUpdate, train_and_seal

from fedledger.arrays import Array
from fedledger.chain.contracts import FedLedger
from fedledger.chain.params import Phase
from fedledger.chain.rounds import Opening, Rounds
from fedledger.chain.rpc import connect
from fedledger.devnet import PROFILES, running_devnet
from fedledger.devnet.ipfs import running_ipfs
from fedledger.learning.model import build_model, get_weights, model_spec
from fedledger.learning.shards import held_out
from fedledger.learning.train import accuracy_of
from fedledger.relayer.relayer import Relayer, RelayReport
from fedledger.storage.ipfs import IpfsClient
from fedledger.storage.models import fetch_model, global_model_binding, pin_initial_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "scale.json"
PROFILE = PROFILES["sei-like"]
WATCH_SECONDS = 0.05
ROUND_TIMEOUT = 1_800.0
# Long enough for the slowest machine; together below the unbonding period (3,600 s), as required.
WINDOWS = ("--commit-window", "1500", "--reveal-window", "900", "--aggregation-window", "900")
T = TypeVar("T")


class ScaleError(RuntimeError):
    """The round did not complete."""


@dataclass
class Phases:
    """Wall-clock seconds of each phase of the round, in order."""

    train: float = 0.0
    commit: float = 0.0
    reveal: float = 0.0  # publishing the files and revealing them, overlapped
    aggregate: float = 0.0
    publish: float = 0.0  # within `reveal`: until the last file was pinned


@dataclass
class Aggregators:
    """The aggregator service processes and their peak memory."""

    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]
    rss_before_kib: list[int] = field(default_factory=list)

    def peak_kib(self) -> list[int]:
        return [_status_kib(p.pid, "VmHWM") for p in self.processes]


def deploy_options(ipfs: IpfsClient) -> tuple[list[str], dict[str, Any]]:
    """The real initial model, pinned, and the deploy options that name it."""
    spec = model_spec()
    initial = pin_initial_model(ipfs, get_weights(build_model(seed=0)), spec, chain_id=PROFILE.chain_id)
    return [*initial.deploy_options(), *WINDOWS], {
        "parameters": spec.parameter_count,
        "file_bytes": len(initial.data),
    }


@contextmanager
def aggregator_services(
    run_dir: Path, rpc_url: str, ipfs_url: str, keys: Sequence[bytes]
) -> Iterator[Aggregators]:
    """`fedledger aggregator run` processes, one per key (handed over in the environment)."""
    logs_dir = run_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    processes, logs = [], []
    try:
        for index, key in enumerate(keys):
            variable = f"FEDLEDGER_SCALE_AGGREGATOR_{index}"
            log = logs_dir / f"aggregator-{index + 1}.log"
            command = [
                sys.executable,
                "-m",
                "fedledger",
                "--run-dir",
                str(run_dir),
                "--deployments-dir",
                str(run_dir / "deployments"),
                "--project-dir",
                str(REPO),
                "aggregator",
                "run",
                "--account",
                f"env:{variable}",
                "-v",
                "--rpc-url",
                rpc_url,
                "--ipfs-api",
                ipfs_url,
            ]
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        command,
                        env={**os.environ, variable: "0x" + key.hex()},
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            logs.append(log)
        yield Aggregators(processes, logs)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _status_kib(pid: int, field_name: str) -> int:
    """A `/proc/<pid>/status` memory field (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise ScaleError(f"no {field_name} for process {pid}")


def global_weights(rounds: Rounds, ipfs: IpfsClient) -> dict[str, Array]:
    """The task's current global model, checked against its on-chain digest and binding."""
    model, spec = rounds.global_model(), model_spec()
    binding = global_model_binding(
        chain_id=rounds.ledger.chain_id, task=str(rounds.task.address), version=model.version, spec=spec
    )
    return fetch_model(ipfs, model.cid, model.digest, spec, binding)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = ROUND_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ScaleError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(WATCH_SECONDS)


def chunks(items: Sequence[T], count: int) -> list[list[T]]:
    """`items` dealt into `count` lists of consecutive items (the last ones may be shorter)."""
    size = -(-len(items) // count)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def train_all(inputs: RoundInputs, trainers: list[tuple[int, bytes]], workers: int) -> list[SealedUpdate]:
    """Every trainer's update, trained and sealed in `workers` processes (spawned: no fork of
    this process's web3 sessions or threads)."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        parts = pool.map(train_and_seal, [inputs] * workers, chunks(trainers, workers))
        return [sealed for part in parts for sealed in part]


def pin_batch(ipfs_url: str, updates: Sequence[SealedUpdate]) -> list[Opening]:
    """Pins each update file (as its trainer would) and returns the openings with their CIDs."""
    ipfs = IpfsClient(ipfs_url)
    return [
        replace(u.opening, cid=ipfs.add(Path(u.path).read_bytes(), name=Path(u.path).name).cid)
        for u in updates
    ]


def in_parallel(tasks: Sequence[Callable[[], T]]) -> list[T]:
    with ThreadPoolExecutor(max_workers=max(1, len(tasks))) as pool:
        return [f.result() for f in [pool.submit(task) for task in tasks]]


def relay_commits(
    relayers: list[Relayer], updates: Sequence[SealedUpdate], batch_size: int
) -> list[RelayReport]:
    """Each relayer takes every `len(relayers)`-th batch of commitments and submits its batches."""
    batches = [list(updates[i : i + batch_size]) for i in range(0, len(updates), batch_size)]
    shares = [
        [u.signed for batch in batches[r :: len(relayers)] for u in batch] for r in range(len(relayers))
    ]
    return in_parallel([partial(r.commit, 0, s) for r, s in zip(relayers, shares, strict=True) if s])


def publish_and_reveal(
    ipfs_url: str, relayers: list[Relayer], updates: Sequence[SealedUpdate]
) -> tuple[list[RelayReport], float]:
    """Each batch's trainers pin their files, then its relayer reveals the batch, all batches
    at once: a relayer opens a batch as soon as its trainers have published, so reveals are in
    flight while other batches are still being published. Returns the reports and the time
    the last file was pinned (seconds from the start)."""
    by_trainer = {u.opening.trainer: u for u in updates}
    work = [
        (relayer, [by_trainer[t] for t in batch.trainers])
        for relayer in relayers
        for batch in relayer.batches(0)
    ]
    started = time.perf_counter()
    published: list[float] = []

    def one_batch(relayer: Relayer, batch: list[SealedUpdate]) -> RelayReport:
        openings = pin_batch(ipfs_url, batch)
        published.append(time.perf_counter() - started)
        return relayer.reveal(0, openings)

    reports = in_parallel([partial(one_batch, relayer, batch) for relayer, batch in work])
    return reports, max(published)


def check_reports(reports: Sequence[RelayReport], what: str) -> None:
    dropped = [d for report in reports for d in report.dropped]
    if dropped:
        raise ScaleError(f"{what}: {len(dropped)} entries dropped, e.g. {dropped[0]}")


@dataclass(frozen=True, kw_only=True)
class ScaleConfig:
    trainers: int = 1_000
    workers: int = 2  # processes that run the simulated trainers
    aggregators: int = 2
    relayers: int = 4
    batch_size: int = 100
    epochs: int = 3


def run(config: ScaleConfig, run_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    trainers, workers, aggregators, relayers = (
        config.trainers,
        config.workers,
        config.aggregators,
        config.relayers,
    )
    batch_size = config.batch_size
    with running_devnet(PROFILE, run_dir=run_dir) as devnet, running_ipfs(run_dir=run_dir) as daemon:
        ipfs = IpfsClient(daemon.api_url)
        options, model = deploy_options(ipfs)
        log(f"setup: deploying and registering {trainers} trainers and {aggregators} aggregators")
        setup_started = time.perf_counter()
        federation = setup_federation(
            devnet.url,
            run_dir,
            trainers,
            deploy_options=options,
            aggregator_count=aggregators,
            relayer_count=relayers,
        )
        setup_seconds = time.perf_counter() - setup_started
        ledger = federation.ledger
        rounds = Rounds(ledger)
        task = str(ledger.task.address)
        opened = ledger.round_state(0)
        updates_dir = run_dir / "updates"
        updates_dir.mkdir(exist_ok=True)
        weights = global_weights(rounds, ipfs)
        relayer_list = [
            Relayer(Rounds(FedLedger(connect(devnet.url), ledger.deployment)), account, batch_size=batch_size)
            for account in federation.relayers
        ]
        keys = [bytes(a.key) for a in federation.aggregators]
        with aggregator_services(run_dir, devnet.url, daemon.api_url, keys) as services:
            wait_for(
                lambda: all(_log_says(path, "commit phase") for path in services.logs),
                "the aggregators to start",
                120,
            )
            services.rss_before_kib = [_status_kib(p.pid, "VmRSS") for p in services.processes]
            phases = Phases()
            log(f"round 0: training {trainers} trainers in {workers} processes")
            started = time.perf_counter()
            inputs = RoundInputs(
                chain_id=ledger.chain_id,
                task=task,
                round=0,
                trainers=trainers,
                weights=weights,
                updates_dir=str(updates_dir),
                epochs=config.epochs,
            )
            sealed = train_all(
                inputs, [(i, bytes(t.key)) for i, t in enumerate(federation.trainers)], workers
            )
            mark = time.perf_counter()
            phases.train = mark - started
            log(f"round 0: committing through {relayers} relayers")
            commits = relay_commits(relayer_list, sealed, batch_size)
            check_reports(commits, "commit")
            wait_for(lambda: rounds.synced_phase(0) == Phase.REVEAL, "the reveal phase")
            phases.commit, mark = time.perf_counter() - mark, time.perf_counter()
            log("round 0: publishing the updates and revealing them")
            reveals, phases.publish = publish_and_reveal(daemon.api_url, relayer_list, sealed)
            check_reports(reveals, "reveal")
            wait_for(lambda: rounds.synced_phase(0) != Phase.REVEAL, "the aggregation phase")
            phases.reveal, mark = time.perf_counter() - mark, time.perf_counter()
            log("round 0: aggregating")
            wait_for(lambda: rounds.phase(0) == Phase.FINALIZED, "the finalization")
            phases.aggregate = time.perf_counter() - mark
            round_seconds = time.perf_counter() - started
            peaks = services.peak_kib()
        result = rounds.result(0)
        new_weights = global_weights(rounds, ipfs)
        evaluation = held_out(0)
        measured = Measured(
            trainers=trainers,
            phases=phases,
            round_seconds=round_seconds,
            train_seconds=[s.train_seconds for s in sealed],
            rss_before_kib=services.rss_before_kib,
            peak_kib=peaks,
            commits=commits,
            reveals=reveals,
            attest_gas=rounds.transaction_gas("AttestationSubmitted", {"round": 0}),
            accuracy_before=accuracy_of(weights, build_model(), evaluation),
            accuracy_after=accuracy_of(new_weights, build_model(), evaluation),
            accepted=len(rounds.revealed(0)) - result.rejected_count,
            rejected=result.rejected_count,
        )
        return {
            "figures": figures(measured),
            "setup": {
                "trainers": trainers,
                "aggregators": aggregators,
                "relayers": relayers,
                "batch_size": batch_size,
                "workers": workers,
                "epochs": config.epochs,
                "profile": {
                    "name": PROFILE.name,
                    "block_time": PROFILE.block_time,
                    "gas_limit": PROFILE.gas_limit,
                },
                "model": model,
                "expected_commits": opened.expected_commits,
                "samples_per_trainer": sorted({s.opening.num_samples for s in sealed}),
                "setup_seconds": round(setup_seconds, 1),
            },
            "notes": notes(config),
            "aggregator_logs": [_tail(path) for path in services.logs],
        }


def notes(config: ScaleConfig) -> list[str]:
    return [
        f"chain: Anvil with the Sei-like profile ({PROFILE.gas_limit:,} gas per block, a block every "
        f"{PROFILE.block_time} s); {config.relayers} relayers, {config.batch_size} commitments per batch, "
        "up to 4 transactions in flight per relayer",
        f"train: the {config.trainers} simulated trainers run in {config.workers} processes on this "
        "machine's cores, one after the other within a process (process start and data loading "
        "included); in a federation they train in parallel on their own machines, so "
        "scale_protocol_seconds leaves this phase out",
        "publish: every trainer's file goes into the one local IPFS daemon (js-ipfs) that the "
        "aggregators also read from, on the same cores; in a federation each trainer publishes "
        "to its own node, in parallel",
        f"aggregate: {config.aggregators} aggregator services (`fedledger aggregator run`), both needed "
        "for the 2/3 stake quorum, fetch and verify every update against its revealed digest, "
        "aggregate with FedAvg, pin the model and attest; they prefetch while reveals arrive",
        "memory: each aggregator's VmHWM read from /proc just after the finalization; "
        "scale_aggregator_rss_at_open_mib is its resident set before the round's first commit",
    ]


@dataclass(frozen=True, kw_only=True)
class Measured:
    trainers: int
    phases: Phases
    round_seconds: float
    train_seconds: list[float]  # each trainer's local training
    rss_before_kib: list[int]  # each aggregator's resident set when the round opened
    peak_kib: list[int]  # and its peak by the finalization
    commits: list[RelayReport]
    reveals: list[RelayReport]
    attest_gas: list[int]
    accuracy_before: float
    accuracy_after: float
    accepted: int
    rejected: int


def figures(m: Measured) -> dict[str, Any]:
    commit_txs = [tx for r in m.commits for tx in r.transactions]
    reveal_txs = [tx for r in m.reveals for tx in r.transactions]
    mib = 1 / 1024
    return {
        f"scale_{m.trainers}_round_seconds": round(m.round_seconds, 1),
        "scale_protocol_seconds": round(m.round_seconds - m.phases.train, 1),
        **{f"scale_{phase}_seconds": round(seconds, 2) for phase, seconds in asdict(m.phases).items()},
        "scale_train_seconds_per_trainer_median": round(statistics.median(m.train_seconds), 4),
        "scale_commit_transactions": len(commit_txs),
        "scale_commit_gas_per_update": round(sum(tx.gas_used for tx in commit_txs) / m.trainers),
        "scale_reveal_transactions": len(reveal_txs),
        "scale_reveal_gas_per_update": round(sum(tx.gas_used for tx in reveal_txs) / m.trainers),
        "scale_attest_gas": m.attest_gas,
        "scale_accepted": m.accepted,
        "scale_rejected": m.rejected,
        "scale_aggregator_peak_rss_mib": round(max(m.peak_kib) * mib, 1),
        "scale_aggregator_rss_at_open_mib": round(max(m.rss_before_kib) * mib, 1),
        "scale_accuracy_before": round(m.accuracy_before, 4),
        "scale_accuracy_after": round(m.accuracy_after, 4),
    }


def _log_says(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


def _tail(path: Path, lines: int = 12) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-lines:]


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--trainers", type=click.IntRange(2), default=1_000, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="training processes")
@click.option("--aggregators", type=click.IntRange(1), default=2, show_default=True)
@click.option("--relayers", type=click.IntRange(1), default=4, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=100, show_default=True)
@click.option(
    "--epochs", type=click.IntRange(1), default=3, show_default=True, help="local epochs per trainer"
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True
)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), help="keep the run's files here")
def main(out: Path, run_dir: Path | None, **options: int) -> None:
    started = time.perf_counter()
    with run_directory(run_dir, "scale") as folder:
        document = run(ScaleConfig(**options), folder, lambda line: click.echo(line, err=True))
    document = {
        "benchmark": "scale",
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
        **document,
        "seconds": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    click.echo(json.dumps(document["figures"], indent=2))


if __name__ == "__main__":
    main()
