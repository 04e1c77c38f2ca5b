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
from pathlib import Path

import numpy as np
import safetensors.numpy

from fedledger.aggregation.clipping import clip_update
from fedledger.aggregation.rules import (
    FILE_RULES,
    UnsupportedRuleError,
    aggregate,
    aggregate_files,
    describe_rule,
)
from fedledger.aggregator.verification import Commit, Fetch, Verdict, update_binding, verify
from fedledger.arrays import Array
from fedledger.chain.params import AggregationRule, RejectionReason
from fedledger.storage.codec import Binding, encode
from fedledger.storage.digests import sha256
from fedledger.storage.models import global_model_binding
from fedledger.storage.schema import ModelSpec, dtype_name, numpy_dtype


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
    spool: Path | None = None,
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

    With `spool` (a directory), each accepted update is written there as it is verified and
    dropped from memory, and the coordinate-wise rules run over the files (`aggregate_files`):
    memory grows with the model, not with the number of updates. The result is the same bytes.
    """
    ordered = sorted(commits, key=lambda c: int(c.trainer, 16))
    starting = previous_model() if previous_model is not None else None
    to_disk = spool is not None and context.rule in FILE_RULES

    def check(position: int, commit: Commit) -> Checked:
        binding = update_binding(
            commit, chain_id=context.chain_id, task=context.task, round_number=context.round_number, spec=spec
        )
        verdict = verify(commit, fetch, spec, binding)
        if verdict.tensors is None:
            return Checked(verdict)
        print_ = fingerprint(verdict.tensors)
        if spool is None or not to_disk:
            return Checked(verdict, print_)
        path = spool / f"update-{position:06d}.safetensors"
        safetensors.numpy.save_file(_clipped(verdict.tensors, starting, context.clip_norm), path)
        return Checked(replace(verdict, tensors=None), print_, path)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        checked = list(pool.map(check, range(len(ordered)), ordered))
    verdicts = _reject_duplicates(
        [c.verdict for c in checked],
        {c.verdict.commit.trainer: c.print for c in checked if c.print is not None},
        fingerprint(starting) if starting is not None else None,
    )
    accepted = [v for v in verdicts if v.accepted]
    if accepted:
        weights = [min(v.commit.num_samples, context.sample_cap) for v in accepted]
        if to_disk:
            paths = {c.verdict.commit.trainer: c.path for c in checked if c.path is not None}
            result = aggregate_files(
                context.rule, context.rule_param, [paths[v.commit.trainer] for v in accepted], weights
            )
        else:
            weighted = [
                (_clipped(_tensors_of(v), starting, context.clip_norm), w)
                for v, w in zip(accepted, weights, strict=True)
            ]
            result = aggregate(context.rule, context.rule_param, weighted)
        verdicts = _reject(
            verdicts,
            {accepted[i].commit.trainer for i in result.excluded},
            RejectionReason.OUTLIER,
            f"left out by {describe_rule(context.rule, context.rule_param)}",
        )
        model = result.model
    elif starting is not None:
        model = starting
    else:
        return RoundOutcome(verdicts=verdicts, model_bytes=None)
    return RoundOutcome(verdicts=verdicts, model_bytes=encode(model, model_binding(context, spec), spec))


@dataclass(frozen=True)
class Checked:
    """A verdict with the accepted update's fingerprint and, when spooled, its file."""

    verdict: Verdict
    print: bytes | None = None
    path: Path | None = None


def _tensors_of(verdict: Verdict) -> dict[str, Array]:
    if verdict.tensors is None:
        raise RuntimeError(f"accepted update of {verdict.commit.trainer} has no tensors")
    return verdict.tensors


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
    """sha256 over the tensors' names and little-endian bytes (each in its wire dtype, as decoded):
    equal exactly when the tensors are, for tensors of one model spec."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        values = tensors[name]
        wire = numpy_dtype(dtype_name(values.dtype, name))
        digest.update(name.encode() + b"\0" + np.ascontiguousarray(values, dtype=wire).tobytes())
    return digest.digest()


def _reject_duplicates(
    verdicts: list[Verdict], prints: Mapping[str, bytes], starting_print: bytes | None
) -> list[Verdict]:
    """Marks accepted updates equal to the starting model, or to an earlier commit's update
    (chain order), as duplicates; `prints` maps each accepted trainer to its fingerprint."""
    originals: dict[bytes, str] = {}
    copies: dict[str, str] = {}
    for verdict in sorted((v for v in verdicts if v.accepted), key=lambda v: v.commit.position):
        print_ = prints[verdict.commit.trainer]
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
