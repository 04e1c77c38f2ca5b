"""Local training and held-out evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fedledger.arrays import Array
from fedledger.learning.data import Dataset


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    num_samples: int
    mean_loss: float


def train_local(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    loss_fn: nn.Module | None = None,
) -> TrainResult:
    """SGD with momentum over `data` for `config.epochs`, in a seeded order (cross-entropy
    unless `loss_fn` is given)."""
    if len(data) == 0:
        raise ValueError("no local data to train on")
    generator = torch.Generator().manual_seed(config.seed)
    images = torch.from_numpy(data.images)
    labels = torch.from_numpy(data.labels)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    model.train()
    total_loss, batches = 0.0, 0
    for _ in range(config.epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            batches += 1
    return TrainResult(num_samples=len(data), mean_loss=total_loss / batches)


@torch.no_grad()
def evaluate_model(
    model: nn.Module, data: Dataset, loss_fn: nn.Module | None = None, batch_size: int = 1000
) -> tuple[float, float]:
    """Accuracy and mean loss (cross-entropy unless `loss_fn` is given) on `data`."""
    if len(data) == 0:
        raise ValueError("no data to evaluate on")
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    model.eval()
    correct, total_loss = 0, 0.0
    for start in range(0, len(data), batch_size):
        labels = data.labels[start : start + batch_size]
        logits = model(torch.from_numpy(data.images[start : start + batch_size]))
        total_loss += float(loss_fn(logits, torch.from_numpy(labels))) * len(labels)
        correct += int((logits.argmax(dim=1).numpy() == labels).sum())
    return correct / len(data), total_loss / len(data)


def evaluate(model: nn.Module, data: Dataset, batch_size: int = 1000) -> float:
    """Accuracy on `data`."""
    return evaluate_model(model, data, batch_size=batch_size)[0]


def accuracy_of(weights: dict[str, Array], model: nn.Module, data: Dataset) -> float:
    """Accuracy of `weights` loaded into `model`."""
    from fedledger.learning.model import set_weights

    set_weights(model, weights)
    return evaluate(model, data)
