"""The demo's stand-in initial model: a small fixed blob, clearly labelled as not a model.

The contracts need an initial model digest and CID at deployment. Until the demo trains a real
model (next step of the project), it publishes this deterministic placeholder; its digest is the
sha256 of the bytes and its CID the CIDv1 raw-leaves string IPFS would give them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fedledger.chain.cid import cid_v1_raw

PLACEHOLDER_MODEL = (
    b"FEDLEDGER PLACEHOLDER INITIAL MODEL v0\n"
    b"This is not a trained model. It is a fixed stand-in whose sha256 and CID the demo\n"
    b"deployment records as the round-0 global model until the demo trains a real one.\n"
)
PLACEHOLDER_SPEC = b"FEDLEDGER PLACEHOLDER MODEL SPEC v0: no architecture yet\n"
FILE_NAME = "placeholder-initial-model.bin"


@dataclass(frozen=True)
class PlaceholderModel:
    """Where the placeholder was written, and the identifiers the deployment gets."""

    path: Path
    digest: bytes
    cid: str
    spec_hash: bytes


def write_placeholder(directory: Path) -> PlaceholderModel:
    """Writes the placeholder blob into `directory` and returns its digest, CID and spec hash."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    path.write_bytes(PLACEHOLDER_MODEL)
    return PlaceholderModel(
        path=path,
        digest=hashlib.sha256(PLACEHOLDER_MODEL).digest(),
        cid=cid_v1_raw(PLACEHOLDER_MODEL),
        spec_hash=hashlib.sha256(PLACEHOLDER_SPEC).digest(),
    )
