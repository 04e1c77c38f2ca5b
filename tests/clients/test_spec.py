"""The model spec: dtypes per tensor, its canonical JSON and hash, and strict parsing of it."""

from __future__ import annotations

import hashlib
import json

import ml_dtypes
import numpy as np
import pytest

from fedledger.storage.schema import MAX_SPEC_BYTES, SUPPORTED_DTYPES, ModelSpec, TensorSpec

ARRAYS = {
    "conv.weight": np.zeros((2, 1, 3, 3), np.float32),
    "bn.num_batches_tracked": np.zeros((), np.int64),
    "head.weight": np.zeros((4, 2), ml_dtypes.bfloat16),
    "head.bias": np.zeros(4, np.float16),
    "mask": np.zeros(3, np.bool_),
}
SPEC = ModelSpec.from_arrays("net", ARRAYS)
CANONICAL = (
    '{"format":"fedledger-spec/2","name":"net","tensors":[["bn.num_batches_tracked",[],"I64"],'
    '["conv.weight",[2,1,3,3],"F32"],["head.bias",[4],"F16"],["head.weight",[4,2],"BF16"],'
    '["mask",[3],"BOOL"]]}'
)


def test_from_arrays__takes_each_dtype_and_sorts_names() -> None:
    assert SPEC.dtypes() == {
        "bn.num_batches_tracked": "I64",
        "conv.weight": "F32",
        "head.bias": "F16",
        "head.weight": "BF16",
        "mask": "BOOL",
    }
    assert [t.name for t in SPEC.tensors] == sorted(ARRAYS)
    assert SPEC.file_size == 8 + 4 * 18 + 2 * 4 + 2 * 8 + 3


def test_canonical_json__names_format_and_dtypes__hash_is_its_sha256() -> None:
    assert SPEC.canonical_json() == CANONICAL
    assert SPEC.hash() == hashlib.sha256(CANONICAL.encode()).digest()


def test_hash__depends_on_dtypes() -> None:
    other = ModelSpec.from_arrays("net", {**ARRAYS, "head.bias": np.zeros(4, np.float32)})
    assert other.hash() != SPEC.hash()


def test_from_json__canonical_text_or_bytes__round_trips() -> None:
    assert ModelSpec.from_json(CANONICAL) == SPEC
    assert ModelSpec.from_json(CANONICAL.encode()) == SPEC
    assert ModelSpec.from_json(SPEC.canonical_json()).hash() == SPEC.hash()
    for dtype in SUPPORTED_DTYPES:
        spec = ModelSpec("one", (TensorSpec("t", (2, 0), dtype),))
        assert ModelSpec.from_json(spec.canonical_json()) == spec


def test_tensor_order__does_not_change_the_canonical_json() -> None:
    reordered = ModelSpec("net", tuple(reversed(SPEC.tensors)))
    assert reordered.canonical_json() == CANONICAL


def edit(change) -> str:  # type: ignore[no-untyped-def]
    body = json.loads(CANONICAL)
    change(body)
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CANONICAL.replace(",", ", "), "canonical"),  # whitespace
        (CANONICAL, None),
        ('{"name":"net","format":"fedledger-spec/2","tensors":[]}', "canonical"),  # key order
        (edit(lambda b: b["tensors"].reverse()), "canonical"),  # tensor order
        (CANONICAL.replace('"net"', '"n\\u0065t"'), "canonical"),  # an escape for a plain letter
        (CANONICAL + "\n", "canonical"),
        (edit(lambda b: b.update(format="fedledger-spec/1")), "format"),
        (edit(lambda b: b.update(dtype="F32")), "exactly"),
        (edit(lambda b: b.pop("name")), "exactly"),
        (edit(lambda b: b.update(name=7)), "name must be a string"),
        (edit(lambda b: b.update(tensors={})), "tensors a list"),
        (edit(lambda b: b["tensors"][0].pop()), r"\[name, shape, dtype\]"),
        (edit(lambda b: b["tensors"][0].__setitem__(2, "F64")), "convert it to F32"),
        (edit(lambda b: b["tensors"][0].__setitem__(2, "f32")), "does not carry"),
        (edit(lambda b: b["tensors"][0].__setitem__(2, None)), r"\[name, shape, dtype\]"),
        (edit(lambda b: b["tensors"][1].__setitem__(1, [2, True])), "invalid shape"),
        (edit(lambda b: b["tensors"][1].__setitem__(1, [2.0])), "invalid shape"),
        (edit(lambda b: b["tensors"][1].__setitem__(1, [-1])), "invalid shape"),
        (edit(lambda b: b["tensors"][1].__setitem__(1, 3)), r"\[name, shape, dtype\]"),
        (edit(lambda b: b["tensors"].append(list(b["tensors"][-1]))), "more than once"),
        (edit(lambda b: b["tensors"].append(["__metadata__", [], "F32"])), "reserved"),
        (edit(lambda b: b["tensors"].__setitem__(0, ["bn.huge", [2**62, 4], "F32"])), "bytes of tensors"),
        ("[]", "exactly"),
        ("", "not JSON"),
        ("[" * 100_000, "not JSON"),
        ('{"format":"fedledger-spec/2","name":"x","tensors":[["w",[' + "9" * 5000 + '],"F32"]]}', "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        ('{"format":"fedledger-spec/2","name":"' + "x" * MAX_SPEC_BYTES + '","tensors":[]}', "limit"),
    ],
)
def test_from_json__malformed_or_not_canonical__refused(text: str | bytes, message: str | None) -> None:
    if message is None:  # a control: the canonical text itself is accepted
        assert ModelSpec.from_json(text) == SPEC
        return
    with pytest.raises(ValueError, match=message):
        ModelSpec.from_json(text)


@pytest.mark.parametrize(
    ("dtype", "advice"),
    [(np.float64, "F32"), (np.uint16, "I32"), (np.uint32, "I64"), (np.complex64, "one of F32")],
)
def test_from_arrays__unsupported_dtype__refused_naming_tensor_and_conversion(
    dtype: type, advice: str
) -> None:
    with pytest.raises(ValueError, match=rf"tensor 'x' has dtype .*convert it to {advice}"):
        ModelSpec.from_arrays("m", {"x": np.zeros(2, dtype)})


def test_tensor_spec__unsupported_dtype_name__refused() -> None:
    with pytest.raises(ValueError, match=r"tensor 'w' has dtype 'F64'.*convert it to F32"):
        TensorSpec("w", (2,), "F64")
    assert TensorSpec("w", (2,)).dtype == "F32"  # the default, as before


@pytest.mark.parametrize("limit", [1_000, 100_000])
def test_from_json__deep_nesting__refused_before_parsing_whatever_the_recursion_limit(limit: int) -> None:
    """py_ecc (imported by ape) raises the recursion limit to 100,000; json.loads would then
    overflow the C stack on a megabyte of brackets rather than raise."""
    import sys

    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        for text in ("[" * (MAX_SPEC_BYTES - 1), '{"a":' * 200_000, '[["[[[[[[", [[[[[[]]]]]]]]'):
            with pytest.raises(ValueError, match="nested deeper"):
                ModelSpec.from_json(text)
    finally:
        sys.setrecursionlimit(previous)
    assert ModelSpec.from_json('{"format":"fedledger-spec/2","name":"[[[[[[","tensors":[["{{{{",[1],"U8"]]}')
