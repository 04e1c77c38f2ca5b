"""An app's model spec, and checking an app against the spec a federation deployed."""

from __future__ import annotations

from typing import Any

from fedledger.app.api import App, Context, Weights
from fedledger.app.errors import AppWeightsError
from fedledger.storage.schema import ModelSpec


def weights_spec(name: str, weights: Weights) -> ModelSpec:
    """The spec of `weights` (names, shapes, dtypes), named `name`."""
    try:
        return ModelSpec.from_arrays(name, weights)
    except ValueError as exc:
        raise AppWeightsError(f"app {name!r}: its weights cannot travel: {exc}") from None


def app_spec(app: App[Any], context: Context) -> tuple[Weights, ModelSpec]:
    """The app's initial weights and the spec derived from them."""
    weights = app.initial_weights(context)
    return weights, weights_spec(app.name, weights)


def check_app_matches(app: App[Any], context: Context, deployed: ModelSpec) -> None:
    """Raises `AppWeightsError`, naming every difference, unless the app's weights have exactly
    the tensors (names, shapes, dtypes) of the deployed spec."""
    _, own = app_spec(app, context)
    if own.hash() == deployed.hash():
        return
    mine = {t.name: t for t in own.tensors}
    theirs = {t.name: t for t in deployed.tensors}
    problems = [f"missing {name}" for name in sorted(set(theirs) - set(mine))]
    problems += [f"unexpected {name}" for name in sorted(set(mine) - set(theirs))]
    problems += [
        f"{name} is {mine[name]}, deployed {theirs[name]}"
        for name in sorted(set(mine) & set(theirs))
        if mine[name] != theirs[name]
    ]
    if own.name != deployed.name:
        problems.append(f"model name {own.name!r}, deployed {deployed.name!r}")
    raise AppWeightsError(
        f"app {app.name!r} does not match the deployed model spec {deployed.name!r}: "
        + "; ".join(problems[:8])
        + (f" (and {len(problems) - 8} more)" if len(problems) > 8 else "")
    )
