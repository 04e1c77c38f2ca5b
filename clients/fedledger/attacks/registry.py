"""Attacks by name (for the CLI and the demo), and the verdict each should get."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from fedledger.attacks.base import Attack
from fedledger.attacks.data_poisoning import LabelFlip
from fedledger.attacks.free_riding import CopyOther, ResubmitGlobal, Zeros
from fedledger.attacks.model_poisoning import GaussianNoise, Scaling, SignFlip
from fedledger.attacks.protocol import (
    DigestMismatch,
    Malformed,
    NonFiniteValues,
    Oversize,
    PicklePayload,
    Truncated,
    Unavailable,
    WrongBinding,
    WrongDtype,
    WrongShape,
)
from fedledger.chain.params import RejectionReason

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (
        SignFlip,
        Scaling,
        GaussianNoise,
        LabelFlip,
        ResubmitGlobal,
        Zeros,
        CopyOther,
        DigestMismatch,
        Truncated,
        Malformed,
        PicklePayload,
        NonFiniteValues,
        WrongShape,
        WrongDtype,
        Oversize,
        Unavailable,
        WrongBinding,
    )
}
ATTACK_NAMES: tuple[str, ...] = tuple(ATTACKS)

# The reason code honest aggregators attest for a trainer running the attack: None where the
# file is valid (statistical attacks and free riding, left to the aggregation rule).
EXPECTED_REASON: dict[str, RejectionReason | None] = {
    "sign-flip": None,
    "scaling": None,
    "noise": None,
    "label-flip": None,
    "free-ride-global": None,
    "free-ride-zeros": None,
    "free-ride-copy": None,
    "digest-mismatch": RejectionReason.DIGEST_MISMATCH,
    "truncated": RejectionReason.MALFORMED,
    "malformed": RejectionReason.MALFORMED,
    "pickle": RejectionReason.MALFORMED,
    "nan": RejectionReason.NON_FINITE,
    "wrong-shape": RejectionReason.MALFORMED,
    "wrong-dtype": RejectionReason.MALFORMED,
    "oversize": RejectionReason.OVERSIZE,
    "unavailable": RejectionReason.UNAVAILABLE,
    "wrong-binding": RejectionReason.WRONG_BINDING,
}

# Attacks whose files verify but which the round's aggregation rejects: copies are recognised
# only by comparing a round's updates with each other and with the starting model.
EXPECTED_ROUND_REASON: dict[str, RejectionReason] = {
    "free-ride-global": RejectionReason.DUPLICATE,
    "free-ride-copy": RejectionReason.DUPLICATE,
}

# Set by the trainer when it binds the attack, not by the user.
_INTERNAL_FIELDS = frozenset({"trainer", "source"})


def attack_parameters(name: str) -> dict[str, Any]:
    """The parameters `attack_from_name(name, ...)` accepts, with their defaults."""
    cls = _attack_class(name)
    return {
        f.name: f.default
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init and f.name not in _INTERNAL_FIELDS
    }


def attack_from_name(name: str, **params: Any) -> Attack:
    """The attack `name` (one of `ATTACK_NAMES`) with `params`.

    Parameter values given as strings (as a command line gives them) are converted to the
    parameter's type: numbers, and comma-separated integers for a permutation.
    """
    cls = _attack_class(name)
    allowed = attack_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"attack {name!r} has no parameter {', '.join(unknown)}; it takes {sorted(allowed)}")
    hints = typing.get_type_hints(cls)
    try:
        converted = {key: _coerce(hints[key], value) for key, value in params.items()}
        return cls(**converted)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"attack {name!r}: {exc}") from None


def _attack_class(name: str) -> type[Attack]:
    try:
        return ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(ATTACK_NAMES)}") from None


def _coerce(hint: Any, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is float:
            return float(value)
        if option is int:
            return int(value)
        if typing.get_origin(option) is tuple:
            return tuple(int(part) for part in value.split(",") if part.strip())
    return value
