"""The built-in MNIST app with a given training configuration, for tests that build trainers."""

from __future__ import annotations

from typing import Any

from fedledger.app.api import Context
from fedledger.examples.mnist_cnn import app
from fedledger.learning.train import TrainConfig


def mnist_app(config: TrainConfig) -> dict[str, Any]:
    """`Trainer` keyword arguments: the MNIST app, and a context training with `config`."""
    return {
        "app": app,
        "context": Context(
            config={
                "epochs": config.epochs,
                "batch-size": config.batch_size,
                "lr": config.learning_rate,
                "momentum": config.momentum,
            },
            seed=config.seed,
        ),
    }
