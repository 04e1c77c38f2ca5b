"""`fedledger status`: the federation at a glance, from contract views and events.

The current round and its deadlines, the global model, every finalized round (optionally with
the accuracy of its model), every participant with stake, rewards, fees and slashes, and the
task's and registry's parameters. Amounts are in the token's smallest unit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from web3.contract import Contract

from fedledger.arrays import Array
from fedledger.audit.verify import AuditError
from fedledger.chain import rpc
from fedledger.chain.contracts import FedLedger
from fedledger.chain.params import (
    CLIP_NORM_UNIT,
    DP_DELTA_UNIT,
    AggregationRule,
    Phase,
    RegistryParameter,
    Role,
    TaskParameter,
)
from fedledger.chain.proposals import format_time
from fedledger.chain.rounds import Finalization, Rounds
from fedledger.chain.values import format_token
from fedledger.learning.privacy import PrivacyRule, running_epsilon
from fedledger.storage.codec import InvalidUpdateError
from fedledger.storage.digests import to_hex
from fedledger.storage.ipfs import IpfsClient, IpfsError, IpfsUnavailableError
from fedledger.storage.models import ModelIntegrityError, fetch_model, global_model_binding
from fedledger.storage.schema import ModelSpec

Evaluator = Callable[[dict[str, Array]], float]


@dataclass(frozen=True, kw_only=True)
class CurrentRound:
    number: int
    phase: str
    opened_at: int
    commit_deadline: int
    reveal_deadline: int
    aggregation_deadline: int
    commits: int
    expected_commits: int
    reveals: int


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    version: int
    digest: str
    cid: str
    spec_hash: str = ""  # sha256 of the model spec's canonical JSON, as the task records it
    spec_cid: str = ""  # where that JSON is pinned (empty for a deployment without one)


@dataclass(frozen=True, kw_only=True)
class RoundSummary:
    """One finalized round."""

    round: int
    accepted: int
    rejected: int
    trainer_reward: int
    model_digest: str
    model_cid: str
    model_file_version: int  # the version bound in the model file (unchanged if nothing was accepted)
    accuracy: float | None = None
    privacy: str = "off"  # the round's differential privacy rule
    # Epsilon of a trainer that took part in every round up to this one (at this round's delta);
    # None if a round released updates without noise.
    epsilon: float | None = None


@dataclass(frozen=True, kw_only=True)
class ParticipantSummary:
    address: str
    role: str  # the role it registered with
    registered: bool  # false once it deregistered
    active: bool
    stake: int
    rewards_claimed: int  # trainers: sum of RewardClaimed
    fees_credited: int  # aggregators: sum of FeeCredited
    fees_unwithdrawn: int
    slashed: int  # sum of the registry's Slashed


@dataclass(frozen=True, kw_only=True)
class StatusReport:
    chain_id: int
    task: str
    chain_time: int  # timestamp of the latest block: the time the contracts see
    current_round: CurrentRound
    global_model: ModelInfo
    rounds: list[RoundSummary]
    participants: list[ParticipantSummary]
    task_parameters: dict[str, int]
    registry_parameters: dict[str, int]
    warnings: list[str]


def federation_status(
    ledger: FedLedger,
    *,
    evaluate_accuracy: Evaluator | None,
    ipfs: IpfsClient | None = None,
    spec: ModelSpec | None = None,
) -> StatusReport:
    """Reads the federation's state; with `evaluate_accuracy` (and `ipfs`, `spec`), scores each model."""
    if evaluate_accuracy is not None and (ipfs is None or spec is None):
        raise AuditError("evaluating accuracy needs an IPFS client and the model spec")
    rounds = Rounds(ledger)
    warnings: list[str] = []
    summaries = _with_privacy(rounds, round_summaries(ledger, rounds.finalizations()))
    if evaluate_accuracy is not None and ipfs is not None and spec is not None:
        summaries = _with_accuracy(ledger, summaries, ipfs, spec, evaluate_accuracy, warnings)
    return StatusReport(
        chain_id=ledger.chain_id,
        task=str(ledger.task.address),
        chain_time=rpc.latest_timestamp(ledger.w3),
        current_round=current_round(rounds),
        global_model=_model_info(ledger),
        rounds=summaries,
        participants=participants(ledger, rounds),
        task_parameters={p.name: ledger.task_parameter(p) for p in TaskParameter},
        registry_parameters={p.name: ledger.registry_parameter(p) for p in RegistryParameter},
        warnings=warnings,
    )


def current_round(rounds: Rounds) -> CurrentRound:
    """The current round: its number, phase, deadlines and counts."""
    number = rounds.current_round()
    state = rounds.state(number)
    return CurrentRound(
        number=number,
        phase=rounds.phase(number).name,
        opened_at=state.opened_at,
        commit_deadline=state.commit_deadline,
        reveal_deadline=state.reveal_deadline,
        aggregation_deadline=state.aggregation_deadline,
        commits=state.commits,
        expected_commits=state.expected_commits,
        reveals=state.reveals,
    )


