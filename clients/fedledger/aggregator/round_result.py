"""Computing a round's result from its commits: the part every aggregator (and every auditor
running `fedledger verify`) must compute identically.

Order is fixed by trainer address; weights are the committed sample counts capped by the
round's cap; the rule is the one the round's on-chain config selects; the global model file
is encoded canonically and bound to the task and the new model version, never to the
aggregator, so honest aggregators produce the same bytes and the same sha256.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fedledger.aggregation.rules import aggregate
from fedledger.aggregator.verification import Commit, Fetch, Verdict, update_binding, verify
from fedledger.arrays import Array
from fedledger.chain.params import AggregationRule
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
    """Verifies every commit (concurrently) and aggregates the accepted ones.

    When nothing is accepted the model does not change, but the round still produces version
    `context.model_version`: the previous model's tensors re-encoded under the new binding
    (from `previous_model`), so every finalized version has its own file, identical on every
    honest aggregator. Without `previous_model`, `model_bytes` is None in that case.
    """
    ordered = sorted(commits, key=lambda c: int(c.trainer, 16))

    def check(commit: Commit) -> Verdict:
        binding = update_binding(
            commit, chain_id=context.chain_id, task=context.task, round_number=context.round_number, spec=spec
        )
        return verify(commit, fetch, spec, binding)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        verdicts = list(pool.map(check, ordered))
    accepted = [
        (v.tensors, min(v.commit.num_samples, context.sample_cap)) for v in verdicts if v.tensors is not None
    ]
    if accepted:
        model: dict[str, Array] = aggregate(context.rule, context.rule_param, accepted)
    elif previous_model is not None:
        model = previous_model()
    else:
        return RoundOutcome(verdicts=verdicts, model_bytes=None)
    return RoundOutcome(verdicts=verdicts, model_bytes=encode(model, model_binding(context, spec), spec))
