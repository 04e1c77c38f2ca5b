"""Computing a round's result from its commits: the part every aggregator (and every auditor
running `fedledger verify`) must compute identically.

Order is fixed by trainer address; weights are the committed sample counts capped by the
round's cap; the rule is the one the round's on-chain config selects; the global model file
is encoded canonically and bound to the task and the new model version, never to the
aggregator, so honest aggregators produce the same bytes and the same sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from fedledger.aggregation.clipping import clip_update
from fedledger.aggregation.rules import UnsupportedRuleError, aggregate, describe_rule
from fedledger.aggregator.verification import Commit, Fetch, Verdict, update_binding, verify
from fedledger.arrays import Array
from fedledger.chain.params import AggregationRule, RejectionReason
from fedledger.storage.codec import Binding, encode
from fedledger.storage.digests import sha256
from fedledger.storage.models import global_model_binding
from fedledger.storage.schema import ModelSpec


@dataclass(frozen=True, kw_only=True)
class RoundContext:
    """What the chain says about the round being aggregated."""

    chain_id: int
    task: str
    round_number: int
    model_version: int  # version of the model this round produces
    sample_cap: int
    rule: AggregationRule
    rule_param: int
    clip_norm: float = 0.0  # L2 bound on each update's change to the starting model; 0: off


@dataclass(frozen=True, kw_only=True)
class RoundOutcome:
    verdicts: list[Verdict]
    model_bytes: bytes | None  # None when no update was accepted

    @property
    def accepted(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.accepted]

    @property
    def rejected(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.accepted]

    @property
    def model_digest(self) -> bytes | None:
        return sha256(self.model_bytes) if self.model_bytes is not None else None


def model_binding(context: RoundContext, spec: ModelSpec) -> Binding:
    """The binding of the global model file a round produces."""
    return global_model_binding(
        chain_id=context.chain_id, task=context.task, version=context.model_version, spec=spec
    )


def compute_round(
    commits: Sequence[Commit],
    fetch: Fetch,
    spec: ModelSpec,
    context: RoundContext,
    workers: int = 8,
    previous_model: Callable[[], dict[str, Array]] | None = None,
) -> RoundOutcome:
    """Verifies every commit (concurrently), sets copies aside and aggregates the rest.

    Duplicates: an accepted update whose tensors equal the round's starting global model, or
    an earlier commit's update (chain order), is rejected as `Duplicate`: free riders earn
    nothing. Outliers: updates the rule leaves out (Multi-Krum) are rejected as `Outlier`.

    When nothing is accepted the model does not change, but the round still produces version
    `context.model_version`: the previous model's tensors re-encoded under the new binding
    (from `previous_model`), so every finalized version has its own file, identical on every
    honest aggregator. Without `previous_model`, `model_bytes` is None in that case, and
    resubmissions of the starting model are not detected.
    """
    ordered = sorted(commits, key=lambda c: int(c.trainer, 16))

    def check(commit: Commit) -> Verdict:
        binding = update_binding(
            commit, chain_id=context.chain_id, task=context.task, round_number=context.round_number, spec=spec
        )
        return verify(commit, fetch, spec, binding)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        verdicts = list(pool.map(check, ordered))
    starting = previous_model() if previous_model is not None else None
    verdicts = _reject_duplicates(verdicts, starting)
    accepted = [(v, v.tensors) for v in verdicts if v.tensors is not None]
    if accepted:
        weighted = [
            (_clipped(tensors, starting, context.clip_norm), min(v.commit.num_samples, context.sample_cap))
            for v, tensors in accepted
        ]
        result = aggregate(context.rule, context.rule_param, weighted)
        verdicts = _reject(
            verdicts,
            {accepted[i][0].commit.trainer for i in result.excluded},
            RejectionReason.OUTLIER,
            f"left out by {describe_rule(context.rule, context.rule_param)}",
        )
        model = result.model
    elif starting is not None:
        model = starting
    else:
        return RoundOutcome(verdicts=verdicts, model_bytes=None)
    return RoundOutcome(verdicts=verdicts, model_bytes=encode(model, model_binding(context, spec), spec))


def _clipped(
    tensors: dict[str, Array], starting: Mapping[str, Array] | None, clip_norm: float
) -> dict[str, Array]:
    """The update with its change to the starting model clipped to `clip_norm` (if set)."""
    if clip_norm <= 0:
        return tensors
    if starting is None:
        raise UnsupportedRuleError("norm clipping needs the model the round started from")
    return clip_update(tensors, starting, clip_norm)


def fingerprint(tensors: Mapping[str, Array]) -> bytes:
    """sha256 over the tensors' names and float32 bytes: equal exactly when the tensors are."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + b"\0" + np.ascontiguousarray(tensors[name], dtype="<f4").tobytes())
    return digest.digest()


def _reject_duplicates(verdicts: list[Verdict], starting: Mapping[str, Array] | None) -> list[Verdict]:
    starting_print = fingerprint(starting) if starting is not None else None
    originals: dict[bytes, str] = {}
    copies: dict[str, str] = {}
    accepted = [(v, v.tensors) for v in verdicts if v.tensors is not None]
    for verdict, tensors in sorted(accepted, key=lambda pair: pair[0].commit.position):
        print_ = fingerprint(tensors)
        if print_ == starting_print:
            copies[verdict.commit.trainer] = "resubmits the round's starting global model"
        elif print_ in originals:
            copies[verdict.commit.trainer] = f"identical to the update {originals[print_]} committed earlier"
        else:
            originals[print_] = verdict.commit.trainer
    return [
        replace(v, reason=RejectionReason.DUPLICATE, detail=copies[v.commit.trainer], tensors=None)
        if v.commit.trainer in copies
        else v
        for v in verdicts
    ]


def _reject(
    verdicts: list[Verdict], trainers: set[str], reason: RejectionReason, detail: str
) -> list[Verdict]:
    return [
        replace(v, reason=reason, detail=detail, tensors=None) if v.commit.trainer in trainers else v
        for v in verdicts
    ]
