"""Types shared by the aggregation rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

from fedledger.arrays import Array

Tensors: TypeAlias = Mapping[str, Array]
WeightedUpdate: TypeAlias = tuple[Tensors, int]
