"""Exact fixed-point arithmetic for aggregation, and exact sums of squares (clipping, Krum).

Several aggregators must produce the same bytes or quorum is impossible, so the arithmetic
must not depend on the machine, the BLAS, the SIMD width or the summation order. Values are
mapped to int64 multiples of 2^-FRACTION_BITS (exact: float32 to float64 and scaling by a
power of two lose nothing, and rounding to an integer is a single correctly rounded step),
then summed as integers, which is exact and order-independent as long as nothing overflows.

Bounds: the codec rejects |value| > 1e4 < 2^14, so |fixed| < 2^34; with the total weight
below 2^29 every weighted sum stays below 2^63.
"""

from __future__ import annotations

import numpy as np

from fedledger.arrays import Array

FRACTION_BITS = 20
SCALE = float(1 << FRACTION_BITS)
MAX_TOTAL_WEIGHT = 1 << 29


def to_fixed(values: Array) -> Array:
    """float32 values as int64 fixed-point (round half to even)."""
    fixed: Array = np.rint(values.astype(np.float64) * SCALE).astype(np.int64)
    return fixed


def to_float32(fixed: Array) -> Array:
    """Fixed-point back to float32 (one correctly rounded division by a power of two)."""
    return (fixed.astype(np.float64) / SCALE).astype(np.float32)


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
