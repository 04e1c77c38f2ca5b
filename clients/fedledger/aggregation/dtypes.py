"""Tensors of every wire dtype through the float32 rules.

The rules (FedAvg, median, trimmed mean, Multi-Krum, clipping) are exact arithmetic on float32.
A model may also hold F16 and BF16 tensors, and integer or bool buffers (BatchNorm's
`num_batches_tracked`). `rules.aggregate`, `rules.aggregate_files` and `clipping.clip_update`
treat them alike:

- Float tensors are upcast to float32 (`upcast`: exact, every F16 and BF16 value is a float32),
  go through the rule as float32 tensors always have, and the float32 result is rounded to the
  tensor's wire dtype once, to nearest with ties to even (`to_wire`). For F32 tensors nothing
  changes, bit for bit.
- Integer and bool tensors are not averaged: each coordinate takes the lower median of the
  updates the rule kept (`lower_median`: the middle value, or for an even count the smaller of
  the two middle ones; for bool that is the majority, ties going to False). The result is one of
  the inputs, exact, and as robust as the median. Norm clipping and Krum distances ignore them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from fedledger.aggregation.base import CHUNK_SIZE, Tensors
from fedledger.arrays import Array
from fedledger.storage.schema import dtype_name, is_float, numpy_dtype


def check_dtypes(updates: Sequence[Tensors]) -> dict[str, np.dtype[Any]]:
    """The wire dtype of each tensor, which every update must share with its names and shapes.

    Raises
    ------
    ValueError
        If there are no updates, they differ in tensor names, shapes or dtypes, or a dtype is
        not one the wire format carries.
    """
    if not updates:
        raise ValueError("no updates to aggregate")
    first = updates[0]
    dtypes = {name: numpy_dtype(dtype_name(values.dtype, name)) for name, values in first.items()}
    for index, update in enumerate(updates):
        if set(update) != set(first):
            raise ValueError(
                f"updates must have the same tensor names: update {index} has {sorted(update)}, "
                f"update 0 has {sorted(first)}"
            )
        for name, values in update.items():
            if values.dtype != first[name].dtype:
                raise ValueError(
                    f"tensor {name!r} of update {index} is {values.dtype}, not {first[name].dtype}"
                )
            if values.shape != first[name].shape:
                raise ValueError(
                    f"updates must have the same shapes: tensor {name!r} is {tuple(values.shape)} "
                    f"in update {index}, {tuple(first[name].shape)} in update 0"
                )
    return dtypes


def float_names(dtypes: dict[str, np.dtype[Any]]) -> list[str]:
    """The names of the float tensors (aggregated by the rule), sorted."""
    return sorted(name for name, dtype in dtypes.items() if is_float(dtype))


def upcast(values: Array) -> Array:
    """F32, F16 or BF16 values as float32, exactly (F32 arrays are returned as they are)."""
    if values.dtype == np.float32:
        return values
    if not is_float(values.dtype):
        raise ValueError(f"{values.dtype} is not a float dtype of the wire format")
    return values.astype(np.float32)


def to_wire(values: Array, dtype: np.dtype[Any]) -> Array:
    """A float32 result rounded to the float wire dtype `dtype`, to nearest, ties to even.

    The one place where aggregation and clipping round: numpy's cast for float16, ml_dtypes'
    for bfloat16 (both round to nearest even); float32 values are returned as they are.
    """
    if values.dtype != np.float32:
        raise ValueError(f"expected float32 values, got {values.dtype}")
    if dtype == np.float32:
        return values
    if not is_float(dtype):
        raise ValueError(f"{dtype} is not a float dtype of the wire format")
    return values.astype(dtype)


def lower_median_chunk(stack: Array) -> Array:
    """Per column of an (N, n) integer or bool `stack`, the lower median: sorted, the value at
    index (N - 1) // 2. Exact (integer comparisons only), whatever the partition algorithm."""
    count = stack.shape[0]
    if count < 1:
        raise ValueError("no updates to aggregate")
    if is_float(stack.dtype):
        raise ValueError("the lower median is for integer and bool tensors; floats go through the rule")
    middle = (count - 1) // 2
    result: Array = np.partition(stack, middle, axis=0)[middle]
    return result


def lower_median(updates: Sequence[Tensors], name: str, *, chunk_size: int = CHUNK_SIZE) -> Array:
    """The elementwise lower median of tensor `name` (integer or bool) over `updates`, a chunk of
    coordinates at a time."""
    flats = [update[name].reshape(-1) for update in updates]
    first = updates[0][name]
    out = np.empty(first.size, numpy_dtype(dtype_name(first.dtype, name)))
    for coordinates in chunks(first.size, chunk_size):
        out[coordinates] = lower_median_chunk(np.stack([flat[coordinates] for flat in flats]))
    return out.reshape(first.shape)


def chunks(size: int, chunk_size: int = CHUNK_SIZE) -> Iterator[slice]:
    """Slices of at most `chunk_size` covering `range(size)`."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    for start in range(0, size, chunk_size):
        yield slice(start, min(start + chunk_size, size))
