"""Selecting the aggregation rule the round's on-chain config names.

The on-chain `aggregationParam` is a uint64 whose meaning depends on the rule:

- FEDAVG, MEDIAN: ignored. The median is unweighted; FedAvg weighs by (capped) sample count.
- TRIMMED_MEAN: beta in basis points, 1 <= param <= 4999 (param 1000 is beta 0.10: the 10%
  smallest and 10% largest values of each coordinate are dropped); 0 means the default, 1000.
- MULTI_KRUM: f = param & 0xFFFF (Byzantine updates tolerated), m = (param >> 16) & 0xFFFF
  (updates selected), 0 meaning N - f; bits 32 and up are reserved and must be 0. param 0
  means f = floor((N - 3) / 2), the most that N updates allow (N >= 2f + 3), and m = N - f.

A parameter the round cannot satisfy (beta >= 0.5, N < 2f + 3, m > N - f, reserved bits set)
raises `UnsupportedRuleError`, like an unknown rule: every honest aggregator fails alike and
none attests, so the round times out without a model change, rather than aggregators each
guessing a fallback. Rules are only selected here; each is a pure function in its own module.

Tensors of any wire dtype: the rules run on the float tensors upcast to float32, and the result
is rounded back to each tensor's dtype; integer and bool tensors take the elementwise lower
median of the updates the rule kept (see `aggregation.dtypes`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedledger.aggregation.base import WeightedUpdate
from fedledger.aggregation.dtypes import check_dtypes, float_names, lower_median, to_wire, upcast
from fedledger.aggregation.fedavg import fedavg
from fedledger.aggregation.krum import multi_krum
from fedledger.aggregation.median import coordinate_median
from fedledger.aggregation.streaming import (
    FloatTensors,
    UpdateFile,
    coordinate_median_files,
    fedavg_files,
    lower_median_files,
    trimmed_mean_files,
)
from fedledger.aggregation.trimmed_mean import trimmed_mean
from fedledger.arrays import Array
from fedledger.chain.params import AggregationRule

BASIS_POINTS = 10_000
DEFAULT_TRIM_BASIS_POINTS = 1_000
_KRUM_FIELD = 0xFFFF
_KRUM_PARAM_BITS = 32


class UnsupportedRuleError(ValueError):
    """The round selects a rule (or rule parameter) this aggregator cannot apply; it must not attest."""


def trim_basis_points(param: int) -> int:
    """The trimmed mean's beta, in basis points, that `param` encodes."""
    basis_points = param or DEFAULT_TRIM_BASIS_POINTS
    if not 0 < basis_points < BASIS_POINTS // 2:
        raise UnsupportedRuleError(
            f"trimmed mean parameter {param}: beta must be below 0.5 (5000 basis points)"
        )
    return basis_points


def krum_parameters(param: int, count: int) -> tuple[int, int]:
    """The `(f, m)` that `param` encodes for Multi-Krum over `count` updates."""
    if param >> _KRUM_PARAM_BITS:
        raise UnsupportedRuleError(f"Multi-Krum parameter {param:#x}: bits 32 and up are reserved")
    if param == 0:
        if count < 3:
            raise UnsupportedRuleError(f"Multi-Krum needs at least 3 updates, got {count}")
        f = (count - 3) // 2
        return f, count - f
    f = param & _KRUM_FIELD
    m = ((param >> 16) & _KRUM_FIELD) or count - f
    if count < 2 * f + 3:
        raise UnsupportedRuleError(
            f"Multi-Krum with f = {f} needs at least 2f + 3 = {2 * f + 3} updates, got {count}"
        )
    if m > count - f:
        raise UnsupportedRuleError(f"Multi-Krum needs m <= N - f = {count - f}, got m = {m}")
    return f, m


def describe_rule(rule: AggregationRule | int, param: int) -> str:
    """A short human description of a rule and its parameter, for logs and the CLI."""
    if rule == AggregationRule.FEDAVG:
        return "FedAvg"
    if rule == AggregationRule.MEDIAN:
        return "coordinate median"
    if rule == AggregationRule.TRIMMED_MEAN:
        try:
            basis_points = trim_basis_points(param)
        except UnsupportedRuleError:
            return f"trimmed mean (invalid parameter {param})"
        digits = 2 if basis_points % 100 == 0 else 4
        return f"trimmed mean (beta {basis_points / BASIS_POINTS:.{digits}f})"
    if rule == AggregationRule.MULTI_KRUM:
        if param >> _KRUM_PARAM_BITS:
            return f"Multi-Krum (invalid parameter {param:#x})"
        if param == 0:
            return "Multi-Krum (f floor((N - 3) / 2), m N - f)"
        m = (param >> 16) & _KRUM_FIELD
        return f"Multi-Krum (f {param & _KRUM_FIELD}, m {m or 'N - f'})"
    return f"unknown rule {int(rule)}"


@dataclass(frozen=True)
class Aggregation:
    """A rule's output: the model, and which updates (by position) it left out as outliers."""

    model: dict[str, Array]
    excluded: tuple[int, ...] = ()


RULES = frozenset(
    {AggregationRule.FEDAVG, AggregationRule.MEDIAN, AggregationRule.TRIMMED_MEAN, AggregationRule.MULTI_KRUM}
)


