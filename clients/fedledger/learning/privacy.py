"""Differential privacy of trainers' updates: the Gaussian mechanism on each update, and its
privacy accounting with Opacus's Rényi-DP accountant.

Client-level DP, applied by each trainer before it seals its update: the update's change to the
round's starting global model is clipped to L2 norm C (`clip_update`, exact), then Gaussian
noise of standard deviation sigma * C is added to every coordinate, drawn from the operating
system's randomness. The noise is in the file the trainer pins, so digests, seals, the
aggregators' byte-identical results and the robust rules work unchanged, and nobody, not even
the aggregators, sees the trainer's exact update. (Noise drawn from a seed others can derive
would be removable by anyone who derives it, so none is.)

Accounting: each round a trainer takes part in releases one noised update. Two neighbouring
inputs are two whole datasets of that trainer (client-level); their clipped updates differ by
at most 2C (both lie within C of the same global model), so the mechanism has L2 sensitivity
2C and noise multiplier sigma / 2 in Opacus's terms (noise std / sensitivity). Every trainer
takes part in every round, so the sampling rate is 1. Rounds compose; `epsilon` is the
(epsilon, delta) guarantee after them, as Opacus's `RDPAccountant` computes it.
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedledger.aggregation.clipping import clip_update
from fedledger.aggregation.dtypes import to_wire
from fedledger.arrays import Array
from fedledger.chain.errors import FedledgerError
from fedledger.chain.params import CLIP_NORM_UNIT, DP_DELTA_UNIT
from fedledger.chain.rounds import RoundConfig
from fedledger.storage.codec import MAX_ABS_VALUE, within_bounds
from fedledger.storage.schema import is_float

if TYPE_CHECKING:
    from opacus.accountants import RDPAccountant

# Neighbouring datasets of one trainer move its clipped update by up to twice the clip norm.
SENSITIVITY_IN_CLIP_NORMS = 2.0


class PrivacyBudgetExceededError(FedledgerError):
    """Taking part in one more round would spend more than the trainer's operator allows."""


@dataclass(frozen=True)
class PrivacyRule:
    """A round's differential privacy: noise std `noise_multiplier * clip_norm` on an update
    clipped to `clip_norm`, accounted at `delta`. Off while either of the first two is 0."""

    noise_multiplier: float
    clip_norm: float
    delta: float

    @property
    def enabled(self) -> bool:
        return self.noise_multiplier > 0 and self.clip_norm > 0

    @classmethod
    def of_round(cls, config: RoundConfig) -> PrivacyRule:
        """The rule a round opened with (the chain keeps it in fixed point)."""
        return cls(
            noise_multiplier=config.dp_noise_multiplier / CLIP_NORM_UNIT,
            clip_norm=config.dp_clip_norm / CLIP_NORM_UNIT,
            delta=config.dp_delta / DP_DELTA_UNIT,
        )

    def __str__(self) -> str:
        if not self.enabled:
            return "off"
        return (
            f"noise multiplier {self.noise_multiplier:g}, clip norm {self.clip_norm:g}, delta {self.delta:g}"
        )


def privatize(
    update: dict[str, Array],
    reference: dict[str, Array],
    rule: PrivacyRule,
    rng: np.random.Generator | None = None,
) -> dict[str, Array]:
    """`update` with its change to `reference` clipped to `rule.clip_norm` and Gaussian noise of
    std `rule.noise_multiplier * rule.clip_norm` added to every coordinate.

    `rng` defaults to a generator seeded from the operating system; pass one only in tests.
    Values are then bounded to what the codec accepts (post-processing: privacy is unchanged).
    An update that is not finite or beyond the codec's bound (diverged training) counts as no
    change. Float tensors keep their dtype (F16 and BF16 are rounded to it after the noise).
    Integer and bool tensors (BatchNorm's `num_batches_tracked`) are neither clipped nor
    noised: they are released as trained and lie outside the (epsilon, delta) guarantee
    (a step count, which the public sample count already implies).
    """
    if not rule.enabled:
        raise ValueError("differential privacy is off for this round (noise multiplier or clip norm is 0)")
    generator = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    if not within_bounds(update):
        # Training diverged (non-finite or huge weights): an unbounded change has no direction
        # to clip to, so the trainer releases no change, noised like any other.
        update = reference
    clipped = clip_update(update, reference, rule.clip_norm)
    std = rule.noise_multiplier * rule.clip_norm
    noised = {}
    for name in sorted(clipped):
        values = clipped[name]
        if not is_float(values.dtype):  # integer and bool buffers: released as trained
            noised[name] = values
            continue
        wide = values.astype(np.float64) + generator.normal(0.0, std, size=values.shape)
        bounded = np.clip(wide, -MAX_ABS_VALUE, MAX_ABS_VALUE).astype(np.float32)
        noised[name] = to_wire(bounded, values.dtype)  # within the bound: it is a wire value
    return noised


