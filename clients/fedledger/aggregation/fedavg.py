"""FedAvg: the sample-weighted mean of the accepted updates, computed exactly.

Streaming: `FedAvgAccumulator` holds one int64 array per tensor, so memory grows with the
model size, not with the number of trainers. `add_stacked` (a stack of several updates per
tensor) and `add_columns` (several updates a block of coordinates at a time, as
`streaming.fedavg_files` reads them from files) add updates in groups, which is faster and gives
the same bytes as adding them one by one (`fixedpoint.accumulate_weighted`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from fedledger.aggregation.base import Tensors, WeightedUpdate
from fedledger.aggregation.fixedpoint import (
    MAX_TOTAL_WEIGHT,
    accumulate_weighted,
    divide_rounded,
    to_fixed,
    to_float32,
)
from fedledger.arrays import Array

COLUMN_BLOCK = 1 << 16  # coordinates `add_columns` asks for at a time: 4 MiB for 16 updates


class FedAvgAccumulator:
    """Adds weighted updates one at a time; `result()` gives the weighted mean."""

    def __init__(self) -> None:
        self._sums: dict[str, Array] = {}
        self._total_weight = 0

    def add(self, tensors: Tensors, weight: int) -> None:
        self._check(tensors, [weight])
        for name, values in tensors.items():
            total = self._sums.get(name)
            if (
                values.dtype == np.float32
                and isinstance(weight, int | np.integer)
                and (total is None or self._fits(total, values.shape))
            ):
                if total is None:
                    total = self._sums[name] = np.zeros(values.shape, np.int64)
                accumulate_weighted(total.reshape(-1), values.reshape(1, -1), [weight])
            else:  # other dtypes or shapes: the arithmetic as written
                weighted = to_fixed(values) * weight
                if total is not None:
                    total += weighted
                else:
                    self._sums[name] = weighted
        self._total_weight += weight

    def add_stacked(self, stacks: Mapping[str, Array], weights: Sequence[int]) -> None:
        """Adds `len(weights)` updates at once: `stacks[name][i]` is update i's float32 tensor
        `name`. The same as `add` for each update in turn, bit for bit.

        Raises
        ------
        ValueError
            On a weight that is not a positive integer, too large a total weight, other tensor
            names than earlier updates, a stack that is not float32 or does not hold one row per
            weight, or a shape that differs from earlier updates'. Nothing is added then.
        """
        for name, stack in stacks.items():
            if stack.dtype != np.float32 or stack.shape[:1] != (len(weights),):
                raise ValueError(f"stack {name!r} must be float32 with one row per weight")
        layout = {name: tuple(stack.shape[1:]) for name, stack in stacks.items()}
        for name, total in self._begin_batch(layout, weights).items():
            accumulate_weighted(total, stacks[name].reshape(len(weights), -1), weights)
        self._total_weight += sum(weights)

    def add_columns(
        self,
        layout: Mapping[str, tuple[int, ...]],
        weights: Sequence[int],
        fill: Callable[[str, int, int, Array], None],
        *,
        block: int = COLUMN_BLOCK,
    ) -> None:
        """Adds `len(weights)` updates without holding them whole, `block` coordinates at a time:
        `fill(name, start, stop, out)` must write the updates' flat (C-order) values `start:stop`
        of tensor `name` (shape `layout[name]`) into `out`, a (len(weights), stop - start)
        float32 array, one row per update. The same as `add_stacked`, bit for bit.

        Raises ValueError as `add_stacked` does, before calling `fill`. If `fill` raises, some
        values have been added and the accumulator must be discarded.
        """
        if block < 1:
            raise ValueError(f"block must be positive, got {block}")
        sums = self._begin_batch(layout, weights)
        width = max(1, min(block, max((total.size for total in sums.values()), default=0)))
        buffer = np.empty(len(weights) * width, np.float32)
        for name, total in sums.items():
            for start in range(0, total.size, width):
                stop = min(start + width, total.size)
                rows = buffer[: len(weights) * (stop - start)].reshape(len(weights), stop - start)
                fill(name, start, stop, rows)
                accumulate_weighted(total[start:stop], rows, weights)
        self._total_weight += sum(weights)

    def _begin_batch(self, layout: Mapping[str, tuple[int, ...]], weights: Sequence[int]) -> dict[str, Array]:
        """Checks a batch of updates; returns the flat int64 sums to add them to (new ones at zero)."""
        if not all(isinstance(weight, int | np.integer) for weight in weights):
            raise ValueError(f"weights must be integers, got {list(weights)}")
        self._check(layout, weights)
        for name, shape in layout.items():
            total = self._sums.get(name)
            if total is not None and not self._fits(total, shape):
                raise ValueError(f"tensor {name!r} has shape {tuple(shape)}, earlier updates {total.shape}")
        if not weights:
            return {}
        for name, shape in layout.items():
            self._sums.setdefault(name, np.zeros(shape, np.int64))
        return {name: self._sums[name].reshape(-1) for name in layout}

    def _check(self, tensors: Mapping[str, Any], weights: Sequence[int]) -> None:
        for weight in weights:
            if weight <= 0:
                raise ValueError(f"weights must be positive, got {weight}")
        if self._total_weight + sum(weights) >= MAX_TOTAL_WEIGHT:
            raise ValueError(f"total weight must stay below {MAX_TOTAL_WEIGHT}")
        if self._sums and set(tensors) != set(self._sums):
            raise ValueError("updates must have the same tensor names")

    @staticmethod
    def _fits(total: Array, shape: tuple[int, ...]) -> bool:
        return tuple(total.shape) == tuple(shape) and total.flags.c_contiguous

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
