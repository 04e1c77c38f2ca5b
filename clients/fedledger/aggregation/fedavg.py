"""FedAvg: the sample-weighted mean of the accepted updates, computed exactly.

Streaming: `FedAvgAccumulator` holds one int64 array per tensor, so memory grows with the
model size, not with the number of trainers.
"""

from __future__ import annotations

from collections.abc import Iterable

from fedledger.aggregation.base import Tensors, WeightedUpdate
from fedledger.aggregation.fixedpoint import MAX_TOTAL_WEIGHT, divide_rounded, to_fixed, to_float32
from fedledger.arrays import Array


class FedAvgAccumulator:
    """Adds weighted updates one at a time; `result()` gives the weighted mean."""

    def __init__(self) -> None:
        self._sums: dict[str, Array] = {}
        self._total_weight = 0

    def add(self, tensors: Tensors, weight: int) -> None:
        if weight <= 0:
            raise ValueError(f"weights must be positive, got {weight}")
        if self._total_weight + weight >= MAX_TOTAL_WEIGHT:
            raise ValueError(f"total weight must stay below {MAX_TOTAL_WEIGHT}")
        if self._sums and set(tensors) != set(self._sums):
            raise ValueError("updates must have the same tensor names")
        for name, values in tensors.items():
            weighted = to_fixed(values) * weight
            if name in self._sums:
                self._sums[name] += weighted
            else:
                self._sums[name] = weighted
        self._total_weight += weight

    @property
    def total_weight(self) -> int:
        return self._total_weight

    def result(self) -> dict[str, Array]:
        if not self._total_weight:
            raise ValueError("no updates to average")
        return {
            name: to_float32(divide_rounded(total, self._total_weight))
            for name, total in sorted(self._sums.items())
        }


def fedavg(updates: Iterable[WeightedUpdate]) -> dict[str, Array]:
    """The weighted mean of `(tensors, weight)` pairs; bit-identical for the same inputs in any order."""
    accumulator = FedAvgAccumulator()
    for tensors, weight in updates:
        accumulator.add(tensors, weight)
    return accumulator.result()
