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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedledger.aggregation.base import WeightedUpdate
from fedledger.aggregation.fedavg import fedavg
from fedledger.aggregation.krum import multi_krum
from fedledger.aggregation.median import coordinate_median
from fedledger.aggregation.streaming import (
    UpdateFile,
    coordinate_median_files,
    fedavg_files,
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


def aggregate(rule: AggregationRule, param: int, updates: Sequence[WeightedUpdate]) -> Aggregation:
    """Applies `rule` (with its on-chain parameter) to the accepted, weighted updates.

    `updates` must be in trainer-address order: Multi-Krum breaks ties by position. Only
    Multi-Krum excludes updates (those it did not select); the coordinate-wise rules use every
    update, so they name no outliers.

    Raises
    ------
    UnsupportedRuleError
        If the rule is unknown or its parameter cannot be applied to these updates.
    ValueError
        If the updates themselves are inconsistent (layouts, values, weights).
    """
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


# Rules that can run over update files on disk (`aggregate_files`): the coordinate-wise ones.
# Multi-Krum compares every pair of updates, so it keeps them all in memory.
FILE_RULES = frozenset({AggregationRule.FEDAVG, AggregationRule.MEDIAN, AggregationRule.TRIMMED_MEAN})


def aggregate_files(
    rule: AggregationRule, param: int, paths: Sequence[Path], weights: Sequence[int]
) -> Aggregation:
    """`aggregate` over update files (safetensors, float32, in trainer-address order), in memory
    that grows with the model, not with the number of updates; bit-identical to `aggregate` on
    the same tensors (`aggregation.streaming`).

    Raises
    ------
    UnsupportedRuleError
        If `rule` is not in `FILE_RULES`, or its parameter cannot be applied.
    """
    if len(paths) != len(weights):
        raise ValueError(f"{len(paths)} update files but {len(weights)} weights")
    if rule == AggregationRule.FEDAVG:
        # Opened a group at a time by `fedavg_files`, and closed when the group is done.
        return Aggregation(fedavg_files((UpdateFile(p), w) for p, w in zip(paths, weights, strict=True)))
    if rule not in FILE_RULES:
        raise UnsupportedRuleError(f"{describe_rule(rule, param)} does not run over update files")
    beta = trim_basis_points(param) / BASIS_POINTS if rule == AggregationRule.TRIMMED_MEAN else None
    files = [UpdateFile(p) for p in paths]
    try:
        if beta is None:
            return Aggregation(coordinate_median_files(files))
        return Aggregation(trimmed_mean_files(files, beta))
    finally:
        for update in files:
            update.close()
