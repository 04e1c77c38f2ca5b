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
import safetensors
import safetensors.numpy

from fedledger.arrays import Array
from fedledger.chain.params import RejectionReason
from fedledger.storage.schema import ModelSpec, dtype_name, is_float, numpy_dtype

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
    """Whether every float value is finite and within +-MAX_ABS_VALUE: what `decode` accepts.
    Integer and bool tensors are not bounded."""
    return all(_value_problem(values) is None for values in tensors.values())


def _value_problem(values: Array) -> str | None:
    """Why a float tensor's values are refused (None if they are fine, or the tensor is not float)."""
    if values.size == 0 or not is_float(values.dtype):
        return None
    wide = values.astype(np.float32, copy=False)  # exact for F16 and BF16
    if not np.all(np.isfinite(wide)):
        return "holds NaN or infinity"
    if float(np.max(np.abs(wide))) > MAX_ABS_VALUE:
        return f"exceeds |{MAX_ABS_VALUE:g}|"
    return None


def max_file_size(spec: ModelSpec) -> int:
    """The size bound for a file of `spec`: its tensor data plus a generous header allowance."""
    return spec.file_size + HEADER_SLACK


def encode(tensors: Mapping[str, Array], binding: Binding, spec: ModelSpec) -> bytes:
    """Canonical safetensors bytes of `tensors`: exactly the spec's names, shapes and dtypes.

    Nothing is cast: an array whose dtype is not its tensor's (say float64 or float32 for an F16
    tensor) is refused with `InvalidUpdateError` (Malformed), as are other names or shapes.
    """
    _check_schema({k: (_name_of(v.dtype), v.shape) for k, v in tensors.items()}, spec)
    # np.asarray, not np.ascontiguousarray, which turns a scalar (shape ()) into shape (1,).
    arrays = {
        name: np.asarray(tensors[name], dtype=numpy_dtype(_name_of(tensors[name].dtype)), order="C")
        for name in sorted(tensors)
    }
    return bytes(safetensors.numpy.save(arrays, metadata={METADATA_KEY: binding.canonical_json()}))


def read_tensors(data: bytes) -> dict[str, Array]:
    """The tensors of safetensors `data`, each in its wire dtype (BF16 as `ml_dtypes.bfloat16`),
    without any of `decode`'s checks: for bytes already trusted (one's own, or decoded before).

    Raises
    ------
    ValueError
        If safetensors refuses the bytes or a tensor has a dtype the wire format does not carry.
    """
    try:
        views = safetensors.deserialize(bytes(data))  # type: ignore[no-untyped-call]
    except Exception as exc:  # the library's errors carry no common base class
        raise ValueError(f"safetensors refused the file: {exc}") from None
    return {
        name: np.frombuffer(view["data"], dtype=numpy_dtype(view["dtype"])).reshape(view["shape"])
        for name, view in views
    }


def decode(data: bytes, spec: ModelSpec, expected: Binding) -> dict[str, Array]:
    """Validates `data` against `spec` and `expected` and returns its tensors.

    Raises `InvalidUpdateError` with the reason code: Oversize, Malformed (not canonical
    safetensors, wrong names, shapes or dtypes), WrongBinding (metadata for another task,
    round, trainer, model or sample count) or NonFinite (a float that is NaN, infinite or out of
    range). Tensors keep their wire dtype (BF16 as `ml_dtypes.bfloat16`).
    """
    limit = max_file_size(spec)
    if len(data) > limit:
        raise InvalidUpdateError(RejectionReason.OVERSIZE, f"{len(data)} bytes, the limit is {limit}")
    header = _read_header(data)
    metadata = header.pop("__metadata__", None)
    _check_schema(_header_schema(header), spec)
    _check_binding(metadata, expected)
    try:
        tensors = read_tensors(data)  # the header's dtypes are the spec's: all supported
    except ValueError as exc:
        raise InvalidUpdateError(RejectionReason.MALFORMED, str(exc)) from None
    if encode(tensors, expected, spec) != bytes(data):
        raise InvalidUpdateError(RejectionReason.MALFORMED, "not in canonical form")
    for name, array in tensors.items():
        # Any non-zero byte reads as True: only 0 and 1 are canonical, so equal bools are equal bytes.
        if array.dtype == np.bool_ and array.size and array.view(np.uint8).max() > 1:
            raise InvalidUpdateError(RejectionReason.MALFORMED, f"{name} holds bool bytes other than 0 and 1")
        problem = _value_problem(array)
        if problem is not None:
            raise InvalidUpdateError(RejectionReason.NON_FINITE, f"{name} {problem}")
    return tensors


def _name_of(dtype: np.dtype[Any]) -> str:
    """The safetensors name of an array's dtype, or numpy's name for one the wire does not carry
    (so that the schema check reports it as a mismatch)."""
    try:
        return dtype_name(dtype)
    except ValueError:
        return str(dtype)


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
    dtypes = spec.dtypes()
    for name, (dtype, shape) in schema.items():
        if dtype != dtypes[name]:
            raise InvalidUpdateError(
                RejectionReason.MALFORMED, f"{name} has dtype {dtype}, expected {dtypes[name]}"
            )
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
