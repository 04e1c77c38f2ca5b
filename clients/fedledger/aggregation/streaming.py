"""Aggregation straight from update files, in memory that does not grow with N x P.

The in-memory rules take every update's tensors at once: N x P values. Here the updates stay on
disk, as the canonical safetensors files the codec writes, and are read a piece at a time:

- `fedavg_files` adds a group of updates (16) at a time to a `FedAvgAccumulator`, reading a block
  of coordinates of each at a time: memory O(P) (the int64 sums, and a 4 MiB buffer), whatever N.
- `trimmed_mean_files` and `coordinate_median_files` read `chunk_size` coordinates of every
  update at a time (one positioned read per file and chunk) and reduce them with the same chunk
  kernel as the in-memory rules: memory O(N x chunk_size) plus the O(P) result.

The results are bit-identical to `fedavg`, `trimmed_mean` and `coordinate_median` on the decoded
tensors (the same arithmetic runs on the same values; only where they come from differs), and
do not depend on `chunk_size`.

These rules take float tensors read as float32. A file of another model may also hold F16 or
BF16 tensors (`UpdateFile` reads them as float32, exactly) and integer or bool buffers:
`FloatTensors` shows a rule only the float tensors, and `lower_median_files` aggregates the
others, as `rules.aggregate_files` does (see `aggregation.dtypes`).

`UpdateFile` only locates tensors in a file; it does not validate updates. Files are expected
to have passed `storage.codec.decode` already (or to come from `codec.encode`): the rules still
reject out-of-range values as the in-memory ones do, but bindings and canonical form are the
codec's business.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from fedledger.aggregation.base import CHUNK_SIZE, check_values
from fedledger.aggregation.dtypes import chunks, lower_median_chunk
from fedledger.aggregation.fedavg import FedAvgAccumulator
from fedledger.aggregation.trimmed_mean import check_trim, trim_count, trimmed_chunk
from fedledger.arrays import Array
from fedledger.storage.schema import SUPPORTED_DTYPES, is_float, numpy_dtype

FEDAVG_GROUP = 16  # updates summed at once by `fedavg_files` (see `fixedpoint.accumulate_weighted`)
_HEADER_LENGTH = struct.Struct("<Q")
_MAX_HEADER_BYTES = 1 << 24


class TensorSource(Protocol):
    """Where the streaming rules read an update from: a `FloatTensors` view of an `UpdateFile`, or
    anything that can hand out ranges of flat coordinates of its named tensors as float32."""

    @property
    def layout(self) -> dict[str, tuple[int, ...]]: ...

    def read_range(self, name: str, start: int, stop: int, out: Array | None = None) -> Array: ...


@dataclass(frozen=True)
class TensorExtent:
    """Where a tensor's bytes lie in a file, its shape and its wire dtype."""

    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class UpdateFile:
    """A safetensors file of tensors, read a tensor or a coordinate range at a time.

    Float tensors (F32, F16, BF16) are read as float32, exactly; integer and bool tensors in
    their own dtype. Holds an open file descriptor until `close()` (or the end of a `with` block).

    Raises
    ------
    ValueError
        If the file is not safetensors, or holds a tensor of a dtype the wire format does not
        carry, or whose byte range does not match its shape or lie within the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if sys.byteorder != "little":  # safetensors data is little-endian; reads copy raw bytes
            raise RuntimeError("UpdateFile needs a little-endian machine")
        self.path = Path(path)
        self._fd = -1
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self.extents, self.metadata = _read_index(fd, os.fstat(fd).st_size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @property
    def layout(self) -> dict[str, tuple[int, ...]]:
        return {name: extent.shape for name, extent in self.extents.items()}

    @property
    def dtypes(self) -> dict[str, np.dtype[Any]]:
        """Each tensor's wire dtype (float tensors are nonetheless read as float32)."""
        return {name: extent.dtype for name, extent in self.extents.items()}

    def read(self, name: str, out: Array | None = None) -> Array:
        """Tensor `name` (its shape; float32 if a float tensor), read into `out` (a contiguous
        array of that dtype and of its size, reshaped) when given."""
        extent = self.extents[name]
        flat = self.read_range(name, 0, extent.size, None if out is None else out.reshape(-1))
        return flat.reshape(extent.shape)

    def read_range(self, name: str, start: int, stop: int, out: Array | None = None) -> Array:
        """Flat (C-order) coordinates `start:stop` of tensor `name` as a 1-D array (float32 for a
        float tensor, else its own dtype), read into `out` (contiguous, that dtype, `stop - start`
        values) when given."""
        extent = self.extents[name]
        if not 0 <= start <= stop <= extent.size:
            raise ValueError(f"coordinates {start}:{stop} outside tensor {name!r} of {extent.size} values")
        wanted = np.dtype(np.float32) if is_float(extent.dtype) else extent.dtype
        if out is None:
            out = np.empty(stop - start, wanted)
        elif out.dtype != wanted or out.shape != (stop - start,) or not out.flags.c_contiguous:
            raise ValueError(f"out must be a contiguous {wanted} array of {stop - start} values")
        offset = extent.offset + extent.dtype.itemsize * start
        if extent.dtype == wanted:
            _read_exactly(self._fd, out.view(np.uint8).data, offset)
        else:  # F16 or BF16: read as stored, then upcast (exact)
            raw = np.empty(stop - start, extent.dtype)
            _read_exactly(self._fd, raw.view(np.uint8).data, offset)
            np.copyto(out, raw, casting="unsafe")
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> UpdateFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _read_index(fd: int, file_size: int) -> tuple[dict[str, TensorExtent], dict[str, Any]]:
    head = os.pread(fd, _HEADER_LENGTH.size, 0)
    if len(head) < _HEADER_LENGTH.size:
        raise ValueError("shorter than a safetensors header")
    (length,) = _HEADER_LENGTH.unpack(head)
    data_start = _HEADER_LENGTH.size + length
    if length > _MAX_HEADER_BYTES or data_start > file_size:
        raise ValueError(f"header length {length} does not fit the file")
    try:
        header = json.loads(os.pread(fd, length, _HEADER_LENGTH.size).decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    extents: dict[str, TensorExtent] = {}
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") not in SUPPORTED_DTYPES:
            found = info.get("dtype") if isinstance(info, dict) else None
            raise ValueError(f"tensor {name!r} has dtype {found!r}, not one of {SUPPORTED_DTYPES}")
        dtype = numpy_dtype(info["dtype"])
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not (
            isinstance(shape, list)
            and all(type(d) is int and d >= 0 for d in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int for o in offsets)
        ):
            raise ValueError(f"tensor {name!r} has no valid shape and offsets")
        begin, end = offsets
        if not 0 <= begin <= end <= file_size - data_start or end - begin != dtype.itemsize * math.prod(
            shape
        ):
            raise ValueError(f"tensor {name!r}: bytes {begin}:{end} do not hold shape {shape}")
        extents[name] = TensorExtent(data_start + begin, tuple(shape), dtype)
    return extents, metadata


def _read_exactly(fd: int, buffer: memoryview, offset: int) -> None:
    done = 0
    while done < len(buffer):
        count = os.preadv(fd, [buffer[done:]], offset + done)
        if count == 0:
            raise ValueError("file ended before the tensor did")
        done += count


class FloatTensors:
    """The float tensors of an `UpdateFile`, read as float32: what the float32 rules aggregate.

    Raises ValueError at construction if the file's tensor names or dtypes differ from `dtypes`
    (those of the round's first update).
    """

    def __init__(self, update: UpdateFile, dtypes: dict[str, np.dtype[Any]]) -> None:
        if update.dtypes != dtypes:
            raise ValueError(
                f"updates must have the same tensor names and dtypes: {update.path.name} has "
                f"{_describe(update.dtypes)}, update 0 has {_describe(dtypes)}"
            )
        self.update = update
        self.names = sorted(name for name, dtype in dtypes.items() if is_float(dtype))

    @property
    def layout(self) -> dict[str, tuple[int, ...]]:
        return {name: self.update.extents[name].shape for name in self.names}

    def read_range(self, name: str, start: int, stop: int, out: Array | None = None) -> Array:
        return self.update.read_range(name, start, stop, out)


def _describe(dtypes: dict[str, np.dtype[Any]]) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in sorted(dtypes.items())}


