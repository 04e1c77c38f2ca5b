"""The model schema every update and global model file must match.

A `ModelSpec` names each tensor's shape and dtype. Dtypes are safetensors names, and this
module is the one place that maps them to numpy dtypes (`numpy_dtype`, `dtype_name`): the
codec, the aggregation rules and the PyTorch conversion all go through it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from fedledger.arrays import Array

SPEC_FORMAT = "fedledger-spec/2"
MAX_SPEC_BYTES = 1 << 20  # a canonical spec longer than this is refused by `from_json`
_SPEC_DEPTH = 4  # object > tensors list > [name, shape, dtype] > shape list
# A JSON string, or an unterminated one up to the end: every match attempt from a quote succeeds,
# so the scan stays linear even on quotes and backslashes crafted to make it backtrack.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.|\\\Z)*+(?:"|\Z)', re.DOTALL)
RESERVED_NAME = "__metadata__"  # safetensors keeps this key for the file's metadata

# The dtypes the wire format carries (safetensors name -> numpy dtype, little-endian).
_DTYPES: dict[str, np.dtype[Any]] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype(np.bool_),
}
SUPPORTED_DTYPES = tuple(_DTYPES)
FLOAT_DTYPES = frozenset({"F32", "F16", "BF16"})
"""Float dtypes: upcast exactly to float32 for aggregation, bounded by the codec's value checks."""

# What to convert a tensor of an unsupported dtype to (numpy dtype name -> advice).
_CONVERT_TO = {
    "float64": "F32 (float32)",
    "longdouble": "F32 (float32)",
    "uint16": "I32 (int32)",
    "uint32": "I64 (int64)",
    "uint64": "I64 (int64), if the values fit",
}


def _nesting_depth(text: str) -> int:
    """The deepest nesting of JSON arrays and objects in `text` (brackets inside strings ignored)."""
    brackets = _JSON_STRING.sub("", text).encode("utf-8", "surrogatepass")
    steps = np.frombuffer(brackets, np.uint8)
    depth = np.cumsum((steps == ord("[")) | (steps == ord("{")), dtype=np.int64) - np.cumsum(
        (steps == ord("]")) | (steps == ord("}")), dtype=np.int64
    )
    return int(depth.max()) if depth.size else 0


def numpy_dtype(name: str) -> np.dtype[Any]:
    """The numpy dtype of safetensors dtype `name` (little-endian); ValueError if unsupported."""
    dtype = _DTYPES.get(name)
    if dtype is None:
        raise ValueError(f"dtype {name!r} is not carried by the wire format; supported: {SUPPORTED_DTYPES}")
    return dtype


def dtype_name(dtype: np.dtype[Any] | type, tensor: str = "") -> str:
    """The safetensors name of numpy `dtype` (either byte order).

    Raises
    ------
    ValueError
        If the wire format does not carry `dtype`, naming `tensor` and what to convert it to.
    """
    dtype = np.dtype(dtype)
    native = dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
    for name, supported in _DTYPES.items():
        if native == supported:
            return name
    advice = _CONVERT_TO.get(dtype.name, f"one of {', '.join(SUPPORTED_DTYPES)}")
    what = f"tensor {tensor!r} has" if tensor else "the"
    raise ValueError(
        f"{what} dtype {dtype.name}, which the wire format does not carry: convert it to {advice}"
    )


