"""Coordinate-wise trimmed mean (Yin et al. 2018).

Per coordinate, the k = floor(beta * N) smallest and the k largest of the N values are dropped
and the N - 2k left are averaged. Unweighted: sample counts are ignored, so claiming more
samples buys a trainer no extra influence.

Determinism:

- Selection runs on integers. Each float32 is mapped to an int32 key whose order is the float
  order (sign-magnitude to two's complement), so the partition compares integers only: no NaN
  handling, no signed-zero ambiguity, no flush-to-zero or SIMD differences. Equal keys are
  equal bit patterns, so the multiset kept per coordinate is the same whatever algorithm
  `np.partition` uses.
- The mean of the kept values is exact int64 fixed point (`fixedpoint`): an order-independent
  integer sum, one division rounded half away from zero (`divide_rounded`), then float32.
  A single kept value (the odd-count median) is returned as is, bit for bit.
- k is computed exactly from beta read as the decimal it prints as (0.29 means 29/100, not the
  binary float just below it), so every machine, and a person by hand, gets the same k.

Memory: tensor by tensor and `chunk_size` coordinates at a time, so the peak beyond the inputs
is O(N x chunk_size), not O(N x P).

Bounds: values must be finite with |value| <= 2^14 (the codec enforces 1e4), so fixed-point
values stay below 2^34 in magnitude and sums of fewer than 2^29 of them fit in int64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from fedledger.aggregation.base import CHUNK_SIZE, Tensors, check_updates, coordinate_chunks
from fedledger.aggregation.fixedpoint import divide_rounded, to_fixed, to_float32
from fedledger.arrays import Array

_MAGNITUDE_BITS = np.int32(0x7FFFFFFF)


def _order_keys(bits: Array) -> Array:
    """float32 bit patterns (viewed as int32) -> int32 keys ordered like the floats, and back:
    negative floats get their magnitude bits flipped, which makes the map its own inverse."""
    keys: Array = np.where(bits < 0, bits ^ _MAGNITUDE_BITS, bits)
    return keys


def trimmed_mean_by_count(
    updates: Sequence[Tensors], trim: int, *, chunk_size: int = CHUNK_SIZE
) -> dict[str, Array]:
    """Per coordinate, the exact mean of the values left once the `trim` smallest and the `trim`
    largest are dropped: the core of `trimmed_mean` and of the coordinate median.

    Raises
    ------
    ValueError
        If the updates differ in layout or hold out-of-range values, or nothing would be left.
    """
    layout = check_updates(updates)
    count = len(updates)
    keep = count - 2 * trim
    if trim < 0 or keep < 1:
        raise ValueError(f"cannot trim {trim} values from each end of {count}: at least one must remain")
    low, high = trim, count - trim - 1
    result: dict[str, Array] = {}
    for name, shape in sorted(layout.items()):
        out = np.empty(math.prod(shape), np.float32)
        for coordinates, stack in coordinate_chunks(updates, name, chunk_size):
            keys = _order_keys(stack.view(np.int32))
            keys.partition(sorted({low, high}), axis=0)  # rows low..high: the kept values
            kept = _order_keys(keys[low : high + 1]).view(np.float32)
            if keep == 1:
                out[coordinates] = kept[0]
            else:
                out[coordinates] = to_float32(divide_rounded(to_fixed(kept).sum(axis=0), keep))
        result[name] = out.reshape(shape)
    return result


def trim_count(beta: float, count: int) -> int:
    """k = floor(beta * count), exact, with beta read as the decimal it prints as."""
    if count < 1:
        raise ValueError("no updates to aggregate")
    if not 0 <= beta < 0.5:  # also rejects NaN
        raise ValueError(f"beta must be in [0, 0.5), got {beta}")
    trim = math.floor(Fraction(repr(float(beta))) * count)
    if count - 2 * trim < 1:
        raise ValueError(f"beta {beta} trims all {count} values")
    return trim


def trimmed_mean(
    updates: Sequence[Tensors], beta: float, *, chunk_size: int = CHUNK_SIZE
) -> dict[str, Array]:
    """Coordinate-wise beta-trimmed mean of `updates`: drops the k = floor(beta * N) smallest and
    k largest values of each coordinate and averages the rest exactly.

    Parameters
    ----------
    updates
        The updates, all with the same tensor names and shapes (float32).
    beta
        The share trimmed from each end, 0 <= beta < 0.5.
    chunk_size
        Coordinates processed at a time (bounds memory; the result does not depend on it).

    Raises
    ------
    ValueError
        On an out-of-range beta, no updates, mismatched layouts or out-of-range values.
    """
    return trimmed_mean_by_count(updates, trim_count(beta, len(updates)), chunk_size=chunk_size)
