"""`fedledger verify`: recompute a finalized round's global model from the chain and IPFS alone.

An auditor needs no trust in any aggregator: the round's `UpdateRevealed` events name every
update (digest and CID), its `roundConfig` the rule, its `roundState` the sample cap, and the
`RoundFinalized` events before it the model version it produces. Running the aggregators' own
`compute_round` over that must give the on-chain model digest and the on-chain rejections, and
the bytes behind the on-chain model CID must hash to the on-chain digest.

The chain reads go through `RoundReads` (which `Rounds` satisfies), so tests can pass a
stand-in inside a `ChainView`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eth_utils.address import to_checksum_address

from fedledger.aggregation.rules import UnsupportedRuleError
from fedledger.aggregator.round_result import RoundContext, RoundOutcome, compute_round
from fedledger.aggregator.verification import Commit
from fedledger.arrays import Array
from fedledger.chain.contracts import FedLedger, RoundState
from fedledger.chain.errors import FedledgerError
from fedledger.chain.params import CLIP_NORM_UNIT, Phase, RejectionReason
from fedledger.chain.rounds import Finalization, RoundConfig, RoundResult, Rounds
from fedledger.storage.codec import max_file_size
from fedledger.storage.digests import from_hex, sha256, to_hex
from fedledger.storage.ipfs import IpfsError, IpfsUnavailableError
from fedledger.storage.models import ContentSource, ModelIntegrityError, fetch_model, global_model_binding
from fedledger.storage.schema import ModelSpec

ACCEPTED = "accepted"

_PHASE_HINTS = {
    Phase.COMMIT: "trainers are still committing updates",
    Phase.AGGREGATION: "aggregators have not reached a quorum yet",
    Phase.STALE: "no quorum formed in time; it will be closed without a result",
    Phase.CLOSED: "it was closed without a result (no quorum), so there is no model to verify",
}


class AuditError(FedledgerError):
    """An audit cannot run (no such round, a rule this client cannot apply, ...)."""


class RoundNotFinalizedError(AuditError):
    """The round exists but has no finalized result to verify."""

    def __init__(self, round_: int, phase: Phase) -> None:
        hint = _PHASE_HINTS.get(phase, "")
        super().__init__(
            f"round {round_} is not finalized: it is in phase {phase.name}" + (f"; {hint}" if hint else "")
        )
        self.round = round_
        self.phase = phase


class RoundReads(Protocol):
    """The chain reads an audit needs (`fedledger.chain.rounds.Rounds` provides them)."""

    def current_round(self) -> int: ...

    def phase(self, round_: int) -> Phase: ...

    def state(self, round_: int) -> RoundState: ...

    def config(self, round_: int) -> RoundConfig: ...

    def result(self, round_: int) -> RoundResult: ...

    def revealed(self, round_: int) -> list[Commit]: ...

    def finalizations(self) -> list[Finalization]: ...

    def rejections(self, round_: int) -> dict[str, RejectionReason]: ...


@dataclass(frozen=True, kw_only=True)
class ChainView:
    """One deployment as an auditor sees it: identity, the initial model digest, and the reads."""

    chain_id: int
    task: str
    reads: RoundReads
    initial_model_digest: bytes | None = None  # from the deployments file (a constructor argument)
    initial_model_cid: str | None = None  # likewise
    model_spec_hash: bytes | None = None  # the task's `modelSpecHash`

    @classmethod
    def of(cls, ledger: FedLedger) -> ChainView:
        spec_hash = bytes(ledger.sender.call(ledger.task.functions.modelSpecHash()))
        return cls(
            chain_id=ledger.chain_id,
            task=str(ledger.task.address),
            reads=Rounds(ledger),
            initial_model_digest=initial_model_digest(ledger.deployment.parameters),
            initial_model_cid=_text(ledger.deployment.parameters.get("initial_model_cid")),
            model_spec_hash=spec_hash,
        )


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    """What recomputing a round showed. `matches` is true only if every check passed."""

    round: int
    matches: bool
    onchain_digest: str
    recomputed_digest: str | None  # None when it could not be determined
    cid_bytes_match: bool
    accepted: list[str]  # trainers whose update recomputation accepts, by address order
    rejected: dict[str, str]  # trainer -> reason name, as recomputed
    rejections_match: bool
    problems: list[str]
    model_cid: str = ""
    model_version: int = 0
    rule: str = ""
    onchain_rejected: dict[str, str] = field(default_factory=dict)  # trainer -> reason name, on chain

    @property
    def digest_match(self) -> bool:
        return self.recomputed_digest is not None and self.recomputed_digest == self.onchain_digest


@dataclass(frozen=True)
class _Before:
    """What the finalizations before a round say: its output version and the model it starts from."""

    model_version: int
    previous_digest: bytes | None
    previous_cid: str | None


def verify_round(
    ledger: FedLedger | ChainView, ipfs: ContentSource, round_: int, spec: ModelSpec, workers: int = 8
) -> VerifyReport:
    """Recomputes finalized `round_` and compares it with the chain (see the module docstring).

    Raises `RoundNotFinalizedError` (or `AuditError` for a round that does not exist). A local
    IPFS daemon that is down raises `IpfsUnavailableError` rather than becoming a rejection.
    """
    chain = ledger if isinstance(ledger, ChainView) else ChainView.of(ledger)
    reads = chain.reads
    require_finalized(reads, round_)
    result = reads.result(round_)
    before = _before(reads.finalizations(), round_, chain.initial_model_digest, chain.initial_model_cid)
    previous = _previous_model(chain, ipfs, spec, before)
    outcome = _recompute(chain, ipfs, round_, spec, before.model_version, workers, previous)
    expected = outcome.model_digest
    onchain_rejected = {_address(t): r.name for t, r in reads.rejections(round_).items()}
    rejection_problems = compare_rejections(outcome, onchain_rejected)
    cid_problems = _cid_problems(ipfs, result, spec)
    recomputed = to_hex(expected) if expected is not None else None
    return VerifyReport(
        round=round_,
        matches=recomputed == to_hex(result.model_digest) and not rejection_problems and not cid_problems,
        onchain_digest=to_hex(result.model_digest),
        recomputed_digest=recomputed,
        cid_bytes_match=not cid_problems,
        accepted=[_address(v.commit.trainer) for v in outcome.accepted],
        rejected={_address(v.commit.trainer): v.reason.name for v in outcome.rejected},
        rejections_match=not rejection_problems,
        problems=[
            *_spec_problems(chain, spec),
            *_digest_problems(outcome, expected, result.model_digest),
            *rejection_problems,
            *cid_problems,
        ],
        model_cid=result.model_cid,
        model_version=before.model_version,
        rule=reads.config(round_).aggregation_rule.name,
        onchain_rejected=onchain_rejected,
    )


def require_finalized(reads: RoundReads, round_: int) -> None:
    """Raises a clear `AuditError` unless `round_` is finalized."""
    if round_ < 0:
        raise AuditError(f"round {round_} does not exist: rounds are numbered from 0")
    phase = reads.phase(round_)
    if phase == Phase.FINALIZED:
        return
    if phase == Phase.INACTIVE:
        current = reads.current_round()
        if round_ > current:
            raise AuditError(f"round {round_} does not exist: the current round is {current}")
        raise AuditError(f"round {round_} has not started: the task was not started yet")
    raise RoundNotFinalizedError(round_, phase)


def _before(
    finalizations: Sequence[Finalization], round_: int, initial: bytes | None, initial_cid: str | None
) -> _Before:
    """Round `round_` produces version (finalizations before it) + 1, starting from the last one."""
    earlier = sorted((f for f in finalizations if f.round < round_), key=lambda f: f.round)
    if earlier:
        return _Before(
            model_version=len(earlier) + 1,
            previous_digest=earlier[-1].model_digest,
            previous_cid=earlier[-1].model_cid,
        )
    return _Before(model_version=1, previous_digest=initial, previous_cid=initial_cid)


def _previous_model(
    chain: ChainView, ipfs: ContentSource, spec: ModelSpec, before: _Before
) -> Callable[[], dict[str, Array]] | None:
    """Loads the model the round started from (to spot resubmissions, to clip against, and to
    re-encode when the round accepted nothing)."""
    digest, cid = before.previous_digest, before.previous_cid
    if digest is None or cid is None:
        return None
    binding = global_model_binding(
        chain_id=chain.chain_id, task=chain.task, version=before.model_version - 1, spec=spec
    )

    def load() -> dict[str, Array]:
        try:
            return fetch_model(ipfs, cid, digest, spec, binding)
        except IpfsUnavailableError:
            raise
        except (IpfsError, ModelIntegrityError) as exc:
            raise AuditError(f"the model the round started from ({cid}) cannot be used: {exc}") from exc

    return load


def _recompute(
    chain: ChainView,
    ipfs: ContentSource,
    round_: int,
    spec: ModelSpec,
    version: int,
    workers: int,
    previous_model: Callable[[], dict[str, Array]] | None,
) -> RoundOutcome:
    reads = chain.reads
    config = reads.config(round_)
    context = RoundContext(
        chain_id=chain.chain_id,
        task=chain.task,
        round_number=round_,
        model_version=version,
        sample_cap=reads.state(round_).sample_cap,
        rule=config.aggregation_rule,
        rule_param=config.aggregation_param,
        clip_norm=config.clip_norm / CLIP_NORM_UNIT,
    )
    try:
        # Updates spooled to disk as they are verified, as the aggregators do: bounded memory.
        with tempfile.TemporaryDirectory(prefix="fedledger-verify-") as spool:
            return compute_round(
                reads.revealed(round_), ipfs.cat, spec, context, workers, previous_model, spool=Path(spool)
            )
    except UnsupportedRuleError as exc:
        raise AuditError(f"round {round_} cannot be recomputed by this client: {exc}") from exc


def compare_rejections(outcome: RoundOutcome, onchain: Mapping[str, str]) -> list[str]:
    """One problem per trainer whose recomputed verdict differs from the chain's record."""
    recomputed = {_address(v.commit.trainer): v for v in outcome.verdicts}
    problems: list[str] = []
    for trainer in sorted(set(recomputed) | set(onchain), key=lambda a: int(a, 16)):
        verdict = recomputed.get(trainer)
        mine = verdict.reason.name if verdict is not None and not verdict.accepted else ACCEPTED
        theirs = onchain.get(trainer, ACCEPTED)
        if verdict is None:
            problems.append(f"{trainer}: the chain recorded a rejection ({theirs}) but it committed nothing")
        elif mine != theirs:
            problems.append(_rejection_problem(trainer, theirs, mine, verdict.detail))
    return problems


