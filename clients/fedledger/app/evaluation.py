"""Scoring global models with an app's own `evaluate`, for status, the dashboard and the demo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fedledger.app.api import App, Context, Weights
from fedledger.app.errors import AppError

Evaluator = Callable[[Weights], float]


def app_evaluator(app: App[Any], context: Context) -> Evaluator:
    """A function from global weights to the app's headline metric on the held-out data that
    `context` names (loaded once, here). Raises `AppError` if the app does not evaluate."""
    if not app.can_evaluate or app.metric is None:
        raise AppError(f"app {app.name!r} has no evaluate(): no metric can be shown for its models")
    context = replace(context, purpose="evaluate", partition_id=None, num_partitions=None)
    data = app.load_data(context)
    metric = app.metric

    def evaluate(weights: Weights) -> float:
        metrics = app.evaluate(weights, data, context).metrics
        if metric not in metrics:
            raise AppError(
                f"app {app.name!r}: evaluate() returned {sorted(metrics)}, not its metric {metric!r}"
            )
        return float(metrics[metric])

    return evaluate


def evaluation_note(app: App[Any]) -> str:
    """What the accuracy column shows, in words."""
    if not app.can_evaluate:
        return f"app {app.name!r} does not evaluate: no metric"
    return f"{app.metric} from app {app.name!r}'s evaluate()"
