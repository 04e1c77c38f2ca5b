"""Aggregation rules: pure, deterministic functions on named float32 tensors."""

from fedledger.aggregation.base import Tensors, WeightedUpdate
from fedledger.aggregation.clipping import clip_update
from fedledger.aggregation.fedavg import FedAvgAccumulator, fedavg
from fedledger.aggregation.krum import krum_scores, multi_krum
from fedledger.aggregation.median import coordinate_median
from fedledger.aggregation.trimmed_mean import trimmed_mean

__all__ = [
    "FedAvgAccumulator",
    "Tensors",
    "WeightedUpdate",
    "clip_update",
    "coordinate_median",
    "fedavg",
    "krum_scores",
    "multi_krum",
    "trimmed_mean",
]
