"""The command-line options that choose an app and what it reads, shared by the `fedledger` CLI
and the ape deploy script, and the one place that turns them into an app and its initial model.

Importing this module imports click only; the app machinery (and torch) loads when used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from fedledger.app.api import App
    from fedledger.storage.models import InitialModel, ModelStore

F = TypeVar("F", bound=Callable[..., Any])

APP_HELP = "a built-in app (mnist-cnn, mnist-bn, tabular), an installed entry point, or MODULE:ATTR"
DEFAULT_APP = "mnist-cnn"


def app_choice_options(app_help: str = APP_HELP, default: str | None = DEFAULT_APP) -> Callable[[F], F]:
    """`--app`, or `--flower-app` with `--flower-model`: which app (see `selected_app`)."""

    def decorate(function: F) -> F:
        function = click.option(
            "--flower-model",
            metavar="MODULE:ATTR",
            help="with --flower-app: the torch.nn.Module class (or factory) whose weights start the federation",
        )(function)
        function = click.option(
            "--flower-app",
            metavar="MODULE:ATTR",
            help="run a Flower ClientApp (or client_fn) unchanged instead of a fedledger app",
        )(function)
        return click.option(
            "--app",
            "app_name",
            default=default,
            show_default=default is not None,
            metavar="APP",
            help=app_help,
        )(function)

    return decorate


def app_input_options(
    data_help: str = "this operator's own data, as the app reads it (a file or a folder)",
) -> Callable[[F], F]:
    """`--data` and `--config`: what the app reads, and how it is configured (see `app_config`)."""

    def decorate(function: F) -> F:
        function = click.option(
            "--config",
            "config_items",
            multiple=True,
            metavar="KEY=VALUE",
            help="app configuration (repeatable), e.g. --config epochs=3 --config label-column=target",
        )(function)
        return click.option(
            "--data", "data_path", type=click.Path(exists=True, path_type=Path), help=data_help
        )(function)

    return decorate


def app_options(function: F) -> F:
    """`--app`/`--flower-app`/`--flower-model`, `--data` and `--config`: which app, on what data."""
    return app_choice_options()(app_input_options()(function))


def selected_app(app_name: str | None, flower_app: str | None, flower_model: str | None) -> App[Any]:
    """The app the options name (a fedledger app, or a Flower app run through the adapter)."""
    from fedledger.app.loader import load_any_app

    app: App[Any] = load_any_app(app_name or DEFAULT_APP, flower_app, flower_model)
    return app


def app_arguments(app_name: str | None, flower_app: str | None, flower_model: str | None) -> list[str]:
    """The options that select this app again, for a command run on its behalf."""
    if flower_app is None:
        return ["--app", app_name or DEFAULT_APP]
    return ["--flower-app", flower_app, *(["--flower-model", flower_model] if flower_model else [])]


def app_config(items: tuple[str, ...]) -> Any:
    """`--config KEY=VALUE` items as typed values; a usage error names a malformed one."""
    from fedledger.app.config import parse_config
    from fedledger.app.errors import AppConfigError

    try:
        return parse_config(items)
    except AppConfigError as exc:
        raise click.UsageError(str(exc)) from None


def pin_app_model(
    ipfs: ModelStore,
    app: App[Any],
    *,
    config_items: tuple[str, ...],
    data_path: Path | None,
    seed: int,
    chain_id: int,
) -> InitialModel:
    """The app's initial weights (from `seed`, its config and, where the model's shape depends
    on it, its data) pinned as global model version 0, with the model spec derived from them."""
    from fedledger.app.api import Context
    from fedledger.app.spec import app_spec
    from fedledger.storage.models import pin_initial_model

    weights, spec = app_spec(app, Context(config=app_config(config_items), data_path=data_path, seed=seed))
    return pin_initial_model(ipfs, weights, spec, chain_id=chain_id)
