"""Coordinate-wise median (Yin et al. 2018), unweighted.

For an odd number of updates each coordinate is the middle value, bit for bit; for an even
number it is the mean of the two middle values, computed exactly in int64 fixed point and
rounded half away from zero (`fixedpoint.divide_rounded`), then converted to float32.

It is the trimmed mean that drops all but the middle one or two values, and shares its
implementation (`trimmed_mean.trimmed_mean_by_count`) and so its determinism argument: the
selection compares integer keys ordered like the floats (exact, independent of the partition
algorithm, SIMD, signed zeros or flush-to-zero), the mean is an exact integer sum and one
rounded division. Memory is O(N x chunk_size) beyond the inputs: tensor by tensor, in chunks
of coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedledger.aggregation.base import CHUNK_SIZE, Tensors
from fedledger.aggregation.trimmed_mean import trimmed_mean_by_count
from fedledger.arrays import Array


def coordinate_median(updates: Sequence[Tensors], *, chunk_size: int = CHUNK_SIZE) -> dict[str, Array]:
    """The coordinate-wise median of `updates` (same tensor names and shapes, float32).

    Raises
    ------
    ValueError
        On no updates, mismatched layouts, or values that are not finite or exceed 2^14.
    """
    return trimmed_mean_by_count(updates, (len(updates) - 1) // 2, chunk_size=chunk_size)
