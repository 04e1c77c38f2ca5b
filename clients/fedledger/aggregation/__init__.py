"""Aggregation rules: pure, deterministic functions on named float32 tensors."""

from fedledger.aggregation.base import Tensors, WeightedUpdate
from fedledger.aggregation.fedavg import FedAvgAccumulator, fedavg

__all__ = ["FedAvgAccumulator", "Tensors", "WeightedUpdate", "fedavg"]
