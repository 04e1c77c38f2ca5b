"""The task's model: a small CNN for 28x28 digits, and its conversion to and from named arrays."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from fedledger.arrays import Array
from fedledger.learning.weights import load_arrays, state_dict_to_arrays
from fedledger.storage.schema import ModelSpec

MODEL_NAME = "mnist-cnn-v1"


class MnistCNN(nn.Module):
    """Two 5x5 conv layers with max pooling, then two dense layers: about 47k parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        logits: torch.Tensor = self.fc2(x)
        return logits


def build_model(seed: int | None = None) -> MnistCNN:
    """A fresh model; with `seed`, the same initial weights everywhere."""
    if seed is None:
        return MnistCNN()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MnistCNN()


def get_weights(model: nn.Module) -> dict[str, Array]:
    """The model's parameters and buffers as numpy arrays of their own dtypes, by name
    (`weights.state_dict_to_arrays`; all float32 for `MnistCNN`)."""
    return state_dict_to_arrays(model)


def set_weights(model: nn.Module, weights: Mapping[str, Array]) -> None:
    """Loads named arrays into the model; names, shapes and dtypes must match exactly
    (`weights.load_arrays`)."""
    load_arrays(model, weights)


def model_spec(model: nn.Module | None = None) -> ModelSpec:
    """The schema of the model's files; its hash goes on chain at deployment."""
    return ModelSpec.from_arrays(MODEL_NAME, get_weights(model or MnistCNN()))