def lower_median_files(
    files: Sequence[UpdateFile], names: Iterable[str], *, chunk_size: int = CHUNK_SIZE
) -> dict[str, Array]:
    """The elementwise lower median (`dtypes.lower_median`) of each integer or bool tensor in
    `names` over `files`, `chunk_size` coordinates of every file at a time; bit-identical to the
    in-memory one.

    Raises
    ------
    ValueError
        If there are no files, they differ in layout or dtypes, or a tensor is a float tensor.
    """
    layout = check_layouts(files)
    dtypes = files[0].dtypes
    for index, update in enumerate(files):
        if update.dtypes != dtypes:
            raise ValueError(
                f"updates must have the same tensor dtypes: update {index} differs from update 0"
            )
    result: dict[str, Array] = {}
    for name in sorted(names):
        shape = layout[name]
        out = np.empty(math.prod(shape), dtypes[name])
        for coordinates in chunks(out.size, chunk_size):
            rows = np.empty((len(files), coordinates.stop - coordinates.start), dtypes[name])
            for row, update in zip(rows, files, strict=True):
                update.read_range(name, coordinates.start, coordinates.stop, row)
            out[coordinates] = lower_median_chunk(rows)
        result[name] = out.reshape(shape)
    return result


def check_layouts(files: Sequence[TensorSource]) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes every file shares; ValueError if there are none or they differ."""
    if not files:
        raise ValueError("no updates to aggregate")
    layout = files[0].layout
    for index, update in enumerate(files):
        if update.layout != layout:
            raise ValueError(
                f"updates must have the same tensor names and shapes: update {index} has "
                f"{update.layout}, update 0 has {layout}"
            )
    return layout


def fedavg_files(
    updates: Iterable[tuple[TensorSource, int]], *, group: int = FEDAVG_GROUP
) -> dict[str, Array]:
    """`fedavg` over `(file, weight)` pairs, bit-identical to it: `group` files at a time, read
    and added a block of coordinates at a time (`FedAvgAccumulator.add_columns`), so memory is the
    int64 sums and a block buffer, whatever the count."""
    if group < 1:
        raise ValueError(f"group must be positive, got {group}")
    accumulator = FedAvgAccumulator()
    batch: list[tuple[TensorSource, int]] = []
    for pair in updates:
        batch.append(pair)
        if len(batch) == group:
            _add_batch(accumulator, batch)
            batch = []
    if batch:
        _add_batch(accumulator, batch)
    return accumulator.result()


def _add_batch(accumulator: FedAvgAccumulator, batch: list[tuple[TensorSource, int]]) -> None:
    files = [update for update, _ in batch]

    def fill(name: str, start: int, stop: int, rows: Array) -> None:
        for row, update in zip(rows, files, strict=True):
            update.read_range(name, start, stop, row)

    accumulator.add_columns(check_layouts(files), [weight for _, weight in batch], fill)


def trimmed_mean_by_count_files(
    files: Sequence[TensorSource], trim: int, *, chunk_size: int = CHUNK_SIZE
) -> dict[str, Array]:
    """`trimmed_mean_by_count` over update files, `chunk_size` coordinates of every file at a time."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    layout = check_layouts(files)
    check_trim(len(files), trim)
    result: dict[str, Array] = {}
    for name, shape in sorted(layout.items()):
        size = math.prod(shape)
        width = max(1, min(chunk_size, size))
        stack = np.empty((len(files), width), np.float32)
        out = np.empty(size, np.float32)
        for start in range(0, size, width):
            stop = min(start + width, size)
            rows = stack if stop - start == width else np.empty((len(files), stop - start), np.float32)
            for row, update in zip(rows, files, strict=True):
                update.read_range(name, start, stop, row)
            check_values(rows)
            out[start:stop] = trimmed_chunk(rows, trim)
        result[name] = out.reshape(shape)
    return result


def trimmed_mean_files(
    files: Sequence[TensorSource], beta: float, *, chunk_size: int = CHUNK_SIZE
) -> dict[str, Array]:
    """`trimmed_mean` over update files; bit-identical to it."""
    return trimmed_mean_by_count_files(files, trim_count(beta, len(files)), chunk_size=chunk_size)


def coordinate_median_files(
    files: Sequence[TensorSource], *, chunk_size: int = CHUNK_SIZE
) -> dict[str, Array]:
    """`coordinate_median` over update files; bit-identical to it."""
    return trimmed_mean_by_count_files(files, (len(files) - 1) // 2, chunk_size=chunk_size)
