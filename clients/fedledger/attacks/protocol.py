"""Protocol-level bad submissions: files (or commitments) that verification must reject.

Each attack starts from the honest, canonical update bytes and breaks exactly one rule, so
the reason code aggregators attest is determined (see `registry.EXPECTED_REASON`). Unless
the attack is about the digest or availability, the committed digest is the sha256 of the
bytes actually pinned, so the file itself, not the commitment, is what fails.

The altered files are written with `safetensors.numpy.save` directly, bypassing the codec's
checks but keeping its layout and the same binding metadata, so only the intended check
fails. The honest bytes passed in are the trainer's own: loading them with safetensors never
runs code.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import numpy as np
import safetensors.numpy

from fedledger.arrays import Array
from fedledger.attacks.base import Attack, Seeded, Submission
from fedledger.chain.cid import cid_v1_raw_from_digest
from fedledger.storage.codec import HEADER_SLACK, METADATA_KEY, Binding, read_tensors
from fedledger.storage.digests import sha256
from fedledger.storage.schema import is_float

DEFAULT_PICKLE_MARKER = os.path.join(tempfile.gettempdir(), "fedledger-pickle-payload-executed")


def _load(data: bytes) -> dict[str, Array]:
    """The tensors of the trainer's own (canonical safetensors) bytes, in their wire dtypes."""
    return {name: values.copy() for name, values in read_tensors(data).items()}


def _save(tensors: Mapping[str, Array], binding: Binding) -> bytes:
    """safetensors bytes laid out as the codec writes them, with no schema or value checks."""
    arrays = {name: np.asarray(tensors[name], order="C") for name in sorted(tensors)}  # scalars stay 0-d
    return bytes(safetensors.numpy.save(arrays, metadata={METADATA_KEY: binding.canonical_json()}))


def _consistent(data: bytes) -> Submission:
    """Pins `data` and commits its true sha256."""
    return Submission(data=data, digest=sha256(data))


def _pick(tensors: Mapping[str, Array], wanted: str | None) -> str:
    if wanted is None:
        return sorted(tensors)[0]
    if wanted not in tensors:
        raise ValueError(f"no tensor {wanted!r}; the model has {sorted(tensors)}")
    return wanted


@dataclass(frozen=True, kw_only=True)
class DigestMismatch(Attack):
    """Pins the honest file but commits the sha256 of other bytes. Rejected: DigestMismatch."""

    name: ClassVar[str] = "digest-mismatch"

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        return Submission(data=data, digest=sha256(data + b"tampered"))


