"""Types, layout checks and coordinate chunking shared by the aggregation rules."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TypeAlias

import numpy as np

from fedledger.arrays import Array

Tensors: TypeAlias = Mapping[str, Array]
WeightedUpdate: TypeAlias = tuple[Tensors, int]

CHUNK_SIZE = 1 << 16  # coordinates per chunk
MAX_MAGNITUDE = float(1 << 14)  # largest |value| the exact fixed-point arithmetic allows


def check_updates(updates: Sequence[Tensors]) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes every update shares.

    Raises
    ------
    ValueError
        If there are no updates, or they differ in tensor names or shapes, or a tensor is not float32.
    """
    if not updates:
        raise ValueError("no updates to aggregate")
    layout = {name: tuple(values.shape) for name, values in updates[0].items()}
    for index, update in enumerate(updates):
        if set(update) != set(layout):
            raise ValueError(
                f"updates must have the same tensor names: update {index} has {sorted(update)}, "
                f"update 0 has {sorted(layout)}"
            )
        for name, shape in layout.items():
            values = update[name]
            if values.dtype != np.float32:
                raise ValueError(f"tensor {name!r} of update {index} is {values.dtype}, not float32")
            if tuple(values.shape) != shape:
                raise ValueError(
                    f"updates must have the same shapes: tensor {name!r} is {tuple(values.shape)} "
                    f"in update {index}, {shape} in update 0"
                )
    return layout


def check_values(values: Array) -> None:
    """Raises ValueError unless every value is finite and within +-MAX_MAGNITUDE."""
    # The extremes are NaN if any value is, and every comparison with NaN is False.
    if values.size and not (values.min() >= -MAX_MAGNITUDE and values.max() <= MAX_MAGNITUDE):
        raise ValueError(f"values must be finite and within +-{MAX_MAGNITUDE:g}")


def coordinate_chunks(
    updates: Sequence[Tensors], name: str, chunk_size: int = CHUNK_SIZE
) -> Iterator[tuple[slice, Array]]:
    """`(coordinates, stack)` pairs covering tensor `name` in flat (C) order.

    `stack[i]` holds update i's values at `coordinates`: an (N, chunk) float32 copy, checked
    with `check_values`. Contiguous inputs (what the codec decodes) are not copied whole.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    flats = [update[name].reshape(-1) for update in updates]
    size = flats[0].size if flats else 0
    for start in range(0, size, chunk_size):
        coordinates = slice(start, min(start + chunk_size, size))
        stack = np.stack([flat[coordinates] for flat in flats])
        check_values(stack)
        yield coordinates, stack
