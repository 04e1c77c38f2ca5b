"""Aggregation speed and memory: fedledger's rules, streamed from update files, against a plain
numpy streaming sum and Flower's aggregation functions on the same inputs.

    python bench/aggregation.py [--quick] [--trainers N] [--params P] [--repeats R] ...

1. Writes N seeded updates of P float32 parameters as canonical fedledger update files (the
   codec's safetensors, 4 x N x P bytes in all) to a temporary directory, and reads them all once
   so that every implementation starts from a warm page cache.
2. Runs each implementation in its own process (bench/aggregation_worker.py), so that its peak
   memory (ru_maxrss) is its own, repeated and interleaved (the order rotates every repeat) so
   that a noisy, shared machine slows all of them alike; reports medians:
   - fedledger FedAvg (`streaming.fedavg_files`: exact int64 fixed point, 16 files at a time)
     vs the plain numpy streaming sum (the same reader, `acc += w * x` in float64) vs Flower's
     `aggregate` on the same values loaded in memory (its input is a list of arrays);
   - fedledger's coordinate median and beta-trimmed mean (`streaming.*_files`, `chunk_size`
     coordinates of every file at a time) vs Flower's `aggregate_median` and
     `aggregate_trimmed_avg` (FedMedian, FedTrimmedAvg) on the same values in memory.
   Flower runs under .venv-bench (tools/setup_bench.sh), everything else under the main venv;
   all workers are single-threaded (OPENBLAS/OMP/MKL_NUM_THREADS=1).
3. Checks (once, in memory, with the original API) that the streamed results are the bytes
   `fedavg`, `coordinate_median` and `trimmed_mean` give, and how far numpy's and Flower's
   float32 results are from the exact ones.

Writes bench/results/aggregation.json (quick: bench/results/aggregation-quick.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from fedledger.arrays import Array
from fedledger.storage.codec import Binding, encode
from fedledger.storage.schema import ModelSpec, TensorSpec

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "bench" / "aggregation_worker.py"
BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"
DEFAULT_OUT = REPO / "bench" / "results" / "aggregation.json"
QUICK_OUT = REPO / "bench" / "results" / "aggregation-quick.json"

ROWS_PER_MILLION = 1000  # the model: fc.weight (P/1000 x 999) and fc.bias (P/1000)
CHUNK_BYTES = 64 << 20  # median / trimmed mean: N x chunk_size float32 values read at a time
MEMORY_MARGIN_MIB = 1024  # left free for the rest of the (shared) machine
SINGLE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FEDAVG_IMPLEMENTATIONS = ("fedledger_fedavg", "numpy_fedavg", "flower_fedavg")
ROBUST_IMPLEMENTATIONS = (
    "fedledger_median",
    "flower_median",
    "fedledger_trimmed_mean",
    "flower_trimmed_mean",
)
VERIFY_IMPLEMENTATIONS = ("inmemory_fedavg", "inmemory_median", "inmemory_trimmed_mean")


@dataclass(frozen=True, kw_only=True)
class Config:
    """What one run measures."""

    quick: bool
    trainers: int
    params: int
    repeats: int
    robust_repeats: int
    chunk_size: int
    group: int = 16
    beta: float = 0.2
    seed: int = 0
    flower: bool = True
    verify: bool = True
    parts: tuple[str, ...] = ("fedavg", "robust")
    flower_robust_params: int = 0  # Flower's median / trimmed mean on the first this many parameters


# --- inputs --------------------------------------------------------------------------------------


def model_layout(params: int) -> dict[str, tuple[int, ...]]:
    """A dense layer with `params` parameters: weight (rows x 999) and bias (rows)."""
    if params < ROWS_PER_MILLION or params % ROWS_PER_MILLION:
        raise ValueError(f"params must be a positive multiple of {ROWS_PER_MILLION}, got {params}")
    rows = params // ROWS_PER_MILLION
    return {"fc.bias": (rows,), "fc.weight": (rows, ROWS_PER_MILLION - 1)}


def make_update(seed: int, index: int, layout: dict[str, tuple[int, ...]]) -> tuple[dict[str, Array], int]:
    """Trainer `index`'s tensors (Gaussian, sd 0.05) and sample count (1..1000), from the seed."""
    rng = np.random.default_rng([seed, index])
    tensors = {
        name: (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.05))
        for name, shape in layout.items()
    }
    return tensors, int(rng.integers(1, 1001))


