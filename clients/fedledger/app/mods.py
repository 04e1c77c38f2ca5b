"""Mods: wrappers around an app's training call, as Flower's mods wrap a ClientApp.

A mod gets the call and the next step of the chain, and may change what goes in (the data,
for a data-poisoning attack), what comes out (the weights: client-level differential privacy,
model poisoning) or replace the step (DP-SGD trains the app's model itself). The trainer builds
the chain each round, so any app gets them without knowing they exist:

    attack (simulation only) -> client-level DP (the round's governed rule) -> DP-SGD or app.train
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fedledger.app.api import App, Context, TrainResult, Weights
from fedledger.app.errors import AppError
from fedledger.app.torch_app import TorchApp
from fedledger.attacks.base import Attack
from fedledger.learning.data import Dataset
from fedledger.learning.dp_sgd import DpSgdConfig, DpSgdLedger
from fedledger.learning.privacy import PrivacyRule, release


@dataclass(frozen=True, kw_only=True)
class TrainCall:
    """One training call: the global weights, the trainer's data and the round's context."""

    weights: Weights
    data: Any
    context: Context


Step = Callable[[TrainCall], TrainResult]
Mod = Callable[[TrainCall, Step], TrainResult]


def app_step(app: App[Any]) -> Step:
    """The innermost step: the app's own `train`."""
    return lambda call: app.train(call.weights, call.data, call.context)


def chain(step: Step, mods: Sequence[Mod]) -> Step:
    """`step` wrapped in `mods`, the first outermost."""
    for mod in reversed(mods):
        step = _wrap(mod, step)
    return step


def _wrap(mod: Mod, step: Step) -> Step:
    return lambda call: mod(call, step)


def client_dp_mod(rule: PrivacyRule) -> Mod:
    """Clips the update's change to the global model and adds the round's Gaussian noise."""

    def mod(call: TrainCall, step: Step) -> TrainResult:
        result = step(call)
        return replace(result, weights=release(rule, result.weights, call.weights))

    return mod


def dp_sgd_step(app: App[Any], config: DpSgdConfig, ledger: DpSgdLedger) -> Step:
    """Trains with DP-SGD instead of the app's own loop: needs the app's model, data and
    optimizer, which a `TorchApp` exposes; any other app trains itself and gets client-level DP."""
    if not isinstance(app, TorchApp):
        raise AppError(
            f"DP-SGD needs an app built on fedledger.app.TorchApp (its model, data and optimizer); "
            f"app {app.name!r} runs its own training loop: use the governed client-level DP instead"
        )
    return lambda call: app.train_private(call.weights, call.data, call.context, config, ledger)


def attack_mod(attack: Attack, round_: int) -> Mod:
    """A simulated adversary: poisons the data before training (where the data is labelled
    arrays) and the weights after."""

    poisons_data = type(attack).poison_data is not Attack.poison_data

    def mod(call: TrainCall, step: Step) -> TrainResult:
        data = call.data
        if poisons_data:
            if not isinstance(data, Dataset):
                raise AppError(f"attack {attack.name!r} poisons labelled arrays; this app's data is not")
            data = attack.poison_data(data, round_)
        result = step(replace(call, data=data))
        return replace(result, weights=attack.poison_weights(result.weights, call.weights, round_))

    return mod