def _model_info(ledger: FedLedger) -> ModelInfo:
    model = ledger.global_model()
    return ModelInfo(
        version=model.version,
        digest=to_hex(model.digest),
        cid=model.cid,
        spec_hash=to_hex(ledger.model_spec_hash()),
        spec_cid=ledger.model_spec_cid(),
    )


# ---------------------------------------------------------------- rounds


def round_summaries(ledger: FedLedger, finalizations: Sequence[Finalization]) -> list[RoundSummary]:
    """A summary per finalized round, oldest first (no accuracy yet).

    Finalization k (1-based) produces model version k; even a round that accepted nothing
    re-encodes the previous tensors as the new version (see `compute_round`).
    """
    ordered = sorted(finalizations, key=lambda f: f.round)
    return [
        RoundSummary(
            round=final.round,
            accepted=final.accepted,
            rejected=final.rejected,
            trainer_reward=final.trainer_reward,
            model_digest=to_hex(final.model_digest),
            model_cid=final.model_cid,
            model_file_version=version,
        )
        for version, final in enumerate(ordered, start=1)
    ]


def _with_privacy(rounds: Rounds, summaries: list[RoundSummary]) -> list[RoundSummary]:
    """The summaries with each round's privacy rule and the epsilon spent by then. Every round
    that released updates counts: finalized ones, and closed ones with reveals."""
    finalized = {summary.round for summary in summaries}
    released = [
        r
        for r in range(rounds.current_round() + 1)
        if r in finalized or (rounds.phase(r) != Phase.INACTIVE and rounds.state(r).reveals > 0)
    ]
    rules = {r: PrivacyRule.of_round(rounds.config(r)) for r in released}
    spent = dict(zip(released, running_epsilon([rules[r] for r in released]), strict=True))
    return [replace(s, privacy=str(rules[s.round]), epsilon=spent[s.round]) for s in summaries]


def _with_accuracy(
    ledger: FedLedger,
    summaries: list[RoundSummary],
    ipfs: IpfsClient,
    spec: ModelSpec,
    evaluate: Evaluator,
    warnings: list[str],
) -> list[RoundSummary]:
    """The summaries with each model's accuracy (each distinct model evaluated once)."""
    scores: dict[str, float | None] = {}
    scored: list[RoundSummary] = []
    for summary in summaries:
        if summary.model_digest not in scores:
            scores[summary.model_digest] = _accuracy(ledger, summary, ipfs, spec, evaluate, warnings)
        scored.append(replace(summary, accuracy=scores[summary.model_digest]))
    return scored


def _accuracy(
    ledger: FedLedger,
    summary: RoundSummary,
    ipfs: IpfsClient,
    spec: ModelSpec,
    evaluate: Evaluator,
    warnings: list[str],
) -> float | None:
    binding = global_model_binding(
        chain_id=ledger.chain_id, task=str(ledger.task.address), version=summary.model_file_version, spec=spec
    )
    digest = bytes.fromhex(summary.model_digest[2:])
    try:
        weights = fetch_model(ipfs, summary.model_cid, digest, spec, binding)
    except IpfsUnavailableError:
        raise
    except (IpfsError, ModelIntegrityError, InvalidUpdateError) as exc:
        warnings.append(f"round {summary.round}: model not evaluated: {exc}")
        return None
    return float(evaluate(weights))


# ---------------------------------------------------------------- participants


def participants(ledger: FedLedger, rounds: Rounds) -> list[ParticipantSummary]:
    """Every account that ever registered, trainers first, in registration order."""
    start = ledger.deployment.block_number
    roles = _registered_roles(ledger.registry, start)
    claimed = _sums(ledger.task, "RewardClaimed", "trainer", start)
    credited = _sums(ledger.task, "FeeCredited", "aggregator", start)
    slashed = _sums(ledger.registry, "Slashed", "account", start)
    ordered = sorted(roles.items(), key=lambda item: 0 if item[1] == Role.TRAINER else 1)
    return [
        _participant(ledger, rounds, address, role, claimed[address], credited[address], slashed[address])
        for address, role in ordered
    ]


def _participant(
    ledger: FedLedger, rounds: Rounds, address: str, role: Role, claimed: int, credited: int, slashed: int
) -> ParticipantSummary:
    now = ledger.participant(address)
    return ParticipantSummary(
        address=address,
        role=role.name,
        registered=now.role != Role.NONE,
        active=now.active,
        stake=now.stake,
        rewards_claimed=claimed,
        fees_credited=credited,
        fees_unwithdrawn=rounds.fees_of(address) if role == Role.AGGREGATOR else 0,
        slashed=slashed,
    )


def _registered_roles(registry: Contract, from_block: int) -> dict[str, Role]:
    return registered_roles(_logs(registry, "Registered", from_block))


def _sums(contract: Contract, event: str, who: str, from_block: int) -> defaultdict[str, int]:
    return sum_by(_logs(contract, event, from_block), who)


