"""The canonical update codec: determinism, binding, and a reason code for every bad file."""

from __future__ import annotations

import json
import pickle
import struct

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy

from fedledger.chain.params import RejectionReason
from fedledger.storage.codec import MAX_ABS_VALUE, Binding, InvalidUpdateError, decode, encode, max_file_size
from fedledger.storage.digests import from_hex, sha256, to_hex
from fedledger.storage.schema import ModelSpec, TensorSpec

SPEC = ModelSpec("tiny", (TensorSpec("fc.bias", (3,)), TensorSpec("fc.weight", (3, 4))))
TRAINER = "0x" + "ab" * 20
BINDING = Binding(
    kind="update",
    chain_id=31337,
    task="0x" + "11" * 20,
    round=2,
    model_spec=to_hex(SPEC.hash()),
    trainer=TRAINER,
    num_samples=600,
)


def tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "fc.weight": rng.standard_normal((3, 4)).astype(np.float32),
        "fc.bias": rng.standard_normal(3).astype(np.float32),
    }


def reason_of(data: bytes, expected: Binding = BINDING) -> RejectionReason:
    with pytest.raises(InvalidUpdateError) as info:
        decode(data, SPEC, expected)
    return info.value.reason


def test_encode__same_input__same_bytes_in_any_insertion_order() -> None:
    forward = tensors()
    backward = dict(reversed(list(forward.items())))
    assert encode(forward, BINDING, SPEC) == encode(backward, BINDING, SPEC)


def test_decode__round_trip__returns_the_tensors() -> None:
    original = tensors()
    decoded = decode(encode(original, BINDING, SPEC), SPEC, BINDING)
    assert set(decoded) == set(original)
    for name in original:
        np.testing.assert_array_equal(decoded[name], original[name])


def test_digest__is_sha256_of_the_bytes() -> None:
    data = encode(tensors(), BINDING, SPEC)
    digest = sha256(data)
    assert len(digest) == 32
    assert from_hex(to_hex(digest)) == digest
    assert sha256(encode(tensors(1), BINDING, SPEC)) != digest


@pytest.mark.parametrize(
    "field, value",
    [
        ("round", 3),
        ("trainer", "0x" + "cd" * 20),
        ("num_samples", 601),
        ("chain_id", 1),
        ("task", "0x" + "22" * 20),
    ],
)
def test_decode__binding_for_something_else__wrong_binding(field: str, value: object) -> None:
    other = Binding(**{**BINDING.__dict__, field: value})  # type: ignore[arg-type]
    assert reason_of(encode(tensors(), other, SPEC)) == RejectionReason.WRONG_BINDING


def test_decode__oversize__rejected_before_parsing() -> None:
    assert reason_of(b"\0" * (max_file_size(SPEC) + 1)) == RejectionReason.OVERSIZE


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x02",
        struct.pack("<Q", 1 << 40) + b"{}",
        struct.pack("<Q", 4) + b"nope",
        struct.pack("<Q", 2) + b"[]",
    ],
)
def test_decode__garbage__malformed(data: bytes) -> None:
    assert reason_of(data) == RejectionReason.MALFORMED


def test_decode__truncated__malformed() -> None:
    data = encode(tensors(), BINDING, SPEC)
    assert reason_of(data[:-5]) == RejectionReason.MALFORMED


def test_decode__pickle_payload__malformed_and_never_unpickled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    assert reason_of(pickle.dumps(Exploit())) == RejectionReason.MALFORMED
    assert not marker.exists()


def test_decode__wrong_dtype__malformed() -> None:
    arrays = {k: v.astype(np.float64) for k, v in tensors().items()}
    data = safetensors.numpy.save(arrays, metadata={"fedledger": BINDING.canonical_json()})
    assert reason_of(data) == RejectionReason.MALFORMED


def test_decode__wrong_shape__malformed() -> None:
    arrays = tensors()
    arrays["fc.bias"] = np.zeros(4, np.float32)
    data = safetensors.numpy.save(arrays, metadata={"fedledger": BINDING.canonical_json()})
    assert reason_of(data) == RejectionReason.MALFORMED


def test_decode__missing_or_extra_tensor__malformed() -> None:
    arrays = tensors()
    arrays["extra"] = np.zeros(1, np.float32)
    extra = safetensors.numpy.save(arrays, metadata={"fedledger": BINDING.canonical_json()})
    missing = safetensors.numpy.save({"fc.bias": tensors()["fc.bias"]}, metadata={"fedledger": "{}"})
    assert reason_of(extra) == RejectionReason.MALFORMED
    assert reason_of(missing) == RejectionReason.MALFORMED


def test_decode__no_metadata__malformed() -> None:
    assert reason_of(safetensors.numpy.save(tensors())) == RejectionReason.MALFORMED


def test_decode__extra_metadata__not_canonical__malformed() -> None:
    data = safetensors.numpy.save(tensors(), metadata={"fedledger": BINDING.canonical_json(), "x": "y"})
    assert reason_of(data) == RejectionReason.MALFORMED


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, MAX_ABS_VALUE * 2])
def test_decode__non_finite_or_out_of_range__non_finite(bad: float) -> None:
    arrays = tensors()
    arrays["fc.weight"][1, 2] = bad
    assert reason_of(encode(arrays, BINDING, SPEC)) == RejectionReason.NON_FINITE


def test_encode__off_spec_tensors__refused() -> None:
    arrays = tensors()
    arrays["fc.bias"] = np.zeros(5, np.float32)
    with pytest.raises(InvalidUpdateError):
        encode(arrays, BINDING, SPEC)


