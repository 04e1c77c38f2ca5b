"""Sample-level differential privacy for one trainer: DP-SGD with Opacus.

A trainer's own choice (its operator's flag, not a governed rule): each example's gradient is
clipped to `max_grad_norm` and Gaussian noise of `noise_multiplier * max_grad_norm` is added
to every batch's summed gradient, with Poisson-sampled batches. Opacus's RDP accountant keeps
the epsilon per example of the trainer's data across every round it trained in (its history
is carried from round to round). It composes with the governed client-level mechanism, which
then clips and noises the resulting update as for any trainer.
"""

from __future__ import annotations

import json
import math
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedledger.chain.errors import FedledgerError
from fedledger.learning.data import Dataset
from fedledger.learning.privacy import epsilon_of, rdp_accountant
from fedledger.learning.train import TrainConfig, TrainResult


class DpSgdLedgerError(FedledgerError):
    """The file that records a trainer's DP-SGD steps cannot be read."""


@dataclass(frozen=True)
class DpSgdConfig:
    noise_multiplier: float
    max_grad_norm: float
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if not (self.noise_multiplier > 0 and self.max_grad_norm > 0 and 0 < self.delta < 1):
            raise ValueError(
                "DP-SGD needs a noise multiplier > 0, a gradient norm bound > 0 and 0 < delta < 1"
            )


@dataclass
class DpSgdLedger:
    """The trainer's DP-SGD steps so far, as Opacus's accountant history (noise, sample rate,
    steps). Kept in `path` when given, so a restarted trainer still counts what it spent."""

    history: list[tuple[float, float, int]] = field(default_factory=list)
    path: Path | None = None

    @classmethod
    def open(cls, path: Path) -> DpSgdLedger:
        """The ledger kept at `path` (empty if the file does not exist yet)."""
        if not path.exists():
            return cls(path=path)
        try:
            entries = json.loads(path.read_text())["history"]
            history = [(float(noise), float(rate), int(steps)) for noise, rate, steps in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise DpSgdLedgerError(
                f"{path} is not a DP-SGD ledger ({exc}); it records the privacy already spent, so fix or "
                "restore it rather than delete it"
            ) from exc
        return cls(history=history, path=path)

    def add(self, steps: list[tuple[float, float, int]]) -> None:
        """Records `steps` (and writes the file, atomically, before anything is released)."""
        self.history.extend(steps)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"history": self.history}))
            tmp.replace(self.path)

    def epsilon(self, delta: float, extra: tuple[float, float, int] | None = None) -> float:
        """Epsilon per example after the steps so far (and `extra` steps, if given)."""
        if not self.history and extra is None:
            return 0.0
        return epsilon_of(rdp_accountant([*self.history, *([extra] if extra else [])]), delta)


def steps_of(data: Dataset, config: TrainConfig) -> tuple[float, int]:
    """The sample rate and number of steps one round of training takes, as Opacus's Poisson
    loader draws them: one batch per batch of the plain loader, each example with rate 1/batches."""
    batches = math.ceil(len(data) / config.batch_size)
    return 1 / batches, config.epochs * batches


def train_local_dp(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    dp: DpSgdConfig,
    ledger: DpSgdLedger,
    loss_fn: nn.Module | None = None,
) -> TrainResult:
    """DP-SGD over `data` for `config.epochs` (SGD with momentum, Poisson batches of expected
    size `config.batch_size`); the steps are added to `ledger`. Trains `model` in place."""
    from opacus import PrivacyEngine

    if len(data) == 0:
        raise ValueError("no local data to train on")
    generator = torch.Generator().manual_seed(config.seed)
    dataset = TensorDataset(torch.from_numpy(data.images), torch.from_numpy(data.labels).long())
    loader = DataLoader(dataset, batch_size=config.batch_size, generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum)
    model.train()
    with warnings.catch_warnings():
        # Opacus's secure mode needs torchcsprng (no build here); the noise generator is instead
        # seeded from the operating system's randomness, so no one can predict or replay it.
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        engine = PrivacyEngine(accountant="rdp")
    private_model, private_optimizer, private_loader = engine.make_private(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        noise_multiplier=dp.noise_multiplier,
        max_grad_norm=dp.max_grad_norm,
        poisson_sampling=True,
        noise_generator=torch.Generator().manual_seed(secrets.randbits(63)),
    )
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    total_loss, batches = 0.0, 0
    try:
        with warnings.catch_warnings():
            # The first layer's input needs no gradient; Opacus's hooks say so on every batch.
            warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
            for _ in range(config.epochs):
                for images, labels in private_loader:
                    if len(labels) == 0:  # Poisson sampling may draw an empty batch
                        continue
                    private_optimizer.zero_grad()
                    loss = loss_fn(private_model(images), labels)
                    loss.backward()
                    private_optimizer.step()
                    total_loss += loss.item()
                    batches += 1
    finally:
        private_model._close()  # removes Opacus's hooks: `model` is a plain module again
    ledger.add(list(engine.accountant.history))
    return TrainResult(num_samples=len(data), mean_loss=total_loss / max(batches, 1))
