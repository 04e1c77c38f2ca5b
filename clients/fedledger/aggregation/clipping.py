"""Norm clipping of an update around a reference model.

`clip_update(u, ref, max_norm)` returns `ref + (u - ref) * max_norm / ||u - ref||` when
`||u - ref||_2 > max_norm` and `u` unchanged otherwise. It is a per-update transformation, so it
composes with any rule: clip every accepted update against the round's starting global model,
then aggregate the clipped updates (FedAvg, median, trimmed mean or Multi-Krum). It is pure;
the caller decides whether and when to apply it.

Determinism:

- The squared norm is exact. Differences are taken in int64 fixed point (`fixedpoint`, values
  within +-2^14, so |difference| <= 2^35). A square of up to 70 bits does not fit in int64, so
  each magnitude is split as d = h * 2^18 + l (0 <= l < 2^18, h <= 2^17) and
  d^2 = h^2 * 2^36 + h*l * 2^19 + l^2; each product is below 2^36, blocks of 2^20 of them sum
  below 2^56 in int64 (integer addition is exact in any order, SIMD or not), and the block sums
  are combined in Python ints. The result does not depend on summation order or platform.
- The clip/no-clip decision compares that exact integer with max_norm^2 as an exact fraction.
- The scale factor is max_norm * 2^20 / sqrt(float(S)): a correctly rounded int-to-float
  conversion, square root and division (IEEE 754), so the same everywhere. Each scaled
  difference is one correctly rounded float64 product, truncated towards zero (so rounding
  never pushes the norm above max_norm), added to the reference in fixed point and converted
  once to float32.

Other dtypes: only float tensors count towards the norm and are clipped. F16 and BF16 tensors
are upcast to float32 (exact), clipped as above, and rounded back to their dtype (round to
nearest even, `dtypes.to_wire`); integer and bool tensors (BatchNorm's `num_batches_tracked`)
are copied from the update unchanged.

The norm is that of the difference on the fixed-point grid (values rounded to 2^-20). The
clipped result lies within max_norm of the reference up to float32 rounding of the output
(exact on the grid; for |values| < 8 float32 represents the grid exactly).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from fedledger.aggregation.base import Tensors, check_updates, check_values
from fedledger.aggregation.dtypes import check_dtypes, float_names, to_wire, upcast
from fedledger.aggregation.fixedpoint import FRACTION_BITS, SCALE, exact_sums_of_squares, to_fixed, to_float32
from fedledger.arrays import Array


def clip_update(update: Tensors, reference: Tensors, max_norm: float) -> dict[str, Array]:
    """`update` pulled towards `reference` so that its distance to it is at most `max_norm`.

    Parameters
    ----------
    update
        The trainer's model (tensors of any wire dtype).
    reference
        The round's starting global model, with the same tensor names, shapes and dtypes.
    max_norm
        The largest L2 distance to `reference` kept, > 0.

    Returns
    -------
    dict[str, Array]
        A copy of `update` if ||update - reference|| <= max_norm, otherwise
        reference + (update - reference) * max_norm / ||update - reference||, over the float
        tensors, each in its dtype; integer and bool tensors as in `update`.

    Raises
    ------
    ValueError
        On mismatched layouts or dtypes, values that are not finite or exceed 2^14, or a bad max_norm.
    """
    dtypes = check_dtypes([update, reference])
    names = float_names(dtypes)
    floats = {name: upcast(update[name]) for name in names}
    start = {name: upcast(reference[name]) for name in names}
    check_updates([floats, start])
    if not (math.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm must be positive and finite, got {max_norm}")
    for name in names:
        check_values(floats[name])
        check_values(start[name])
    differences = {name: to_fixed(floats[name]) - to_fixed(start[name]) for name in names}
    squared = sum(exact_sums_of_squares(differences[name].reshape(1, -1))[0] for name in names)
    if squared <= Fraction(max_norm) ** 2 * (1 << (2 * FRACTION_BITS)):
        return {name: update[name].copy() for name in sorted(dtypes)}
    scale = max_norm * SCALE / math.sqrt(squared)
    return {
        name: to_wire(
            to_float32(to_fixed(start[name]) + np.trunc(differences[name] * scale).astype(np.int64)), dtype
        )
        if name in differences
        else update[name].copy()
        for name, dtype in sorted(dtypes.items())
    }
