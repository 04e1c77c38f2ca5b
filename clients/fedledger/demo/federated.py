"""`fedledger demo`: federated training end to end on a private devnet, then nothing left behind.

1. Start Anvil and the IPFS daemon (their own run directory, free ports).
2. Build the initial model (seeded), pin it to IPFS, and deploy every contract with the ape
   script, giving it the model's sha256, CID and spec hash.
3. Fund and register the trainers and aggregators; pass one governance proposal (raise the
   reward per round) through vote, timelock and execution; open round 0.
4. Start the aggregator services and the trainers as separate processes (`fedledger
   aggregator run`, `fedledger trainer run --app ...`): each trainer trains the app (the MNIST
   CNN by default) on its private data (its own file, or its partition of a common data set),
   commits a seal of its update, then pins the update and reveals it once the commit window
   has closed; each aggregator verifies, aggregates, pins and attests.
5. Watch the chain: for every finalized round, fetch the new global model from IPFS, check it
   against the on-chain digest, score it with the app's evaluate() on held-out data, print a row.
6. Let the trainers claim their rewards, stop every process, print a JSON summary last.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from eth_account.signers.local import LocalAccount

from fedledger.app.api import App, Context, DemoData, Scalar, Weights
from fedledger.app.config import config_items
from fedledger.app.evaluation import Evaluator, app_evaluator
from fedledger.app.loader import load_any_app
from fedledger.app.options import app_arguments
from fedledger.app.spec import app_spec
from fedledger.chain import ape_cli
from fedledger.chain.accounts import devnet_accounts
from fedledger.chain.contracts import FedLedger
from fedledger.chain.deployments import Deployment, deployment_path
from fedledger.chain.params import (
    CLIP_NORM_UNIT,
    DP_DELTA_UNIT,
    TOKEN,
    AggregationRule,
    ProposalState,
    Role,
    TaskParameter,
)
from fedledger.chain.proposals import ParameterChange
from fedledger.chain.rounds import Finalization, Rounds
from fedledger.chain.rpc import connect
from fedledger.chain.values import format_token
from fedledger.demo.dashboard import dashboard_process, hold
from fedledger.demo.run import DemoLog, GovernanceOutcome, govern, register_all, show_deployment
from fedledger.devnet import PROFILES, running_devnet
from fedledger.devnet import ipfs as ipfs_daemon
from fedledger.devnet.process import log_tail
from fedledger.learning.privacy import PrivacyRule, running_epsilon
from fedledger.priority import lower_thread_priority
from fedledger.storage.digests import to_hex
from fedledger.storage.ipfs import IpfsClient
from fedledger.storage.models import fetch_model, global_model_binding, pin_initial_model
from fedledger.storage.schema import ModelSpec

DEPLOYER_ACCOUNT = "TEST::0"  # ape's first test account = Anvil's account 0
LOCAL_CHAIN_ID = 31337


class DemoError(RuntimeError):
    """The demo could not complete."""


@dataclass(frozen=True, kw_only=True)
class FederatedOptions:
    project: Path
    run_dir: Path
    trainers: int = 8
    aggregators: int = 3
    rounds: int = 10
    partition: str = "iid"
    alpha: float = 0.5
    epochs: int | None = None  # None: the app's default
    data_seed: int = 0
    app: str = "mnist-cnn"  # built-in name, entry point or import string
    flower_app: str | None = None  # or a Flower ClientApp run unchanged, with its model
    flower_model: str | None = None
    data: Path | None = None  # one data set every trainer keeps a partition of (else the app's demo data)
    test_data: Path | None = None  # held-out data the app evaluates global models on
    app_config: dict[str, Scalar] = field(default_factory=dict)
    commit_window: int = 120
    reveal_window: int = 60
    aggregation_window: int = 60
    voting_period: int = 8
    timelock_delay: int = 2
    governance: bool = True
    attackers: int = 0
    attacks: tuple[str, ...] = ("sign-flip",)  # assigned to the attackers in turn
    switch_rule: AggregationRule | None = None
    switch_at: int = 2
    round_timeout: float = 300.0
    dp_noise: float = 0.0  # differential privacy: noise std as a multiple of dp_clip; 0: off
    dp_clip: float = 0.0  # differential privacy: L2 bound of each trainer's update
    dp_delta: float = 1e-5
    dashboard: bool = False  # serve `fedledger dashboard` on the demo's devnet
    dashboard_port: int = 0  # 0: a free port
    dashboard_hold: float = 0.0  # seconds to keep everything up after the last round


@dataclass(kw_only=True)
class RoundRow:
    round: int
    rule: str
    accepted: int
    rejected: int
    accuracy: float | None  # the app's headline metric; None where the app does not evaluate
    commit_gas: list[int]  # per commit transaction
    reveal_gas: list[int]  # per reveal transaction
    attest_gas: list[int]  # per attestation transaction (the last one also finalizes)
    seconds: int  # opening to finalization, by block timestamps
    privacy: PrivacyRule = field(default_factory=lambda: PrivacyRule(0.0, 0.0, 0.0))
    epsilon: float | None = None  # spent by a trainer that took part in every round so far
    train_seconds: float = 0.0  # the slowest trainer's local training in this round
    overhead: float | None = None  # 1 - train_seconds / wall time since the previous finalization


@dataclass(kw_only=True)
class FederatedSummary:
    ok: bool = False
    rounds: int = 0
    trainers: int = 0
    aggregators: int = 0
    partition: str = "iid"
    app: str = ""  # the app's model name
    metric: str | None = "accuracy"  # what `accuracy` holds: the app's headline metric (None: no evaluate)
    initial_accuracy: float | None = 0.0
    final_accuracy: float | None = 0.0
    accuracy: list[float | None] = field(default_factory=list)
    # The same app trained centrally on the union of the trainers' data, for as many epochs in
    # total, scored on the same held-out data (demo data only).
    centralized_accuracy: float | None = None
    commit_gas: int = 0
    reveal_gas: int = 0
    attest_gas: int = 0
    # Median over rounds of everything but local training as a share of the round's wall time.
    protocol_overhead_share: float | None = None
    protocol_seconds: float | None = None  # median of wall time minus training, per round
    rejected: int = 0
    rewards_claimed: str = "0"
    proposal_state: str = ""
    reward_per_round: str = ""
    attackers: int = 0
    attacks: list[str] = field(default_factory=list)  # per attacker
    slashed_trainers: list[str] = field(default_factory=list)
    slashed: str = "0"
    rules: list[str] = field(default_factory=list)
    privacy: str = "off"  # the last round's differential privacy rule
    # Epsilon a trainer that took part in every round has spent (at the last round's delta);
    # None without differential privacy.
    epsilon: float | None = None
    epsilons: list[float | None] = field(default_factory=list)
    switch_state: str = ""
    chain_id: int = 0
    addresses: dict[str, str] = field(default_factory=dict)
    anvil_stopped: bool = False
    ipfs_stopped: bool = False
    seconds: float = 0.0
    dashboard_url: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def run_federated_demo(options: FederatedOptions, *, echo: Callable[[str], None] = print) -> FederatedSummary:
    """Runs the demo; always stops what it started. Returns the summary (also printed as JSON)."""
    log = DemoLog(echo)
    summary = FederatedSummary(
        trainers=options.trainers, aggregators=options.aggregators, partition=options.partition
    )
    accounts = 2 + options.trainers + options.aggregators  # sponsor, trainers, aggregators, delegate
    devnet = daemon = None
    try:
        log.step("starting Anvil (profile local) and the IPFS daemon")
        with (
            running_devnet(PROFILES["local"], run_dir=options.run_dir, accounts=max(10, accounts)) as devnet,
            ipfs_daemon.running_ipfs(run_dir=options.run_dir) as daemon,
            contextlib.ExitStack() as helpers,  # closed first: the dashboard stops before its node
        ):
            log.info(f"anvil {devnet.url} (pid {devnet.pid}); ipfs {daemon.api_url} (pid {daemon.state.pid})")
            _run(options, devnet.url, daemon.api_url, log, summary, helpers)
            if summary.dashboard_url and options.dashboard_hold > 0:
                hold(summary.dashboard_url, options.dashboard_hold, log)
    finally:
        summary.anvil_stopped = devnet is not None and not devnet.is_running()
        summary.ipfs_stopped = daemon is not None and not daemon.is_running()
        summary.seconds = round(time.monotonic() - log.started, 1)
    summary.ok = (
        summary.anvil_stopped
        and summary.ipfs_stopped
        and summary.rounds == options.rounds
        and (not options.governance or summary.proposal_state == ProposalState.EXECUTED.name)
        and (options.switch_rule is None or summary.switch_state == ProposalState.EXECUTED.name)
    )
    log.step(f"Anvil and IPFS stopped; demo finished in {summary.seconds} s")
    echo(summary.to_json())
    return summary


def _run(
    options: FederatedOptions,
    rpc_url: str,
    ipfs_url: str,
    log: DemoLog,
    summary: FederatedSummary,
    helpers: contextlib.ExitStack,
) -> None:
    ipfs = IpfsClient(ipfs_url)
    setup = AppSetup.prepare(options, options.run_dir / "data")
    app, initial, spec = setup.app, setup.initial, setup.spec
    pinned = pin_initial_model(ipfs, initial, spec, chain_id=LOCAL_CHAIN_ID)
    summary.app, summary.metric = spec.name, app.metric if setup.evaluator else None
    summary.initial_accuracy = setup.score(initial)
    log.step(f"app {spec.name}: {spec.parameter_count:,} parameters, {len(pinned.data):,} bytes")
    log.info(
        f"sha256 {to_hex(pinned.digest)}  cid {pinned.cid}  {_metric_note(summary)} {summary.initial_accuracy}"
    )
    if setup.demo_data is not None and setup.evaluator is not None:
        summary.centralized_accuracy = setup.centralized_baseline(options.rounds)
        log.info(
            f"centralized baseline (one party holding every trainer's data, {options.rounds} rounds): "
            f"{app.metric} {summary.centralized_accuracy}"
        )

    log.step("deploying with the ape script: ape run deploy all --network ethereum:local:foundry")
    deployment, _ = ape_cli.deploy(
        project=options.project,
        network=PROFILES["local"].ape_network,
        rpc_url=rpc_url,
        chain_id=LOCAL_CHAIN_ID,
        account=DEPLOYER_ACCOUNT,
        deployments_dir=options.run_dir / "deployments",
        options=[*pinned.deploy_options(), *_deploy_options(options)],
    )
    show_deployment(deployment, log)
    summary.chain_id, summary.addresses = deployment.chain_id, dict(deployment.addresses)
    if options.dashboard:
        summary.dashboard_url = helpers.enter_context(
            dashboard_process(
                project=options.project,
                run_dir=options.run_dir,
                deployment_file=deployment_path(deployment.chain_id, options.run_dir / "deployments"),
                rpc_url=rpc_url,
                ipfs_url=ipfs_url,
                port=options.dashboard_port,
                data_seed=options.data_seed,
                log=log,
                app_options=setup.dashboard_options(options),
            )
        )
    ledger = FedLedger(connect(rpc_url), deployment)
    rounds = Rounds(ledger)

    keys = devnet_accounts(2 + options.trainers + options.aggregators)
    deployer, trainers = keys[0], keys[1 : 1 + options.trainers]
    aggregators, delegate = keys[1 + options.trainers : -1], keys[-1]
    params = deployment.parameters
    register_all(ledger, log, deployer, trainers, Role.TRAINER, int(params["min_trainer_stake"]))
    register_all(ledger, log, deployer, aggregators, Role.AGGREGATOR, int(params["min_aggregator_stake"]))

    if options.governance:
        reward = ledger.task_parameter(TaskParameter.REWARD_PER_ROUND)
        change = ParameterChange("task", TaskParameter.REWARD_PER_ROUND, reward + reward // 2)
        outcome = govern(
            ledger,
            log,
            change,
            "Raise the trainers' reward per round by half",
            trainers[0],
            trainers + aggregators,
            deployer,
        )
        summary.proposal_state = outcome.state.name
    summary.reward_per_round = format_token(ledger.task_parameter(TaskParameter.REWARD_PER_ROUND))
    if options.switch_rule is not None:
        # Training processes send from the participants' keys; the mid-run vote comes from a
        # delegate holding their delegated stake, so no two processes share an account.
        log.step(f"every participant delegates its votes to {delegate.address} for the mid-run vote")
        for account in trainers + aggregators:
            ledger.delegate(account, delegate.address)
    summary.attackers = options.attackers
    summary.attacks = [_attack_of(options, i) for i in range(options.attackers)]
    for number, attack in enumerate(summary.attacks, start=options.trainers - options.attackers + 1):
        log.info(f"trainer {number} runs the attack {attack!r}")

    log.step("opening round 0")
    log.tx(ledger.start(deployer), "start()")
    log.step(f"starting {options.aggregators} aggregator and {options.trainers} trainer processes")
    switch = (
        RuleSwitch(options, rpc_url, deployment, delegate, log) if options.switch_rule is not None else None
    )
    with _services(options, setup, rpc_url, ipfs_url, len(trainers), len(aggregators)) as processes:
        _watch(options, rounds, ipfs_url, setup, processes, log, summary, switch)
        _wait_for_exit(processes, timeout=120)
    if switch is not None:
        summary.switch_state = switch.finish()
    claimed = sum(
        int(log_["args"]["amount"])
        for log_ in ledger.task.events.RewardClaimed().get_logs(from_block=deployment.block_number)
    )
    summary.rewards_claimed = format_token(claimed)
    slashes = ledger.registry.events.Slashed().get_logs(from_block=deployment.block_number)
    summary.slashed_trainers = sorted({str(e["args"]["account"]) for e in slashes})
    summary.slashed = format_token(sum(int(e["args"]["amount"]) for e in slashes))
    if slashes:
        log.info(f"slashed: {summary.slashed} from {len(summary.slashed_trainers)} account(s)")
    log.info(
        f"rewards claimed by trainers: {summary.rewards_claimed} (reward per round {summary.reward_per_round})"
    )


@dataclass(frozen=True, kw_only=True)
class AppSetup:
    """The demo's app: its config, each trainer's data, the initial model and the evaluator."""

    app: App[object]
    config: dict[str, Scalar]
    demo_data: DemoData | None
    trainer_data: list[tuple[Path | None, tuple[int, int] | None]]  # per trainer: --data, --shard
    initial: Weights
    spec: ModelSpec
    evaluator: Evaluator | None
    seed: int

    @classmethod
    def prepare(cls, options: FederatedOptions, data_dir: Path) -> AppSetup:
        app = load_any_app(options.app, options.flower_app, options.flower_model)
        shortcuts: dict[str, Scalar] = {"data-seed": options.data_seed}
        if options.partition != "iid":
            shortcuts.update(partitioning=options.partition, alpha=options.alpha)
        if options.epochs is not None:
            shortcuts["epochs"] = options.epochs
        config = {**shortcuts, **options.app_config}
        count = options.trainers
        demo_data = app.demo_data(data_dir, count, options.data_seed) if options.data is None else None
        trainer_data: list[tuple[Path | None, tuple[int, int] | None]]
        union: Path | None
        test: Path | None
        if demo_data is not None:
            trainer_data = [(path, None) for path in demo_data.trainer_paths]
            union, test = demo_data.union_path, demo_data.test_path
        else:
            trainer_data = [(options.data, (index, count)) for index in range(count)]
            union, test = options.data, options.test_data
        initial, spec = app_spec(app, Context(config=config, data_path=union, seed=options.data_seed))
        evaluator = None
        if app.can_evaluate and (test is not None or options.data is None):
            evaluator = app_evaluator(app, Context(config=config, data_path=test))
        return cls(
            app=app,
            config=config,
            demo_data=demo_data,
            trainer_data=trainer_data,
            initial=initial,
            spec=spec,
            evaluator=evaluator,
            seed=options.data_seed,
        )

    def dashboard_options(self, options: FederatedOptions) -> list[str]:
        """`fedledger dashboard` options that score models as this demo does (or not at all)."""
        if self.evaluator is None:
            return ["--no-accuracy"]
        app = app_arguments(options.app, options.flower_app, options.flower_model)
        test = self.demo_data.test_path if self.demo_data is not None else options.test_data
        return [*app, *(["--data", str(test)] if test else []), *config_items(self.config)]

    def score(self, weights: Weights) -> float | None:
        return None if self.evaluator is None else round(self.evaluator(weights), 4)

    def centralized_baseline(self, rounds: int) -> float | None:
        """The app trained on the union of the trainers' data, as many rounds, then scored."""
        assert self.demo_data is not None
        context = Context(config=self.config, data_path=self.demo_data.union_path, seed=self.seed)
        data = self.app.load_data(context)
        weights = self.initial
        for round_ in range(rounds):
            weights = self.app.train(
                weights, data, context.for_round(round_, self.seed * 1_000_003 + round_)
            ).weights
        return self.score(weights)


