"""IPFS CIDs computed locally, without a daemon.

A file of at most 262,144 bytes added with raw leaves and CID version 1 (`ipfs add
--cid-version=1 --raw-leaves`) is a single raw block, so its CID wraps the file's sha256:
`b` (multibase base32, lower case, no padding) + base32(0x01 CIDv1, 0x55 raw codec,
0x12 sha2-256, 0x20 digest length, digest). Larger files become a UnixFS DAG whose CID is not
the file's sha256: there the daemon's answer is the CID, and the sha256 of the bytes stays the
commitment.
"""

from __future__ import annotations

import base64
import hashlib

RAW_BLOCK_LIMIT = 262_144
_CIDV1_RAW_SHA256_PREFIX = bytes((0x01, 0x55, 0x12, 0x20))


def cid_v1_raw_from_digest(digest: bytes) -> str:
    """The CIDv1 (raw codec, sha2-256, base32) string of a block whose sha256 is `digest`."""
    if len(digest) != 32:
        raise ValueError(f"a sha256 digest has 32 bytes, got {len(digest)}")
    encoded = base64.b32encode(_CIDV1_RAW_SHA256_PREFIX + digest).decode("ascii")
    return "b" + encoded.lower().rstrip("=")


def cid_v1_raw(data: bytes) -> str:
    """The CIDv1 raw-leaves string of `data`, as `ipfs add --cid-version=1 --raw-leaves` gives it."""
    if len(data) > RAW_BLOCK_LIMIT:
        raise ValueError(
            f"{len(data)} bytes exceed one raw block ({RAW_BLOCK_LIMIT}); IPFS chunks such a file "
            "into a DAG whose CID only the daemon can tell"
        )
    return cid_v1_raw_from_digest(hashlib.sha256(data).digest())