def _rejection_problem(trainer: str, theirs: str, mine: str, detail: str) -> str:
    text = f"{trainer}: the chain recorded {theirs}, recomputation gives {mine}"
    if detail:
        text += f" ({detail})"
    if RejectionReason.UNAVAILABLE.name in (theirs, mine):
        text += "; availability on IPFS may have changed since the round"
    return text


def _digest_problems(outcome: RoundOutcome, expected: bytes | None, onchain: bytes) -> list[str]:
    if outcome.model_bytes is None:
        return [
            "nothing was accepted, and the model the round started from is unknown "
            "(the deployments file has no initial model digest and CID), so it cannot be re-encoded"
        ]
    if expected != onchain:
        shown = to_hex(expected) if expected is not None else "nothing"
        return [f"model digest: recomputed {shown}, the chain recorded {to_hex(onchain)}"]
    return []


def _cid_problems(ipfs: ContentSource, result: RoundResult, spec: ModelSpec) -> list[str]:
    """The bytes behind the on-chain model CID must hash to the on-chain digest."""
    try:
        data = ipfs.cat(result.model_cid, max_file_size(spec))
    except IpfsUnavailableError:
        raise
    except IpfsError as exc:
        return [f"model CID {result.model_cid}: could not fetch it: {exc}"]
    if sha256(data) != result.model_digest:
        return [
            f"model CID {result.model_cid}: its bytes hash to {to_hex(sha256(data))}, "
            f"not the on-chain digest {to_hex(result.model_digest)}"
        ]
    return []


