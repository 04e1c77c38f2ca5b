"""bench/aggregation.py: the model layout, the inputs, and a real quick run end to end (with
Flower when .venv-bench exists, without it otherwise)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench_modules import load_bench

from fedledger.aggregation import coordinate_median, fedavg, trimmed_mean
from fedledger.aggregation.streaming import (
    UpdateFile,
    coordinate_median_files,
    fedavg_files,
    trimmed_mean_files,
)
from fedledger.storage.codec import decode

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "aggregation.py"
BENCH_VENV = REPO / ".venv-bench" / "bin" / "python"


bench = load_bench("aggregation")


def same_bytes(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> bool:
    return list(left) == list(right) and all(left[k].tobytes() == right[k].tobytes() for k in left)


def test_model_layout__p_parameters_in_a_weight_and_a_bias() -> None:
    assert bench.model_layout(1_000_000) == {"fc.bias": (1000,), "fc.weight": (1000, 999)}
    assert bench.model_layout(100_000) == {"fc.bias": (100,), "fc.weight": (100, 999)}
    with pytest.raises(ValueError, match="multiple of 1000"):
        bench.model_layout(1500)


def test_inputs__seeded_canonical_update_files(tmp_path: Path) -> None:
    config = bench.make_config(True, 6, 3000, None, None, 700, False, False)
    manifest = json.loads(bench.write_inputs(config, tmp_path).read_text())
    assert len(manifest["files"]) == 6 and manifest["chunk_size"] == 700
    again = tmp_path / "again"
    again.mkdir()
    repeat = json.loads(bench.write_inputs(config, again).read_text())
    assert bench.digest_files(manifest["files"]) == bench.digest_files(repeat["files"])
    layout = bench.model_layout(3000)
    spec = bench.input_spec(layout)
    for index, (path, weight) in enumerate(zip(manifest["files"], manifest["weights"], strict=True)):
        tensors = decode(
            Path(path).read_bytes(), spec, bench.input_binding(spec, index, weight)
        )  # the codec accepts them
        expected, expected_weight = bench.make_update(config.seed, index, layout)
        assert weight == expected_weight and 1 <= weight <= 1000
        assert all(tensors[name].tobytes() == expected[name].tobytes() for name in layout)


def test_streamed_rules__bit_identical_to_the_in_memory_rules(tmp_path: Path) -> None:
    config = bench.make_config(True, 21, 5000, None, None, 1234, False, False)
    manifest = json.loads(bench.write_inputs(config, tmp_path).read_text())
    files = [UpdateFile(path) for path in manifest["files"]]
    loaded = [{name: update.read(name) for name in sorted(update.layout)} for update in files]
    weights = manifest["weights"]
    try:
        assert same_bytes(
            fedavg_files(zip(files, weights, strict=True)), fedavg(zip(loaded, weights, strict=True))
        )
        assert same_bytes(coordinate_median_files(files, chunk_size=1234), coordinate_median(loaded))
        assert same_bytes(trimmed_mean_files(files, 0.2, chunk_size=1234), trimmed_mean(loaded, 0.2))
    finally:
        for update in files:
            update.close()


def _run_quick(tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "aggregation.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "clients")}
    subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--repeats",
            "1",
            "--workdir",
            str(tmp_path),
            "--out",
            str(out),
            *extra,
        ],
        check=True,
        env=env,
        timeout=600,
    )
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_quick_run__json_shape_and_bit_identical_results(tmp_path: Path) -> None:
    report = _run_quick(tmp_path, "--flower-robust-params", "50000")
    flower = BENCH_VENV.exists()
    assert report["benchmark"] == "aggregation"
    assert report["command"].startswith("python bench/aggregation.py")
    figures, setup = report["figures"], report["setup"]
    for key in (
        "fedavg_vs_numpy_ratio",
        "fedavg_seconds",
        "numpy_seconds",
        "fedavg_peak_mib",
        "median_seconds",
        "median_peak_mib",
        "trimmed_mean_seconds",
        "trimmed_mean_peak_mib",
    ):
        assert isinstance(figures[key], float) and figures[key] > 0, key
    flower_keys = (
        "fedavg_speedup_vs_flower",
        "flower_fedavg_seconds",
        "flower_median_seconds",
        "flower_trimmed_mean_seconds",
        "flower_fedavg_peak_mib",
    )
    for key in flower_keys:
        assert isinstance(figures[key], float) if flower else figures[key] is None, key
    assert (setup["N"], setup["P"]) == (50, 100_000)
    assert setup["chunking"]["median_and_trimmed_mean_chunk_size"] == 8192
    assert setup["versions"]["numpy"] == np.__version__
    assert (setup["versions"]["flwr"] == "1.42.0") if flower else setup["versions"]["flwr"] is None
    assert isinstance(report["notes"], list) and all(isinstance(note, str) for note in report["notes"])
    checks = report["checks"]
    assert checks["fedavg_streamed_equals_in_memory"] is True
    assert checks["median_chunked_equals_in_memory"] is True
    assert checks["trimmed_mean_chunked_equals_in_memory"] is True
    assert all(checks["same_bytes_every_repeat"].values())
    assert checks["max_abs_difference"]["numpy_fedavg_vs_fedledger"] < 2**-19
    if flower:
        assert figures["median_speedup_vs_flower"] > 0
        assert "fedledger_median_p50000" in {run["label"] for run in report["runs"]}
        for key in (
            "flower_fedavg_vs_fedledger",
            "flower_median_vs_fedledger",
            "flower_trimmed_mean_vs_fedledger",
        ):
            assert checks["max_abs_difference"][key] < 2**-18
    labels = {run["label"] for run in report["runs"]}
    assert {"fedledger_fedavg", "numpy_fedavg", "inmemory_fedavg", "inmemory_median"} <= labels
    assert not list(tmp_path.glob("fedledger-aggbench-*")), "the input files are removed"


def test_quick_run__without_flower(tmp_path: Path) -> None:
    report = _run_quick(tmp_path, "--no-flower", "--no-verify", "--part", "fedavg")
    assert report["figures"]["fedavg_speedup_vs_flower"] is None
    assert report["figures"]["median_seconds"] is None
    assert report["checks"]["fedavg_streamed_equals_in_memory"] is None
    assert any("Flower was not measured" in note for note in report["notes"])
