"""The model schema every update and global model file must match."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fedledger.arrays import Array

DTYPE = "F32"  # the only tensor dtype on the wire: float32, little-endian


@dataclass(frozen=True)
class TensorSpec:
    """Name and shape of one float32 tensor."""

    name: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


@dataclass(frozen=True)
class ModelSpec:
    """The ordered tensors of a model. Its hash is the task's on-chain `modelSpecHash`."""

    name: str
    tensors: tuple[TensorSpec, ...]

    @classmethod
    def from_arrays(cls, name: str, arrays: Mapping[str, Array]) -> ModelSpec:
        return cls(
            name, tuple(TensorSpec(k, tuple(int(d) for d in v.shape)) for k, v in sorted(arrays.items()))
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        body = json.loads(text)
        spec = cls(body["name"], tuple(TensorSpec(n, tuple(s)) for n, s in body["tensors"]))
        if spec.canonical_json() != (text.decode() if isinstance(text, bytes) else text):
            raise ValueError("not a canonical spec")
        return spec

    def canonical_json(self) -> str:
        body = {"name": self.name, "dtype": DTYPE, "tensors": [[t.name, list(t.shape)] for t in self.tensors]}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    def hash(self) -> bytes:
        """sha256 of the canonical JSON: 32 bytes."""
        return hashlib.sha256(self.canonical_json().encode()).digest()

    @property
    def parameter_count(self) -> int:
        return sum(t.size for t in self.tensors)

    @property
    def file_size(self) -> int:
        """Bytes of tensor data in a file of this model (headers excluded)."""
        return 4 * self.parameter_count

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {t.name: t.shape for t in self.tensors}
