"""sha256 digests as the chain stores them (bytes32) and as people read them (0x-hex)."""

from __future__ import annotations

import hashlib


def sha256(data: bytes) -> bytes:
    """The 32-byte sha256 of `data`: what a commitment binds."""
    return hashlib.sha256(data).digest()


def to_hex(digest: bytes) -> str:
    """`0x`-prefixed lowercase hex."""
    return "0x" + digest.hex()


def from_hex(text: str) -> bytes:
    """Parses a 32-byte digest from hex (with or without `0x`), with a clear error."""
    body = text[2:] if text.startswith(("0x", "0X")) else text
    try:
        value = bytes.fromhex(body)
    except ValueError:
        raise ValueError(f"not a hex digest: {text!r}") from None
    if len(value) != 32:
        raise ValueError(f"a digest has 32 bytes, got {len(value)}: {text!r}")
    return value
