"""FedAvg: correct weighted mean, exact and bit-identical whatever the order."""

from __future__ import annotations

import numpy as np
import pytest

from fedledger.aggregation import FedAvgAccumulator, fedavg
from fedledger.aggregation.fixedpoint import divide_rounded, to_fixed, to_float32


def update(value: float, n: int = 3) -> dict[str, np.ndarray]:
    return {"w": np.full(n, value, np.float32), "b": np.array([value * 2], np.float32)}


def test_fedavg__hand_computed__weighted_mean() -> None:
    result = fedavg([(update(1.0), 1), (update(4.0), 2)])
    np.testing.assert_array_equal(result["w"], np.full(3, 3.0, np.float32))
    np.testing.assert_array_equal(result["b"], np.array([6.0], np.float32))


def test_fedavg__any_order__identical_bytes() -> None:
    rng = np.random.default_rng(7)
    updates = [
        ({"w": rng.standard_normal(1000).astype(np.float32)}, int(rng.integers(1, 500))) for _ in range(20)
    ]
    first = fedavg(updates)["w"].tobytes()
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(len(updates))
        assert fedavg([updates[i] for i in order])["w"].tobytes() == first


def test_fedavg__close_to_float_mean() -> None:
    rng = np.random.default_rng(3)
    values = [rng.standard_normal(100).astype(np.float32) for _ in range(4)]
    weights = [10, 20, 30, 40]
    expected = sum(w * v.astype(np.float64) for v, w in zip(values, weights, strict=True)) / sum(weights)
    result = fedavg([({"w": v}, w) for v, w in zip(values, weights, strict=True)])["w"]
    np.testing.assert_allclose(result, expected, atol=2**-19)


def test_accumulator__rejects_bad_input() -> None:
    accumulator = FedAvgAccumulator()
    with pytest.raises(ValueError, match="positive"):
        accumulator.add(update(1.0), 0)
    accumulator.add(update(1.0), 1)
    with pytest.raises(ValueError, match="same tensor names"):
        accumulator.add({"other": np.zeros(3, np.float32)}, 1)
    with pytest.raises(ValueError, match="no updates"):
        FedAvgAccumulator().result()


def test_fixed_point__round_trip_and_rounding() -> None:
    values = np.array([0.5, -0.25, 1e-7, 3.0], np.float32)
    np.testing.assert_allclose(to_float32(to_fixed(values)), values, atol=2**-21)
    assert divide_rounded(np.array([5, -5, 4, -4]), 2).tolist() == [3, -3, 2, -2]
