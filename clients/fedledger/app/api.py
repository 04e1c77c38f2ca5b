"""The app interface: what a user implements so fedledger trains their model on their data.

An app is the user's own code, in the user's own package, loaded by import string
(`package.module:attr`) or by the name of an installed entry point (`fedledger.apps` group), the
way uvicorn loads an ASGI app and Flower a ClientApp. The protocol only ever sees named arrays:

- `initial_weights(context)`: global model version 0, deterministic from `context.seed` (every
  party that runs it must get the same bytes, or the deployed spec and model do not match);
- `load_data(context)`: the operator's own data, from `context.data_path` (`--data`); read once
  per trainer and handed back to every `train` and `evaluate` call;
- `train(weights, data, context)`: local training from the global weights, returning the new
  weights, the number of samples it trained on (the FedAvg weight) and metrics;
- `evaluate(weights, data, context)` (optional): metrics of a global model on held-out data,
  its headline metric named by `App.metric` ("accuracy" for the built-in classifiers).

Weights travel as `dict[str, numpy array]` in any supported dtype; `fedledger.learning.weights`
maps any `torch.nn.Module`'s state_dict to them and back. `TorchApp` (fedledger.app.torch_app)
implements all four for the common case of a PyTorch classifier on labelled arrays.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from fedledger.arrays import Array

Scalar: TypeAlias = bool | int | float | str
Weights: TypeAlias = dict[str, Array]
Purpose = Literal["train", "evaluate"]
DataT = TypeVar("DataT")


@dataclass(frozen=True, kw_only=True)
class Context:
    """Where and how an app runs.

    `config` holds the `--config key=value` pairs (values parsed as bool, int, float or string);
    `data_path` is `--data`, chosen by each operator; `partition_id`/`num_partitions` are set
    only in a simulation (the demo), where every trainer reads one common data set and keeps its
    own share of it, as in Flower's simulation; `purpose` says whether the data is for training
    or for evaluating global models; `round` is the protocol round of a `train` call; `seed` is
    this call's seed (per trainer and round for `train`): use it and training is reproducible.
    """

    config: Mapping[str, Scalar] = field(default_factory=dict)
    data_path: Path | None = None
    partition_id: int | None = None
    num_partitions: int | None = None
    purpose: Purpose = "train"
    round: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.partition_id is None) != (self.num_partitions is None):
            raise ValueError("partition_id and num_partitions go together")
        if self.num_partitions is not None and not 0 <= (self.partition_id or 0) < self.num_partitions:
            raise ValueError(f"partition {self.partition_id} is outside 0..{self.num_partitions - 1}")

    def for_round(self, round_: int, seed: int) -> Context:
        """This context for training in `round_` with `seed`."""
        return replace(self, round=round_, seed=seed)

    def get_int(self, key: str, default: int) -> int:
        return int(self._get(key, default, int))

    def get_float(self, key: str, default: float) -> float:
        return float(self._get(key, default, float))

    def get_str(self, key: str, default: str) -> str:
        return str(self._get(key, default, str))

    def get_bool(self, key: str, default: bool) -> bool:
        return bool(self._get(key, default, bool))

    def _get(self, key: str, default: Scalar, kind: type) -> Scalar:
        value = self.config.get(key, default)
        accepted: tuple[type, ...] = (int, float) if kind is float else (kind,)
        # bool is an int in Python: a flag must not pass for a number, nor a number for a flag.
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, accepted):
            from fedledger.app.errors import AppConfigError

            raise AppConfigError(f"--config {key}={value!r}: expected {kind.__name__}")
        return value


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What local training returns: the new weights, the samples trained on, and metrics."""

    weights: Weights
    num_samples: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class EvaluateResult:
    """Metrics of a global model on held-out data (including the app's headline `metric`)."""

    num_samples: int
    metrics: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class DemoData:
    """Data an app writes for the demo: one private file per trainer, their union (for a
    centralized baseline) and a held-out file for evaluation."""

    trainer_paths: tuple[Path, ...]
    union_path: Path
    test_path: Path


class App(abc.ABC, Generic[DataT]):
    """Subclass this in your own package (or use `TorchApp`), then name it to fedledger by
    import string or entry point. `name` names the model spec on chain; `metric` is the
    headline metric `evaluate` reports (None: the app does not evaluate)."""

    name: str = "app"
    metric: str | None = None

    @abc.abstractmethod
    def initial_weights(self, context: Context) -> Weights:
        """Global model version 0, the same on every machine for the same `context`."""

    @abc.abstractmethod
    def load_data(self, context: Context) -> DataT:
        """The operator's data at `context.data_path` (for `context.purpose`)."""

    @abc.abstractmethod
    def train(self, weights: Weights, data: DataT, context: Context) -> TrainResult:
        """Trains from `weights` on `data`; returns the new weights (same names, shapes, dtypes)."""

    def evaluate(self, weights: Weights, data: DataT, context: Context) -> EvaluateResult:
        """Metrics of `weights` on `data`. Not every app evaluates: see `can_evaluate`."""
        raise NotImplementedError(f"app {self.name!r} does not evaluate models")

    @property
    def can_evaluate(self) -> bool:
        """Whether the app implements `evaluate` (and names its headline `metric`)."""
        return type(self).evaluate is not App.evaluate and self.metric is not None

    def demo_data(self, directory: Path, num_partitions: int, seed: int) -> DemoData | None:
        """Data for `fedledger demo` to run this app on, written into `directory`; None (the
        default) when the app needs `--data` (or reads bundled data by partition itself)."""
        return None

    def describe(self) -> dict[str, Any]:
        """The app's name and headline metric, for summaries."""
        return {"app": self.name, "metric": self.metric if self.can_evaluate else None}
