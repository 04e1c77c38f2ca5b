"""Aggregating models with F16, BF16, integer and bool tensors: exact, and the same in memory and
over files.

Float tensors go through the rule as float32 and are rounded back to their dtype; integer and
bool tensors take the elementwise lower median of the updates the rule kept.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from fakes import FakeIpfs

from fedledger.aggregation.clipping import clip_update
from fedledger.aggregation.rules import FILE_RULES, aggregate, aggregate_files
from fedledger.aggregator.round_result import RoundContext, compute_round, model_binding
from fedledger.aggregator.verification import Commit, update_binding
from fedledger.chain.params import AggregationRule
from fedledger.storage.codec import Binding, decode, encode
from fedledger.storage.schema import ModelSpec

SHAPES = {
    "w32": (5, 7),
    "w16": (11,),
    "wbf": (3, 4),
    "steps": (),
    "i32": (6,),
    "i8": (2, 3),
    "u8": (4,),
    "mask": (9,),
}
DTYPES = {
    "w32": np.float32,
    "w16": np.float16,
    "wbf": ml_dtypes.bfloat16,
    "steps": np.int64,
    "i32": np.int32,
    "i8": np.int8,
    "u8": np.uint8,
    "mask": np.bool_,
}
FLOATS = ("w32", "w16", "wbf")
OTHERS = ("steps", "i32", "i8", "u8", "mask")
# Multi-Krum parameter f = 1, m = 3 (so that it keeps an even number of updates, and leaves some out).
CASES = [
    (AggregationRule.FEDAVG, 0),
    (AggregationRule.MEDIAN, 0),
    (AggregationRule.TRIMMED_MEAN, 2_000),
    (AggregationRule.MULTI_KRUM, 1 | (3 << 16)),
]


def update(rng: np.random.Generator, scale: float = 1.0) -> dict[str, np.ndarray]:
    tensors = {}
    for name, shape in SHAPES.items():
        dtype = DTYPES[name]
        if name in FLOATS:
            tensors[name] = (rng.standard_normal(shape) * scale).astype(np.float32).astype(dtype)
        elif dtype == np.bool_:
            tensors[name] = rng.random(shape) < 0.5
        else:
            info = np.iinfo(dtype)
            tensors[name] = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return tensors


def updates(count: int, seed: int) -> list[tuple[dict[str, np.ndarray], int]]:
    rng = np.random.default_rng(seed)
    result = [(update(rng), int(rng.integers(1, 500))) for _ in range(count - 1)]
    return [*result, (update(rng, scale=40.0), 7)]  # one far out


def same_bytes(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return list(a) == list(b) and all(
        a[n].dtype == b[n].dtype and a[n].shape == b[n].shape and a[n].tobytes() == b[n].tobytes() for n in a
    )


def write(directory: Path, weighted: list[tuple[dict[str, np.ndarray], int]]) -> list[Path]:
    spec = ModelSpec.from_arrays("mixed", weighted[0][0])
    paths = []
    for index, (tensors, weight) in enumerate(weighted):
        binding = Binding(
            kind="update",
            chain_id=1,
            task="0x" + "ab" * 20,
            round=1,
            model_spec=spec.hash().hex(),
            trainer=f"0x{index:040x}",
            num_samples=weight,
        )
        path = directory / f"{index:03d}.safetensors"
        path.write_bytes(encode(tensors, binding, spec))
        paths.append(path)
    return paths


def lower_median(values: list[np.ndarray]) -> np.ndarray:
    """The oracle: sort each coordinate's values, take index (N - 1) // 2."""
    stacked = np.stack(values)
    return np.sort(stacked, axis=0, kind="stable")[(len(values) - 1) // 2]


@pytest.mark.parametrize("count", [5, 6, 8])
@pytest.mark.parametrize(("rule", "param"), CASES)
def test_aggregate__mixed_dtypes__in_memory_and_files_bit_identical_and_repeatable(
    tmp_path: Path, rule: AggregationRule, param: int, count: int
) -> None:
    weighted = updates(count, seed=count * 10 + int(rule))
    result = aggregate(rule, param, weighted)
    assert same_bytes(result.model, aggregate(rule, param, weighted).model)
    assert {name: values.dtype for name, values in result.model.items()} == {
        name: np.dtype(dtype) for name, dtype in sorted(DTYPES.items())
    }
    if rule in FILE_RULES:
        paths = write(tmp_path, weighted)
        from_files = aggregate_files(rule, param, paths, [weight for _, weight in weighted])
        assert same_bytes(from_files.model, result.model)
        assert from_files.excluded == result.excluded == ()


@pytest.mark.parametrize("count", [5, 6, 8])
@pytest.mark.parametrize(("rule", "param"), CASES)
def test_aggregate__floats_are_the_float32_rule_rounded__others_the_lower_median_of_the_kept(
    rule: AggregationRule, param: int, count: int
) -> None:
    weighted = updates(count, seed=count * 10 + int(rule))
    result = aggregate(rule, param, weighted)
    as_float32 = [({n: t[n].astype(np.float32) for n in FLOATS}, w) for t, w in weighted]
    reference = aggregate(rule, param, as_float32)  # an all-F32 model: the rule as it always ran
    assert reference.excluded == result.excluded
    assert result.model["w32"].tobytes() == reference.model["w32"].tobytes()
    assert result.model["w16"].tobytes() == reference.model["w16"].astype(np.float16).tobytes()
    assert result.model["wbf"].tobytes() == reference.model["wbf"].astype(ml_dtypes.bfloat16).tobytes()
    kept = [t for i, (t, _) in enumerate(weighted) if i not in result.excluded]
    if rule == AggregationRule.MULTI_KRUM:
        assert len(kept) == 3 and count - 1 in result.excluded  # the far-out update is left out
    for name in OTHERS:
        np.testing.assert_array_equal(result.model[name], lower_median([t[name] for t in kept]))


def test_lower_median__even_count_takes_the_smaller__bool_ties_go_to_false() -> None:
    values = [
        {
            "n": np.array([5, -1, 3], np.int64),
            "b": np.array([True, True, False]),
            "w": np.zeros(1, np.float16),
        },
        {
            "n": np.array([1, 9, 3], np.int64),
            "b": np.array([False, True, False]),
            "w": np.ones(1, np.float16),
        },
    ]
    model = aggregate(AggregationRule.MEDIAN, 0, [(v, 1) for v in values]).model
    np.testing.assert_array_equal(model["n"], [1, -1, 3])
    np.testing.assert_array_equal(model["b"], [False, True, False])
    three = [
        *values,
        {"n": np.array([0, 0, 0], np.int64), "b": np.array([True, False, True]), "w": values[0]["w"]},
    ]
    model = aggregate(AggregationRule.FEDAVG, 0, [(v, 1) for v in three]).model
    np.testing.assert_array_equal(model["n"], [1, 0, 3])
    np.testing.assert_array_equal(model["b"], [True, True, False])  # the majority


def test_aggregate__only_float32__results_unchanged_and_no_copy_needed() -> None:
    rng = np.random.default_rng(3)
    weighted = [({"w": rng.standard_normal(20).astype(np.float32)}, i + 1) for i in range(5)]
    for rule, param in CASES:
        model = aggregate(rule, param, weighted).model
        assert model["w"].dtype == np.float32


def test_aggregate__inconsistent_or_unsupported_dtypes__refused() -> None:
    first = {"n": np.zeros(2, np.int64), "w": np.zeros(2, np.float16)}
    with pytest.raises(ValueError, match="is float32, not float16"):
        aggregate(AggregationRule.MEDIAN, 0, [(first, 1), ({**first, "w": np.zeros(2, np.float32)}, 1)])
    with pytest.raises(ValueError, match="is int32, not int64"):
        aggregate(AggregationRule.FEDAVG, 0, [(first, 1), ({**first, "n": np.zeros(2, np.int32)}, 1)])
    with pytest.raises(ValueError, match="convert it to F32"):
        aggregate(AggregationRule.FEDAVG, 0, [({"w": np.zeros(2)}, 1)])
    with pytest.raises(ValueError, match="no updates"):
        aggregate_files(AggregationRule.MEDIAN, 0, [], [])


def test_aggregate_files__files_with_other_dtypes__refused(tmp_path: Path) -> None:
    weighted = updates(3, seed=1)
    paths = write(tmp_path, weighted)
    other = tmp_path / "other"
    other.mkdir()
    changed = [({**t, "w16": t["w16"].view(ml_dtypes.bfloat16)}, w) for t, w in weighted]
    odd = write(other, changed)[0]
    for rule in FILE_RULES:
        with pytest.raises(ValueError, match="same tensor names and dtypes"):
            aggregate_files(rule, 0, [*paths, odd], [1] * 4)


def test_clip_update__mixed_dtypes__floats_clipped_and_rounded_others_untouched() -> None:
    rng = np.random.default_rng(5)
    reference = update(rng)
    moved = update(rng, scale=3.0)
    clipped = clip_update(moved, reference, 0.5)
    as_float32 = clip_update(
        {n: moved[n].astype(np.float32) for n in FLOATS},
        {n: reference[n].astype(np.float32) for n in FLOATS},
        0.5,
    )
    for name in FLOATS:
        assert clipped[name].dtype == moved[name].dtype
        assert clipped[name].tobytes() == as_float32[name].astype(moved[name].dtype).tobytes()
    for name in OTHERS:
        assert clipped[name].tobytes() == moved[name].tobytes() and clipped[name].dtype == moved[name].dtype
    small = clip_update(moved, reference, 1e6)
    assert same_bytes(small, {n: moved[n] for n in sorted(moved)})


# --- through a whole round: clipping, spooled files and the canonical model file -------------------


SPEC = ModelSpec.from_arrays("mixed", update(np.random.default_rng(0)))
CONTEXT = RoundContext(
    chain_id=31337,
    task="0x" + "11" * 20,
    round_number=1,
    model_version=1,
    sample_cap=100,
    rule=AggregationRule.FEDAVG,
    rule_param=0,
)


def commit(ipfs: FakeIpfs, i: int, tensors: dict[str, np.ndarray], samples: int) -> Commit:
    draft = Commit(trainer=f"0x{i:040x}", digest=b"", cid="", num_samples=samples, position=i)
    binding = update_binding(draft, chain_id=31337, task=CONTEXT.task, round_number=1, spec=SPEC)
    data = encode(tensors, binding, SPEC)
    return Commit(
        trainer=draft.trainer,
        digest=hashlib.sha256(data).digest(),
        cid=ipfs.put(data),
        num_samples=samples,
        position=i,
    )


@pytest.mark.parametrize(("rule", "param"), CASES)
@pytest.mark.parametrize("clip_norm", [0.0, 2.0])
def test_compute_round__mixed_dtypes__spooled_same_bytes_as_in_memory(
    tmp_path: Path, rule: AggregationRule, param: int, clip_norm: float
) -> None:
    ipfs = FakeIpfs()
    weighted = updates(7, seed=int(rule) + int(clip_norm))
    commits = [commit(ipfs, i + 1, tensors, samples) for i, (tensors, samples) in enumerate(weighted)]
    previous = update(np.random.default_rng(99))
    context = RoundContext(**{**CONTEXT.__dict__, "rule": rule, "rule_param": param, "clip_norm": clip_norm})
    in_memory = compute_round(commits, ipfs.fetch, SPEC, context, previous_model=lambda: previous)
    spool = tmp_path / "spool"
    spool.mkdir()
    spooled = compute_round(commits, ipfs.fetch, SPEC, context, previous_model=lambda: previous, spool=spool)
    again = compute_round(list(reversed(commits)), ipfs.fetch, SPEC, context, previous_model=lambda: previous)
    assert in_memory.model_bytes is not None
    assert spooled.model_bytes == in_memory.model_bytes == again.model_bytes
    assert [v.reason for v in spooled.verdicts] == [v.reason for v in in_memory.verdicts]
    model = decode(in_memory.model_bytes, SPEC, model_binding(context, SPEC))
    assert {name: values.dtype for name, values in model.items()} == {
        n: np.dtype(d) for n, d in DTYPES.items()
    }
