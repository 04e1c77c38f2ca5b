"""Splitting data by index: a stratified train/test split, and a training set into private
shards, one per trainer (IID or Dirichlet non-IID)."""

from __future__ import annotations

import numpy as np

from fedledger.arrays import Array


def stratified_split(
    labels: Array, test_fraction: float, seed: int, *, shuffle_test: bool = False
) -> tuple[Array, Array]:
    """Seeded train and test indices; the test set holds `test_fraction` of every class.

    Training indices come shuffled (so any slice of them mixes the classes), test indices
    sorted, or shuffled with `shuffle_test`. Every stored split depends on this exact sequence
    of draws: changing it changes the demo data, the scaffold's sample files and MNIST shards.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train: list[Array] = []
    test: list[Array] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = round(len(members) * test_fraction)
        test.append(members[:cut])
        train.append(members[cut:])
    train_indices = rng.permutation(np.concatenate(train))
    test_indices = np.concatenate(test)
    return train_indices, rng.permutation(test_indices) if shuffle_test else np.sort(test_indices)


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
