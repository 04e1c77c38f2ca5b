"""Robust rules: hand-computed results, bit-identical output, robustness, validation, chunking,
clipping and the on-chain parameter encoding."""

from __future__ import annotations

import numpy as np
import pytest

from fedledger.aggregation import (
    clip_update,
    coordinate_median,
    fedavg,
    krum_scores,
    multi_krum,
    trimmed_mean,
)
from fedledger.aggregation.fixedpoint import SCALE
from fedledger.aggregation.rules import (
    UnsupportedRuleError,
    aggregate,
    describe_rule,
    krum_parameters,
    trim_basis_points,
)
from fedledger.aggregation.trimmed_mean import trim_count, trimmed_mean_by_count
from fedledger.chain.params import AggregationRule

GRID = 2.0**-20  # one fixed-point unit


def vec(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


def column(*values: float) -> list[dict[str, np.ndarray]]:
    """One single-coordinate update per value."""
    return [{"w": vec(value)} for value in values]


def random_updates(count: int, seed: int, shapes: dict[str, tuple[int, ...]]) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
        for _ in range(count)
    ]


def as_bytes(tensors: dict[str, np.ndarray]) -> list[tuple[str, bytes]]:
    return [(name, tensors[name].tobytes()) for name in sorted(tensors)]


SHAPES = {"w": (7, 5), "b": (3,)}


# --- coordinate median ------------------------------------------------------------------------


def test_median__odd_count__middle_value_bit_for_bit() -> None:
    updates = [
        {"w": vec(1.0, 5.0, -2.0, 0.1), "b": vec(7.0)},
        {"w": vec(3.0, -1.0, 0.0, 0.3), "b": vec(-7.0)},
        {"w": vec(2.0, 2.0, 7.0, 0.2), "b": vec(0.5)},
    ]
    result = coordinate_median(updates)
    # columns: {1,3,2} -> 2; {5,-1,2} -> 2; {-2,0,7} -> 0; {0.1,0.3,0.2} -> 0.2 (not rounded to the grid)
    np.testing.assert_array_equal(result["w"], vec(2.0, 2.0, 0.0, 0.2))
    np.testing.assert_array_equal(result["b"], vec(0.5))
    assert list(result) == ["b", "w"] and result["w"].dtype == np.float32


def test_median__even_count__mean_of_the_two_middle_values() -> None:
    updates = [
        {"w": vec(1.0, 0.5, -3.0)},
        {"w": vec(2.0, 0.25, -1.0)},
        {"w": vec(4.0, 0.0, 9.0)},
        {"w": vec(10.0, 1.0, -8.0)},
    ]
    # sorted columns: 1,2,4,10 -> (2+4)/2 = 3; 0,.25,.5,1 -> .375; -8,-3,-1,9 -> (-3-1)/2 = -2
    np.testing.assert_array_equal(coordinate_median(updates)["w"], vec(3.0, 0.375, -2.0))


def test_median__even_count__halves_round_away_from_zero() -> None:
    # middle values 1 and 2 grid units: 1.5 units -> 2 units; negated -> -2 units
    updates = [
        {"w": vec(0.0, 0.0)},
        {"w": vec(GRID, -GRID)},
        {"w": vec(2 * GRID, -2 * GRID)},
        {"w": vec(1, -1)},
    ]
    np.testing.assert_array_equal(coordinate_median(updates)["w"], vec(2 * GRID, -2 * GRID))


def test_median__signed_zeros_and_tiny_values__exact_selection() -> None:
    tiny = np.float32(1e-40)  # subnormal
    result = coordinate_median([{"w": vec(-0.0, tiny)}, {"w": vec(0.0, -tiny)}, {"w": vec(-0.0, 0.0)}])
    # keys order -0.0 < +0.0: {-0,+0,-0} -> -0.0; {tiny, -tiny, 0} -> 0
    assert result["w"].tobytes() == vec(-0.0, 0.0).tobytes()


