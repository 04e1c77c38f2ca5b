"""Parsing of the values people type: unsigned integers, token amounts, 32-byte hex strings.

Shared by the ape scripts and the `fedledger` CLI, so both accept the same spellings.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import IntEnum

from fedledger.chain.params import TOKEN

UINT256_MAX = 2**256 - 1
_TOKEN_SUFFIX = "fed"


def parse_uint(text: str, *, enum: type[IntEnum] | None = None) -> int:
    """An unsigned 256-bit integer from `text`.

    Accepts decimal with optional `_` separators (`10_000`), hex (`0x2710`), scientific notation
    with an integral result (`1e21`), a token amount with the `FED` suffix (`100FED`, 18
    decimals), and, when `enum` is given, a member name of it (`MEDIAN`, `median`).
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty value")
    if enum is not None:
        member = enum.__members__.get(raw.upper().replace("-", "_"))
        if member is not None:
            return int(member)
    value = _parse_number(raw)
    if value is None:
        names = f" or one of {', '.join(enum.__members__)}" if enum is not None else ""
        raise ValueError(f"{text!r} is not an unsigned integer (e.g. 10_000, 0x2710, 1e18, 100FED){names}")
    if not 0 <= value <= UINT256_MAX:
        raise ValueError(f"{text!r} is outside the uint256 range")
    if enum is not None and value not in {int(m) for m in enum}:
        raise ValueError(f"{text!r} is not a valid {enum.__name__} (one of {', '.join(enum.__members__)})")
    return value


def _parse_number(raw: str) -> int | None:
    lowered = raw.lower().replace("_", "")
    scale = 1
    if lowered.endswith(_TOKEN_SUFFIX):
        lowered, scale = lowered[: -len(_TOKEN_SUFFIX)].strip(), TOKEN
    try:
        if lowered.startswith("0x") and scale == 1:
            return int(lowered, 16)
        if "e" in lowered or "." in lowered:
            return _parse_decimal(lowered, scale)
        return int(lowered, 10) * scale
    except ValueError:
        return None


def _parse_decimal(text: str, scale: int) -> int | None:
    """`1.5e18`, `0.25FED`: exact decimal arithmetic, only integral results."""
    try:
        value = Decimal(text) * scale
    except InvalidOperation:
        return None
    if value != value.to_integral_value():
        return None
    return int(value)


def parse_bytes32(text: str) -> bytes:
    """Exactly 32 bytes from a `0x`-prefixed hex string of 64 digits."""
    raw = text.strip()
    if not raw.startswith(("0x", "0X")):
        raise ValueError(f"{text!r} must start with 0x")
    digits = raw[2:]
    if len(digits) != 64:
        raise ValueError(f"{text!r} must have 64 hex digits (32 bytes), has {len(digits)}")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"{text!r} is not valid hex") from None


def format_token(amount: int) -> str:
    """`amount` (smallest unit) as FED with up to 18 decimals: 1500000000000000000 -> '1.5 FED'."""
    whole, frac = divmod(amount, TOKEN)
    if frac == 0:
        return f"{whole:,} FED"
    return f"{whole:,}.{str(frac).rjust(18, '0').rstrip('0')} FED"


def format_token_rounded(amount: int, places: int = 4) -> str:
    """`amount` as FED rounded to `places` decimals, for tables: 128571428571428571426 -> '128.5714 FED'."""
    rounded = (Decimal(amount) / TOKEN).quantize(Decimal(1).scaleb(-places))
    text = f"{rounded:,.{places}f}".rstrip("0").rstrip(".")
    return f"{text} FED"