def _metric_note(summary: FederatedSummary) -> str:
    return summary.metric or "no metric (the app does not evaluate)"


def _attack_of(options: FederatedOptions, attacker: int) -> str:
    return options.attacks[attacker % len(options.attacks)]


def _deploy_options(options: FederatedOptions) -> list[str]:
    """The deploy options of the demo's task, besides its initial model."""
    return [
        "--commit-window",
        str(options.commit_window),
        "--reveal-window",
        str(options.reveal_window),
        "--aggregation-window",
        str(options.aggregation_window),
        "--min-updates",
        str(max(1, options.trainers // 2)),
        "--voting-period",
        str(options.voting_period),
        "--timelock-delay",
        str(options.timelock_delay),
        "--reward-pool",
        str(100_000 * TOKEN),
        "--dp-noise-multiplier",
        str(round(options.dp_noise * CLIP_NORM_UNIT)),
        "--dp-clip-norm",
        str(round(options.dp_clip * CLIP_NORM_UNIT)),
        "--dp-delta",
        str(round(options.dp_delta * DP_DELTA_UNIT)),
    ]


class RuleSwitch:
    """The mid-run governance vote: switch the aggregation rule while training goes on.

    Runs in a thread with its own chain client, from the delegate's account (which no
    training process uses); rounds opened after execution use the new rule.
    """

    def __init__(
        self,
        options: FederatedOptions,
        rpc_url: str,
        deployment: Deployment,
        delegate: LocalAccount,
        log: DemoLog,
    ) -> None:
        assert options.switch_rule is not None
        self.rule = options.switch_rule
        self.rpc_url, self.deployment, self.delegate, self.log = rpc_url, deployment, delegate, log
        self.thread: threading.Thread | None = None
        self.outcome: GovernanceOutcome | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="rule-switch", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        try:
            ledger = FedLedger(connect(self.rpc_url), self.deployment)
            change = ParameterChange("task", TaskParameter.AGGREGATION_RULE, int(self.rule))
            description = f"Switch aggregation to {self.rule.name.lower()}: updates look poisoned"
            self.outcome = govern(
                ledger, self.log, change, description, self.delegate, [self.delegate], self.delegate
            )
        except BaseException as exc:  # reported by finish() in the main thread
            self.error = exc

    def finish(self, timeout: float = 120.0) -> str:
        """Waits for the vote to end; its final proposal state (or why it failed)."""
        if self.thread is None:
            return "NOT_STARTED"
        self.thread.join(timeout)
        if self.error is not None:
            return f"FAILED: {self.error}"
        return self.outcome.state.name if self.outcome else "UNFINISHED"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path


@contextlib.contextmanager
def _services(
    options: FederatedOptions, setup: AppSetup, rpc_url: str, ipfs_url: str, trainers: int, aggregators: int
) -> Iterator[list[Process]]:
    """Starts the aggregator and trainer processes; stops any still running on the way out."""
    logs = options.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    common = [
        "--run-dir",
        str(options.run_dir),
        "--deployments-dir",
        str(options.run_dir / "deployments"),
        "--project-dir",
        str(options.project),
    ]
    node = ["--rpc-url", rpc_url, "--ipfs-api", ipfs_url]
    commands: list[tuple[str, list[str]]] = []
    for index in range(aggregators):
        account = f"dev:{1 + trainers + index}"
        commands.append(
            (
                f"aggregator-{index + 1}",
                ["aggregator", "run", "--account", account, "--rounds", str(options.rounds), "-v", *node],
            )
        )
    for index in range(trainers):
        data_path, partition = setup.trainer_data[index]
        app = ["--app", options.app]
        if options.flower_app is not None and options.flower_model is not None:
            app = ["--flower-app", options.flower_app, "--flower-model", options.flower_model]
        shard = [*app, "--data-seed", str(options.data_seed), *config_items(setup.config)]
        if data_path is not None:
            shard += ["--data", str(data_path)]
        if partition is not None:
            shard += ["--shard", f"{partition[0]}/{partition[1]}"]
        if index >= trainers - options.attackers:
            shard += ["--attack", _attack_of(options, index - (trainers - options.attackers))]
        commands.append(
            (
                f"trainer-{index + 1}",
                [
                    "trainer",
                    "run",
                    "--account",
                    f"dev:{1 + index}",
                    "--rounds",
                    str(options.rounds),
                    "-v",
                    *shard,
                    *node,
                ],
            )
        )
    processes: list[Process] = []
    try:
        for name, args in commands:
            path = logs / f"{name}.log"
            with path.open("wb") as out:
                popen = subprocess.Popen(
                    [sys.executable, "-m", "fedledger", *common, *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            processes.append(Process(name, popen, path))
        yield processes
    finally:
        for process in processes:
            if process.popen.poll() is None:
                process.popen.terminate()
        for process in processes:
            try:
                process.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()


def _watch(
    options: FederatedOptions,
    rounds: Rounds,
    ipfs_url: str,
    setup: AppSetup,
    processes: list[Process],
    log: DemoLog,
    summary: FederatedSummary,
    switch: RuleSwitch | None = None,
) -> None:
    """Prints a row per finalized round until `options.rounds` rounds are final."""
    seen = 0
    deadline = time.monotonic() + options.round_timeout
    log.echo(
        f"{'round':>5} {'rule':>12} {'accepted':>8} {'rejected':>8} {'accuracy':>8} {'commit gas':>10} {'reveal gas':>10} {'attest gas':>10} {'wall s':>7} {'train s':>7} {'overhead':>8} {'epsilon':>8}"
    )
    finalized_at: dict[int, float] = {}  # round -> wall clock when the watcher saw it final
    last_block: int | None = None
    rows = RowWorker(rounds, ipfs_url, setup, processes, log)
    try:
        while seen < options.rounds:
            _check_alive(processes)
            rows.check()
            # A finalization comes in a block: no new block, no need to read the events again.
            block = rounds.ledger.w3.eth.block_number
            finals = rounds.finalizations()[seen : options.rounds] if block != last_block else []
            last_block = block
            now = time.monotonic()
            for final in finals:  # before any slow work, so the times are those of the polls
                finalized_at.setdefault(final.round, now)
            for final in finals:
                seen += 1
                previous = finalized_at.get(final.round - 1)
                rows.submit(final, version=seen, wall=None if previous is None else now - previous)
                deadline = time.monotonic() + options.round_timeout
                if switch is not None and final.round >= options.switch_at:
                    switch.start()
            if time.monotonic() > deadline:
                raise DemoError(
                    f"no round finalized within {options.round_timeout:.0f} s; see logs in {options.run_dir / 'logs'}"
                )
            time.sleep(0.1)
        _summarize(rows.results(), summary)
    finally:
        rows.close()


def _summarize(results: list[tuple[RoundRow, float | None]], summary: FederatedSummary) -> None:
    """The summary's per-round figures from the rows (and wall times), in round order."""
    commit_gas: list[int] = []
    reveal_gas: list[int] = []
    attest_gas: list[int] = []
    overheads: list[float] = []
    protocol_seconds: list[float] = []
    for row, wall in results:
        commit_gas += row.commit_gas
        reveal_gas += row.reveal_gas
        attest_gas += row.attest_gas
        summary.accuracy.append(row.accuracy)
        summary.rules.append(row.rule)
        summary.epsilons.append(None if row.epsilon is None else round(row.epsilon, 4))
        summary.privacy = str(row.privacy)
        summary.rejected += row.rejected
        if row.overhead is not None:
            overheads.append(row.overhead)
        if wall is not None:
            protocol_seconds.append(wall - row.train_seconds)
    summary.rounds = len(results)
    summary.protocol_overhead_share = round(statistics.median(overheads), 3) if overheads else None
    summary.protocol_seconds = round(statistics.median(protocol_seconds), 2) if protocol_seconds else None
    summary.final_accuracy = summary.accuracy[-1] if summary.accuracy else None
    summary.epsilon = summary.epsilons[-1] if summary.epsilons else None
    summary.commit_gas = _median(commit_gas)
    summary.reveal_gas = _median(reveal_gas)
    summary.attest_gas = _median(attest_gas)


class RowWorker:
    """Builds and prints each finalized round's row, in order, in one background thread at a
    lower CPU priority. Fetching, checking and evaluating the new model and reading the round's
    gas is the demo's own bookkeeping: in the watching loop it delayed the sight of the next
    finalization, and at full priority it took cores from the federation it measures."""

    def __init__(
        self, rounds: Rounds, ipfs_url: str, setup: AppSetup, processes: list[Process], log: DemoLog
    ) -> None:
        self.deployment = rounds.ledger.deployment
        self.w3_url = str(getattr(rounds.ledger.w3.provider, "endpoint_uri", ""))
        self.ipfs_url, self.setup, self.processes, self.log = ipfs_url, setup, processes, log
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-rows")
        self._futures: list[Future[tuple[RoundRow, float | None]]] = []
        self._local: tuple[Rounds, IpfsClient] | None = None
        self._privacy: list[PrivacyRule] = []

    def submit(self, final: Finalization, *, version: int, wall: float | None) -> None:
        """Queues the row of `final`; `wall`: seconds since the previous finalization was seen."""
        self._futures.append(self._pool.submit(self._row, final, version, wall))

    def check(self) -> None:
        """Raises the error of a row that failed, if any."""
        for future in self._futures:
            if future.done():
                future.result()

    def results(self) -> list[tuple[RoundRow, float | None]]:
        """Every row with its wall time, in round order, once all are printed."""
        return [future.result() for future in self._futures]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _row(self, final: Finalization, version: int, wall: float | None) -> tuple[RoundRow, float | None]:
        rounds, ipfs = self._thread_state()
        row = _row(final, rounds, ipfs, self.setup, version=version)
        self._privacy.append(row.privacy)  # rows are built one at a time, in round order
        row.epsilon = running_epsilon(self._privacy)[-1]
        row.train_seconds = _training_seconds(self.processes, final.round)
        if wall is not None:
            row.overhead = round(1 - row.train_seconds / wall, 3) if wall > 0 else None
        self.log.echo(
            f"{row.round:>5} {row.rule:>12} {row.accepted:>8} {row.rejected:>8} {_score(row.accuracy):>8} "
            f"{_median(row.commit_gas):>10,} {_median(row.reveal_gas):>10,} {_median(row.attest_gas):>10,} "
            f"{row.seconds:>7} {row.train_seconds:>7.2f} {_percent(row.overhead):>8} {_epsilon(row):>8}"
        )
        return row, wall

    def _thread_state(self) -> tuple[Rounds, IpfsClient]:
        """This thread's own clients (web3 and requests sessions are not shared between threads)."""
        if self._local is None:
            lower_thread_priority()
            torch.set_num_threads(1)  # the only torch work left in this process
            ledger = FedLedger(connect(self.w3_url), self.deployment, check_code=False)
            self._local = (Rounds(ledger), IpfsClient(self.ipfs_url))
        return self._local


def _row(
    final: Finalization,
    rounds: Rounds,
    ipfs: IpfsClient,
    setup: AppSetup,
    *,
    version: int,
) -> RoundRow:
    """Fetches the round's model (checked against the chain), scores it, reads its gas."""
    spec = setup.spec
    binding = global_model_binding(
        chain_id=rounds.ledger.chain_id, task=str(rounds.ledger.task.address), version=version, spec=spec
    )
    weights = fetch_model(ipfs, final.model_cid, final.model_digest, spec, binding)
    config = rounds.config(final.round)
    return RoundRow(
        round=final.round,
        rule=config.aggregation_rule.name.lower(),
        privacy=PrivacyRule.of_round(config),
        accepted=final.accepted,
        rejected=final.rejected,
        accuracy=setup.score(weights),
        commit_gas=rounds.transaction_gas("UpdateCommitted", {"round": final.round}),
        reveal_gas=rounds.transaction_gas("UpdateRevealed", {"round": final.round}),
        attest_gas=rounds.transaction_gas("AttestationSubmitted", {"round": final.round}),
        seconds=_round_seconds(rounds, final),
    )


def _training_seconds(processes: list[Process], round_: int) -> float:
    """The slowest trainer's local training time in `round_`, from the trainers' logs."""
    pattern = re.compile(rf"round {round_}: trained train_seconds=([0-9.]+)")
    found = [
        float(match.group(1))
        for process in processes
        if process.name.startswith("trainer-")
        for match in pattern.finditer(process.log_path.read_text(errors="replace"))
    ]
    return max(found, default=0.0)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _epsilon(row: RoundRow) -> str:
    if row.epsilon is not None:
        return f"{row.epsilon:.2f}"
    return "-" if not row.privacy.enabled else "inf"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def _round_seconds(rounds: Rounds, final: Finalization) -> int:
    """From the round's opening to its finalization, by block timestamps (1 s resolution)."""
    finalized_at = int(rounds.ledger.w3.eth.get_block(final.block_number)["timestamp"])
    return finalized_at - rounds.state(final.round).opened_at


def _median(values: list[int]) -> int:
    return int(statistics.median(values)) if values else 0


def _check_alive(processes: list[Process]) -> None:
    for process in processes:
        code = process.popen.poll()
        if code not in (None, 0):
            raise DemoError(
                f"{process.name} exited with code {code}; last lines of {process.log_path}:\n{log_tail(process.log_path)}"
            )


def _wait_for_exit(processes: list[Process], timeout: float) -> None:
    """Trainers exit once their rounds are final and their rewards claimed; aggregators after their rounds."""
    deadline = time.monotonic() + timeout
    for process in processes:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            code = process.popen.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            continue
        if code != 0:
            raise DemoError(
                f"{process.name} exited with code {code}; last lines of {process.log_path}:\n{log_tail(process.log_path)}"
            )
