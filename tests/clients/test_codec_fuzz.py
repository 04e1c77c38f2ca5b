"""Hostile update files: every one is rejected with a reason code, in bounded time and memory,
no pickled code ever runs, and the aggregator's round survives them.

Any exception other than `InvalidUpdateError` escaping `decode` is a bug: `verify` turns only
that one into a verdict, so anything else takes down the aggregator's whole round.

Property tests are derandomized (same examples on every run) and bounded in size and count, so
the file runs in a few seconds; the worst cases for time and memory are listed explicitly.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import pickle
import struct
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy
from fakes import FakeIpfs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_codec import BINDING, SPEC, TRAINER, reason_of, tensors

import fedledger.aggregator.verification
import fedledger.storage.codec
from fedledger.aggregator.round_result import RoundContext, compute_round, model_binding
from fedledger.aggregator.verification import Commit, Verdict, update_binding, verify
from fedledger.chain.params import AggregationRule, RejectionReason
from fedledger.storage.codec import (
    HEADER_SLACK,
    MAX_ABS_VALUE,
    MAX_HEADER_BYTES,
    METADATA_KEY,
    Binding,
    InvalidUpdateError,
    decode,
    encode,
    max_file_size,
)
from fedledger.storage.schema import ModelSpec, TensorSpec

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)
MiB = 1 << 20

VALID = encode(tensors(), BINDING, SPEC)
LIMIT = max_file_size(SPEC)
(HEADER_LENGTH,) = struct.unpack("<Q", VALID[:8])
DATA_START = 8 + HEADER_LENGTH
DATA = VALID[DATA_START:]  # the tensor bytes of VALID, exactly SPEC.file_size of them
TAMPERED_HEADER = (RejectionReason.MALFORMED, RejectionReason.WRONG_BINDING)  # a binding may survive

ODD_DTYPES: list[object] = ["F16", "F64", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "F8_E5M2"]
ODD_DTYPES += ["f32", "F32 ", "", "garbage", None, 32, ["F32"], {"F32": 1}]
BAD_SHAPES: list[object] = [
    [2**40, 2**40],  # 2**80 elements: must be refused, never allocated
    [2**64 - 1],
    [2**64, 3],
    [-1],
    [3.0],
    [True, True, True],
    ["3"],
    [None],
    [[3]],
    [],
    "3",
    3,
    None,
    {"0": 3},
]


def header_of(data: bytes = VALID) -> dict[str, Any]:
    """The JSON header of a canonical file."""
    (length,) = struct.unpack("<Q", data[:8])
    header: dict[str, Any] = json.loads(data[8 : 8 + length])
    return header


def with_header_text(text: bytes, data: bytes = DATA) -> bytes:
    """A file with `text` as its header, honestly sized, followed by `data`."""
    return struct.pack("<Q", len(text)) + text + data


def with_header(header: object, data: bytes = DATA) -> bytes:
    return with_header_text(json.dumps(header).encode(), data)


def edited(edit: Callable[[dict[str, Any]], None], data: bytes = VALID) -> bytes:
    """The canonical file `data` with its header changed by `edit` (tensor bytes unchanged)."""
    header = header_of(data)
    edit(header)
    return with_header(header, data[8 + struct.unpack("<Q", data[:8])[0] :])


def nested(depth: int, leaf: bytes = b"0") -> bytes:
    """JSON text nesting lists and objects `depth` levels deep."""
    opening, closing = b'[{"a":' * (depth // 2), b"}]" * (depth // 2)
    return opening + leaf + closing


class Exploit:
    """Unpickling this object creates `marker` (a real payload: see the control tests)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def payload_writing(marker: Path) -> bytes:
    """A pickle that creates `marker` when unpickled."""
    return pickle.dumps(Exploit(marker))


# --- random and damaged bytes -----------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096))
def test_decode__random_bytes__malformed(data: bytes) -> None:
    assert reason_of(data) == RejectionReason.MALFORMED