def release(rule: PrivacyRule, update: dict[str, Array], reference: dict[str, Array]) -> dict[str, Array]:
    """What a trainer publishes of `update` in a round under `rule`: privatized when the rule
    asks for privacy, the update itself otherwise."""
    return privatize(update, reference, rule) if rule.enabled else update


def rdp_accountant(history: Sequence[tuple[float, float, int]] = ()) -> RDPAccountant:
    """Opacus's RDP accountant, with `history` (noise multiplier, sample rate, steps) already spent."""
    # Imported when needed: opacus brings torch, which `fedledger status` does not otherwise need.
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = list(history)
    return accountant


def _step(accountant: RDPAccountant, rule: PrivacyRule) -> None:
    """One release of a clipped, noised update under `rule`."""
    accountant.step(noise_multiplier=rule.noise_multiplier / SENSITIVITY_IN_CLIP_NORMS, sample_rate=1.0)


def accountant_for(rules: Sequence[PrivacyRule]) -> RDPAccountant:
    """Opacus's RDP accountant after one release under each of `rules` (rounds without privacy
    release the update exactly: their epsilon is infinite, see `epsilon`)."""
    accountant = rdp_accountant()
    for rule in rules:
        _step(accountant, rule)
    return accountant


def epsilon(rules: Sequence[PrivacyRule], delta: float) -> float:
    """Epsilon spent by a trainer that took part in one round under each of `rules`, at `delta`.

    0 for no rounds; infinite once any round released an update without noise.
    """
    if not rules:
        return 0.0
    if not all(rule.enabled for rule in rules):
        return math.inf
    return epsilon_of(accountant_for(rules), delta)


def running_epsilon(rules: Sequence[PrivacyRule]) -> list[float | None]:
    """After each of `rules`' rounds: the epsilon of a trainer that took part in every one so
    far (the federation's worst case), at that round's delta; None once a round released
    updates without noise (no guarantee at all)."""
    accountant = rdp_accountant()
    out: list[float | None] = []
    exact = False
    for rule in rules:
        exact = exact or not rule.enabled
        if exact:
            out.append(None)
            continue
        _step(accountant, rule)
        out.append(epsilon_of(accountant, rule.delta))
    return out


def epsilon_of(accountant: RDPAccountant, delta: float) -> float:
    """The accountant's epsilon at `delta`."""
    with warnings.catch_warnings():
        # Opacus hints when the best Rényi order is at the end of its default range (very little
        # or very much noise); the epsilon it returns is still a valid bound.
        warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
        return float(accountant.get_epsilon(delta))


def check_budget(spent: Sequence[PrivacyRule], next_round: PrivacyRule, budget: float, delta: float) -> float:
    """The epsilon after also taking part under `next_round`; raises if that exceeds `budget`."""
    after = epsilon([*spent, next_round], delta)
    if after > budget:
        raise PrivacyBudgetExceededError(
            f"taking part would bring this trainer's epsilon to {_shown(after)} at delta {delta:g}, "
            f"over its budget of {budget:g} (spent so far {_shown(epsilon(spent, delta))} in "
            f"{len(spent)} round(s); this round: {next_round})"
        )
    return after


def _shown(value: float) -> str:
    return "infinity (a round without noise)" if math.isinf(value) else f"{value:.3f}"
