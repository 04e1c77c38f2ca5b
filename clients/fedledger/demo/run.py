"""`fedledger demo`: a whole fedledger lifecycle on a private Anvil, then nothing left behind.

1. Start Anvil (local profile, a free port, its own run directory).
2. Deploy every contract with the ape script (`ape run deploy all`), with a placeholder initial
   model (see placeholder.py).
3. Through the web3 client: fund and register trainers and aggregators, open round 0.
4. Governance end to end: a trainer proposes switching the aggregation rule to Median, every
   participant votes For, the vote closes, the proposal is queued in the timelock, executed,
   and the new rule is read back from the task.
5. Stop Anvil and check it is gone; print a JSON summary as the last line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from fedledger.chain import ape_cli
from fedledger.chain.accounts import devnet_accounts
from fedledger.chain.contracts import FedLedger
from fedledger.chain.deployments import Deployment
from fedledger.chain.governance import Governance
from fedledger.chain.params import AggregationRule, ProposalState, Role, TaskParameter, VoteType
from fedledger.chain.proposals import ParameterChange
from fedledger.chain.rpc import connect, latest_timestamp, wait_for_timestamp
from fedledger.chain.transactions import TxResult
from fedledger.chain.values import format_token
from fedledger.demo.placeholder import PlaceholderModel, write_placeholder
from fedledger.devnet import PROFILES, Devnet, running_devnet
from fedledger.devnet.anvil import DevnetError

DEPLOYER_ACCOUNT = "TEST::0"  # ape's first test account = Anvil's account 0


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """What the demo runs with. Governance timings default to the devnet profile's (the demo
    deploys on its own local devnet)."""

    project: Path
    run_dir: Path
    trainers: int = 4
    aggregators: int = 2
    new_rule: AggregationRule = AggregationRule.MEDIAN
    port: int | None = None
    voting_delay: int | None = None
    voting_period: int | None = None
    timelock_delay: int | None = None

    def deploy_options(self, model: PlaceholderModel) -> list[str]:
        options = [
            "--initial-model-digest",
            "0x" + model.digest.hex(),
            "--initial-model-cid",
            model.cid,
            "--model-spec-hash",
            "0x" + model.spec_hash.hex(),
        ]
        for name in ("voting_delay", "voting_period", "timelock_delay"):
            value = getattr(self, name)
            if value is not None:
                options += [f"--{name.replace('_', '-')}", str(value)]
        return options


@dataclass(kw_only=True)
class DemoSummary:
    """The demo's outcome, printed as the final JSON line."""

    ok: bool = False
    chain_id: int = 0
    rpc_url: str = ""
    addresses: dict[str, str] = field(default_factory=dict)
    initial_model: dict[str, str] = field(default_factory=dict)
    trainers_registered: int = 0
    aggregators_registered: int = 0
    round: int = -1
    round_phase: str = ""
    proposal_id: str = ""
    proposal_state: str = ""
    proposals_executed: int = 0
    parameter: str = TaskParameter.AGGREGATION_RULE.name
    parameter_before: str = ""
    parameter_after: str = ""
    parameter_changed: bool = False
    round_0_rule: str = ""
    transactions: int = 0
    gas_used: int = 0
    anvil_pid: int = 0
    anvil_stopped: bool = False
    wall_time_s: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class DemoLog:
    """Readable, timed log lines; counts transactions and gas."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.started = time.monotonic()
        self.transactions = 0
        self.gas_used = 0

    def step(self, title: str) -> None:
        self.echo(f"[{self._elapsed()}] {title}")

    def info(self, text: str) -> None:
        self.echo(f"           {text}")

    def tx(self, result: TxResult, what: str) -> None:
        self.transactions += 1
        self.gas_used += result.gas_used
        gas, block = f"{result.gas_used:>9,}", f"{result.block_number:>4}"
        self.echo(f"           {what:<44} gas {gas}  block {block}  {result.tx_hash[:12]}…")

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"


def run_demo(options: DemoOptions, *, echo: Callable[[str], None] = print) -> DemoSummary:
    """Runs the demo; always stops its Anvil. Returns the summary (also printed as JSON)."""
    log = DemoLog(echo)
    summary = DemoSummary()
    devnet: Devnet | None = None
    accounts_needed = 1 + options.trainers + options.aggregators
    try:
        log.step("starting Anvil (profile local)")
        with running_devnet(
            PROFILES["local"], port=options.port, run_dir=options.run_dir, accounts=max(10, accounts_needed)
        ) as devnet:
            state = devnet.state
            log.info(f"{devnet.url}  chain id {state.chain_id}  pid {devnet.pid}  log {state.log_path}")
            summary.rpc_url, summary.chain_id, summary.anvil_pid = devnet.url, state.chain_id, devnet.pid
            _run(options, devnet, log, summary)
    finally:
        if devnet is not None:
            summary.anvil_stopped = not devnet.is_running()
        summary.transactions, summary.gas_used = log.transactions, log.gas_used
        summary.wall_time_s = round(time.monotonic() - log.started, 1)
    if not summary.anvil_stopped:
        raise DevnetError(f"anvil (pid {devnet.pid if devnet else '?'}) is still running after the demo")
    summary.ok = summary.parameter_changed and summary.proposal_state == ProposalState.EXECUTED.name
    log.step(f"Anvil stopped; demo finished in {summary.wall_time_s} s")
    echo(summary.to_json())
    return summary


def _run(options: DemoOptions, devnet: Devnet, log: DemoLog, summary: DemoSummary) -> None:
    model = write_placeholder(options.run_dir)
    log.step(
        "deploying with the ape script: ape run deploy all --network ethereum:local:foundry --account TEST::0"
    )
    log.info(f"initial model: PLACEHOLDER blob {model.path} (not a trained model)")
    log.info(f"  sha256 0x{model.digest.hex()}  cid {model.cid}")
    deployment, _ = ape_cli.deploy(
        project=options.project,
        network=PROFILES["local"].ape_network,
        rpc_url=devnet.url,
        chain_id=devnet.state.chain_id,
        account=DEPLOYER_ACCOUNT,
        deployments_dir=options.run_dir / "deployments",
        options=options.deploy_options(model),
    )
    show_deployment(deployment, log)
    summary.addresses = dict(deployment.addresses)
    summary.initial_model = {"digest": "0x" + model.digest.hex(), "cid": model.cid, "placeholder": "true"}

    ledger = FedLedger(connect(devnet.url), deployment)
    on_chain = ledger.global_model()
    if on_chain.digest != model.digest or on_chain.cid != model.cid:
        raise DevnetError(f"the task's initial model {on_chain} is not the placeholder just deployed")

    accounts = devnet_accounts(1 + options.trainers + options.aggregators)
    deployer, trainers, aggregators = (
        accounts[0],
        accounts[1 : 1 + options.trainers],
        accounts[1 + options.trainers :],
    )
    params: dict[str, Any] = deployment.parameters
    register_all(ledger, log, deployer, trainers, Role.TRAINER, int(params["min_trainer_stake"]))
    register_all(ledger, log, deployer, aggregators, Role.AGGREGATOR, int(params["min_aggregator_stake"]))
    summary.trainers_registered = ledger.active_count(Role.TRAINER)
    summary.aggregators_registered = ledger.active_count(Role.AGGREGATOR)

    log.step("opening round 0")
    log.tx(ledger.start(deployer), "start()")
    round_ = ledger.current_round()
    state = ledger.round_state(round_)
    summary.round, summary.round_phase = round_, ledger.phase(round_).name
    log.info(f"round {round_} is {summary.round_phase}; commits until {_clock(state.commit_deadline)}")

    _govern(options, ledger, log, summary, trainers[0], trainers + aggregators, deployer)


def register_all(
    ledger: FedLedger,
    log: DemoLog,
    deployer: LocalAccount,
    members: list[LocalAccount],
    role: Role,
    stake: int,
) -> None:
    log.step(f"funding and registering {len(members)} {role.name.lower()}s with {format_token(stake)} each")
    for index, account in enumerate(members, start=1):
        who = f"{role.name.lower()} {index} {_short(account.address)}"
        log.tx(ledger.transfer(deployer, account.address, stake), f"transfer {format_token(stake)} -> {who}")
        approved, registered = ledger.stake_and_register(account, role, stake)
        log.tx(approved, f"approve registry ({who})")
        log.tx(registered, f"register {role.name} ({who})")


@dataclass(frozen=True, kw_only=True)
class GovernanceOutcome:
    proposal_id: int
    state: ProposalState
    executed_proposals: int


def govern(
    ledger: FedLedger,
    log: DemoLog,
    change: ParameterChange | Sequence[ParameterChange],
    description: str,
    proposer: LocalAccount,
    voters: list[LocalAccount],
    executor: LocalAccount,
) -> GovernanceOutcome:
    """Takes one proposal (one or several parameter changes) through vote, timelock queue and
    execution."""
    changes = [change] if isinstance(change, ParameterChange) else list(change)
    shown = "; ".join(str(c) for c in changes)
    governance = Governance(ledger)
    w3 = ledger.w3
    # Stake counts as votes from the second after it was staked (the governor reads clock() - 1).
    wait_for_timestamp(w3, latest_timestamp(w3) + 1, timeout=30)
    log.step(f"governance: {_short(proposer.address)} proposes {shown}")
    record = governance.propose(proposer, changes, description)
    pid = record.proposal_id
    log.info(f"proposal {pid}")
    log.info(f"vote snapshot {_clock(record.vote_start)}, voting closes {_clock(record.vote_end)}")

    log.step(f"waiting for voting to open ({_clock(record.vote_start + 1)})")
    wait_for_timestamp(w3, record.vote_start + 1, timeout=_patience(record.vote_start))
    log.step(f"{len(voters)} participants vote For")
    for voter in voters:
        result = governance.vote(voter, pid, VoteType.FOR)
        log.tx(result, f"castVote For ({_short(voter.address)}, {format_token(ledger.votes(voter.address))})")
    status = governance.status(pid)
    log.info(f"tally: for {format_token(status.votes_for)}, quorum {format_token(status.quorum)}")

    log.step(f"waiting for the vote to close ({_clock(record.vote_end)}); Anvil mines empty blocks meanwhile")
    wait_for_timestamp(w3, record.vote_end + 1, timeout=_patience(record.vote_end))
    log.info(f"state: {governance.state(pid).name}")
    log.step("queueing in the timelock")
    log.tx(governance.queue(executor, pid), "queue")
    eta = governance.times(pid).eta
    log.step(f"waiting for the timelock delay ({_clock(eta)})")
    wait_for_timestamp(w3, eta, timeout=_patience(eta))
    log.step("executing")
    log.tx(governance.execute(executor, pid), f"execute ({shown})")
    executed = sum(
        1 for r in governance.proposals() if governance.state(r.proposal_id) == ProposalState.EXECUTED
    )
    return GovernanceOutcome(proposal_id=pid, state=governance.state(pid), executed_proposals=executed)


def _govern(
    options: DemoOptions,
    ledger: FedLedger,
    log: DemoLog,
    summary: DemoSummary,
    proposer: LocalAccount,
    voters: list[LocalAccount],
    executor: LocalAccount,
) -> None:
    before = ledger.task_parameter(TaskParameter.AGGREGATION_RULE)
    summary.parameter_before = AggregationRule(before).name
    change = ParameterChange("task", TaskParameter.AGGREGATION_RULE, int(options.new_rule))
    description = f"Switch aggregation to {options.new_rule.name.lower()} (fedledger demo)"
    outcome = govern(ledger, log, change, description, proposer, voters, executor)
    summary.proposal_id = str(outcome.proposal_id)
    after = ledger.task_parameter(TaskParameter.AGGREGATION_RULE)
    summary.proposal_state = outcome.state.name
    summary.proposals_executed = outcome.executed_proposals
    summary.parameter_after = AggregationRule(after).name
    summary.parameter_changed = after == int(options.new_rule) and after != before
    round_rule = ledger.sender.call(ledger.task.functions.roundConfig(summary.round))[8]
    summary.round_0_rule = AggregationRule(round_rule).name
    log.info(
        f"task.AGGREGATION_RULE: {summary.parameter_before} -> {summary.parameter_after} "
        f"(round {summary.round} keeps {summary.round_0_rule}; the next round uses {summary.parameter_after})"
    )


def show_deployment(deployment: Deployment, log: DemoLog) -> None:
    log.info(f"chain id {deployment.chain_id}, network {deployment.network}, deployer {deployment.deployer}")
    for name, address in deployment.addresses.items():
        log.info(f"  {name:<16} {address}")


def _patience(timestamp: int) -> float:
    """How long to wait for the chain to reach `timestamp`: until then, plus a minute."""
    return max(0.0, timestamp - time.time()) + 60.0


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def _clock(timestamp: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(timestamp))
