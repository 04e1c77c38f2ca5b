"""The canonical update codec: safetensors bytes bound to a task, round, trainer and model.

Encoding is canonical: the same tensors and binding always give the same bytes, so every
aggregator that encodes the same global model produces the same sha256. Decoding never runs
code (safetensors holds raw little-endian numbers and a JSON header; nothing is unpickled) and
rejects anything off-spec with a `RejectionReason`, checking the cheap things (size, header)
before touching tensor data, so a hostile file costs bounded time and memory.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import safetensors.numpy

from fedledger.arrays import Array
from fedledger.chain.params import RejectionReason
from fedledger.storage.schema import DTYPE, ModelSpec

FORMAT = "fedledger/1"
METADATA_KEY = "fedledger"
MAX_HEADER_BYTES = 1 << 20
# Weights beyond this magnitude are never honest, and bounding them keeps the fixed-point
# aggregation exact in int64 (see fedledger.aggregation.fixedpoint).
MAX_ABS_VALUE = 1.0e4
HEADER_SLACK = 1 << 16  # bytes allowed for the JSON header on top of the tensor data

Kind = Literal["update", "model"]


class InvalidUpdateError(ValueError):
    """A file failed validation; `reason` is the code aggregators attest on chain."""

    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(f"{reason.name}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, kw_only=True)
class Binding:
    """What a file is: which task, round and model, and (for updates) whose and how many samples.

    A global model ("model") names no aggregator, so that every honest aggregator writes the
    same bytes; an update names its trainer and sample count, so it cannot be replayed by
    another trainer, in another round, or with another sample count than the one committed.
    """

    kind: Kind
    chain_id: int
    task: str
    round: int
    model_spec: str
    trainer: str = ""
    num_samples: int = 0

    def canonical_json(self) -> str:
        body: dict[str, Any] = {"format": FORMAT, **asdict(self)}
        body["task"] = self.task.lower()
        body["trainer"] = self.trainer.lower()
        return json.dumps(body, sort_keys=True, separators=(",", ":"))


def within_bounds(tensors: Mapping[str, Array]) -> bool:
    """Whether every value is finite and within +-MAX_ABS_VALUE: what `decode` accepts."""
    return all(
        values.size == 0 or bool(np.isfinite(values).all() and np.abs(values).max() <= MAX_ABS_VALUE)
        for values in tensors.values()
    )


def max_file_size(spec: ModelSpec) -> int:
    """The size bound for a file of `spec`: its tensor data plus a generous header allowance."""
    return spec.file_size + HEADER_SLACK


def encode(tensors: Mapping[str, Array], binding: Binding, spec: ModelSpec) -> bytes:
    """Canonical safetensors bytes of `tensors` (float32, exactly the spec's names and shapes)."""
    _check_schema(
        {k: (DTYPE if v.dtype == np.float32 else str(v.dtype), v.shape) for k, v in tensors.items()}, spec
    )
    arrays = {name: np.ascontiguousarray(tensors[name], dtype="<f4") for name in sorted(tensors)}
    return bytes(safetensors.numpy.save(arrays, metadata={METADATA_KEY: binding.canonical_json()}))


def decode(data: bytes, spec: ModelSpec, expected: Binding) -> dict[str, Array]:
    """Validates `data` against `spec` and `expected` and returns its tensors.

    Raises `InvalidUpdateError` with the reason code: Oversize, Malformed (not canonical
    safetensors, wrong names, shapes or dtypes), WrongBinding (metadata for another task,
    round, trainer, model or sample count) or NonFinite (NaN, infinity, or out of range).
    """
    limit = max_file_size(spec)
    if len(data) > limit:
        raise InvalidUpdateError(RejectionReason.OVERSIZE, f"{len(data)} bytes, the limit is {limit}")
    header = _read_header(data)
    metadata = header.pop("__metadata__", None)
    _check_schema(_header_schema(header), spec)
    _check_binding(metadata, expected)
    try:
        tensors = safetensors.numpy.load(bytes(data))
    except Exception as exc:  # the library's errors carry no common base class
        raise InvalidUpdateError(RejectionReason.MALFORMED, f"safetensors refused the file: {exc}") from None
    if encode(tensors, expected, spec) != bytes(data):
        raise InvalidUpdateError(RejectionReason.MALFORMED, "not in canonical form")
    for name, array in tensors.items():
        if not np.all(np.isfinite(array)):
            raise InvalidUpdateError(RejectionReason.NON_FINITE, f"{name} holds NaN or infinity")
        if array.size and float(np.max(np.abs(array))) > MAX_ABS_VALUE:
            raise InvalidUpdateError(RejectionReason.NON_FINITE, f"{name} exceeds |{MAX_ABS_VALUE:g}|")
    return tensors


def _read_header(data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise InvalidUpdateError(RejectionReason.MALFORMED, "shorter than a safetensors header")
    (length,) = struct.unpack("<Q", data[:8])
    if length > MAX_HEADER_BYTES or 8 + length > len(data):
        raise InvalidUpdateError(RejectionReason.MALFORMED, f"header length {length} does not fit the file")
    # Within the size limit, a longer header leaves less than the spec's tensor data. Refused before
    # parsing, whatever the model size: parsed JSON takes up to ~30 times its size in Python objects
    # (`[[]],` is five bytes and two lists), so a 1 MiB header could cost 30 MiB.
    if length > HEADER_SLACK:
        raise InvalidUpdateError(
            RejectionReason.MALFORMED, f"header of {length} bytes exceeds the {HEADER_SLACK}-byte allowance"
        )
    try:
        # Decoded first: json.loads(bytes) would also take UTF-16 and UTF-32 and lone surrogates,
        # where safetensors headers are UTF-8.
        header = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError, but also the int() digit limit
        # (a number of more than 4300 digits); RecursionError is deep nesting ("[[[[..."). Both
        # used to escape decode, and any exception but InvalidUpdateError crashes the aggregator's round.
        raise InvalidUpdateError(RejectionReason.MALFORMED, f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InvalidUpdateError(RejectionReason.MALFORMED, "header is not a JSON object")
    return header


def _header_schema(header: dict[str, Any]) -> dict[str, tuple[str, tuple[int, ...]]]:
    schema: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, info in header.items():
        if not isinstance(info, dict) or not isinstance(info.get("shape"), list):
            raise InvalidUpdateError(RejectionReason.MALFORMED, f"tensor {name!r} has no valid description")
        shape, dtype = info["shape"], info.get("dtype")
        # bool is an int in Python: without the exclusion, [true, 4] would pass for shape (1, 4).
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise InvalidUpdateError(RejectionReason.MALFORMED, f"tensor {name!r} has an invalid shape")
        if not isinstance(dtype, str):  # a name, not str() of whatever JSON stands in its place
            raise InvalidUpdateError(RejectionReason.MALFORMED, f"tensor {name!r} has no string dtype")
        schema[name] = (dtype, tuple(shape))
    return schema


def _check_schema(schema: Mapping[str, tuple[str, tuple[int, ...]]], spec: ModelSpec) -> None:
    expected = spec.shapes()
    if set(schema) != set(expected):
        missing = sorted(set(expected) - set(schema))
        extra = sorted(set(schema) - set(expected))
        raise InvalidUpdateError(
            RejectionReason.MALFORMED, f"tensor names differ: missing {missing}, extra {extra}"
        )
    for name, (dtype, shape) in schema.items():
        if dtype != DTYPE:
            raise InvalidUpdateError(RejectionReason.MALFORMED, f"{name} has dtype {dtype}, expected {DTYPE}")
        if tuple(shape) != expected[name]:
            raise InvalidUpdateError(
                RejectionReason.MALFORMED, f"{name} has shape {tuple(shape)}, expected {expected[name]}"
            )


def _check_binding(metadata: Any, expected: Binding) -> None:
    if not isinstance(metadata, dict) or not isinstance(metadata.get(METADATA_KEY), str):
        raise InvalidUpdateError(RejectionReason.MALFORMED, f"no {METADATA_KEY!r} metadata")
    if metadata[METADATA_KEY] != expected.canonical_json():
        raise InvalidUpdateError(
            RejectionReason.WRONG_BINDING,
            f"metadata {metadata[METADATA_KEY][:200]} does not match {expected.canonical_json()}",
        )