def registered_roles(registered: Iterable[Any]) -> dict[str, Role]:
    """Account -> the role of its latest `Registered` event, in first-registration order."""
    roles: dict[str, Role] = {}
    for log in registered:
        roles[str(log["args"]["account"])] = Role(int(log["args"]["role"]))
    return roles


def sum_by(logs: Iterable[Any], who: str) -> defaultdict[str, int]:
    """Sum of the `amount` of `logs`, by the account in argument `who`."""
    totals: defaultdict[str, int] = defaultdict(int)
    for log in logs:
        totals[str(log["args"][who])] += int(log["args"]["amount"])
    return totals


def _logs(contract: Contract, event: str, from_block: int) -> list[Any]:
    return list(getattr(contract.events, event)().get_logs(from_block=from_block))


# ---------------------------------------------------------------- rendering


def status_to_json(report: StatusReport) -> dict[str, Any]:
    """The report as a JSON-ready dict (amounts as integers in the smallest unit)."""
    return asdict(report)


def render_status(report: StatusReport) -> str:
    """A readable text report: header, rounds table, participants table, parameters."""
    sections = [
        _render_header(report),
        _render_rounds(report.rounds),
        _render_participants(report.participants),
        _render_parameters(report),
    ]
    if report.warnings:
        sections.append("\n".join(f"warning: {w}" for w in report.warnings))
    return "\n\n".join(sections)


def _render_header(report: StatusReport) -> str:
    current, model, now = report.current_round, report.global_model, report.chain_time
    lines = [f"chain {report.chain_id}, task {report.task}, chain time {format_time(now)}"]
    if current.opened_at == 0:
        lines.append(f"round {current.number}: {current.phase} (not started)")
    else:
        lines += [
            f"round {current.number}: {current.phase} ({current.commits}/{current.expected_commits} commits, "
            f"{current.reveals} revealed)",
            f"  commit deadline       {format_time(current.commit_deadline, now)}",
            f"  reveal deadline       {format_time(current.reveal_deadline, now)}",
            f"  aggregation deadline  {format_time(current.aggregation_deadline, now)}",
        ]
    lines.append(f"global model v{model.version}: {model.digest} {model.cid}")
    if model.spec_hash:
        lines.append(f"model spec: sha256 {model.spec_hash} {model.spec_cid or '(not pinned)'}")
    return "\n".join(lines)


def _render_rounds(rounds: Sequence[RoundSummary]) -> str:
    if not rounds:
        return "finalized rounds: none yet"
    rows = [
        [
            str(r.round),
            str(r.accepted),
            str(r.rejected),
            format_token(r.trainer_reward),
            "-" if r.accuracy is None else f"{r.accuracy:.4f}",
            _show_epsilon(r),
            r.model_digest[:18] + "...",
        ]
        for r in rounds
    ]
    header = ["round", "accepted", "rejected", "trainer reward", "accuracy", "epsilon", "model"]
    return "finalized rounds\n" + _table(header, rows)


def _show_epsilon(summary: RoundSummary) -> str:
    if summary.epsilon is not None:
        return f"{summary.epsilon:.3f}"
    return "-" if summary.privacy == "off" else "inf"


def _render_participants(people: Sequence[ParticipantSummary]) -> str:
    if not people:
        return "participants: none registered"
    rows = [
        [
            p.address,
            p.role.lower() + ("" if p.registered else " (left)"),
            "yes" if p.active else "no",
            format_token(p.stake),
            format_token(p.rewards_claimed if p.role == Role.TRAINER.name else p.fees_credited),
            format_token(p.slashed),
        ]
        for p in people
    ]
    header = ["participant", "role", "active", "stake", "rewards/fees", "slashed"]
    return "participants\n" + _table(header, rows)


def _render_parameters(report: StatusReport) -> str:
    task = ", ".join(f"{k}={show_parameter(k, v)}" for k, v in report.task_parameters.items())
    registry = ", ".join(f"{k}={show_parameter(k, v)}" for k, v in report.registry_parameters.items())
    return f"task parameters: {task}\nregistry parameters: {registry}"


def show_parameter(name: str, value: int) -> str:
    """A parameter's value as people read it: rule names, FED amounts, percentages, seconds."""
    if name == TaskParameter.AGGREGATION_RULE.name and value in set(AggregationRule):
        return AggregationRule(value).name
    if name.endswith("_STAKE") or name in ("REWARD_PER_ROUND", "AGGREGATOR_FEE"):
        return format_token(value)
    if name in (
        TaskParameter.CLIP_NORM.name,
        TaskParameter.DP_CLIP_NORM.name,
        TaskParameter.DP_NOISE_MULTIPLIER.name,
    ):
        return f"{value / CLIP_NORM_UNIT:g}" if value else "off"
    if name == TaskParameter.DP_DELTA.name:
        return f"{value / DP_DELTA_UNIT:g}"
    if name.endswith("_BPS"):
        return f"{value / 100:g}%"
    if name.endswith(("_WINDOW", "_PERIOD")):
        return f"{value}s"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