def _spec_problems(chain: ChainView, spec: ModelSpec) -> list[str]:
    if chain.model_spec_hash is None or chain.model_spec_hash == spec.hash():
        return []
    return [
        f"the model spec used here ({spec.name}, hash {to_hex(spec.hash())}) is not the task's "
        f"({to_hex(chain.model_spec_hash)}): valid updates will look like WRONG_BINDING"
    ]


def initial_model_digest(parameters: Mapping[str, Any]) -> bytes | None:
    """The initial model digest the deployments file records (the task's constructor argument)."""
    raw = parameters.get("initial_model_digest")
    try:
        return from_hex(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _address(address: str) -> str:
    return str(to_checksum_address(address))


# ---------------------------------------------------------------- rendering


def verify_to_json(report: VerifyReport) -> dict[str, Any]:
    """The report as a JSON-ready dict (includes `digest_match`)."""
    return {
        "round": report.round,
        "matches": report.matches,
        "digest_match": report.digest_match,
        "onchain_digest": report.onchain_digest,
        "recomputed_digest": report.recomputed_digest,
        "cid_bytes_match": report.cid_bytes_match,
        "rejections_match": report.rejections_match,
        "model_cid": report.model_cid,
        "model_version": report.model_version,
        "rule": report.rule,
        "accepted": list(report.accepted),
        "rejected": dict(report.rejected),
        "onchain_rejected": dict(report.onchain_rejected),
        "problems": list(report.problems),
    }


def render_verify(report: VerifyReport) -> str:
    """A readable multi-line summary."""
    verdict = "MATCHES the chain" if report.matches else "DOES NOT MATCH the chain"
    lines = [
        f"round {report.round}: {verdict}",
        f"  rule {report.rule}, model version {report.model_version}, CID {report.model_cid}",
        f"  on-chain digest    {report.onchain_digest}",
        f"  recomputed digest  {report.recomputed_digest or '(unknown)'}  {_mark(report.digest_match)}",
        f"  CID bytes hash to the on-chain digest  {_mark(report.cid_bytes_match)}",
        f"  rejections as recorded on chain        {_mark(report.rejections_match)}",
        f"  accepted {len(report.accepted)}, rejected {len(report.rejected)}",
    ]
    lines += [f"    rejected {trainer}: {reason}" for trainer, reason in report.rejected.items()]
    lines += [f"  problem: {problem}" for problem in report.problems]
    return "\n".join(lines)


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISMATCH"
