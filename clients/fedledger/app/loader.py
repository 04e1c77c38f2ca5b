"""Loading an app by built-in name, entry point name or import string.

    mnist-cnn                   a built-in example (BUILTIN_APPS maps names to import strings)
    my-app                      an installed entry point: [project.entry-points."fedledger.apps"]
    my_package.my_module:app    an import string: module, then an attribute path inside it

The attribute may be an `App` instance, or an `App` subclass (or a factory) called with no
arguments. Every way that fails says which part did not resolve, as uvicorn's importer does.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from fedledger.app.api import App
from fedledger.app.errors import AppLoadError

ENTRY_POINT_GROUP = "fedledger.apps"
BUILTIN_APPS = {
    "mnist-cnn": "fedledger.examples.mnist_cnn:app",
    "mnist-bn": "fedledger.examples.mnist_bn:app",
    "tabular": "fedledger.examples.tabular:app",
}
DEFAULT_APP = "mnist-cnn"


def resolve_reference(reference: str) -> str:
    """The import string `reference` names (a built-in, an entry point, or itself)."""
    if reference in BUILTIN_APPS:
        return BUILTIN_APPS[reference]
    if ":" in reference:
        return reference
    found = [point for point in entry_points(group=ENTRY_POINT_GROUP) if point.name == reference]
    if found:
        return str(found[0].value)
    installed = sorted({*BUILTIN_APPS, *(point.name for point in entry_points(group=ENTRY_POINT_GROUP))})
    raise AppLoadError(
        f"app {reference!r} is neither a built-in nor an installed entry point (installed: "
        f"{', '.join(installed)}), nor an import string of the form package.module:attribute"
    )


def import_object(import_string: str) -> Any:
    """The object `module:attr.path` names, with an error that says which part is missing."""
    module_name, _, attributes = import_string.partition(":")
    if not module_name or not attributes:
        raise AppLoadError(f"import string {import_string!r} must be of the form package.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(
                f"could not import module {module_name!r} of app {import_string!r}: no module named "
                f"{exc.name!r} (is its package installed, e.g. `pip install -e PATH`?)"
            ) from None
        raise AppLoadError(f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:  # the user's module raised while importing: say so, with its message
        raise AppLoadError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    value: Any = module
    for attribute in attributes.split("."):
        try:
            value = getattr(value, attribute)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attributes!r}") from None
    return value


def load_app(reference: str) -> App[Any]:
    """The app `reference` names (see the module docstring)."""
    import_string = resolve_reference(reference)
    value = import_object(import_string)
    if not isinstance(value, App) and callable(value):  # an App subclass or a factory
        try:
            value = value()
        except Exception as exc:
            raise AppLoadError(f"{import_string} could not be created: {type(exc).__name__}: {exc}") from exc
    if not isinstance(value, App):
        hint = ""
        if type(value).__module__.startswith("flwr"):
            hint = " (a Flower app runs with --flower-app)"
        raise AppLoadError(
            f"{import_string} is a {type(value).__name__}, not a fedledger App (fedledger.app.App){hint}"
        )
    return value


def load_any_app(app: str, flower_app: str | None = None, flower_model: str | None = None) -> App[Any]:
    """`app`, or the Flower app `flower_app` (with its model `flower_model`) through the adapter."""
    if flower_app is None:
        if flower_model is not None:
            raise AppLoadError("a Flower model (--flower-model) goes with a Flower app (--flower-app)")
        return load_app(app)
    if flower_model is None:
        raise AppLoadError(
            "a Flower app needs --flower-model MODULE:ATTR: the model class whose weights start the federation"
        )
    try:
        from fedledger.app.flower import flower_app as adapt
    except ImportError as exc:
        raise AppLoadError(f"Flower is not installed: pip install 'fedledger[flower]' ({exc})") from None
    return adapt(flower_app, flower_model)