def is_float(dtype: np.dtype[Any] | str) -> bool:
    """Whether a numpy dtype (or safetensors name) is one of the wire's float dtypes."""
    if isinstance(dtype, str):
        return dtype in FLOAT_DTYPES
    try:
        return dtype_name(dtype) in FLOAT_DTYPES
    except ValueError:
        return False


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype (a safetensors name, see `SUPPORTED_DTYPES`) of one tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "F32"

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            advice = {"F64": "F32"}.get(self.dtype, f"one of {', '.join(SUPPORTED_DTYPES)}")
            raise ValueError(
                f"tensor {self.name!r} has dtype {self.dtype!r}, which the wire format does not carry: "
                f"convert it to {advice}"
            )
        if self.name == RESERVED_NAME:
            raise ValueError(f"{RESERVED_NAME!r} is reserved by safetensors and cannot name a tensor")

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        return _DTYPES[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.size * self.numpy_dtype.itemsize


@dataclass(frozen=True)
class ModelSpec:
    """The ordered tensors of a model. Its hash is the task's on-chain `modelSpecHash`."""

    name: str
    tensors: tuple[TensorSpec, ...]

    def __post_init__(self) -> None:
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"model spec {self.name!r} names tensors more than once: {duplicates}")

    @classmethod
    def from_arrays(cls, name: str, arrays: Mapping[str, Array]) -> ModelSpec:
        """The spec of `arrays`: names sorted, each array's shape and dtype.

        Raises ValueError for an array whose dtype the wire format does not carry (e.g. float64).
        """
        return cls(
            name,
            tuple(
                TensorSpec(k, tuple(int(d) for d in v.shape), dtype_name(v.dtype, k))
                for k, v in sorted(arrays.items())
            ),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        """Parses a canonical spec (what `canonical_json` writes), strictly.

        Meant for a spec fetched from IPFS whose sha256 has been checked against the task's
        `modelSpecHash`: anything but the canonical form is refused, so the spec parsed is
        exactly the one hashed.

        Raises
        ------
        ValueError
            If `text` is too long, not UTF-8 JSON, not shaped like a spec, names an unsupported
            dtype, or is not in canonical form (whitespace, key order, tensor order, escapes).
        """
        if len(text) > MAX_SPEC_BYTES:
            raise ValueError(f"model spec of {len(text)} bytes exceeds the {MAX_SPEC_BYTES}-byte limit")
        try:
            decoded = text.decode("utf-8") if isinstance(text, bytes) else text
            # Checked before parsing: json.loads recurses per level, and a process whose recursion
            # limit was raised (py_ecc sets 100,000) overflows the C stack on "[[[[..." instead of
            # raising RecursionError.
            if _nesting_depth(decoded) > _SPEC_DEPTH:
                raise ValueError(f"nested deeper than a spec's {_SPEC_DEPTH} levels")
            body = json.loads(decoded)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"model spec is not JSON: {exc}") from None
        if not isinstance(body, dict) or set(body) != {"format", "name", "tensors"}:
            raise ValueError('model spec must be an object with exactly "format", "name" and "tensors"')
        if body["format"] != SPEC_FORMAT:
            raise ValueError(f"model spec format is {body['format']!r}, expected {SPEC_FORMAT!r}")
        if not isinstance(body["name"], str) or not isinstance(body["tensors"], list):
            raise ValueError("model spec name must be a string and tensors a list")
        tensors = []
        for index, entry in enumerate(body["tensors"]):
            if not (isinstance(entry, list) and len(entry) == 3):
                raise ValueError(f"model spec tensor {index} is not [name, shape, dtype]")
            name, shape, dtype = entry
            if not isinstance(name, str) or not isinstance(dtype, str) or not isinstance(shape, list):
                raise ValueError(f"model spec tensor {index} is not [name, shape, dtype]")
            # bool is an int in Python: without the exclusion, [true] would pass for shape (1,).
            if not all(type(d) is int and d >= 0 for d in shape):
                raise ValueError(f"model spec tensor {name!r} has an invalid shape {shape}")
            tensors.append(TensorSpec(name, tuple(shape), dtype))
        spec = cls(body["name"], tuple(tensors))
        canonical = spec.canonical_json()
        if (canonical.encode() if isinstance(text, bytes) else canonical) != text:
            raise ValueError("model spec is not in canonical form (compact, sorted keys and tensors)")
        if spec.file_size >= 1 << 63:
            raise ValueError(f"model spec {spec.name!r} describes {spec.file_size} bytes of tensors")
        return spec

    def canonical_json(self) -> str:
        """Compact JSON with sorted keys and tensors sorted by name: what `hash` covers."""
        body = {
            "format": SPEC_FORMAT,
            "name": self.name,
            "tensors": [[t.name, list(t.shape), t.dtype] for t in sorted(self.tensors, key=lambda t: t.name)],
        }
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
        return sum(t.nbytes for t in self.tensors)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {t.name: t.shape for t in self.tensors}

    def dtypes(self) -> dict[str, str]:
        """Each tensor's safetensors dtype name."""
        return {t.name: t.dtype for t in self.tensors}