def input_spec(layout: dict[str, tuple[int, ...]]) -> ModelSpec:
    """The model spec the benchmark's update files follow."""
    return ModelSpec(
        "bench-aggregation", tuple(TensorSpec(name, shape) for name, shape in sorted(layout.items()))
    )


def input_binding(spec: ModelSpec, index: int, weight: int) -> Binding:
    """The binding of update file `index` (trainer index + 1, `weight` samples)."""
    return Binding(
        kind="update",
        chain_id=713715,
        task="0x" + "00" * 19 + "01",
        round=1,
        model_spec=spec.hash().hex(),
        trainer=f"0x{index + 1:040x}",
        num_samples=weight,
    )


def write_inputs(config: Config, directory: Path) -> Path:
    """Writes the update files and a manifest naming them; returns the manifest's path."""
    layout = model_layout(config.params)
    spec = input_spec(layout)
    files, weights = [], []
    for index in range(config.trainers):
        tensors, weight = make_update(config.seed, index, layout)
        path = directory / f"update-{index:05d}.safetensors"
        path.write_bytes(encode(tensors, input_binding(spec, index, weight), spec))
        files.append(str(path))
        weights.append(weight)
    manifest = directory / "manifest.json"
    body = {"files": files, "weights": weights, "chunk_size": config.chunk_size, "group": config.group}
    manifest.write_text(json.dumps({**body, "beta": config.beta, "layout": layout}))
    return manifest


def digest_files(paths: Sequence[str]) -> str:
    """sha256 over the files' sha256s, in order; reading them also warms the page cache."""
    outer = hashlib.sha256()
    for path in paths:
        inner = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                inner.update(block)
        outer.update(inner.digest())
    return outer.hexdigest()


def warm_page_cache(paths: Sequence[str]) -> float:
    """Reads every file once (so that no implementation pays for disk reads another one's memory
    use caused, e.g. Flower's N x P copies evicting the files); returns the seconds it took."""
    started = time.perf_counter()
    buffer = bytearray(1 << 22)
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass
    return time.perf_counter() - started


# --- running the workers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One implementation on one manifest; `label` names it in the runs and figures."""

    label: str
    implementation: str
    manifest: Path
    params: int

    @property
    def python(self) -> str:
        return str(BENCH_PYTHON) if self.implementation.startswith("flower_") else sys.executable


def subset_manifest(manifest: Path, rows: int) -> Path:
    """The same files and parameters restricted to the first `rows` rows of every tensor."""
    path = manifest.with_name(f"manifest-rows-{rows}.json")
    path.write_text(json.dumps({**json.loads(manifest.read_text()), "rows": rows}))
    return path


def worker_env() -> dict[str, str]:
    env = {**os.environ, **SINGLE_THREAD, "PYTHONPATH": str(REPO / "clients")}
    env.pop("PYTHONSTARTUP", None)
    return env


def memory_needed_mib(job: Job, trainers: int) -> float:
    """A generous estimate of an in-memory implementation's peak: its N x P inputs and copies."""
    if job.implementation.startswith(("fedledger_", "numpy_")):
        return 0.0  # streamed: O(P) or O(N x chunk)
    copies = {"flower_fedavg": 2.2, "flower_median": 3.2, "flower_trimmed_mean": 3.2}
    return 4 * trainers * job.params / 2**20 * copies.get(job.implementation, 1.2)


