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
  integer sum (formed in float64 where every partial sum is an exactly representable integer,
  which gives the same integers), one division rounded half away from zero (`divide_rounded`),
  then float32.
  A single kept value (the odd-count median) is returned as is, bit for bit.
- k is computed exactly from beta read as the decimal it prints as (0.29 means 29/100, not the
  binary float just below it), so every machine, and a person by hand, gets the same k.

Memory: tensor by tensor and `chunk_size` coordinates at a time, so the peak beyond the inputs
is O(N x chunk_size), not O(N x P). `streaming.trimmed_mean_files` reads those chunks from update
files, so that the inputs need not be in memory at all.

Bounds: values must be finite with |value| <= 2^14 (the codec enforces 1e4), so fixed-point
values stay below 2^34 in magnitude and sums of fewer than 2^29 of them fit in int64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from fedledger.aggregation.base import CHUNK_SIZE, Tensors, check_updates, coordinate_chunks
from fedledger.aggregation.fixedpoint import EXACT_FLOAT64, SCALE, divide_rounded, to_fixed, to_float32
from fedledger.arrays import Array

_MAGNITUDE_BITS = np.int32(0x7FFFFFFF)
_SCALE32 = np.float32(SCALE)
_LANE_BYTES = 1 << 20  # keys partitioned at a time: N x lanes int32, in cache


def check_trim(count: int, trim: int) -> None:
    """Raises ValueError unless trimming `trim` values from each end of `count` leaves at least one."""
    if trim < 0 or count - 2 * trim < 1:
        raise ValueError(f"cannot trim {trim} values from each end of {count}: at least one must remain")


def trimmed_chunk(stack: Array, trim: int) -> Array:
    """The kernel of `trimmed_mean_by_count` for one chunk of coordinates: `stack` is an (N, n)
    float32 array (any strides) of values already checked with `check_values`; returns the n
    float32 results.

    A few hundred coordinates at a time (`_LANE_BYTES` of keys), so that the partition runs in
    cache: their keys are copied out, partitioned along the update axis, and the kept rows
    averaged.
    """
    count, size = stack.shape
    keep = count - 2 * trim
    low, high = trim, count - trim - 1
    kth = sorted({low, high})
    bits = stack.view(np.int32)
    out = np.empty(size, np.float32)
    lanes = max(1, _LANE_BYTES // (4 * count))
    for start in range(0, size, lanes):
        stop = min(start + lanes, size)
        keys = np.array(bits[:, start:stop])  # a contiguous copy
        _flip_keys(keys)
        keys.partition(kth, axis=0)  # rows low..high: the kept values
        kept = keys[low : high + 1]
        _flip_keys(kept)
        values = kept.view(np.float32)
        out[start:stop] = values[0] if keep == 1 else _exact_column_means(values)
    return out


def _flip_keys(bits: Array) -> None:
    """float32 bit patterns (viewed as int32) -> int32 keys ordered like the floats, and back, in
    place: negative floats get their magnitude bits flipped, which makes the map its own inverse."""
    flips = bits >> 31  # -1 where negative, 0 elsewhere
    flips &= _MAGNITUDE_BITS
    bits ^= flips


def _exact_column_means(values: Array) -> Array:
    """`to_float32(divide_rounded(to_fixed(values).sum(axis=0), k))` for (k, n) float32 values.

    The fixed-point integers are formed in float32 (scaling by 2^20 is exact, and so is rounding
    to an integer, as in `fixedpoint.accumulate_weighted`) and summed in float64: while k times
    the largest |integer| is below 2^53 every partial sum is an integer float64 holds exactly, so
    the sums are the int64 sums, in any order. Otherwise (|value| of 2^14 and k of 2^19 are far
    from it) the int64 path runs.
    """
    keep = values.shape[0]
    limit = EXACT_FLOAT64 / keep
    with np.errstate(over="ignore"):  # out-of-range values take the int64 path
        scaled = values * _SCALE32
        np.rint(scaled, out=scaled)
    if scaled.size and -limit < scaled.min() and scaled.max() < limit:  # False for NaN
        sums = scaled.sum(axis=0, dtype=np.float64).astype(np.int64)
    else:
        sums = to_fixed(values).sum(axis=0)
    return to_float32(divide_rounded(sums, keep))


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
    check_trim(len(updates), trim)
    result: dict[str, Array] = {}
    for name, shape in sorted(layout.items()):
        out = np.empty(math.prod(shape), np.float32)
        for coordinates, stack in coordinate_chunks(updates, name, chunk_size):
            out[coordinates] = trimmed_chunk(stack, trim)
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