def test_median__same_as_trimming_all_but_the_middle() -> None:
    for count in (1, 2, 5, 6):
        updates = random_updates(count, count, SHAPES)
        assert as_bytes(coordinate_median(updates)) == as_bytes(
            trimmed_mean_by_count(updates, (count - 1) // 2)
        )


# --- trimmed mean ----------------------------------------------------------------------------


def test_trimmed_mean__hand_computed() -> None:
    updates = [
        {"w": vec(1.0, -10.0, 1.0)},
        {"w": vec(2.0, 0.0, 2.0)},
        {"w": vec(3.0, 1.0, 2.0)},
        {"w": vec(4.0, 2.0, 9.0)},
        {"w": vec(100.0, 3.0, -5.0)},
    ]
    # beta 0.2, N 5 -> k = 1: drop the smallest and the largest of each column
    # {2,3,4} -> 3; {0,1,2} -> 1; {1,2,2} -> 5/3, rounded to the grid
    five_thirds = round(5 / 3 * 2**20) / 2**20
    np.testing.assert_array_equal(trimmed_mean(updates, 0.2)["w"], vec(3.0, 1.0, five_thirds))


def test_trimmed_mean__beta_zero__unweighted_mean() -> None:
    np.testing.assert_array_equal(trimmed_mean(column(1.0, 2.0, 6.0), 0.0)["w"], vec(3.0))


def test_trim_count__exact_decimal_beta() -> None:
    assert trim_count(0.2, 5) == 1
    assert trim_count(0.1, 9) == 0
    assert trim_count(0.29, 100) == 29  # 0.29 * 100 is 28.999999999999996 in floats
    assert trim_count(0.49, 3) == 1
    assert trim_count(0.0, 4) == 0


def test_trimmed_mean__validation() -> None:
    updates = column(1.0, 2.0, 3.0)
    for beta in (0.5, -0.1, 0.7, float("nan")):
        with pytest.raises(ValueError, match="beta"):
            trimmed_mean(updates, beta)
    with pytest.raises(ValueError, match="no updates"):
        trimmed_mean([], 0.1)
    with pytest.raises(ValueError, match="at least one must remain"):
        trimmed_mean_by_count(updates, 2)


# --- Multi-Krum ------------------------------------------------------------------------------


def test_krum_scores__hand_computed() -> None:
    # N 5, f 1 -> N - f - 2 = 2 nearest neighbours
    # 0: d^2 to 1,2,3,100 = 1,4,9,10000 -> 1+4 = 5
    # 1: 1,1,4,9801 -> 2;  2: 4,1,1,9604 -> 2;  3: 9,4,1,9409 -> 5
    # 100: 10000,9801,9604,9409 -> 9409+9604 = 19013
    scores = krum_scores(column(0.0, 1.0, 2.0, 3.0, 100.0), 1)
    assert [score / SCALE**2 for score in scores] == [5.0, 2.0, 2.0, 5.0, 19013.0]


def test_krum_scores__sum_over_tensors() -> None:
    updates = [
        {"w": vec(0.0), "b": vec(0.0, 0.0)},
        {"w": vec(1.0), "b": vec(1.0, 0.0)},
        {"w": vec(0.0), "b": vec(0.0, 2.0)},
    ]
    # f 0 -> 1 nearest neighbour; d^2(0,1) = 2, d^2(0,2) = 4, d^2(1,2) = 1 + 1 + 4 = 6
    assert [score / SCALE**2 for score in krum_scores(updates, 0)] == [2.0, 2.0, 4.0]


def test_multi_krum__selection_ties_by_index_and_weighted_mean() -> None:
    tensors = column(0.0, 1.0, 2.0, 3.0, 100.0)
    weights = [1, 1, 2, 1, 1]
    # scores 5,2,2,5,19013: m 3 takes 1 and 2, then the tie at 5 goes to index 0, not 3
    result, selected = multi_krum(list(zip(tensors, weights, strict=True)), f=1, m=3)
    assert selected == [0, 1, 2]
    np.testing.assert_array_equal(result["w"], vec(1.25))  # (0*1 + 1*1 + 2*2) / 4
    _, selected = multi_krum(list(zip(tensors, weights, strict=True)), f=1, m=4)
    assert selected == [0, 1, 2, 3]


def test_multi_krum__validation() -> None:
    updates = [(tensors, 1) for tensors in column(0.0, 1.0, 2.0, 3.0, 4.0)]
    with pytest.raises(ValueError, match=r"2f \+ 3 = 7 updates, got 5"):
        multi_krum(updates, f=2, m=1)
    with pytest.raises(ValueError, match=r"m <= N - f = 4, got m = 5"):
        multi_krum(updates, f=1, m=5)
    with pytest.raises(ValueError, match="m = 0"):
        multi_krum(updates, f=1, m=0)
    with pytest.raises(ValueError, match="f >= 0"):
        multi_krum(updates, f=-1, m=1)
    with pytest.raises(ValueError, match="weights must be positive"):
        multi_krum([*updates[:4], (updates[4][0], 0)], f=1, m=1)
    with pytest.raises(ValueError, match="2f"):
        krum_scores(column(0.0, 1.0), 0)


# --- determinism ------------------------------------------------------------------------------


RULES = {
    "median": lambda updates: coordinate_median([t for t, _ in updates]),
    "trimmed": lambda updates: trimmed_mean([t for t, _ in updates], 0.2),
    "krum": lambda updates: multi_krum(updates, 1, 3)[0],
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rules__repeated_and_equal_inputs__identical_bytes(rule: str) -> None:
    updates = [(tensors, weight) for weight, tensors in enumerate(random_updates(6, 11, SHAPES), start=1)]
    copies = [
        ({name: values.copy() for name, values in tensors.items()}, weight) for tensors, weight in updates
    ]
    first = as_bytes(RULES[rule](updates))
    assert as_bytes(RULES[rule](updates)) == first
    assert as_bytes(RULES[rule](copies)) == first


def test_median_and_trimmed_mean__any_order__identical_bytes() -> None:
    updates = random_updates(7, 5, SHAPES)
    median = as_bytes(coordinate_median(updates))
    trimmed = as_bytes(trimmed_mean(updates, 0.3))
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(updates))
        shuffled = [updates[i] for i in order]
        assert as_bytes(coordinate_median(shuffled)) == median
        assert as_bytes(trimmed_mean(shuffled, 0.3)) == trimmed


def test_krum_scores__permuted_inputs__permuted_scores() -> None:
    updates = random_updates(6, 2, SHAPES)
    scores = krum_scores(updates, 1)
    order = [3, 0, 5, 1, 4, 2]
    assert krum_scores([updates[i] for i in order], 1) == [scores[i] for i in order]


def test_chunking__same_bytes_as_unchunked() -> None:
    updates = random_updates(5, 9, {"w": (13, 11), "b": (3,), "scalar": ()})
    for chunk_size in (1, 7, 64):
        assert as_bytes(coordinate_median(updates, chunk_size=chunk_size)) == as_bytes(
            coordinate_median(updates)
        )
        assert as_bytes(trimmed_mean(updates, 0.2, chunk_size=chunk_size)) == as_bytes(
            trimmed_mean(updates, 0.2)
        )
        assert krum_scores(updates, 1, chunk_size=chunk_size) == krum_scores(updates, 1)
        weighted = [(tensors, 1) for tensors in updates]
        assert multi_krum(weighted, 1, 2, chunk_size=chunk_size)[1] == multi_krum(weighted, 1, 2)[1]


# --- robustness -------------------------------------------------------------------------------


def test_one_huge_outlier__robust_rules_stay_honest_fedavg_does_not() -> None:
    rng = np.random.default_rng(1)
    honest = [{"w": (1.0 + 0.01 * rng.standard_normal(50)).astype(np.float32)} for _ in range(4)]
    outlier = {"w": np.full(50, 1.0e4, np.float32)}  # the largest value the codec accepts
    updates = [*honest[:2], outlier, *honest[2:]]
    low = np.min([u["w"] for u in honest], axis=0)
    high = np.max([u["w"] for u in honest], axis=0)
    for result in (coordinate_median(updates)["w"], trimmed_mean(updates, 0.2)["w"]):
        assert np.all((result >= low) & (result <= high))
    assert np.all(fedavg([(u, 1) for u in updates])["w"] > 1000.0)
    result, selected = multi_krum([(u, 1) for u in updates], f=1, m=3)
    assert 2 not in selected
    assert np.all(np.abs(result["w"] - 1.0) < 0.1)


# --- validation shared by the rules -----------------------------------------------------------


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ([], "no updates"),
        ([{"w": vec(1.0)}, {"v": vec(1.0)}], "same tensor names"),
        ([{"w": vec(1.0)}, {"w": vec(1.0, 2.0)}], "same shapes"),
        ([{"w": vec(1.0)}, {"w": np.array([1.0])}], "float64, not float32"),
        ([{"w": vec(1.0)}, {"w": vec(float("nan"))}], "finite"),
        ([{"w": vec(1.0)}, {"w": vec(float("inf"))}], "finite"),
        ([{"w": vec(1.0)}, {"w": vec(2.0**15)}], "within"),
    ],
)
def test_rules__reject_inconsistent_updates(updates: list[dict[str, np.ndarray]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        coordinate_median(updates)
    with pytest.raises(ValueError, match=message):
        trimmed_mean(updates, 0.0)
    if updates:
        padded = [(updates[-1], 1)] * 2 + [(u, 1) for u in updates]  # enough for f = 0
        with pytest.raises(ValueError, match=message):
            multi_krum(padded, 0, 1)


# --- clipping ---------------------------------------------------------------------------------


def distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return float(np.sqrt(sum(np.sum((a[n].astype(np.float64) - b[n].astype(np.float64)) ** 2) for n in a)))


def test_clip_update__hand_computed() -> None:
    reference = {"w": vec(0.0, 0.0), "b": vec(1.0)}
    update = {"w": vec(3.0, 0.0), "b": vec(5.0)}  # difference (3, 0, 4): norm 5
    clipped = clip_update(update, reference, 1.0)
    np.testing.assert_allclose(clipped["w"], vec(0.6, 0.0), atol=GRID)
    np.testing.assert_allclose(clipped["b"], vec(1.8), atol=GRID)
    assert distance(clipped, reference) <= 1.0


def test_clip_update__bounds_the_norm() -> None:
    rng = np.random.default_rng(4)
    reference = {"w": rng.standard_normal((20, 10)).astype(np.float32), "b": np.zeros(10, np.float32)}
    for max_norm in (0.01, 0.5, 3.0):
        update = {
            name: values + 2 * rng.standard_normal(values.shape).astype(np.float32)
            for name, values in reference.items()
        }
        clipped = clip_update(update, reference, max_norm)
        assert max_norm - 1e-4 <= distance(clipped, reference) <= max_norm + 1e-6
        assert as_bytes(clip_update(update, reference, max_norm)) == as_bytes(clipped)


def test_clip_update__small_update__unchanged() -> None:
    reference = {"w": vec(1.0, 2.0, 1e-7)}
    update = {"w": vec(1.1, 2.0, 3e-7)}
    clipped = clip_update(update, reference, 1.0)
    assert as_bytes(clipped) == as_bytes(update)
    assert clipped["w"] is not update["w"]  # a copy: pure
    exactly_at_bound = {"w": vec(4.0, 2.0, 1e-7)}  # distance 3, representable exactly on the grid
    assert as_bytes(clip_update(exactly_at_bound, {"w": vec(1.0, 2.0, 1e-7)}, 3.0)) == as_bytes(
        exactly_at_bound
    )


def test_clip_update__composes_with_a_rule() -> None:
    reference = {"w": np.zeros(4, np.float32)}
    updates = [{"w": np.full(4, value, np.float32)} for value in (0.1, 0.2, 5000.0)]
    clipped = [clip_update(update, reference, 1.0) for update in updates]
    assert distance(clipped[2], reference) <= 1.0
    assert np.all(fedavg([(u, 1) for u in clipped])["w"] < 0.3)


def test_clip_update__validation() -> None:
    reference = {"w": vec(0.0)}
    for max_norm in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="max_norm"):
            clip_update({"w": vec(1.0)}, reference, max_norm)
    with pytest.raises(ValueError, match="same tensor names"):
        clip_update({"v": vec(1.0)}, reference, 1.0)
    with pytest.raises(ValueError, match="finite"):
        clip_update({"w": vec(float("nan"))}, reference, 1.0)


# --- rules.py: dispatch and parameter encoding ------------------------------------------------


def test_aggregate__dispatches_every_rule() -> None:
    tensors = random_updates(10, 3, SHAPES)
    updates = [(t, weight) for weight, t in enumerate(tensors, start=1)]
    assert as_bytes(aggregate(AggregationRule.FEDAVG, 0, updates).model) == as_bytes(fedavg(updates))
    assert as_bytes(aggregate(AggregationRule.MEDIAN, 12345, updates).model) == as_bytes(
        coordinate_median(tensors)
    )
    assert as_bytes(aggregate(AggregationRule.TRIMMED_MEAN, 0, updates).model) == as_bytes(
        trimmed_mean(tensors, 0.1)
    )
    assert as_bytes(aggregate(AggregationRule.TRIMMED_MEAN, 2000, updates).model) == as_bytes(
        trimmed_mean(tensors, 0.2)
    )
    param = 2 | (5 << 16)
    assert as_bytes(aggregate(AggregationRule.MULTI_KRUM, param, updates).model) == as_bytes(
        multi_krum(updates, 2, 5)[0]
    )
    assert as_bytes(aggregate(AggregationRule.MULTI_KRUM, 0, updates).model) == as_bytes(
        multi_krum(updates, 3, 7)[0]
    )


def test_trim_basis_points__encoding() -> None:
    assert trim_basis_points(0) == 1000
    assert trim_basis_points(1) == 1
    assert trim_basis_points(4999) == 4999
    for param in (5000, 10_000, 2**64 - 1):
        with pytest.raises(UnsupportedRuleError, match=r"below 0\.5"):
            trim_basis_points(param)


def test_krum_parameters__encoding() -> None:
    assert krum_parameters(0, 3) == (0, 3)
    assert krum_parameters(0, 5) == (1, 4)
    assert krum_parameters(0, 10) == (3, 7)  # floor(7 / 2) = 3, 10 >= 9
    assert krum_parameters(1 | (2 << 16), 5) == (1, 2)
    assert krum_parameters(1, 6) == (1, 5)  # m 0 -> N - f
    assert krum_parameters(4 << 16, 5) == (0, 4)  # f 0 given explicitly through m
    with pytest.raises(UnsupportedRuleError, match="at least 3 updates, got 2"):
        krum_parameters(0, 2)
    with pytest.raises(UnsupportedRuleError, match=r"2f \+ 3 = 7 updates, got 6"):
        krum_parameters(2, 6)
    with pytest.raises(UnsupportedRuleError, match="m <= N - f = 4"):
        krum_parameters(1 | (5 << 16), 5)
    with pytest.raises(UnsupportedRuleError, match="reserved"):
        krum_parameters(1 << 32, 5)


def test_aggregate__unsatisfiable_parameter__unsupported_rule() -> None:
    updates = [(t, 1) for t in column(1.0, 2.0)]
    with pytest.raises(UnsupportedRuleError):
        aggregate(AggregationRule.MULTI_KRUM, 0, updates)
    with pytest.raises(UnsupportedRuleError):
        aggregate(AggregationRule.TRIMMED_MEAN, 5000, updates)
    with pytest.raises(UnsupportedRuleError, match="rule 9"):
        aggregate(9, 0, updates)  # type: ignore[arg-type]


def test_describe_rule() -> None:
    assert describe_rule(AggregationRule.FEDAVG, 0) == "FedAvg"
    assert describe_rule(AggregationRule.MEDIAN, 7) == "coordinate median"
    assert describe_rule(AggregationRule.TRIMMED_MEAN, 1000) == "trimmed mean (beta 0.10)"
    assert describe_rule(AggregationRule.TRIMMED_MEAN, 0) == "trimmed mean (beta 0.10)"
    assert describe_rule(AggregationRule.TRIMMED_MEAN, 1234) == "trimmed mean (beta 0.1234)"
    assert describe_rule(AggregationRule.TRIMMED_MEAN, 5000) == "trimmed mean (invalid parameter 5000)"
    assert describe_rule(AggregationRule.MULTI_KRUM, 1 | (3 << 16)) == "Multi-Krum (f 1, m 3)"
    assert describe_rule(AggregationRule.MULTI_KRUM, 2) == "Multi-Krum (f 2, m N - f)"
    assert describe_rule(AggregationRule.MULTI_KRUM, 0) == "Multi-Krum (f floor((N - 3) / 2), m N - f)"
    assert describe_rule(9, 0) == "unknown rule 9"