def available_mib() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def run_worker(job: Job, result: Path, trainers: int) -> dict[str, Any]:
    """One measurement in a fresh process; its JSON record plus the sha256 of its output."""
    needed, available = memory_needed_mib(job, trainers), available_mib()
    if needed > available - MEMORY_MARGIN_MIB:
        raise click.ClickException(
            f"{job.label} needs about {needed:.0f} MiB and {available:.0f} MiB are available (the machine "
            "is shared): wait, or measure Flower's median and trimmed mean on fewer coordinates "
            "(--flower-robust-params)"
        )
    warm_seconds = warm_page_cache(json.loads(job.manifest.read_text())["files"])
    completed = subprocess.run(
        [job.python, str(WORKER), job.implementation, str(job.manifest), str(result)],
        env=worker_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode:
        raise RuntimeError(f"{job.label} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    record: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    record.update(
        label=job.label, params=job.params, output_sha256=output_digest(result), warm_seconds=warm_seconds
    )
    return record


def output_digest(result: Path) -> str:
    with np.load(result) as arrays:
        digest = hashlib.sha256()
        for name in sorted(arrays.files):
            digest.update(name.encode() + b"\0" + np.ascontiguousarray(arrays[name]).tobytes())
        return digest.hexdigest()


def rotated(items: Sequence[Job], shift: int) -> list[Job]:
    shift %= max(len(items), 1)
    return [*items[shift:], *items[:shift]]


def run_schedule(jobs: Sequence[Job], repeats: int, results: Path, trainers: int) -> list[dict[str, Any]]:
    """Every job `repeats` times, interleaved, the order rotating each repeat."""
    runs = []
    for repeat in range(repeats):
        for job in rotated(jobs, repeat):
            record = run_worker(job, results / f"{job.label}-{repeat}.npz", trainers)
            record["repeat"] = repeat
            click.echo(
                f"  {job.label:32s} repeat {repeat}: {record['seconds']:8.3f} s "
                f"(cpu {record['cpu_seconds']:7.3f}), peak {record['peak_mib']:8.1f} MiB",
                err=True,
            )
            runs.append(record)
    return runs


# --- figures ---------------------------------------------------------------------------------------


def values_of(runs: Sequence[dict[str, Any]], label: str, key: str) -> list[float]:
    return [float(run[key]) for run in runs if run["label"] == label and key in run]


def median_of(runs: Sequence[dict[str, Any]], label: str, key: str = "seconds") -> float | None:
    values = values_of(runs, label, key)
    return statistics.median(values) if values else None


def trimmed_mean_of(runs: Sequence[dict[str, Any]], label: str, key: str = "seconds") -> float | None:
    """Mean without the fastest and slowest run (the plain mean below three runs)."""
    values = sorted(values_of(runs, label, key))
    kept = values[1:-1] if len(values) >= 3 else values
    return sum(kept) / len(kept) if kept else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def figures(runs: Sequence[dict[str, Any]], flower_robust_label: str) -> dict[str, Any]:
    """The headline numbers: medians over repeats of wall seconds and peak MiB per implementation.

    `flower_robust_label` is the label of the fedledger runs on the coordinates Flower's median and
    trimmed mean ran on ("" when that is the full model)."""

    def seconds(label: str, key: str = "seconds") -> float | None:
        return median_of(runs, label, key)

    def peak(label: str) -> float | None:
        return median_of(runs, label, "peak_mib")

    suffix = flower_robust_label
    out: dict[str, Any] = {
        "fedavg_vs_numpy_ratio": ratio(seconds("fedledger_fedavg"), seconds("numpy_fedavg")),
        "fedavg_speedup_vs_flower": ratio(seconds("flower_fedavg"), seconds("fedledger_fedavg")),
        "fedavg_seconds": seconds("fedledger_fedavg"),
        "numpy_seconds": seconds("numpy_fedavg"),
        "flower_fedavg_seconds": seconds("flower_fedavg"),
        "fedavg_peak_mib": peak("fedledger_fedavg"),
        "numpy_peak_mib": peak("numpy_fedavg"),
        "flower_fedavg_peak_mib": peak("flower_fedavg"),
        "flower_load_seconds": seconds("flower_fedavg", "load_seconds"),
        "flower_inputs_loaded_mib": seconds("flower_fedavg", "loaded_mib"),
        "median_seconds": seconds("fedledger_median"),
        "median_peak_mib": peak("fedledger_median"),
        "trimmed_mean_seconds": seconds("fedledger_trimmed_mean"),
        "trimmed_mean_peak_mib": peak("fedledger_trimmed_mean"),
        "flower_median_seconds": seconds("flower_median"),
        "flower_median_peak_mib": peak("flower_median"),
        "flower_trimmed_mean_seconds": seconds("flower_trimmed_mean"),
        "flower_trimmed_mean_peak_mib": peak("flower_trimmed_mean"),
        "median_speedup_vs_flower": ratio(seconds("flower_median"), seconds("fedledger_median" + suffix)),
        "trimmed_mean_speedup_vs_flower": ratio(
            seconds("flower_trimmed_mean"), seconds("fedledger_trimmed_mean" + suffix)
        ),
        "fedavg_vs_numpy_ratio_cpu": ratio(
            seconds("fedledger_fedavg", "cpu_seconds"), seconds("numpy_fedavg", "cpu_seconds")
        ),
        "fedavg_speedup_vs_flower_cpu": ratio(
            seconds("flower_fedavg", "cpu_seconds"), seconds("fedledger_fedavg", "cpu_seconds")
        ),
    }
    if suffix:
        for rule in ("median", "trimmed_mean"):
            out[f"{rule}{suffix}_seconds"] = seconds(f"fedledger_{rule}{suffix}")
            out[f"{rule}{suffix}_peak_mib"] = peak(f"fedledger_{rule}{suffix}")
    for name in VERIFY_IMPLEMENTATIONS:
        out[f"{name}_seconds"] = seconds(name)
        out[f"{name}_peak_mib"] = peak(name)
    return out


def per_implementation(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per label: the median and trimmed mean of the wall seconds, the median CPU seconds and peak."""
    return {
        label: {
            "runs": len(values_of(runs, label, "seconds")),
            "seconds_median": median_of(runs, label),
            "seconds_trimmed_mean": trimmed_mean_of(runs, label),
            "cpu_seconds_median": median_of(runs, label, "cpu_seconds"),
            "peak_mib_median": median_of(runs, label, "peak_mib"),
            "params": next(run["params"] for run in runs if run["label"] == label),
        }
        for label in dict.fromkeys(run["label"] for run in runs)
    }


def targets(values: dict[str, Any]) -> dict[str, Any]:
    ratio_value, speedup = values["fedavg_vs_numpy_ratio"], values["fedavg_speedup_vs_flower"]
    return {
        "fedavg_vs_numpy_ratio": {
            "target": "<= 1.5",
            "met": None if ratio_value is None else ratio_value <= 1.5,
        },
        "fedavg_speedup_vs_flower": {"target": ">= 2", "met": None if speedup is None else speedup >= 2},
    }


def max_difference(results: Path, left: str, right: str) -> float | None:
    """Largest |difference| between two labels' first outputs (None if one is missing)."""
    paths = [results / f"{label}-0.npz" for label in (left, right)]
    if not all(path.exists() for path in paths):
        return None
    with np.load(paths[0]) as a, np.load(paths[1]) as b:
        return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a.files)


def same_output(runs: Sequence[dict[str, Any]], left: str, right: str) -> bool | None:
    """Whether every run of both labels gave the same bytes (None if either did not run)."""
    if not (values_of(runs, left, "seconds") and values_of(runs, right, "seconds")):
        return None
    return len({run["output_sha256"] for run in runs if run["label"] in (left, right)}) == 1


def checks(runs: Sequence[dict[str, Any]], results: Path, flower_robust_label: str) -> dict[str, Any]:
    """Bit-identity with the in-memory rules, and the float32 implementations' distance from them."""
    suffix = flower_robust_label
    labels = dict.fromkeys(run["label"] for run in runs if run["label"].startswith("fedledger_"))
    return {
        "fedavg_streamed_equals_in_memory": same_output(runs, "fedledger_fedavg", "inmemory_fedavg"),
        "median_chunked_equals_in_memory": same_output(runs, "fedledger_median", "inmemory_median"),
        "trimmed_mean_chunked_equals_in_memory": same_output(
            runs, "fedledger_trimmed_mean", "inmemory_trimmed_mean"
        ),
        "same_bytes_every_repeat": {label: same_output(runs, label, label) for label in labels},
        "max_abs_difference": {
            "numpy_fedavg_vs_fedledger": max_difference(results, "numpy_fedavg", "fedledger_fedavg"),
            "flower_fedavg_vs_fedledger": max_difference(results, "flower_fedavg", "fedledger_fedavg"),
            "flower_median_vs_fedledger": max_difference(
                results, "flower_median", "fedledger_median" + suffix
            ),
            "flower_trimmed_mean_vs_fedledger": max_difference(
                results, "flower_trimmed_mean", "fedledger_trimmed_mean" + suffix
            ),
        },
    }


# --- setup and notes -----------------------------------------------------------------------------


def flower_versions() -> dict[str, str] | None:
    if not BENCH_PYTHON.exists():
        return None
    script = (
        "import json, flwr, numpy; print(json.dumps({'flwr': flwr.__version__, 'numpy': numpy.__version__}))"
    )
    completed = subprocess.run(
        [str(BENCH_PYTHON), "-c", script], env=worker_env(), capture_output=True, text=True, check=True
    )
    versions: dict[str, str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return versions


def setup_record(config: Config, inputs_sha256: str, flower: dict[str, str] | None) -> dict[str, Any]:
    return {
        "N": config.trainers,
        "P": config.params,
        "layout": model_layout(config.params),
        "update_bytes_total": 4 * config.trainers * config.params,
        "weights": "sample counts 1..1000, seeded",
        "values": "Gaussian, sd 0.05, float32, seeded (numpy default_rng([seed, trainer]))",
        "seed": config.seed,
        "inputs_sha256": inputs_sha256,
        "chunking": {
            "median_and_trimmed_mean_chunk_size": config.chunk_size,
            "stack_bytes": 4 * config.trainers * config.chunk_size,
            "fedavg_group": config.group,
        },
        "trimmed_mean_beta": config.beta,
        "repeats": {"fedavg": config.repeats, "median_and_trimmed_mean": config.robust_repeats},
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "flwr": flower["flwr"] if flower else None,
            "numpy_in_flower_venv": flower["numpy"] if flower else None,
        },
        "threads": SINGLE_THREAD,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": list(os.getloadavg()),
        },
    }


