"""The canonical update codec: determinism, binding, and a reason code for every bad file."""

from __future__ import annotations

import json
import pickle
import struct

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
    assert json.loads(SPEC.canonical_json())["dtype"] == "F32"
    assert SPEC.parameter_count == 15
