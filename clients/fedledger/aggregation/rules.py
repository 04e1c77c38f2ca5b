"""Selecting the aggregation rule the round's on-chain config names."""

from __future__ import annotations

from collections.abc import Sequence

from fedledger.aggregation.base import WeightedUpdate
from fedledger.aggregation.fedavg import fedavg
from fedledger.arrays import Array
from fedledger.chain.params import AggregationRule


class UnsupportedRuleError(ValueError):
    """The round selects a rule this aggregator cannot apply; it must not attest."""


def aggregate(rule: AggregationRule, param: int, updates: Sequence[WeightedUpdate]) -> dict[str, Array]:
    """Applies `rule` (with its on-chain parameter) to the accepted, weighted updates."""
    if rule == AggregationRule.FEDAVG:
        return fedavg(updates)
    raise UnsupportedRuleError(
        f"aggregation rule {AggregationRule(rule).name} is not implemented by this aggregator"
    )