def notes(config: Config, flower: bool) -> list[str]:
    out = [
        "Seconds are wall-clock seconds of the measured work only (imports, and for the in-memory "
        "implementations the loading of the inputs, excluded), the median over the repeats of one "
        "process per implementation and repeat; the implementations are interleaved and their order "
        "rotates each repeat. The machine is shared (2 cores, other jobs running), so single timings "
        "are noisy: 'runs' holds every measurement, 'per_implementation' medians, trimmed means and "
        "CPU seconds (less sensitive to waiting for a core), and the *_cpu figures are the same "
        "ratios on CPU seconds.",
        "Peak memory (*_peak_mib) is the worker process's ru_maxrss, its resident high-water mark: "
        "interpreter, numpy and, for Flower, the imported flwr modules included ('baseline_mib' in "
        "'runs' is the level before the measured work). Files are read with pread, not mapped, so "
        "the page cache does not count.",
        "The update files are in the page cache when measured (all read again before every run, "
        "'warm_seconds' in 'runs'): times are CPU and memory bound, not disk bound. All workers run "
        "single-threaded (OPENBLAS, OMP and MKL_NUM_THREADS=1).",
        f"fedledger FedAvg (fedavg_seconds): streaming.fedavg_files takes the files {config.group} at a "
        "time and reads 65536 coordinates of each at a time into one reused float32 buffer "
        "(FedAvgAccumulator.add_columns), adding them to int64 sums exactly "
        "(fixedpoint.accumulate_weighted: each value rounded to the 2^-20 grid, the weighted sums "
        "formed as integers), then one rounded division per value. Memory O(P): the sums and the "
        "buffer.",
        "numpy baseline (numpy_seconds): the same reader, one file at a time into reused float32 "
        "buffers, `acc += w * x` into float64 accumulators (numpy forms w * x in float32), then "
        "(acc / total).astype(float32). Not exact, and its rounding depends on the order of the updates.",
        "Flower FedAvg (flower_fedavg_seconds): flwr.server.strategy.aggregate.aggregate(results) with "
        "results = [(layers, num_examples)] holding every update's arrays in memory, timed without "
        "loading them (flower_load_seconds: reading the same files into memory with the same reader). "
        "It multiplies every layer by its sample count (a float32 copy of all N x P values), sums "
        "and divides in float32; its peak memory holds the N x P inputs and that copy.",
        f"Median and trimmed mean (beta {config.beta}, so floor({config.beta} N) values dropped at each "
        "end): streaming.coordinate_median_files / trimmed_mean_files read "
        f"{config.chunk_size} coordinates of every file at a time (an N x chunk float32 stack, "
        f"{4 * config.trainers * config.chunk_size / 2**20:.1f} MiB), map the values to integer keys "
        "ordered like the floats, partition them a few hundred coordinates at a time along the "
        "update axis, and average the kept values exactly in fixed point. Flower's aggregate_median "
        "(np.median over an N x layer stack) and aggregate_trimmed_avg (np.partition and np.mean, in "
        "float32) take the in-memory inputs and make N x P copies of them.",
        "Checks: the original in-memory API (fedavg, coordinate_median, trimmed_mean on the loaded "
        "tensors) runs once; 'checks' compares output sha256s (bit identity, and the same bytes in "
        "every repeat) and gives the largest differences of numpy's and Flower's float32 results "
        "from fedledger's exact ones.",
    ]
    if flower and config.flower_robust_params < config.params:
        out.append(
            f"Flower's median and trimmed mean ran on the first {config.flower_robust_params} parameters "
            f"(the first {config.flower_robust_params // ROWS_PER_MILLION} rows of each tensor) instead of "
            f"all {config.params}: at full size they need about 3 x 4 x N x P bytes of memory (inputs, "
            "their stack, its partitioned copy) and minutes per run on a shared machine. fedledger ran "
            f"on both the full model (median_seconds, trimmed_mean_seconds) and that subset "
            f"(median_p{config.flower_robust_params}_seconds, ...); the *_speedup_vs_flower figures "
            "compare the subset runs."
        )
    if not flower:
        out.append("Flower was not measured (no .venv-bench, or --no-flower): run tools/setup_bench.sh.")
    return out