@FUZZ
@given(st.integers(1, 4 * LIMIT), st.binary(min_size=1, max_size=64))
def test_decode__random_bytes_over_the_size_limit__oversize(excess: int, pattern: bytes) -> None:
    data = (pattern * (1 + (LIMIT + excess) // len(pattern)))[: LIMIT + excess]
    assert reason_of(data) == RejectionReason.OVERSIZE


@FUZZ
@given(st.binary(max_size=HEADER_SLACK // 4))
def test_decode__random_header_text_with_a_true_length__malformed(text: bytes) -> None:
    assert reason_of(with_header_text(text)) == RejectionReason.MALFORMED


@FUZZ
@given(st.integers(0, len(VALID) - 1))
def test_decode__truncated_at_any_point__malformed(end: int) -> None:
    assert reason_of(VALID[:end]) == RejectionReason.MALFORMED


@FUZZ
@given(st.binary(min_size=1, max_size=LIMIT - len(VALID)))
def test_decode__bytes_appended_within_the_limit__malformed(extra: bytes) -> None:
    assert reason_of(VALID + extra) == RejectionReason.MALFORMED


@FUZZ
@given(st.integers(1, 3 * LIMIT))
def test_decode__bytes_appended_beyond_the_limit__oversize(excess: int) -> None:
    assert reason_of(VALID + b"\0" * (LIMIT - len(VALID) + excess)) == RejectionReason.OVERSIZE


@FUZZ
@given(st.lists(st.tuples(st.integers(0, DATA_START - 1), st.integers(1, 255)), min_size=1, max_size=4))
def test_decode__byte_flips_in_the_header__malformed_or_wrong_binding(flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for position, mask in flips:
        data[position] ^= mask
    if bytes(data) != VALID:  # two flips of one byte can cancel out
        assert reason_of(bytes(data)) in TAMPERED_HEADER


@FUZZ
@given(
    st.lists(st.tuples(st.integers(DATA_START, len(VALID) - 1), st.integers(1, 255)), min_size=1, max_size=4)
)
def test_decode__byte_flips_in_the_data__accepted_as_read_or_non_finite(flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for position, mask in flips:
        data[position] ^= mask
    values = np.frombuffer(bytes(data[DATA_START:]), "<f4")
    if np.all(np.isfinite(values)) and float(np.max(np.abs(values))) <= MAX_ABS_VALUE:
        decoded = decode(bytes(data), SPEC, BINDING)  # a valid file: verify's digest check catches it
        np.testing.assert_array_equal(np.concatenate([decoded[k].ravel() for k in sorted(decoded)]), values)
    else:
        assert reason_of(bytes(data)) == RejectionReason.NON_FINITE


@FUZZ
@given(arrays(np.float32, (3, 4), elements=st.floats(width=32)))
def test_decode__any_float32_values__accepted_or_non_finite(weight: np.ndarray) -> None:
    data = encode({"fc.weight": weight, "fc.bias": tensors()["fc.bias"]}, BINDING, SPEC)
    if np.all(np.isfinite(weight)) and float(np.max(np.abs(weight))) <= MAX_ABS_VALUE:
        np.testing.assert_array_equal(decode(data, SPEC, BINDING)["fc.weight"], weight)
    else:
        assert reason_of(data) == RejectionReason.NON_FINITE


# --- headers whose declared length lies -----------------------------------------------------


@pytest.mark.parametrize(
    "length",
    [
        *(0, 1, 2, HEADER_LENGTH - 1, HEADER_LENGTH + 1, len(VALID) - 8, len(VALID), LIMIT),
        *(MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1, 2**32, 2**63, 2**64 - 1),
    ],
)
def test_decode__lying_header_length__malformed(length: int) -> None:
    assert reason_of(struct.pack("<Q", length) + VALID[8:]) == RejectionReason.MALFORMED


@FUZZ
@given(st.integers(0, 2**64 - 1).filter(lambda n: n != HEADER_LENGTH))
def test_decode__any_other_header_length__malformed(length: int) -> None:
    assert reason_of(struct.pack("<Q", length) + VALID[8:]) == RejectionReason.MALFORMED


def test_decode__header_beyond_the_allowance__malformed_before_parsing() -> None:
    big = ModelSpec("big", (TensorSpec("w", (HEADER_SLACK, 2)),))  # room for a big header
    text = b"[" + b"[]," * (HEADER_SLACK // 3) + b"[]]"
    with pytest.raises(InvalidUpdateError, match="allowance") as info:
        decode(with_header_text(text, b""), big, BINDING)
    assert info.value.reason == RejectionReason.MALFORMED


def test_decode__header_beyond_max_header_bytes__malformed_before_parsing() -> None:
    big = ModelSpec("big", (TensorSpec("w", (MAX_HEADER_BYTES // 4, 2)),))  # room for a huge header
    text = b" " * (MAX_HEADER_BYTES + 1)
    with pytest.raises(InvalidUpdateError, match="does not fit") as info:
        decode(with_header_text(text, b""), big, BINDING)
    assert info.value.reason == RejectionReason.MALFORMED


# --- header JSON that parses but describes something else -----------------------------------


@pytest.mark.parametrize("shape", BAD_SHAPES, ids=repr)
def test_decode__bad_shape__malformed(shape: object) -> None:
    def edit(header: dict[str, Any]) -> None:
        header["fc.bias"]["shape"] = shape

    assert reason_of(edited(edit)) == RejectionReason.MALFORMED


def test_decode__true_as_a_dimension__malformed_as_an_invalid_shape() -> None:
    """JSON `true` is no dimension, though Python's bool compares equal to 1."""
    spec = ModelSpec("ones", (TensorSpec("w", (1, 3)),))
    data = encode({"w": np.ones((1, 3), np.float32)}, BINDING, spec)

    def edit(header: dict[str, Any]) -> None:
        header["w"]["shape"] = [True, 3]

    with pytest.raises(InvalidUpdateError, match="invalid shape") as info:
        decode(edited(edit, data), spec, BINDING)
    assert info.value.reason == RejectionReason.MALFORMED


@pytest.mark.parametrize("dtype", ODD_DTYPES, ids=repr)
def test_decode__odd_dtype__malformed(dtype: object) -> None:
    def edit(header: dict[str, Any]) -> None:
        header["fc.weight"]["dtype"] = dtype

    assert reason_of(edited(edit)) == RejectionReason.MALFORMED


@pytest.mark.parametrize(
    "offsets",
    [
        {"fc.bias": [0, 2**64 - 1]},  # out of range
        {"fc.bias": [0, 2**64]},
        {"fc.bias": [48, 60], "fc.weight": [0, 48]},  # valid, but not the canonical layout
        {"fc.bias": [0, 12], "fc.weight": [0, 48]},  # overlapping
        {"fc.bias": [12, 0]},  # reversed
        {"fc.bias": [-12, 0]},
        {"fc.bias": [0.0, 12.0]},
        {"fc.bias": [0]},
        {"fc.bias": [0, 12, 24]},
        {"fc.bias": None},
        {"fc.bias": "0-12"},
    ],
    ids=repr,
)
def test_decode__bad_data_offsets__malformed(offsets: dict[str, object]) -> None:
    def edit(header: dict[str, Any]) -> None:
        for name, value in offsets.items():
            header[name]["data_offsets"] = value

    assert reason_of(edited(edit)) == RejectionReason.MALFORMED


def test_decode__extra_tensor_named_in_the_header__malformed() -> None:
    def edit(header: dict[str, Any]) -> None:
        header["fc.extra"] = {"dtype": "F32", "shape": [0], "data_offsets": [60, 60]}

    assert reason_of(edited(edit)) == RejectionReason.MALFORMED


def test_decode__tensor_missing_from_the_header__malformed() -> None:
    def edit(header: dict[str, Any]) -> None:
        del header["fc.bias"]

    assert reason_of(edited(edit)) == RejectionReason.MALFORMED


@pytest.mark.parametrize("header", [[], [1, 2], 0, 1.5, "x", None, True], ids=repr)
def test_decode__header_not_a_json_object__malformed(header: object) -> None:
    assert reason_of(with_header(header)) == RejectionReason.MALFORMED


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(st.sampled_from(["fc.bias", "fc.weight"]), st.sampled_from(["dtype", "shape", "data_offsets"]), JSON)
def test_decode__any_json_in_a_tensor_field__malformed(name: str, field: str, value: object) -> None:
    original = header_of()[name][field]
    if json.dumps(value) != json.dumps(original):

        def edit(header: dict[str, Any]) -> None:
            header[name][field] = value

        assert reason_of(edited(edit)) == RejectionReason.MALFORMED


BINDING_LIKE = st.builds(
    lambda value, rest: {**rest, METADATA_KEY: value},
    JSON | st.text(max_size=40),
    st.dictionaries(st.text(max_size=8), JSON, max_size=3),
)


@FUZZ
@given(JSON | BINDING_LIKE)
def test_decode__any_json_as_metadata__wrong_binding_only_for_a_foreign_binding(metadata: object) -> None:
    def edit(header: dict[str, Any]) -> None:
        header["__metadata__"] = metadata

    names_a_binding = isinstance(metadata, dict) and isinstance(metadata.get(METADATA_KEY), str)
    expected = RejectionReason.WRONG_BINDING if names_a_binding else RejectionReason.MALFORMED
    assert reason_of(edited(edit)) == expected


# --- metadata and parser edge cases ---------------------------------------------------------


@pytest.fixture(params=[1_000, 100_000], ids=["default-recursion-limit", "raised-recursion-limit"])
def recursion_limit(request: pytest.FixtureRequest) -> Iterator[int]:
    """Python's default recursion limit, as in the aggregator, where json.loads raises
    RecursionError on deep nesting; and the 100,000 that py_ecc (imported by ape) sets in the
    test process, where the deepest header that fits the allowance parses."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(request.param)
    try:
        yield request.param
    finally:
        sys.setrecursionlimit(previous)


@pytest.mark.parametrize("depth", [100, 1_000, 10_000])
def test_decode__deeply_nested_metadata__malformed(depth: int, recursion_limit: int) -> None:
    """10k levels fit the header allowance."""
    text = (
        json.dumps(header_of())
        .encode()
        .replace(b'"__metadata__": {', b'"deep": ' + nested(depth) + b', "__metadata__": {')
    )
    assert len(text) < HEADER_SLACK
    assert reason_of(with_header_text(text)) == RejectionReason.MALFORMED


@pytest.mark.parametrize("depth", [1_000, 10_000])
def test_decode__deeply_nested_binding_value__malformed(depth: int, recursion_limit: int) -> None:
    text = b'{"__metadata__": {"fedledger": ' + nested(depth) + b"}}"
    assert reason_of(with_header_text(text)) == RejectionReason.MALFORMED


def test_decode__deepest_nesting_that_fits__malformed(recursion_limit: int) -> None:
    depth = (HEADER_SLACK - 16) // 2
    assert reason_of(with_header_text(b"[" * depth + b"]" * depth)) == RejectionReason.MALFORMED


@pytest.mark.parametrize("value", [1, 1.5, None, True, [], {}, [BINDING.canonical_json()]], ids=repr)
def test_decode__non_string_binding__malformed(value: object) -> None:
    def edit(header: dict[str, Any]) -> None:
        header["__metadata__"][METADATA_KEY] = value

    assert reason_of(edited(edit)) == RejectionReason.MALFORMED


def test_decode__giant_foreign_binding_string__wrong_binding() -> None:
    def edit(header: dict[str, Any]) -> None:
        header["__metadata__"][METADATA_KEY] = "x" * (HEADER_SLACK - 1024)

    assert reason_of(edited(edit)) == RejectionReason.WRONG_BINDING


def test_decode__giant_extra_metadata__malformed() -> None:
    def edit(header: dict[str, Any]) -> None:
        header["__metadata__"]["padding"] = "x" * (HEADER_SLACK - 1024)

    assert reason_of(edited(edit)) == RejectionReason.MALFORMED


def test_decode__metadata_beyond_the_header_allowance__oversize() -> None:
    def edit(header: dict[str, Any]) -> None:
        header["__metadata__"]["padding"] = "x" * HEADER_SLACK

    assert reason_of(edited(edit)) == RejectionReason.OVERSIZE


def test_decode__number_beyond_the_int_digit_limit__malformed() -> None:
    """Python refuses to parse ints over 4300 digits with a plain ValueError, not a JSON error."""
    text = b'{"fc.bias": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 12]}}'
    assert reason_of(with_header_text(text)) == RejectionReason.MALFORMED


def canonical_text() -> bytes:
    return VALID[8:DATA_START]


def honest_entry(name: str) -> bytes:
    return json.dumps(header_of()[name], separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "duplicate",
    [
        # Python's json keeps the last of duplicate keys; a parser that kept the first would see
        # other tensors. Either way the file is not canonical.
        b'"fc.bias":{"dtype":"F64","shape":[3],"data_offsets":[0,24]},',
        b'"fc.weight":' + honest_entry("fc.weight") + b",",
        b'"__metadata__":{"fedledger":"{}"},',
    ],
    ids=["tensor", "identical-tensor", "metadata"],
)
def test_decode__duplicate_json_keys__malformed(duplicate: bytes) -> None:
    text = b"{" + duplicate + canonical_text()[1:]
    assert reason_of(with_header_text(text)) == RejectionReason.MALFORMED


def test_decode__duplicate_field_inside_a_tensor__malformed() -> None:
    entry = honest_entry("fc.bias")
    text = canonical_text().replace(entry, b'{"shape":[1],' + entry[1:])
    assert reason_of(with_header_text(text)) == RejectionReason.MALFORMED


@pytest.mark.parametrize(
    "text",
    [
        canonical_text().replace(b"fedledger/1", b"fedledger/\xff"),  # invalid UTF-8
        canonical_text().replace(b"fedledger/1", b"fedledger/\xc0\xb1"),  # overlong "1"
        canonical_text().replace(b"fedledger/1", b"fedledger/\xed\xa0\x80"),  # a UTF-16 surrogate
        b"\xef\xbb\xbf" + canonical_text(),  # a UTF-8 byte order mark
        canonical_text().decode().encode("utf-16"),
        canonical_text().decode().encode("utf-32-le"),
        canonical_text().decode().encode("latin-1").replace(b"fc.", b"f\xe7."),
    ],
    ids=["invalid", "overlong", "surrogate", "bom", "utf-16", "utf-32", "latin-1"],
)
def test_decode__header_not_plain_utf8__malformed(text: bytes) -> None:
    assert reason_of(with_header_text(text)) == RejectionReason.MALFORMED


def test_decode__non_json_literals__malformed() -> None:
    """Python's json accepts NaN and Infinity; a safetensors header never holds them."""
    text = canonical_text().replace(b'"shape":[3]', b'"shape":[NaN]')
    assert reason_of(with_header_text(text)) == RejectionReason.MALFORMED


# --- bounded time and memory ----------------------------------------------------------------

# 1 MiB of tensor data: files up to its size limit can declare a header of MAX_HEADER_BYTES.
BIG = ModelSpec("big", (TensorSpec("w", (512, 512)),))
BIG_VALID = encode(
    {"w": np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)}, BINDING, BIG
)
BIG_DATA = BIG_VALID[8 + struct.unpack("<Q", BIG_VALID[:8])[0] :]


def big_with_nan() -> bytes:
    return BIG_VALID[:-4] + struct.pack("<f", float("nan"))


def big_json_bomb(size: int) -> bytes:
    """`size` bytes of `[[]],`: about 30 bytes of Python objects per byte once parsed."""
    return b"[" + b"[[]]," * ((size - 6) // 5) + b"[]]"


WORST_CASES: dict[str, Callable[[], bytes]] = {
    "valid": lambda: BIG_VALID,
    "nan-in-the-last-value": big_with_nan,
    "random-bytes-at-the-limit": lambda: np.random.default_rng(1).bytes(max_file_size(BIG)),
    "header-length-2**64-1": lambda: struct.pack("<Q", 2**64 - 1) + BIG_VALID[8:],
    "header-length-max": lambda: with_header_text(b" " * MAX_HEADER_BYTES, b""),
    "huge-shape": lambda: edited(lambda h: h["w"].update(shape=[2**40, 2**40]), BIG_VALID),
    "json-bomb-without-data": lambda: with_header_text(big_json_bomb(MAX_HEADER_BYTES), b""),
    "json-bomb-in-the-allowance": lambda: with_header_text(big_json_bomb(HEADER_SLACK - 16), BIG_DATA),
    "nesting-in-the-allowance": lambda: with_header_text(nested(HEADER_SLACK // 8), BIG_DATA),
    "giant-binding": lambda: edited(
        lambda h: h["__metadata__"].update(fedledger="x" * (HEADER_SLACK - 1024)), BIG_VALID
    ),
    "pickle": lambda: pickle.dumps({"w": list(range(200_000))}),
}

# decode holds at most four file-sized buffers at once: the tensors copied out of the file,
# their canonical re-encoding (compared with the file), and numpy temporaries of the value
# checks (np.abs copies a tensor, np.isfinite adds a quarter of one); the input itself is
# allocated before tracing starts. On top of that, the parsed JSON header: decode refuses
# headers over HEADER_SLACK bytes before parsing them, and parsing expands JSON at most ~32-fold
# into Python objects (`[[]],`, five bytes, becomes two lists and a slot), plus the text
# decoded to str. Measured: 3.0 MiB for a valid 1 MiB file, 2.0 MiB for a 64 KiB JSON bomb.
JSON_EXPANSION = 40


def memory_bound(spec: ModelSpec) -> int:
    return 4 * max_file_size(spec) + JSON_EXPANSION * HEADER_SLACK


def outcome(data: bytes, spec: ModelSpec) -> RejectionReason:
    try:
        decode(data, spec, BINDING)
    except InvalidUpdateError as exc:
        return exc.reason
    return RejectionReason.NONE


@pytest.mark.parametrize("case", WORST_CASES)
def test_decode__worst_case_input__peak_memory_bounded(case: str) -> None:
    data = WORST_CASES[case]()
    tracemalloc.start()
    try:
        reason = outcome(data, BIG)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (reason == RejectionReason.NONE) == (case == "valid")
    assert peak < memory_bound(BIG), f"{case}: peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("case", WORST_CASES)
def test_decode__worst_case_input__finishes_quickly(case: str) -> None:
    """A guard against pathological (e.g. quadratic) work, not a benchmark: 2 s is generous."""
    data = WORST_CASES[case]()
    start = time.perf_counter()
    reason = outcome(data, BIG)
    elapsed = time.perf_counter() - start
    assert (reason == RejectionReason.NONE) == (case == "valid")
    assert elapsed < 2.0, f"{case}: {elapsed:.2f} s"


# --- pickle payloads never run --------------------------------------------------------------


def commit_of(ipfs: FakeIpfs, data: bytes, trainer: str = TRAINER, num_samples: int = 600) -> Commit:
    return Commit(
        trainer=trainer, digest=hashlib.sha256(data).digest(), cid=ipfs.put(data), num_samples=num_samples
    )


def verdict_of(data: bytes) -> Verdict:
    ipfs = FakeIpfs()
    return verify(commit_of(ipfs, data), ipfs.fetch, SPEC, BINDING)


def torch_file(payload: Any) -> bytes:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"fc.weight": payload, "fc.bias": torch.zeros(3)}, buffer)
    return buffer.getvalue()


def test_pickle_payload__is_live__control(tmp_path: Path) -> None:
    """The payload really writes its marker when unpickled, so its absence below means something."""
    marker = tmp_path / "control"
    pickle.loads(payload_writing(marker))
    assert marker.exists()


def test_pickle_payload__inside_a_torch_file__is_live__control(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "control"
    torch.load(io.BytesIO(torch_file(Exploit(marker))), weights_only=False)
    assert marker.exists()


def pickle_files(marker: Path) -> dict[str, bytes]:
    payload = payload_writing(marker)
    as_text = payload.decode("latin-1")
    return {
        "whole-file": payload,
        "torch-save": torch_file(Exploit(marker)),
        "extra-metadata": bytes(
            safetensors.numpy.save(tensors(), metadata={METADATA_KEY: BINDING.canonical_json(), "p": as_text})
        ),
        "binding-metadata": bytes(safetensors.numpy.save(tensors(), metadata={METADATA_KEY: as_text})),
        "header-key": edited(
            lambda h: h.update({as_text: {"dtype": "F32", "shape": [0], "data_offsets": [60, 60]}})
        ),
        "tensor-data": bytes(
            safetensors.numpy.save(
                {**tensors(), "payload": np.frombuffer(payload, np.uint8)},
                metadata={METADATA_KEY: BINDING.canonical_json()},
            )
        ),
        "appended": VALID + payload,
    }


PICKLE_REASONS = {
    "whole-file": RejectionReason.MALFORMED,
    "torch-save": RejectionReason.MALFORMED,
    "extra-metadata": RejectionReason.MALFORMED,
    "binding-metadata": RejectionReason.WRONG_BINDING,
    "header-key": RejectionReason.MALFORMED,
    "tensor-data": RejectionReason.MALFORMED,
    "appended": RejectionReason.MALFORMED,
}


@pytest.mark.parametrize("case", PICKLE_REASONS)
def test_decode__pickle_payload__rejected_and_never_run(case: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle_files(marker)[case]
    assert reason_of(data) == PICKLE_REASONS[case]
    assert not marker.exists()


@pytest.mark.parametrize("case", PICKLE_REASONS)
def test_verify__pickle_payload__rejected_and_never_run(case: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    verdict = verdict_of(pickle_files(marker)[case])
    assert verdict.reason == PICKLE_REASONS[case] and verdict.tensors is None
    assert not marker.exists()


FORBIDDEN_IMPORTS = {"pickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "torch"}
FORBIDDEN_CALLS = {"np.load", "numpy.load", "torch.load", "pickle.load", "pickle.loads", "eval", "exec"}


@pytest.mark.parametrize("module", [fedledger.storage.codec, fedledger.aggregator.verification])
def test_decoding_modules__never_import_unpicklers(module: Any) -> None:
    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        (node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    called = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert not imported & FORBIDDEN_IMPORTS
    assert not called & FORBIDDEN_CALLS
    assert "allow_pickle" not in Path(module.__file__).read_text()


# --- the aggregator's round survives hostile commits ----------------------------------------

CONTEXT = RoundContext(
    chain_id=BINDING.chain_id,
    task=BINDING.task,
    round_number=BINDING.round,
    model_version=3,
    sample_cap=1_000,
    rule=AggregationRule.FEDAVG,
    rule_param=0,
)


def trainer(i: int) -> str:
    return "0x" + f"{i:040x}"


def binding_for(i: int, num_samples: int = 10) -> Binding:
    draft = Commit(trainer=trainer(i), digest=b"", cid="", num_samples=num_samples)
    return update_binding(
        draft, chain_id=CONTEXT.chain_id, task=CONTEXT.task, round_number=CONTEXT.round_number, spec=SPEC
    )


def honest_file(i: int, value: float) -> bytes:
    return encode(
        {"fc.weight": np.full((3, 4), value, np.float32), "fc.bias": np.full(3, value, np.float32)},
        binding_for(i),
        SPEC,
    )


def test_compute_round__hostile_commits__all_rejected_valid_ones_aggregated(
    tmp_path: Path, recursion_limit: int
) -> None:
    marker = tmp_path / "pwned"
    deep = with_header_text(b'{"__metadata__": {"fedledger": ' + nested(10_000) + b"}}")
    digits = with_header_text(b'{"fc.bias": {"shape": [' + b"9" * 5000 + b"]}}")
    hostile: dict[int, tuple[bytes, RejectionReason]] = {
        3: (np.random.default_rng(3).bytes(700), RejectionReason.MALFORMED),
        4: (struct.pack("<Q", 2**64 - 1) + honest_file(4, 1.0)[8:], RejectionReason.MALFORMED),
        5: (payload_writing(marker), RejectionReason.MALFORMED),
        6: (torch_file(Exploit(marker)), RejectionReason.MALFORMED),
        7: (deep, RejectionReason.MALFORMED),
        8: (digits, RejectionReason.MALFORMED),
        9: (
            edited(lambda h: h["fc.weight"].update(shape=[2**40, 2**40]), honest_file(9, 1.0)),
            RejectionReason.MALFORMED,
        ),
        10: (honest_file(10, 1.0)[:-7], RejectionReason.MALFORMED),
        11: (honest_file(11, 1.0) + b"\0" * LIMIT, RejectionReason.OVERSIZE),
        12: (honest_file(12, float("nan")), RejectionReason.NON_FINITE),
        13: (honest_file(1, 5.0), RejectionReason.WRONG_BINDING),  # trainer 1's binding
    }
    ipfs = FakeIpfs()
    commits = [
        commit_of(ipfs, honest_file(1, 1.0), trainer(1), 10),
        commit_of(ipfs, honest_file(2, 3.0), trainer(2), 10),
    ]
    commits += [commit_of(ipfs, data, trainer(i), 10) for i, (data, _) in hostile.items()]

    outcome = compute_round(commits, ipfs.fetch, SPEC, CONTEXT, workers=2)

    reasons = {v.commit.trainer: v.reason for v in outcome.verdicts}
    assert reasons == {
        trainer(1): RejectionReason.NONE,
        trainer(2): RejectionReason.NONE,
        **{trainer(i): reason for i, (_, reason) in hostile.items()},
    }
    assert all(v.detail for v in outcome.rejected)
    assert not marker.exists()
    assert outcome.model_bytes is not None
    model = decode(outcome.model_bytes, SPEC, model_binding(CONTEXT, SPEC))
    np.testing.assert_allclose(model["fc.weight"], np.full((3, 4), 2.0, np.float32))


@FUZZ
@given(st.binary(max_size=2048))
def test_verify__random_bytes__a_verdict_never_an_exception(data: bytes) -> None:
    verdict = verdict_of(data)
    assert verdict.reason == RejectionReason.MALFORMED and verdict.detail
