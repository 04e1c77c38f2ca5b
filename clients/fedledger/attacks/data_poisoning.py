"""Data poisoning: the trainer trains honestly, but on labels it has corrupted.

`LabelFlip` maps each label y to `permutation[y]`; without a permutation it uses
y -> 9 - y (0<->9, 1<->8, ...: every class moves, and the map is its own inverse). With
`fraction` < 1 only that share of the samples is flipped, chosen at random (seeded per
trainer and round). Images and the sample count are untouched, so the update file is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedledger.attacks.base import Seeded
from fedledger.learning.data import NUM_CLASSES, Dataset


@dataclass(frozen=True, kw_only=True)
class LabelFlip(Seeded):
    """Trains on labels mapped through `permutation` (default y -> 9 - y)."""

    name: ClassVar[str] = "label-flip"
    permutation: tuple[int, ...] | None = None
    fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.permutation is not None and sorted(self.permutation) != list(range(NUM_CLASSES)):
            raise ValueError(f"permutation must reorder 0..{NUM_CLASSES - 1}, got {self.permutation}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction}")

    @property
    def mapping(self) -> tuple[int, ...]:
        if self.permutation is not None:
            return self.permutation
        return tuple(NUM_CLASSES - 1 - y for y in range(NUM_CLASSES))

    def poison_data(self, data: Dataset, round_: int) -> Dataset:
        flipped = np.asarray(self.mapping, dtype=data.labels.dtype)[data.labels]
        if self.fraction < 1.0:
            chosen = self.rng(round_).random(len(data)) < self.fraction
            flipped = np.where(chosen, flipped, data.labels)
        return Dataset(data.images, flipped)