def aggregate(rule: AggregationRule, param: int, updates: Sequence[WeightedUpdate]) -> Aggregation:
    """Applies `rule` (with its on-chain parameter) to the accepted, weighted updates.

    `updates` must be in trainer-address order: Multi-Krum breaks ties by position. Only
    Multi-Krum excludes updates (those it did not select); the coordinate-wise rules use every
    update, so they name no outliers. Float tensors (F32, F16, BF16) go through the rule as
    float32 and come back in their dtype; integer and bool tensors take the lower median of the
    updates kept. The model's tensors keep the updates' dtypes.

    Raises
    ------
    UnsupportedRuleError
        If the rule is unknown or its parameter cannot be applied to these updates.
    ValueError
        If the updates themselves are inconsistent (layouts, dtypes, values, weights).
    """
    if rule not in RULES:
        raise UnsupportedRuleError(f"aggregation rule {int(rule)} is not implemented by this aggregator")
    if not updates:
        return _aggregate_floats(rule, param, updates)  # the rule's own error
    dtypes = check_dtypes([tensors for tensors, _ in updates])
    floats = float_names(dtypes)
    result = _aggregate_floats(
        rule,
        param,
        [({name: upcast(tensors[name]) for name in floats}, weight) for tensors, weight in updates],
    )
    kept = [tensors for index, (tensors, _) in enumerate(updates) if index not in set(result.excluded)]
    return Aggregation(_to_wire(result.model, dtypes, lambda name: lower_median(kept, name)), result.excluded)


def _aggregate_floats(rule: AggregationRule, param: int, updates: Sequence[WeightedUpdate]) -> Aggregation:
    """The rule itself, on float32 tensors."""
    if rule == AggregationRule.FEDAVG:
        return Aggregation(fedavg(updates))
    if rule == AggregationRule.MEDIAN:
        return Aggregation(coordinate_median([tensors for tensors, _ in updates]))
    if rule == AggregationRule.TRIMMED_MEAN:
        beta = trim_basis_points(param) / BASIS_POINTS
        return Aggregation(trimmed_mean([tensors for tensors, _ in updates], beta))
    if rule == AggregationRule.MULTI_KRUM:
        f, m = krum_parameters(param, len(updates))
        model, selected = multi_krum(updates, f, m)
        return Aggregation(model, tuple(i for i in range(len(updates)) if i not in set(selected)))
    raise UnsupportedRuleError(f"aggregation rule {int(rule)} is not implemented by this aggregator")


def _to_wire(
    floats: Mapping[str, Array], dtypes: Mapping[str, np.dtype[Any]], others: Callable[[str], Array]
) -> dict[str, Array]:
    """The model in the wire dtypes: the rule's float32 tensors rounded to theirs, and the other
    tensors (integer, bool) from `others(name)`."""
    return {
        name: to_wire(floats[name], dtype) if name in floats else others(name)
        for name, dtype in sorted(dtypes.items())
    }


# Rules that can run over update files on disk (`aggregate_files`): the coordinate-wise ones.
# Multi-Krum compares every pair of updates, so it keeps them all in memory.
FILE_RULES = frozenset({AggregationRule.FEDAVG, AggregationRule.MEDIAN, AggregationRule.TRIMMED_MEAN})


def aggregate_files(
    rule: AggregationRule, param: int, paths: Sequence[Path], weights: Sequence[int]
) -> Aggregation:
    """`aggregate` over update files (canonical safetensors, in trainer-address order), in memory
    that grows with the model, not with the number of updates; bit-identical to `aggregate` on
    the same tensors (`aggregation.streaming`), any wire dtypes included. The median and the
    trimmed mean hold every file open; FedAvg holds a group at a time, and then, only if the model
    has integer or bool tensors, every file for their lower median.

    Raises
    ------
    UnsupportedRuleError
        If `rule` is not in `FILE_RULES`, or its parameter cannot be applied.
    """
    if len(paths) != len(weights):
        raise ValueError(f"{len(paths)} update files but {len(weights)} weights")
    if rule not in FILE_RULES:
        raise UnsupportedRuleError(f"{describe_rule(rule, param)} does not run over update files")
    beta = trim_basis_points(param) / BASIS_POINTS if rule == AggregationRule.TRIMMED_MEAN else None
    if not paths:
        raise ValueError("no updates to aggregate")
    with UpdateFile(paths[0]) as first:
        dtypes = first.dtypes
    others = sorted(set(dtypes) - set(float_names(dtypes)))
    files: list[UpdateFile] = []
    try:
        if rule == AggregationRule.FEDAVG:
            # Opened a group at a time by `fedavg_files`, and closed when the group is done.
            floats = fedavg_files(
                (FloatTensors(UpdateFile(p), dtypes), w) for p, w in zip(paths, weights, strict=True)
            )
            files = [UpdateFile(p) for p in paths] if others else []
        else:
            files = [UpdateFile(p) for p in paths]
            views = [FloatTensors(update, dtypes) for update in files]
            floats = coordinate_median_files(views) if beta is None else trimmed_mean_files(views, beta)
        medians = lower_median_files(files, others) if others else {}
        return Aggregation(_to_wire(floats, dtypes, medians.__getitem__))
    finally:
        for update in files:
            update.close()
