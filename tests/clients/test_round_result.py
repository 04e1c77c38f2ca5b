"""Round computation with a fake IPFS: verification reasons and deterministic output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeIpfs

from fedledger.aggregation.rules import UnsupportedRuleError
from fedledger.aggregator.round_result import RoundContext, compute_round, model_binding
from fedledger.aggregator.verification import Commit, update_binding
from fedledger.chain.params import AggregationRule, RejectionReason
from fedledger.storage.codec import decode, encode
from fedledger.storage.ipfs import IpfsUnavailableError
from fedledger.storage.schema import ModelSpec, TensorSpec

SPEC = ModelSpec("tiny", (TensorSpec("w", (4,)),))
CONTEXT = RoundContext(
    chain_id=31337,
    task="0x" + "11" * 20,
    round_number=1,
    model_version=1,
    sample_cap=100,
    rule=AggregationRule.FEDAVG,
    rule_param=0,
)


def trainer(i: int) -> str:
    return "0x" + f"{i:040x}"


def honest_commit(ipfs: FakeIpfs, i: int, value: float, samples: int) -> Commit:
    draft = Commit(trainer=trainer(i), digest=b"", cid="", num_samples=samples)
    binding = update_binding(draft, chain_id=31337, task=CONTEXT.task, round_number=1, spec=SPEC)
    data = encode({"w": np.full(4, value, np.float32)}, binding, SPEC)
    return Commit(
        trainer=draft.trainer, digest=hashlib.sha256(data).digest(), cid=ipfs.put(data), num_samples=samples
    )


def test_compute_round__weighted_by_capped_samples() -> None:
    ipfs = FakeIpfs()
    commits = [honest_commit(ipfs, 1, 1.0, 50), honest_commit(ipfs, 2, 3.0, 500)]  # 500 is capped to 100
    outcome = compute_round(commits, ipfs.fetch, SPEC, CONTEXT)
    assert [v.accepted for v in outcome.verdicts] == [True, True]
    assert outcome.model_bytes is not None
    model = decode(outcome.model_bytes, SPEC, model_binding(CONTEXT, SPEC))
    np.testing.assert_allclose(model["w"], np.full(4, (50 * 1.0 + 100 * 3.0) / 150, np.float32), atol=1e-6)


def test_compute_round__same_inputs_any_order__same_model_digest() -> None:
    ipfs = FakeIpfs()
    commits = [honest_commit(ipfs, i, 0.1 * i, 10 + i) for i in range(1, 6)]
    first = compute_round(commits, ipfs.fetch, SPEC, CONTEXT)
    second = compute_round(list(reversed(commits)), ipfs.fetch, SPEC, CONTEXT, workers=1)
    assert first.model_digest == second.model_digest
    assert [v.commit.trainer for v in first.verdicts] == sorted(c.trainer for c in commits)


def test_compute_round__bad_updates__rejected_with_reasons() -> None:
    ipfs = FakeIpfs()
    good = honest_commit(ipfs, 1, 1.0, 10)
    mismatch = honest_commit(ipfs, 2, 1.0, 10)
    mismatch = Commit(trainer=mismatch.trainer, digest=b"\1" * 32, cid=mismatch.cid, num_samples=10)
    missing = Commit(trainer=trainer(3), digest=b"\2" * 32, cid="cid-missing", num_samples=10)
    stolen = Commit(trainer=trainer(4), digest=good.digest, cid=good.cid, num_samples=10)  # names trainer 1
    garbage = b"not safetensors"
    malformed = Commit(
        trainer=trainer(5), digest=hashlib.sha256(garbage).digest(), cid=ipfs.put(garbage), num_samples=10
    )
    outcome = compute_round([good, mismatch, missing, stolen, malformed], ipfs.fetch, SPEC, CONTEXT)
    reasons = {v.commit.trainer: v.reason for v in outcome.verdicts}
    assert reasons == {
        trainer(1): RejectionReason.NONE,
        trainer(2): RejectionReason.DIGEST_MISMATCH,
        trainer(3): RejectionReason.UNAVAILABLE,
        trainer(4): RejectionReason.WRONG_BINDING,
        trainer(5): RejectionReason.MALFORMED,
    }
    assert [v.commit.trainer for v in outcome.rejected] == [trainer(i) for i in (2, 3, 4, 5)]


def test_compute_round__nothing_accepted__no_model() -> None:
    outcome = compute_round(
        [Commit(trainer=trainer(1), digest=b"\0" * 32, cid="x", num_samples=1)],
        FakeIpfs().fetch,
        SPEC,
        CONTEXT,
    )
    assert outcome.model_bytes is None and outcome.model_digest is None


def test_compute_round__local_ipfs_down__raises_instead_of_rejecting() -> None:
    def dead(cid: str, max_bytes: int) -> bytes:
        raise IpfsUnavailableError("down")

    with pytest.raises(IpfsUnavailableError):
        compute_round(
            [Commit(trainer=trainer(1), digest=b"\0" * 32, cid="x", num_samples=1)], dead, SPEC, CONTEXT
        )


def test_compute_round__rule_parameters_unusable__raises() -> None:
    """Multi-Krum needs at least 2f + 3 updates: with one, every aggregator refuses alike."""
    ipfs = FakeIpfs()
    context = RoundContext(**{**CONTEXT.__dict__, "rule": AggregationRule.MULTI_KRUM})
    with pytest.raises(UnsupportedRuleError):
        compute_round([honest_commit(ipfs, 1, 1.0, 10)], ipfs.fetch, SPEC, context)


def test_compute_round__nothing_accepted__previous_model_reencoded_for_the_new_version() -> None:
    previous = {"w": np.full(4, 0.25, np.float32)}
    missing = Commit(trainer=trainer(1), digest=b"\0" * 32, cid="cid-missing", num_samples=1)
    outcome = compute_round([missing], FakeIpfs().fetch, SPEC, CONTEXT, previous_model=lambda: previous)
    assert outcome.accepted == [] and outcome.model_bytes is not None
    model = decode(outcome.model_bytes, SPEC, model_binding(CONTEXT, SPEC))
    np.testing.assert_array_equal(model["w"], previous["w"])


def positioned(commit: Commit, position: int) -> Commit:
    return Commit(
        trainer=commit.trainer,
        digest=commit.digest,
        cid=commit.cid,
        num_samples=commit.num_samples,
        position=position,
    )


def copy_of(ipfs: FakeIpfs, original_value: float, copier: int, position: int) -> Commit:
    """Trainer `copier` re-encodes tensors equal to another update under its own binding."""
    return positioned(honest_commit(ipfs, copier, original_value, 10), position)


def test_compute_round__copy_of_an_earlier_commit__duplicate_not_aggregated() -> None:
    ipfs = FakeIpfs()
    original = positioned(honest_commit(ipfs, 5, 1.0, 10), position=1)  # committed first
    copier = copy_of(ipfs, 1.0, copier=2, position=2)  # lower address, committed later
    other = positioned(honest_commit(ipfs, 3, 3.0, 10), position=3)
    outcome = compute_round([original, copier, other], ipfs.fetch, SPEC, CONTEXT)
    reasons = {v.commit.trainer: v.reason for v in outcome.verdicts}
    assert reasons == {
        trainer(2): RejectionReason.DUPLICATE,
        trainer(3): RejectionReason.NONE,
        trainer(5): RejectionReason.NONE,
    }
    assert outcome.model_bytes is not None
    model = decode(outcome.model_bytes, SPEC, model_binding(CONTEXT, SPEC))
    np.testing.assert_allclose(model["w"], np.full(4, 2.0, np.float32))  # the copy adds no weight


def test_compute_round__resubmitted_starting_model__duplicate() -> None:
    ipfs = FakeIpfs()
    starting = {"w": np.full(4, 0.5, np.float32)}
    lazy = positioned(honest_commit(ipfs, 1, 0.5, 10), position=1)
    worker = positioned(honest_commit(ipfs, 2, 2.0, 10), position=2)
    outcome = compute_round([lazy, worker], ipfs.fetch, SPEC, CONTEXT, previous_model=lambda: starting)
    assert [v.reason for v in outcome.verdicts] == [RejectionReason.DUPLICATE, RejectionReason.NONE]
    assert "starting global model" in outcome.verdicts[0].detail


def test_compute_round__multi_krum__unselected_update_rejected_as_outlier() -> None:
    ipfs = FakeIpfs()
    honest = [positioned(honest_commit(ipfs, i, 1.0 + 0.01 * i, 10), i) for i in range(1, 5)]
    attacker = positioned(honest_commit(ipfs, 9, 500.0, 10), 9)
    context = RoundContext(
        **{**CONTEXT.__dict__, "rule": AggregationRule.MULTI_KRUM, "rule_param": 1 | (4 << 16)}
    )
    outcome = compute_round([*honest, attacker], ipfs.fetch, SPEC, context)
    assert [v.commit.trainer for v in outcome.rejected] == [trainer(9)]
    assert outcome.rejected[0].reason == RejectionReason.OUTLIER
    assert "Krum" in outcome.rejected[0].detail
    model = decode(outcome.model_bytes or b"", SPEC, model_binding(context, SPEC))
    assert float(model["w"].max()) < 2.0


def test_compute_round__clip_norm__bounds_each_update_before_the_rule() -> None:
    ipfs = FakeIpfs()
    starting = {"w": np.zeros(4, np.float32)}
    small = positioned(honest_commit(ipfs, 1, 0.1, 10), 1)  # ||change|| = 0.2: untouched
    huge = positioned(honest_commit(ipfs, 2, 50.0, 10), 2)  # ||change|| = 100: clipped to 1
    context = RoundContext(**{**CONTEXT.__dict__, "clip_norm": 1.0})
    outcome = compute_round([small, huge], ipfs.fetch, SPEC, context, previous_model=lambda: starting)
    model = decode(outcome.model_bytes or b"", SPEC, model_binding(context, SPEC))
    # The mean of 0.1 and the clipped 0.5 per coordinate (norm 1 over 4 coordinates).
    np.testing.assert_allclose(model["w"], np.full(4, 0.3, np.float32), atol=1e-5)
    unclipped = compute_round([small, huge], ipfs.fetch, SPEC, CONTEXT, previous_model=lambda: starting)
    assert decode(unclipped.model_bytes or b"", SPEC, model_binding(CONTEXT, SPEC))["w"][0] > 20


def test_compute_round__clip_norm_without_starting_model__refused() -> None:
    ipfs = FakeIpfs()
    context = RoundContext(**{**CONTEXT.__dict__, "clip_norm": 1.0})
    with pytest.raises(UnsupportedRuleError, match="started from"):
        compute_round([honest_commit(ipfs, 1, 0.1, 10)], ipfs.fetch, SPEC, context)


# ---------------------------------------------------------------- updates spooled to disk

SPOOL_SPEC = ModelSpec("spooled", (TensorSpec("a", (3, 5)), TensorSpec("b", (7,))))


def varied_commit(
    ipfs: FakeIpfs, i: int, samples: int, rng: np.random.Generator, scale: float = 1.0
) -> Commit:
    draft = Commit(trainer=trainer(i), digest=b"", cid="", num_samples=samples, position=i)
    binding = update_binding(draft, chain_id=31337, task=CONTEXT.task, round_number=1, spec=SPOOL_SPEC)
    tensors = {t.name: (rng.normal(0, scale, t.shape)).astype(np.float32) for t in SPOOL_SPEC.tensors}
    data = encode(tensors, binding, SPOOL_SPEC)
    return Commit(
        trainer=draft.trainer,
        digest=hashlib.sha256(data).digest(),
        cid=ipfs.put(data),
        num_samples=samples,
        position=i,
    )


@pytest.mark.parametrize(
    ("rule", "param", "clip_norm"),
    [
        (AggregationRule.FEDAVG, 0, 0.0),
        (AggregationRule.FEDAVG, 0, 0.5),
        (AggregationRule.MEDIAN, 0, 0.0),
        (AggregationRule.TRIMMED_MEAN, 2_000, 0.0),
        (AggregationRule.TRIMMED_MEAN, 1_000, 0.5),
        (AggregationRule.MULTI_KRUM, 0, 0.0),  # not a file rule: stays in memory, same result
    ],
)
def test_compute_round__spooled__same_bytes_and_verdicts_as_in_memory(
    tmp_path: Path, rule: AggregationRule, param: int, clip_norm: float
) -> None:
    rng = np.random.default_rng(int(rule) * 7 + param)
    ipfs = FakeIpfs()
    commits = [varied_commit(ipfs, i, samples=5 + 13 * i, rng=rng) for i in range(1, 12)]
    commits.append(varied_commit(ipfs, 40, 10, rng, scale=50.0))  # far out: Krum leaves it out
    duplicate = commits[2]
    copied = Commit(trainer=trainer(41), digest=b"", cid="", num_samples=10, position=99)
    binding = update_binding(copied, chain_id=31337, task=CONTEXT.task, round_number=1, spec=SPOOL_SPEC)
    tensors = decode(
        ipfs.fetch(duplicate.cid, 1 << 20),
        SPOOL_SPEC,
        update_binding(duplicate, chain_id=31337, task=CONTEXT.task, round_number=1, spec=SPOOL_SPEC),
    )
    data = encode(tensors, binding, SPOOL_SPEC)
    commits.append(
        Commit(
            trainer=copied.trainer,
            digest=hashlib.sha256(data).digest(),
            cid=ipfs.put(data),
            num_samples=10,
            position=99,
        )
    )
    commits.append(
        Commit(trainer=trainer(42), digest=b"\3" * 32, cid="cid-missing", num_samples=10, position=100)
    )
    previous = {t.name: np.zeros(t.shape, np.float32) + 0.01 for t in SPOOL_SPEC.tensors}
    context = RoundContext(**{**CONTEXT.__dict__, "rule": rule, "rule_param": param, "clip_norm": clip_norm})

    in_memory = compute_round(commits, ipfs.fetch, SPOOL_SPEC, context, previous_model=lambda: previous)
    spool = tmp_path / "spool"
    spool.mkdir()
    spooled = compute_round(
        commits, ipfs.fetch, SPOOL_SPEC, context, previous_model=lambda: previous, spool=spool
    )

    assert spooled.model_bytes == in_memory.model_bytes is not None
    assert [(v.commit.trainer, v.reason) for v in spooled.verdicts] == [
        (v.commit.trainer, v.reason) for v in in_memory.verdicts
    ]
    reasons = {v.commit.trainer: v.reason for v in spooled.verdicts}
    assert reasons[trainer(41)] == RejectionReason.DUPLICATE
    assert reasons[trainer(42)] == RejectionReason.UNAVAILABLE
    written = sorted(spool.iterdir())
    if rule == AggregationRule.MULTI_KRUM:
        assert written == [] and RejectionReason.OUTLIER in reasons.values()
    else:
        assert len(written) == 13  # every update that passed verification, the copy included
        assert all(v.tensors is None for v in spooled.verdicts)  # nothing held in memory
