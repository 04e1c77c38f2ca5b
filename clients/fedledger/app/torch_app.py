"""`TorchApp`: an app for a PyTorch classifier on labelled arrays, in two methods.

Implement `build_model(context)` and `load_data(context)` (returning a `Dataset` of inputs and
integer labels); the rest is done: deterministic initial weights, a seeded SGD loop, accuracy
and loss on held-out data, and DP-SGD with Opacus when a trainer asks for it. Hyperparameters
come from `--config`: `epochs`, `batch-size`, `lr`, `momentum` (defaults: the class attributes).
Override `train` or `evaluate` for anything else, or subclass `App` directly.
"""

from __future__ import annotations

import abc

import torch
from torch import nn

from fedledger.app.api import App, Context, EvaluateResult, TrainResult, Weights
from fedledger.app.errors import AppWeightsError
from fedledger.learning.data import Dataset
from fedledger.learning.dp_sgd import DpSgdConfig, DpSgdLedger, steps_of, train_local_dp
from fedledger.learning.train import TrainConfig, evaluate_model, train_local
from fedledger.learning.weights import load_arrays, state_dict_to_arrays


class TorchApp(App[Dataset]):
    """A classifier trained with SGD and cross-entropy on `Dataset`s (inputs, int64 labels)."""

    metric = "accuracy"
    epochs = 2
    batch_size = 32
    learning_rate = 0.05
    momentum = 0.9

    @abc.abstractmethod
    def build_model(self, context: Context) -> nn.Module:
        """A fresh model (its initial parameters are drawn under a seeded RNG)."""

    def loss_fn(self) -> nn.Module:
        """The training loss (cross-entropy over logits by default)."""
        return nn.CrossEntropyLoss()

    def train_config(self, context: Context) -> TrainConfig:
        """The loop's hyperparameters: `--config` values over the class defaults."""
        return TrainConfig(
            epochs=context.get_int("epochs", self.epochs),
            batch_size=context.get_int("batch-size", self.batch_size),
            learning_rate=context.get_float("lr", self.learning_rate),
            momentum=context.get_float("momentum", self.momentum),
            seed=context.seed,
        )

    def initial_weights(self, context: Context) -> Weights:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(context.seed)
            return state_dict_to_arrays(self.build_model(context))

    def model_with(self, weights: Weights, context: Context) -> nn.Module:
        """A model holding `weights` (a clear error if they do not fit it)."""
        model = self.build_model(context)
        try:
            load_arrays(model, weights)
        except (RuntimeError, ValueError) as exc:
            raise AppWeightsError(f"app {self.name!r}: the weights do not fit its model: {exc}") from None
        return model

    def train(self, weights: Weights, data: Dataset, context: Context) -> TrainResult:
        model = self.model_with(weights, context)
        result = train_local(model, data, self.train_config(context), loss_fn=self.loss_fn())
        return TrainResult(
            weights=state_dict_to_arrays(model),
            num_samples=result.num_samples,
            metrics={"loss": result.mean_loss},
        )

    def train_private(
        self, weights: Weights, data: Dataset, context: Context, dp: DpSgdConfig, ledger: DpSgdLedger
    ) -> TrainResult:
        """`train` with DP-SGD (Opacus): per-example clipping and noise; steps added to `ledger`."""
        model = self.model_with(weights, context)
        result = train_local_dp(model, data, self.train_config(context), dp, ledger, loss_fn=self.loss_fn())
        return TrainResult(
            weights=state_dict_to_arrays(model),
            num_samples=result.num_samples,
            metrics={"loss": result.mean_loss},
        )

    def dp_sgd_steps(self, data: Dataset, context: Context) -> tuple[float, int]:
        """The (sample rate, steps) one round of DP-SGD takes on `data`."""
        return steps_of(data, self.train_config(context))

    def evaluate(self, weights: Weights, data: Dataset, context: Context) -> EvaluateResult:
        accuracy, loss = evaluate_model(self.model_with(weights, context), data, self.loss_fn())
        return EvaluateResult(num_samples=len(data), metrics={"accuracy": accuracy, "loss": loss})
