"""Model poisoning: the trainer trains honestly, then distorts its update before encoding.

With delta = trained - global (the honest update), each attack submits

- `SignFlip(lam)`:      global - lam * delta  (the update pushes the model the wrong way;
  lam = 1 reverses it exactly, larger lam also amplifies it),
- `Scaling(lam)`:       global + lam * delta  (a boosted update, as in model replacement:
  lam around the number of trainers lets one update dominate an average),
- `GaussianNoise(sigma)`: global + N(0, sigma^2) per weight, the trained weights discarded.

Every float tensor keeps its dtype, is finite and clipped to `codec.MAX_ABS_VALUE`, and integer
buffers are left as trained (`base.poison_floats`), so the file passes
verification: these are statistical attacks, for the aggregation rule to resist, not
protocol violations that aggregators reject and slash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedledger.arrays import Array
from fedledger.attacks.base import Attack, Seeded, poison_floats


def _check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")


def _delta(trained: dict[str, Array], global_weights: dict[str, Array], name: str) -> Array:
    return np.asarray(trained[name], dtype=np.float64) - np.asarray(global_weights[name], dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class SignFlip(Attack):
    """Submits global - lam * (trained - global): the honest update reversed (and scaled by lam)."""

    name: ClassVar[str] = "sign-flip"
    lam: float = 1.0

    def __post_init__(self) -> None:
        _check_finite("lam", self.lam)
        if self.lam <= 0:
            raise ValueError(f"lam must be positive, got {self.lam}")

    def poison_weights(
        self, trained: dict[str, Array], global_weights: dict[str, Array], round_: int
    ) -> dict[str, Array]:
        return poison_floats(
            trained,
            lambda name: (
                np.asarray(global_weights[name], np.float64)
                - self.lam * _delta(trained, global_weights, name)
            ),
        )


@dataclass(frozen=True, kw_only=True)
class Scaling(Attack):
    """Submits global + lam * (trained - global): the honest update boosted lam times."""

    name: ClassVar[str] = "scaling"
    lam: float = 10.0

    def __post_init__(self) -> None:
        _check_finite("lam", self.lam)

    def poison_weights(
        self, trained: dict[str, Array], global_weights: dict[str, Array], round_: int
    ) -> dict[str, Array]:
        return poison_floats(
            trained,
            lambda name: (
                np.asarray(global_weights[name], np.float64)
                + self.lam * _delta(trained, global_weights, name)
            ),
        )


@dataclass(frozen=True, kw_only=True)
class GaussianNoise(Seeded):
    """Submits global + N(0, sigma^2) noise instead of the trained weights (seeded per trainer and round)."""

    name: ClassVar[str] = "noise"
    sigma: float = 1.0

    def __post_init__(self) -> None:
        _check_finite("sigma", self.sigma)
        if self.sigma < 0:
            raise ValueError(f"sigma must be non-negative, got {self.sigma}")

    def poison_weights(
        self, trained: dict[str, Array], global_weights: dict[str, Array], round_: int
    ) -> dict[str, Array]:
        rng = self.rng(round_)
        # `poison_floats` calls in name order: a fixed draw order, whatever the dict order.
        return poison_floats(
            trained,
            lambda name: (
                np.asarray(global_weights[name], np.float64)
                + rng.normal(0.0, self.sigma, size=np.shape(global_weights[name]))
            ),
        )