# --- the command ---------------------------------------------------------------------------------


def make_config(
    quick: bool,
    trainers: int | None,
    params: int | None,
    repeats: int | None,
    robust_repeats: int | None,
    chunk_size: int | None,
    flower: bool,
    verify: bool,
    parts: tuple[str, ...] = ("fedavg", "robust"),
    flower_robust_params: int | None = None,
) -> Config:
    trainers = trainers or (50 if quick else 1000)
    params = params or (100_000 if quick else 1_000_000)
    if flower_robust_params is not None:
        model_layout(flower_robust_params)  # a multiple of 1000
    return Config(
        quick=quick,
        trainers=trainers,
        params=params,
        repeats=repeats or (2 if quick else 5),
        robust_repeats=robust_repeats or (1 if quick else 3),
        chunk_size=chunk_size or (8192 if quick else max(1, CHUNK_BYTES // (4 * trainers))),
        flower=flower,
        verify=verify,
        parts=parts,
        flower_robust_params=min(flower_robust_params or params, params),
    )


def jobs_for(config: Config, manifest: Path, flower: bool) -> tuple[list[Job], list[Job], list[Job], str]:
    """The FedAvg, robust-rule and check jobs, and the label suffix of the Flower-sized runs."""
    full = config.params

    def job(implementation: str, path: Path = manifest, params: int = full, suffix: str = "") -> Job:
        return Job(implementation + suffix, implementation, path, params)

    fedavg_jobs = [job(name) for name in FEDAVG_IMPLEMENTATIONS if flower or not name.startswith("flower_")]
    robust_jobs = [job("fedledger_median"), job("fedledger_trimmed_mean")]
    suffix = ""
    if flower:
        subset, params = manifest, full
        if config.flower_robust_params < full:
            params = config.flower_robust_params
            suffix = f"_p{params}"
            subset = subset_manifest(manifest, params // ROWS_PER_MILLION)
            robust_jobs += [
                job(name, subset, params, suffix) for name in ("fedledger_median", "fedledger_trimmed_mean")
            ]
        robust_jobs += [job(name, subset, params) for name in ("flower_median", "flower_trimmed_mean")]
    verify_jobs = [
        job(name)
        for name in VERIFY_IMPLEMENTATIONS
        if ("fedavg" in config.parts) == ("fedavg" in name) or {"fedavg", "robust"} <= set(config.parts)
    ]
    return fedavg_jobs, robust_jobs, verify_jobs if config.verify else [], suffix


def run(config: Config, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    flower = flower_versions() if config.flower else None
    if config.flower and flower is None and not config.quick:
        raise click.ClickException(
            f"{BENCH_PYTHON} is missing: run tools/setup_bench.sh (or pass --no-flower)"
        )
    click.echo(f"writing {config.trainers} updates of {config.params} parameters to {workdir}", err=True)
    manifest = write_inputs(config, workdir)
    inputs_sha256 = digest_files(json.loads(manifest.read_text())["files"])
    results = workdir / "results"
    results.mkdir()
    fedavg_jobs, robust_jobs, verify_jobs, suffix = jobs_for(config, manifest, flower is not None)
    runs: list[dict[str, Any]] = []
    if "fedavg" in config.parts:
        click.echo("FedAvg:", err=True)
        runs += run_schedule(fedavg_jobs, config.repeats, results, config.trainers)
    if "robust" in config.parts:
        click.echo("median and trimmed mean:", err=True)
        runs += run_schedule(robust_jobs, config.robust_repeats, results, config.trainers)
    if verify_jobs:
        click.echo("in-memory reference rules (checks):", err=True)
        runs += run_schedule(verify_jobs, 1, results, config.trainers)
    values = figures(runs, suffix)
    return {
        "benchmark": "aggregation",
        "command": shlex.join(["python", "bench/aggregation.py", *sys.argv[1:]]),
        "quick": config.quick,
        "figures": values,
        "targets": targets(values),
        "per_implementation": per_implementation(runs),
        "checks": checks(runs, results, suffix),
        "setup": {**setup_record(config, inputs_sha256, flower), "config": asdict(config)},
        "notes": notes(config, flower is not None),
        "runs": runs,
        "wall_seconds": time.perf_counter() - started,
    }


@click.command()
@click.option("--quick", is_flag=True, help="N=50, P=100k: seconds, for tests.")
@click.option("--trainers", type=click.IntRange(min=1), default=None, help="N [1000; quick 50].")
@click.option(
    "--params", type=click.IntRange(min=1000), default=None, help="P, a multiple of 1000 [1e6; 1e5]."
)
@click.option("--repeats", type=click.IntRange(min=1), default=None, help="FedAvg repeats [5; quick 2].")
@click.option(
    "--robust-repeats", type=click.IntRange(min=1), default=None, help="Median/trimmed repeats [3; quick 1]."
)
@click.option(
    "--chunk-size", type=click.IntRange(min=1), default=None, help="Coordinates per chunk [64 MiB/4N]."
)
@click.option("--flower/--no-flower", default=True, help="Measure Flower (needs .venv-bench) [on].")
@click.option("--verify/--no-verify", default=True, help="Run the in-memory rules and compare bytes [on].")
@click.option(
    "--part",
    "parts",
    type=click.Choice(["fedavg", "robust"]),
    multiple=True,
    default=("fedavg", "robust"),
    help="Which measurements: fedavg, robust (median and trimmed mean) [both].",
)
@click.option(
    "--flower-robust-params",
    type=click.IntRange(min=1000),
    default=None,
    help="Run Flower's median and trimmed mean (and fedledger's, to compare) on the first this many "
    "parameters only (a multiple of 1000) [P].",
)
@click.option(
    "--workdir", type=click.Path(file_okay=False, path_type=Path), default=None, help="For the files."
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="The JSON to write."
)
def main(
    quick: bool,
    trainers: int | None,
    params: int | None,
    repeats: int | None,
    robust_repeats: int | None,
    chunk_size: int | None,
    flower: bool,
    verify: bool,
    parts: tuple[str, ...],
    flower_robust_params: int | None,
    workdir: Path | None,
    out: Path | None,
) -> None:
    """Measures FedAvg, median and trimmed mean against numpy and Flower; writes the JSON."""
    config = make_config(
        quick,
        trainers,
        params,
        repeats,
        robust_repeats,
        chunk_size,
        flower,
        verify,
        parts,
        flower_robust_params,
    )
    directory = Path(tempfile.mkdtemp(prefix="fedledger-aggbench-", dir=workdir))
    try:
        report = run(config, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    path = out or (QUICK_OUT if quick else DEFAULT_OUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(json.dumps({k: report["figures"][k] for k in list(report["figures"])[:4]}), err=True)
    click.echo(f"wrote {path}", err=True)


if __name__ == "__main__":
    main()
