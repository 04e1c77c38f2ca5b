"""The fast and streaming aggregation paths give the same bytes as the arithmetic as first written.

`reference_*` below are the original implementations (FedAvg as `to_fixed(values) * weight`
summed in int64; the trimmed mean as `np.where` keys, a partition along the update axis and an
int64 sum of `to_fixed`), kept here as oracles: the optimized `accumulate_weighted`,
`trimmed_chunk` and `check_values`, and the file-streaming entry points, must match them bit
for bit, including on the edges (ties on the fixed-point grid, signed zeros, subnormals, the
largest allowed values, weights that leave the float64 fast path, non-finite values for FedAvg,
which checks nothing).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from fedledger.aggregation import FedAvgAccumulator, coordinate_median, fedavg, trimmed_mean
from fedledger.aggregation.base import MAX_MAGNITUDE, check_values
from fedledger.aggregation.fixedpoint import (
    MAX_TOTAL_WEIGHT,
    accumulate_weighted,
    divide_rounded,
    to_fixed,
    to_float32,
)
from fedledger.aggregation.streaming import (
    UpdateFile,
    coordinate_median_files,
    fedavg_files,
    trimmed_mean_by_count_files,
    trimmed_mean_files,
)
from fedledger.aggregation.trimmed_mean import trim_count, trimmed_chunk, trimmed_mean_by_count
from fedledger.storage.codec import MAX_ABS_VALUE, Binding, decode, encode
from fedledger.storage.schema import ModelSpec

GRID = 2.0**-20
_MAGNITUDE = np.int32(0x7FFFFFFF)


def reference_fedavg(updates: list[tuple[dict[str, np.ndarray], int]]) -> dict[str, np.ndarray]:
    sums: dict[str, np.ndarray] = {}
    total = 0
    for tensors, weight in updates:
        for name, values in tensors.items():
            weighted = to_fixed(values) * weight
            sums[name] = sums[name] + weighted if name in sums else weighted
        total += weight
    return {name: to_float32(divide_rounded(value, total)) for name, value in sorted(sums.items())}


def reference_trimmed_chunk(stack: np.ndarray, trim: int) -> np.ndarray:
    def order_keys(bits: np.ndarray) -> np.ndarray:
        return np.where(bits < 0, bits ^ _MAGNITUDE, bits)

    count = stack.shape[0]
    low, high = trim, count - trim - 1
    keys = order_keys(stack.view(np.int32))
    keys.partition(sorted({low, high}), axis=0)
    kept = order_keys(keys[low : high + 1]).view(np.float32)
    if high == low:
        return kept[0]
    return to_float32(divide_rounded(to_fixed(kept).sum(axis=0), high - low + 1))


def edge_values(rng: np.random.Generator, size: int) -> np.ndarray:
    """Gaussian values salted with the edge cases of the fixed-point conversion."""
    values = (rng.standard_normal(size) * rng.choice([1e-3, 0.1, 10.0, 1000.0], size)).astype(np.float32)
    specials = np.array(
        [
            0.0,
            -0.0,
            GRID / 2,  # a tie: rounds to 0 (even)
            3 * GRID / 2,  # a tie: rounds to 2 (even)
            -5 * GRID / 2,
            np.float32(1e-45),  # the smallest subnormal
            -np.float32(1e-40),
            MAX_MAGNITUDE,
            -MAX_MAGNITUDE,
            1e4,
            8.0 + GRID,
            np.nextafter(np.float32(8.0), np.float32(0)),
        ],
        np.float32,
    )
    where = rng.choice(size, min(size, len(specials) * 3), replace=False)
    values[where] = rng.choice(specials, len(where))
    return values


def same_bytes(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> bool:
    return list(left) == list(right) and all(left[k].tobytes() == right[k].tobytes() for k in left)


# --- FedAvg -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_fedavg__fast_path__bit_identical_to_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shapes = {"w": (int(rng.integers(1, 300)), 7), "b": (int(rng.integers(1, 50)),), "s": ()}
    updates = [
        (
            {name: edge_values(rng, math.prod(shape)).reshape(shape) for name, shape in shapes.items()},
            int(rng.integers(1, 100_000)),
        )
        for _ in range(int(rng.integers(1, 40)))
    ]
    assert same_bytes(fedavg(updates), reference_fedavg(updates))


def test_fedavg__large_weights_and_values__leave_the_float64_path_and_still_match() -> None:
    rng = np.random.default_rng(11)
    big = np.full(5000, MAX_MAGNITUDE, np.float32)
    big[::3] = -MAX_MAGNITUDE
    weight = MAX_TOTAL_WEIGHT // 8  # 2^34 * 2^27 is far beyond 2^53; the sums still fit in int64
    updates = [({"w": big}, weight), ({"w": edge_values(rng, 5000)}, weight)]
    assert same_bytes(fedavg(updates), reference_fedavg(updates))
    accumulator = FedAvgAccumulator()
    accumulator.add_stacked({"w": np.stack([big, big[::-1]])}, [weight, weight])
    assert same_bytes(
        accumulator.result(), reference_fedavg([({"w": big}, weight), ({"w": big[::-1]}, weight)])
    )


@pytest.mark.parametrize("count", [1, 2, 16])
def test_accumulate_weighted__totals_beyond_2_53__still_added_as_integers(count: int) -> None:
    """The weighted sums are exact below 2^53, the running totals need not be: adding them in
    float64 would round the totals (FedAvg may reach 2^62)."""
    rng = np.random.default_rng(count)
    rows = np.stack([edge_values(rng, 1000) for _ in range(count)])
    weights = [int(w) for w in rng.integers(1, 100, count)]
    start = np.full(1000, (1 << 60) + 1, np.int64)
    start[::2] = -(1 << 61) - 3
    total = start.copy()
    accumulate_weighted(total, rows, weights)
    expected = start.copy()
    for row, weight in zip(rows, weights, strict=True):
        expected += to_fixed(row) * weight
    np.testing.assert_array_equal(total, expected)


def test_fedavg__non_finite_and_huge_values__same_bytes_as_reference() -> None:
    """FedAvg does not validate (the codec does); whatever it makes of NaN or 1e30, the fast path
    makes the same."""
    values = np.array([np.nan, np.inf, -np.inf, 1e30, -3e38, 2.0**40, 1.0, 0.5], np.float32)
    updates = [({"w": values}, 3), ({"w": values[::-1].copy()}, 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert same_bytes(fedavg(updates), reference_fedavg(updates))


def test_fedavg__non_float32_or_non_contiguous_input__same_as_reference() -> None:
    rng = np.random.default_rng(5)
    base = rng.standard_normal((40, 30)).astype(np.float32)
    strided = rng.standard_normal((80, 30)).astype(np.float32)[::2].T
    transposed = [({"w": base.T}, 3), ({"w": np.asfortranarray(base.T) * 2}, 4), ({"w": strided}, 1)]
    assert same_bytes(fedavg(transposed), reference_fedavg(transposed))
    updates = [({"w": base[:, ::2]}, 3), ({"w": base[:, 1::2]}, 4)]
    assert same_bytes(fedavg(updates), reference_fedavg(updates))
    doubles = [({"w": base.astype(np.float64)}, 2), ({"w": base}, 1)]
    assert same_bytes(fedavg(doubles), reference_fedavg(doubles))


@pytest.mark.parametrize("group", [1, 2, 5, 16, 40])
def test_add_stacked__same_bytes_as_adding_one_by_one(group: int) -> None:
    rng = np.random.default_rng(group)
    updates = [
        (
            {"w": edge_values(rng, 20_000).reshape(100, 200), "b": edge_values(rng, 9)},
            int(rng.integers(1, 5000)),
        )
        for _ in range(40)
    ]
    accumulator = FedAvgAccumulator()
    for start in range(0, len(updates), group):
        batch = updates[start : start + group]
        accumulator.add_stacked(
            {name: np.stack([tensors[name] for tensors, _ in batch]) for name in ("w", "b")},
            [weight for _, weight in batch],
        )
    assert accumulator.total_weight == sum(weight for _, weight in updates)
    assert same_bytes(accumulator.result(), reference_fedavg(updates))


def test_add_stacked__rejects_bad_input_without_adding() -> None:
    accumulator = FedAvgAccumulator()
    accumulator.add({"w": np.ones(3, np.float32)}, 1)
    good = np.ones((2, 3), np.float32)
    for stacks, weights, match in [
        ({"w": good}, [1, 0], "positive"),
        ({"w": good}, [1, 2.0], "integers"),
        ({"w": good, "x": good}, [1, 1], "same tensor names"),
        ({"w": good.astype(np.float64)}, [1, 1], "float32"),
        ({"w": good}, [1, 1, 1], "one row per weight"),
        ({"w": np.ones((2, 4), np.float32)}, [1, 1], "shape"),
        ({"w": good}, [MAX_TOTAL_WEIGHT, 1], "total weight"),
    ]:
        with pytest.raises(ValueError, match=match):
            accumulator.add_stacked(stacks, weights)
    assert accumulator.total_weight == 1
    np.testing.assert_array_equal(accumulator.result()["w"], np.ones(3, np.float32))


def test_accumulate_weighted__rejects_bad_arguments() -> None:
    rows = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="int64"):
        accumulate_weighted(np.zeros(3, np.int32), rows, [1, 1])
    with pytest.raises(ValueError, match="one positive weight per row"):
        accumulate_weighted(np.zeros(3, np.int64), rows, [1])
    with pytest.raises(ValueError, match="one positive weight per row"):
        accumulate_weighted(np.zeros(3, np.int64), rows, [1, -1])


# --- trimmed mean and median ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "trim"), [(1, 0), (2, 0), (3, 1), (4, 1), (7, 2), (10, 0), (51, 25), (64, 6)]
)
def test_trimmed_chunk__bit_identical_to_reference(count: int, trim: int) -> None:
    rng = np.random.default_rng(count * 100 + trim)
    stack = edge_values(rng, count * 3001).reshape(count, 3001)
    stack[:, :50] = stack[0, :50]  # ties across updates
    stack[: count // 2, 50:60] = -0.0
    stack[count // 2 :, 50:60] = 0.0
    check_values(stack)
    expected = reference_trimmed_chunk(stack, trim)
    assert trimmed_chunk(stack, trim).tobytes() == expected.tobytes()
    strided = np.repeat(stack, 2, axis=1)[:, ::2]  # non-contiguous input
    assert trimmed_chunk(strided, trim).tobytes() == expected.tobytes()


def test_check_values__same_verdicts_as_before() -> None:
    def reference(values: np.ndarray) -> bool:
        return bool((np.abs(values) <= MAX_MAGNITUDE).all())

    cases = [
        np.zeros(0, np.float32),
        np.array([MAX_MAGNITUDE, -MAX_MAGNITUDE], np.float32),
        np.array([np.nextafter(np.float32(MAX_MAGNITUDE), np.float32(np.inf))], np.float32),
        np.array([1.0, np.nan], np.float32),
        np.array([np.inf], np.float32),
        np.array([-np.inf, 0.0], np.float32),
        np.array([[1.0, -2.0], [3.0, 4.0]], np.float32),
    ]
    for values in cases:
        try:
            check_values(values)
            accepted = True
        except ValueError:
            accepted = False
        assert accepted == reference(values), values


# --- from files ---------------------------------------------------------------------------------

SPEC_SHAPES = {"layer.bias": (13,), "layer.weight": (13, 77), "scale": (1,)}


def write_updates(
    directory: Path, count: int, seed: int
) -> tuple[list[Path], list[dict[str, np.ndarray]], list[int]]:
    rng = np.random.default_rng(seed)
    tensors = [
        {
            name: np.clip(edge_values(rng, math.prod(shape)), -MAX_ABS_VALUE, MAX_ABS_VALUE).reshape(shape)
            for name, shape in SPEC_SHAPES.items()
        }
        for _ in range(count)
    ]
    weights = [int(w) for w in rng.integers(1, 10_000, count)]
    spec = ModelSpec.from_arrays("test", tensors[0])
    paths = []
    for index, (update, weight) in enumerate(zip(tensors, weights, strict=True)):
        binding = Binding(
            kind="update",
            chain_id=1,
            task="0x" + "ab" * 20,
            round=3,
            model_spec=spec.hash().hex(),
            trainer=f"0x{index:040x}",
            num_samples=weight,
        )
        data = encode(update, binding, spec)
        assert same_bytes(dict(sorted(decode(data, spec, binding).items())), dict(sorted(update.items())))
        path = directory / f"{index:03d}.safetensors"
        path.write_bytes(data)
        paths.append(path)
    return paths, tensors, weights


@pytest.mark.parametrize("count", [1, 2, 9, 20])
def test_files__every_rule__bit_identical_to_in_memory(tmp_path: Path, count: int) -> None:
    paths, tensors, weights = write_updates(tmp_path, count, seed=count)
    files = [UpdateFile(path) for path in paths]
    try:
        assert files[0].layout == SPEC_SHAPES
        for group in (1, 3, 16):
            assert same_bytes(
                fedavg_files(zip(files, weights, strict=True), group=group),
                fedavg(zip(tensors, weights, strict=True)),
            )
        for chunk_size in (1, 7, 100, 1 << 16):
            assert same_bytes(
                coordinate_median_files(files, chunk_size=chunk_size), coordinate_median(tensors)
            )
            for beta in (0.0, 0.1, 0.25, 0.45):
                if count - 2 * trim_count(beta, count) >= 1:
                    assert same_bytes(
                        trimmed_mean_files(files, beta, chunk_size=chunk_size), trimmed_mean(tensors, beta)
                    )
        for trim in range((count - 1) // 2 + 1):
            expected = trimmed_mean_by_count(tensors, trim, chunk_size=5)
            assert same_bytes(trimmed_mean_by_count_files(files, trim, chunk_size=64), expected)
    finally:
        for update in files:
            update.close()


def test_files__reads_ranges_and_whole_tensors(tmp_path: Path) -> None:
    paths, tensors, _ = write_updates(tmp_path, 1, seed=3)
    with UpdateFile(paths[0]) as update:
        weight = tensors[0]["layer.weight"]
        np.testing.assert_array_equal(update.read("layer.weight"), weight)
        out = np.empty(weight.shape, np.float32)
        assert update.read("layer.weight", out) is not None
        np.testing.assert_array_equal(out, weight)
        np.testing.assert_array_equal(update.read_range("layer.weight", 5, 90), weight.reshape(-1)[5:90])
        assert update.read("scale").shape == (1,)
        with pytest.raises(ValueError, match="outside"):
            update.read_range("layer.bias", 0, 14)
        with pytest.raises(ValueError, match="contiguous float32"):
            update.read_range("layer.bias", 0, 4, np.empty(4, np.float64))
        assert "fedledger" in update.metadata


def test_files__malformed_files_are_refused(tmp_path: Path) -> None:
    paths, _, _ = write_updates(tmp_path, 1, seed=4)
    data = paths[0].read_bytes()
    bad = tmp_path / "bad.safetensors"
    for content, match in [
        (b"\x01", "shorter"),
        ((10**9).to_bytes(8, "little") + b"{}", "does not fit"),
        ((2).to_bytes(8, "little") + b"[]", "not a JSON object"),
        ((3).to_bytes(8, "little") + b"{x}", "not JSON"),
        (data[:-4], "do not hold"),
        (data.replace(b'"F32"', b'"F16"', 1), "do not hold"),  # F16 is 2 bytes a value, not 4
        (data.replace(b'"F32"', b'"F64"', 1), "has dtype 'F64'"),
    ]:
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=match):
            UpdateFile(bad)


def test_files__different_layouts__refused(tmp_path: Path) -> None:
    paths, _, _ = write_updates(tmp_path, 2, seed=5)
    other = tmp_path / "other.safetensors"
    spec = ModelSpec.from_arrays("x", {"w": np.zeros(3, np.float32)})
    other.write_bytes(
        encode(
            {"w": np.zeros(3, np.float32)},
            Binding(kind="model", chain_id=1, task="0x" + "00" * 20, round=0, model_spec=spec.hash().hex()),
            spec,
        )
    )
    files = [UpdateFile(paths[0]), UpdateFile(other)]
    with pytest.raises(ValueError, match="same tensor names and shapes"):
        coordinate_median_files(files)
    with pytest.raises(ValueError, match="same tensor names and shapes"):
        fedavg_files([(files[0], 1), (files[1], 1)])
    with pytest.raises(ValueError, match="no updates"):
        coordinate_median_files([])
