"""Multi-Krum (Blanchard et al. 2017).

With N updates of which at most f are Byzantine, the score of update i is the sum of the
squared distances to its N - f - 2 nearest neighbours; the m updates with the lowest scores
are selected and averaged with sample weights (FedAvg). Requires N >= 2f + 3 and
1 <= m <= N - f.

Determinism:

- Distances are exact integers. Updates are compared in int64 fixed point (`fixedpoint`), and
  each squared distance is an exact sum of squares (`clipping.exact_sums_of_squares`: split
  products summed in int64 without overflow, combined in Python ints), so it does not depend
  on summation order, BLAS or SIMD. Scores are sums of Python ints: exact.
- Ties are broken by input index, which callers order by trainer address: the selection sorts
  by (score, index). Which of several equidistant neighbours counts does not matter, since
  only the sum of the nearest distances enters the score.
- The selected updates are averaged with `fedavg` (exact fixed point).

Memory: tensor by tensor, in chunks of coordinates; the pairwise distances are accumulated
chunk by chunk, so the peak beyond the inputs is O(N x chunk_size) plus the N x N distances.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedledger.aggregation.base import CHUNK_SIZE, Tensors, WeightedUpdate, check_updates, coordinate_chunks
from fedledger.aggregation.fedavg import fedavg
from fedledger.aggregation.fixedpoint import exact_sums_of_squares, to_fixed
from fedledger.arrays import Array


def check_krum_parameters(count: int, f: int, m: int | None = None) -> None:
    """Raises ValueError unless Multi-Krum can run on `count` updates with these f and m."""
    if f < 0:
        raise ValueError(f"Multi-Krum needs f >= 0, got f = {f}")
    if count < 2 * f + 3:
        raise ValueError(f"Multi-Krum with f = {f} needs at least 2f + 3 = {2 * f + 3} updates, got {count}")
    if m is not None and not 1 <= m <= count - f:
        raise ValueError(f"Multi-Krum needs 1 <= m <= N - f = {count - f}, got m = {m}")


def squared_distances(updates: Sequence[Tensors], *, chunk_size: int = CHUNK_SIZE) -> list[list[int]]:
    """Exact pairwise squared L2 distances, in units of 2^(-2 * FRACTION_BITS)."""
    layout = check_updates(updates)
    count = len(updates)
    distances = [[0] * count for _ in range(count)]
    for name in sorted(layout):
        for _, stack in coordinate_chunks(updates, name, chunk_size):
            fixed = to_fixed(stack)
            for i in range(count - 1):
                for j, value in enumerate(exact_sums_of_squares(fixed[i + 1 :] - fixed[i]), start=i + 1):
                    distances[i][j] += value
                    distances[j][i] += value
    return distances


def krum_scores(updates: Sequence[Tensors], f: int, *, chunk_size: int = CHUNK_SIZE) -> list[int]:
    """Krum score of each update: the sum of the squared distances to its N - f - 2 nearest
    neighbours, exact, in units of 2^(-2 * FRACTION_BITS) (divide by `fixedpoint.SCALE ** 2`).

    Raises
    ------
    ValueError
        If N < 2f + 3, or on mismatched layouts or out-of-range values.
    """
    check_krum_parameters(len(updates), f)
    distances = squared_distances(updates, chunk_size=chunk_size)
    neighbours = len(updates) - f - 2
    return [
        sum(sorted(d for j, d in enumerate(row) if j != i)[:neighbours]) for i, row in enumerate(distances)
    ]


def multi_krum(
    updates: Sequence[WeightedUpdate], f: int, m: int, *, chunk_size: int = CHUNK_SIZE
) -> tuple[dict[str, Array], list[int]]:
    """Multi-Krum: the sample-weighted mean of the m updates with the lowest Krum scores.

    Parameters
    ----------
    updates
        `(tensors, weight)` pairs in trainer-address order (ties go to the lower index).
    f
        The number of Byzantine updates tolerated; N >= 2f + 3.
    m
        How many updates to select, 1 <= m <= N - f.
    chunk_size
        Coordinates processed at a time (bounds memory; the result does not depend on it).

    Returns
    -------
    tuple[dict[str, Array], list[int]]
        The aggregate and the selected indices, ascending.

    Raises
    ------
    ValueError
        On bad f or m, non-positive weights, mismatched layouts or out-of-range values.
    """
    check_krum_parameters(len(updates), f, m)
    for index, (_, weight) in enumerate(updates):
        if weight <= 0:
            raise ValueError(f"weights must be positive, got {weight} for update {index}")
    scores = krum_scores([tensors for tensors, _ in updates], f, chunk_size=chunk_size)
    ranked = sorted(range(len(scores)), key=lambda index: (scores[index], index))
    selected = sorted(ranked[:m])
    return fedavg(updates[index] for index in selected), selected