@dataclass(frozen=True, kw_only=True)
class Truncated(Attack):
    """Pins the first half of the file (and commits its sha256). Rejected: Malformed."""

    name: ClassVar[str] = "truncated"

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        return _consistent(data[: len(data) // 2])


@dataclass(frozen=True, kw_only=True)
class Malformed(Seeded):
    """Pins random bytes of the file's length (seeded per trainer and round). Rejected: Malformed."""

    name: ClassVar[str] = "malformed"

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        return _consistent(self.rng(binding.round, binding.trainer).bytes(len(data)))


class _OpenOnUnpickle:
    """Unpickling an instance calls `open(path, "w")`: code run by merely loading the file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


@dataclass(frozen=True, kw_only=True)
class PicklePayload(Attack):
    """Pins a pickle (the update plus a payload) instead of safetensors. Rejected: Malformed.

    Unpickling it would create the file `marker`. Nothing in fedledger unpickles: the
    decoder reads the safetensors header and finds none. Never call `pickle.loads` on it.
    """

    name: ClassVar[str] = "pickle"
    marker: str = DEFAULT_PICKLE_MARKER

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        payload = {"format": "torch-like", "update": data, "hook": _OpenOnUnpickle(self.marker)}
        return _consistent(pickle.dumps(payload, protocol=4))


@dataclass(frozen=True, kw_only=True)
class NonFiniteValues(Attack):
    """Sets one weight of `tensor` (default: the first float tensor by name) to `value` (NaN or +-inf).

    Everything else, binding included, is as the codec writes it. Rejected: NonFinite.
    """

    name: ClassVar[str] = "nan"
    value: float = math.nan
    tensor: str | None = None

    def __post_init__(self) -> None:
        if math.isfinite(self.value):
            raise ValueError(f"value must be NaN or infinite, got {self.value}")

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        tensors = _load(data)
        floats = {name: values for name, values in tensors.items() if is_float(values.dtype)}
        name = _pick(floats, self.tensor)
        poisoned = np.array(tensors[name])  # its own dtype: only the value is wrong
        poisoned.flat[0] = self.value
        return _consistent(_save({**tensors, name: poisoned}, binding))


@dataclass(frozen=True, kw_only=True)
class WrongShape(Attack):
    """Gives `tensor` (default: the first by name) an extra leading axis of length 1. Rejected: Malformed."""

    name: ClassVar[str] = "wrong-shape"
    tensor: str | None = None

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        tensors = _load(data)
        name = _pick(tensors, self.tensor)
        return _consistent(_save({**tensors, name: tensors[name].reshape(1, *tensors[name].shape)}, binding))


@dataclass(frozen=True, kw_only=True)
class WrongDtype(Attack):
    """Stores `tensor` as float64 (default: the smallest tensor). Rejected: Malformed.

    One tensor only: turning the whole model to float64 would double the file and trip the
    size bound first (Oversize) instead of the dtype check.
    """

    name: ClassVar[str] = "wrong-dtype"
    tensor: str | None = None

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        tensors = _load(data)
        name = self.tensor if self.tensor is not None else min(tensors, key=lambda n: (tensors[n].size, n))
        name = _pick(tensors, name)
        return _consistent(_save({**tensors, name: tensors[name].astype("<f8")}, binding))


@dataclass(frozen=True, kw_only=True)
class Oversize(Attack):
    """The honest file with its header padded past the size bound. Rejected: Oversize.

    The header gains `codec.HEADER_SLACK` spaces (padding the safetensors format allows);
    a file is at least its tensor data plus 8 bytes, so it now exceeds
    `codec.max_file_size(spec)` = tensor data + HEADER_SLACK. Aggregators stop reading at
    the bound.
    """

    name: ClassVar[str] = "oversize"

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        padded = json.dumps(header, separators=(",", ":")).encode() + b" " * HEADER_SLACK
        return _consistent(struct.pack("<Q", len(padded)) + padded + data[8 + length :])


@dataclass(frozen=True, kw_only=True)
class Unavailable(Attack):
    """Pins nothing; commits the honest digest and a well-formed CID nobody has. Rejected: Unavailable.

    The CID is a CIDv1 (raw, sha2-256) of bytes derived from the update, so it looks like any
    other and is the same on every run. Aggregators give up after their fetch timeout.
    """

    name: ClassVar[str] = "unavailable"

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        ghost = cid_v1_raw_from_digest(sha256(b"fedledger-unavailable|" + data))
        return Submission(data=None, digest=digest, cid=ghost)


@dataclass(frozen=True, kw_only=True)
class WrongBinding(Attack):
    """Re-binds the honest tensors to the next round, or to another trainer. Rejected: WrongBinding.

    `target="round"` names round + 1 (a file prepared for a later round); `target="trainer"`
    names `other_trainer` (default: an address derived from the trainer's own).
    """

    name: ClassVar[str] = "wrong-binding"
    target: Literal["round", "trainer"] = "round"
    other_trainer: str | None = None

    def __post_init__(self) -> None:
        if self.target not in ("round", "trainer"):
            raise ValueError(f"target must be 'round' or 'trainer', got {self.target!r}")

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        if self.target == "round":
            other = replace(binding, round=binding.round + 1)
        else:
            trainer = self.other_trainer or "0x" + sha256(binding.trainer.lower().encode()).hex()[:40]
            if trainer.lower() == binding.trainer.lower():
                raise ValueError("other_trainer is the trainer itself")
            other = replace(binding, trainer=trainer)
        return _consistent(_save(_load(data), other))
