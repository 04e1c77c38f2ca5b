"""Splitting a training set into private shards, one per trainer: IID or Dirichlet non-IID."""

from __future__ import annotations

import numpy as np

from fedledger.arrays import Array


def partition_iid(num_items: int, num_shards: int, seed: int) -> list[Array]:
    """Shuffled, near-equal shards of indices."""
    _check(num_items, num_shards)
    permutation = np.random.default_rng(seed).permutation(num_items)
    return [np.sort(shard) for shard in np.array_split(permutation, num_shards)]


def partition_dirichlet(
    labels: Array, num_shards: int, alpha: float, seed: int, min_size: int = 10
) -> list[Array]:
    """Label-skewed shards: each class is spread over shards by proportions ~ Dirichlet(alpha).

    Smaller alpha means more skew. Draws are repeated (seeded) until every shard has at least
    `min_size` items, as in the usual non-IID FL benchmarks (Hsu et al. 2019).
    """
    _check(len(labels), num_shards)
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    if min_size * num_shards > len(labels):
        raise ValueError(f"{len(labels)} items cannot give {num_shards} shards of at least {min_size}")
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        shards: list[list[int]] = [[] for _ in range(num_shards)]
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            proportions = rng.dirichlet(np.full(num_shards, alpha))
            cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(int)
            for shard, part in zip(shards, np.split(members, cuts), strict=True):
                shard.extend(part.tolist())
        if min(len(shard) for shard in shards) >= min_size:
            return [np.sort(np.asarray(shard, dtype=np.int64)) for shard in shards]
    raise ValueError(f"could not draw {num_shards} shards of at least {min_size} items with alpha={alpha}")


def _check(num_items: int, num_shards: int) -> None:
    if num_shards <= 0:
        raise ValueError(f"num_shards must be positive, got {num_shards}")
    if num_items < num_shards:
        raise ValueError(f"{num_items} items cannot fill {num_shards} shards")