def test_spec_hash__depends_on_names_and_shapes() -> None:
    other = ModelSpec("tiny", (TensorSpec("fc.bias", (3,)), TensorSpec("fc.weight", (4, 3))))
    assert SPEC.hash() != other.hash()
    assert json.loads(SPEC.canonical_json())["tensors"] == [
        ["fc.bias", [3], "F32"],
        ["fc.weight", [3, 4], "F32"],
    ]
    assert SPEC.parameter_count == 15


# --- tensor dtypes ------------------------------------------------------------------------------

MIXED = {
    "f32": np.array([[0.5, -1.25e-7], [3.0, -0.0]], np.float32),
    "f16": np.array([1.0, -2.5, 6.1e-5, 65.5], np.float16),
    "bf16": np.array([1.0, -3.140625, 1e-20, 9984.0], ml_dtypes.bfloat16),
    "i64": np.array([0, -1, 2**62, -(2**63)], np.int64),  # integers are not bounded
    "i32": np.array([2**31 - 1, -(2**31)], np.int32),
    "i16": np.array([[7, -32768]], np.int16),
    "i8": np.array([-128, 127, 0], np.int8),
    "u8": np.array([0, 255], np.uint8),
    "bool": np.array([True, False, True]),
    "empty": np.zeros((0, 2), np.int64),
    "scalar": np.array(7, np.int64),  # 0-d, like BatchNorm's num_batches_tracked
    "f32_scalar": np.array(0.25, np.float32),
}
MIXED_SPEC = ModelSpec.from_arrays("mixed", MIXED)
MIXED_BINDING = Binding(**{**BINDING.__dict__, "model_spec": to_hex(MIXED_SPEC.hash())})  # type: ignore[arg-type]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_decode__every_supported_dtype__round_trips_exactly() -> None:
    decoded = decode(encode(MIXED, MIXED_BINDING, MIXED_SPEC), MIXED_SPEC, MIXED_BINDING)
    assert set(decoded) == set(MIXED)
    for name, values in MIXED.items():
        assert same_bits(decoded[name], values), name
    assert decoded["bf16"].dtype == ml_dtypes.bfloat16
    assert MIXED_SPEC.dtypes()["bf16"] == "BF16"


def test_encode__big_endian_input__same_bytes_as_little_endian() -> None:
    swapped = {**MIXED, "i32": MIXED["i32"].astype(">i4"), "f32": MIXED["f32"].astype(">f4")}
    assert encode(swapped, MIXED_BINDING, MIXED_SPEC) == encode(MIXED, MIXED_BINDING, MIXED_SPEC)


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("f16", MIXED["f16"].astype(np.float32)),  # the same values, not the spec's dtype
        ("bf16", MIXED["bf16"].astype(np.float16)),
        ("i64", MIXED["i64"].astype(np.int32)),
        ("bool", MIXED["bool"].astype(np.uint8)),
        ("f32", MIXED["f32"].astype(np.float64)),
    ],
)
def test_encode__dtype_other_than_the_spec__refused_not_cast(name: str, values: np.ndarray) -> None:
    with pytest.raises(InvalidUpdateError, match=f"{name} has dtype"):
        encode({**MIXED, name: values}, MIXED_BINDING, MIXED_SPEC)


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("f16", MIXED["f16"].view(ml_dtypes.bfloat16)),  # same size, other dtype: BF16 for F16
        ("bf16", MIXED["bf16"].view(np.float16)),
        ("i64", MIXED["i64"].view(np.float64)),
        ("u8", MIXED["u8"].view(np.int8)),
        ("bool", MIXED["bool"].view(np.uint8)),
    ],
)
def test_decode__file_dtype_differs_from_spec__malformed(name: str, values: np.ndarray) -> None:
    data = safetensors.numpy.save(
        {**MIXED, name: values}, metadata={"fedledger": MIXED_BINDING.canonical_json()}
    )
    with pytest.raises(InvalidUpdateError, match=f"{name} has dtype") as info:
        decode(data, MIXED_SPEC, MIXED_BINDING)
    assert info.value.reason == RejectionReason.MALFORMED


@pytest.mark.parametrize("name", ["f16", "bf16"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, MAX_ABS_VALUE * 2])
def test_decode__half_precision_non_finite_or_out_of_range__non_finite(name: str, bad: float) -> None:
    arrays = {key: values.copy() for key, values in MIXED.items()}
    arrays[name][0] = bad
    with pytest.raises(InvalidUpdateError) as info:
        decode(encode(arrays, MIXED_BINDING, MIXED_SPEC), MIXED_SPEC, MIXED_BINDING)
    assert info.value.reason == RejectionReason.NON_FINITE


def test_decode__bool_byte_other_than_0_or_1__malformed() -> None:
    data = bytearray(encode(MIXED, MIXED_BINDING, MIXED_SPEC))
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    data[8 + length + header["bool"]["data_offsets"][0]] = 2  # reads as True, but is not canonical
    with pytest.raises(InvalidUpdateError, match="bool bytes") as info:
        decode(bytes(data), MIXED_SPEC, MIXED_BINDING)
    assert info.value.reason == RejectionReason.MALFORMED


def test_max_file_size__counts_each_dtype_itemsize() -> None:
    assert MIXED_SPEC.file_size == sum(values.nbytes for values in MIXED.values())
    assert len(encode(MIXED, MIXED_BINDING, MIXED_SPEC)) <= max_file_size(MIXED_SPEC)
