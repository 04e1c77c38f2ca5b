"""Exact fixed-point arithmetic for aggregation, and exact sums of squares (clipping, Krum).

Several aggregators must produce the same bytes or quorum is impossible, so the arithmetic
must not depend on the machine, the BLAS, the SIMD width or the summation order. Values are
mapped to int64 multiples of 2^-FRACTION_BITS (exact: float32 to float64 and scaling by a
power of two lose nothing, and rounding to an integer is a single correctly rounded step),
then summed as integers, which is exact and order-independent as long as nothing overflows.

Bounds: the codec rejects |value| > 1e4 < 2^14, so |fixed| < 2^34; with the total weight
below 2^29 every weighted sum stays below 2^63.

Speed: `accumulate_weighted` (FedAvg's inner loop) computes the same integers as `to_fixed` and
int64 products, without the temporaries, and for several updates at once as a float64
matrix-vector product where every intermediate is an integer below 2^53, i.e. exact in any
order; blocks outside that bound fall back to the plain int64 path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedledger.arrays import Array

FRACTION_BITS = 20
SCALE = float(1 << FRACTION_BITS)
MAX_TOTAL_WEIGHT = 1 << 29

EXACT_FLOAT64 = float(1 << 53)  # float64 holds every integer of smaller magnitude exactly
_SCALE32 = np.float32(SCALE)
_BLOCK_VALUES = 1 << 17  # values (rows x columns) converted at a time: a few hundred KiB, in cache


def to_fixed(values: Array) -> Array:
    """float32 values as int64 fixed-point (round half to even)."""
    fixed: Array = np.rint(values.astype(np.float64) * SCALE).astype(np.int64)
    return fixed


def to_float32(fixed: Array) -> Array:
    """Fixed-point back to float32 (one correctly rounded division by a power of two)."""
    return (fixed.astype(np.float64) / SCALE).astype(np.float32)


def accumulate_weighted(total: Array, rows: Array, weights: Sequence[int]) -> None:
    """`total += sum(weights[g] * to_fixed(rows[g]))`, in place, exactly: bit-identical to adding
    the rows one by one as `total += to_fixed(rows[g]) * weights[g]`, only faster.

    `total` is a contiguous 1-D int64 array, `rows` a (G, n) float32 array (any strides) and
    `weights` G positive integers.

    How, a block of columns at a time (so temporaries stay in cache): each value is scaled by
    2^20 and rounded half to even in float32, which gives exactly `to_fixed`'s integer (scaling by
    a power of two is exact; a float32 of magnitude 2^23 or more is already an integer, and below
    that the rounded integer is representable). If the block's largest |integer| times the sum of
    the weights is below 2^53, every weighted product and every partial sum of them is an integer
    float64 represents exactly, so the weighted column sums are exact whatever the order of the
    additions: with one row they are int64 products; with several, one float64 matrix-vector
    product (BLAS, any kernel, FMA or not) of integers, converted to int64. A block outside that
    bound (very large values or weights, NaN, infinity) takes the plain `to_fixed` path instead.
    """
    count, size = rows.shape
    if total.dtype != np.int64 or total.shape != (size,) or not total.flags.c_contiguous:
        raise ValueError(f"total must be a contiguous 1-D int64 array of {size} values")
    if rows.dtype != np.float32 or len(weights) != count or any(weight <= 0 for weight in weights):
        raise ValueError("rows must be float32, with one positive weight per row")
    if not count or not size:
        return
    columns = max(1, min(size, _BLOCK_VALUES // count))
    limit = EXACT_FLOAT64 / sum(weights)
    scaled = np.empty((count, columns), np.float32)
    products = np.empty(columns, np.int64)
    wide = np.empty((count if count > 1 else 0, columns), np.float64)
    sums = np.empty(columns, np.float64)
    vector = np.array(weights, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range blocks take the plain path
        for start in range(0, size, columns):
            width = min(columns, size - start)
            block, target, fixed = (
                rows[:, start : start + width],
                total[start : start + width],
                scaled[:, :width],
            )
            np.multiply(block, _SCALE32, out=fixed)
            np.rint(fixed, out=fixed)
            if not (-limit < fixed.min() and fixed.max() < limit):  # also if NaN
                for row, weight in zip(block, weights, strict=True):
                    target += to_fixed(row) * weight
            elif count == 1:
                product = products[:width]
                np.multiply(fixed[0], np.int64(weights[0]), out=product, dtype=np.int64, casting="unsafe")
                np.add(target, product, out=target)
            else:
                np.copyto(wide[:, :width], fixed)
                np.dot(vector, wide[:, :width], out=sums[:width])
                # Integer addition: the sums are exact integers below 2^53, the total may not be.
                np.add(target, sums[:width], out=target, dtype=np.int64, casting="unsafe")


def divide_rounded(numerator: Array, denominator: int) -> Array:
    """numerator / denominator rounded to the nearest integer, ties away from zero, exactly."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    magnitude = (np.abs(numerator) * 2 + denominator) // (2 * denominator)
    return np.where(numerator < 0, -magnitude, magnitude)


_SPLIT_BITS = 18
_LOW_MASK = (1 << _SPLIT_BITS) - 1
_MAX_DIFFERENCE = 1 << 35  # |difference| of two fixed-point values within +-2^14
_BLOCK = 1 << 20  # columns summed at once: 2^20 products below 2^36 sum below 2^56


def exact_sums_of_squares(fixed: Array) -> list[int]:
    """Exact sum of squares of each row of a 2-D int64 array, as Python ints.

    Entries must satisfy |x| <= 2^35 (a difference of two fixed-point values within +-2^14).
    """
    if fixed.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {fixed.shape}")
    magnitudes = np.abs(fixed.astype(np.int64, copy=False))
    if magnitudes.size and magnitudes.max() > _MAX_DIFFERENCE:
        raise ValueError("differences exceed the exact fixed-point range")
    high = magnitudes >> _SPLIT_BITS
    low = magnitudes & _LOW_MASK
    totals = [0] * fixed.shape[0]
    for start in range(0, fixed.shape[1], _BLOCK):
        h = high[:, start : start + _BLOCK]
        lo = low[:, start : start + _BLOCK]
        high_squares = (h * h).sum(axis=1, dtype=np.int64)
        cross = (h * lo).sum(axis=1, dtype=np.int64)
        low_squares = (lo * lo).sum(axis=1, dtype=np.int64)
        for row in range(len(totals)):
            totals[row] += (
                (int(high_squares[row]) << (2 * _SPLIT_BITS))
                + (int(cross[row]) << (_SPLIT_BITS + 1))
                + int(low_squares[row])
            )
    return totals
