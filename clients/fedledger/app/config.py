"""`--config key=value` pairs: values typed the way Flower's run config and TOML read them."""

from __future__ import annotations

import json
from collections.abc import Iterable

from fedledger.app.api import Scalar
from fedledger.app.errors import AppConfigError


def parse_value(text: str) -> Scalar:
    """`true`/`false` are booleans, numbers are int or float, a quoted or bare word is a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)  # type: ignore[no-any-return]
        except ValueError:
            pass
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        try:
            value = json.loads(stripped)
        except ValueError as exc:
            raise AppConfigError(f"config value {text!r} is not a valid quoted string: {exc}") from None
        return str(value)
    return text


def parse_config(items: Iterable[str]) -> dict[str, Scalar]:
    """`["epochs=3", "lr=0.01", "label-column=target"]` -> `{"epochs": 3, "lr": 0.01, ...}`."""
    config: dict[str, Scalar] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AppConfigError(f"--config {item!r} is not KEY=VALUE")
        config[key] = parse_value(value)
    return config


def config_items(config: dict[str, Scalar]) -> list[str]:
    """The `--config` arguments that give back `config` (for starting trainer processes)."""
    items = []
    for key, value in sorted(config.items()):
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if isinstance(value, str) and parse_value(value) != value:
            text = json.dumps(value)  # a string that reads as a number or a bool keeps its type
        items += ["--config", f"{key}={text}"]
    return items
