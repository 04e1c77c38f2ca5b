"""Which private data a simulated trainer holds: a shard of the MNIST training split.

Every process derives the same split from the same seed, so trainer i of N trains on shard i
and the held-out test set never overlaps any shard. A real trainer would load its own data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

from fedledger.learning.data import Dataset, load_mnist, split
from fedledger.learning.partition import partition_dirichlet, partition_iid

Partition = Literal["iid", "dirichlet"]
TEST_FRACTION = 0.2


@dataclass(frozen=True, kw_only=True)
class ShardSpec:
    index: int
    count: int
    partition: Partition = "iid"
    alpha: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} is outside 0..{self.count - 1}")


@cache
def train_test(seed: int) -> tuple[Dataset, Dataset]:
    """The seeded train/held-out split of the MNIST digits (loaded once per process)."""
    return split(load_mnist(), TEST_FRACTION, seed)


def held_out(seed: int = 0) -> Dataset:
    """The held-out test set: never part of any trainer's shard."""
    return train_test(seed)[1]


def shard(spec: ShardSpec) -> Dataset:
    """Trainer `spec.index`'s private shard."""
    train, _ = train_test(spec.seed)
    if spec.partition == "iid":
        parts = partition_iid(len(train), spec.count, spec.seed)
    else:
        parts = partition_dirichlet(train.labels, spec.count, spec.alpha, spec.seed)
    return train.subset(parts[spec.index])
