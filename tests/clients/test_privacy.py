"""Differential privacy of updates: clipping bounds the norm, the noise has the governed scale,
and the epsilon is Opacus's own for the same mechanism."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier

from fedledger.aggregation.clipping import clip_update
from fedledger.chain.params import AggregationRule
from fedledger.chain.rounds import RoundConfig
from fedledger.learning.model import build_model, get_weights
from fedledger.learning.privacy import (
    PrivacyBudgetExceededError,
    PrivacyRule,
    accountant_for,
    check_budget,
    epsilon,
    privatize,
    release,
)
from fedledger.storage.codec import MAX_ABS_VALUE

DELTA = 1e-5


def distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum((a[k].astype(np.float64) - b[k].astype(np.float64)) ** 2)) for k in a))


@pytest.fixture(scope="module")
def models() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return get_weights(build_model(seed=1)), get_weights(build_model(seed=2))  # about 20 apart


def test_rule_of_round__from_the_chain_fixed_point() -> None:
    config = RoundConfig(
        0, 0, 0, 1, 6_667, 0, 0, 0, AggregationRule.FEDAVG, 0, 1_100_000, 500_000, 10_000_000
    )
    rule = PrivacyRule.of_round(config)
    assert rule == PrivacyRule(noise_multiplier=1.1, clip_norm=0.5, delta=1e-5) and rule.enabled
    assert str(rule) == "noise multiplier 1.1, clip norm 0.5, delta 1e-05"
    assert not PrivacyRule(0.0, 1.0, DELTA).enabled and not PrivacyRule(1.0, 0.0, DELTA).enabled
    assert str(PrivacyRule(0.0, 1.0, DELTA)) == "off"


@pytest.mark.parametrize("clip_norm", [0.1, 1.0, 5.0])
def test_privatize__clips_the_change_to_the_bound_then_adds_the_noise(
    models: tuple, clip_norm: float
) -> None:
    update, reference = models
    assert distance(update, reference) > 5  # above every bound below: clipping applies
    rule = PrivacyRule(noise_multiplier=0.5, clip_norm=clip_norm, delta=DELTA)

    noised = privatize(update, reference, rule, np.random.default_rng(7))

    clipped = clip_update(update, reference, clip_norm)
    assert distance(clipped, reference) <= clip_norm * (1 + 1e-6)  # the clipped change is bounded
    expected_noise = np.random.default_rng(7)
    for name in sorted(clipped):
        noise = expected_noise.normal(0.0, 0.5 * clip_norm, size=clipped[name].shape)
        np.testing.assert_allclose(
            noised[name], (clipped[name] + noise).astype(np.float32), rtol=0, atol=1e-6
        )
        assert noised[name].dtype == np.float32


def test_privatize__noise_has_the_governed_standard_deviation(models: tuple) -> None:
    update, reference = models
    rule = PrivacyRule(noise_multiplier=1.3, clip_norm=0.2, delta=DELTA)
    noised = privatize(update, reference, rule, np.random.default_rng(1))
    clipped = clip_update(update, reference, 0.2)
    noise = np.concatenate([(noised[k].astype(np.float64) - clipped[k]).ravel() for k in sorted(clipped)])
    assert noise.size > 40_000
    assert abs(noise.std() / (1.3 * 0.2) - 1) < 0.02 and abs(noise.mean()) < 0.01


def test_privatize__fresh_secret_noise_each_time(models: tuple) -> None:
    update, reference = models
    rule = PrivacyRule(noise_multiplier=1.0, clip_norm=1.0, delta=DELTA)
    first, second = privatize(update, reference, rule), privatize(update, reference, rule)
    assert any(not np.array_equal(first[k], second[k]) for k in first)


def test_privatize__huge_noise_stays_within_what_the_codec_accepts(models: tuple) -> None:
    update, reference = models
    noised = privatize(update, reference, PrivacyRule(4_000.0, 10.0, DELTA), np.random.default_rng(0))
    assert max(float(np.abs(v).max()) for v in noised.values()) <= MAX_ABS_VALUE


def test_privatize__off__refused(models: tuple) -> None:
    with pytest.raises(ValueError, match="off for this round"):
        privatize(*models, PrivacyRule(0.0, 1.0, DELTA))


@pytest.mark.parametrize(("sigma", "rounds"), [(0.8, 1), (1.0, 10), (2.0, 50), (5.0, 200)])
def test_epsilon__is_opacus_rdp_for_the_same_mechanism(sigma: float, rounds: int) -> None:
    rule = PrivacyRule(noise_multiplier=sigma, clip_norm=1.0, delta=DELTA)
    ours = epsilon([rule] * rounds, DELTA)

    # Opacus's own analysis, called directly: sampling rate 1, noise multiplier sigma / 2
    # (client-level sensitivity is twice the clip norm).
    orders = accountant_for([]).DEFAULT_ALPHAS
    rdp = rdp_analysis.compute_rdp(q=1.0, noise_multiplier=sigma / 2, steps=rounds, orders=orders)
    library, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=rdp, delta=DELTA)
    assert ours == pytest.approx(float(library), rel=1e-12)
    # And Opacus's calibration inverts it: the noise that spends exactly that epsilon.
    calibrated = get_noise_multiplier(
        target_epsilon=ours,
        target_delta=DELTA,
        sample_rate=1.0,
        steps=rounds,
        accountant="rdp",
        epsilon_tolerance=0.001,
    )
    assert calibrated == pytest.approx(sigma / 2, rel=0.01)


def test_epsilon__composes_rounds_with_different_noise() -> None:
    low, high = PrivacyRule(0.8, 1.0, DELTA), PrivacyRule(3.0, 1.0, DELTA)
    mixed = epsilon([low, high], DELTA)
    assert epsilon([high, high], DELTA) < mixed < epsilon([low, low], DELTA)
    assert epsilon([low], DELTA) < epsilon([low, low], DELTA)  # every round spends


def test_epsilon__no_rounds_is_zero_and_a_round_without_noise_is_infinite() -> None:
    assert epsilon([], DELTA) == 0.0
    assert math.isinf(epsilon([PrivacyRule(1.0, 1.0, DELTA), PrivacyRule(0.0, 1.0, DELTA)], DELTA))


def test_check_budget__refuses_the_round_that_would_exceed_it() -> None:
    rule = PrivacyRule(2.0, 1.0, DELTA)
    spent = [rule] * 3
    allowed = epsilon([rule] * 4, DELTA)
    assert check_budget(spent, rule, budget=allowed, delta=DELTA) == allowed
    with pytest.raises(
        PrivacyBudgetExceededError, match=r"over its budget of .* \(spent so far .* in 3 round"
    ):
        check_budget(spent, rule, budget=allowed - 0.01, delta=DELTA)
    with pytest.raises(PrivacyBudgetExceededError, match="infinity"):
        check_budget([], PrivacyRule(0.0, 1.0, DELTA), budget=100.0, delta=DELTA)


def test_release__privatized_only_when_the_round_asks(models: tuple) -> None:
    update, reference = models
    assert release(PrivacyRule(0.0, 1.0, DELTA), update, reference) is update
    released = release(PrivacyRule(1.0, 0.5, DELTA), update, reference)
    assert distance(released, reference) > 0.5 * math.sqrt(40_000)  # the noise, not the update


def test_privatize__diverged_training__released_as_no_change_plus_noise(models: tuple) -> None:
    update, reference = models
    diverged = {name: np.full_like(values, np.nan) for name, values in update.items()}
    rule = PrivacyRule(noise_multiplier=0.5, clip_norm=1.0, delta=DELTA)
    released = privatize(diverged, reference, rule, np.random.default_rng(3))
    expected = np.random.default_rng(3)
    for name in sorted(reference):
        noise = expected.normal(0.0, 0.5, size=reference[name].shape)
        np.testing.assert_allclose(released[name], (reference[name] + noise).astype(np.float32), atol=1e-6)


def test_privatize__mixed_dtypes__floats_noised_in_their_dtype_integer_buffers_untouched() -> None:
    rng = np.random.default_rng(0)
    reference = {
        "bn.num_batches_tracked": np.array(10, np.int64),
        "half": rng.standard_normal(50).astype(np.float16),
        "brain": rng.standard_normal((5, 5)).astype(ml_dtypes.bfloat16),
    }
    update = {
        "bn.num_batches_tracked": np.array(13, np.int64),
        "half": (reference["half"].astype(np.float32) + 3).astype(np.float16),
        "brain": (reference["brain"].astype(np.float32) - 3).astype(ml_dtypes.bfloat16),
    }
    rule = PrivacyRule(noise_multiplier=1.0, clip_norm=0.5, delta=DELTA)
    released = privatize(update, reference, rule, np.random.default_rng(1))
    assert {n: v.dtype for n, v in released.items()} == {n: v.dtype for n, v in update.items()}
    assert int(released["bn.num_batches_tracked"]) == 13
    for name in ("half", "brain"):
        assert released[name].tobytes() != update[name].tobytes()
        assert np.all(np.abs(released[name].astype(np.float32)) <= MAX_ABS_VALUE)
