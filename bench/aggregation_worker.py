"""One measured aggregation, in its own process: bench/aggregation.py runs this script once per
implementation and repeat, so that each peak memory (ru_maxrss, the process's high-water mark)
belongs to that implementation alone.

    python bench/aggregation_worker.py IMPLEMENTATION MANIFEST RESULT

reads the update files listed in MANIFEST (JSON: files, weights, chunk_size, group, beta), runs
IMPLEMENTATION, saves its output tensors to RESULT (.npz) and prints one JSON line: seconds,
peak memory, and for the in-memory implementations the time and memory of loading the inputs.

It imports only numpy, the standard library, `fedledger.aggregation` (numpy and ml_dtypes) and, for the
Flower implementations, `flwr`: Flower runs under the benchmark venv's interpreter
(.venv-bench, see tools/setup_bench.sh), everything else under the main venv's. All of them
read the files with the same reader (`fedledger.aggregation.streaming.UpdateFile`).
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedledger.aggregation import coordinate_median, fedavg, trimmed_mean
from fedledger.aggregation.streaming import (
    TensorSource,
    UpdateFile,
    coordinate_median_files,
    fedavg_files,
    trimmed_mean_files,
)
from fedledger.arrays import Array

Tensors = dict[str, Array]


@dataclass(frozen=True)
class Manifest:
    """The inputs and parameters every implementation shares."""

    files: list[str]
    weights: list[int]
    chunk_size: int
    group: int
    beta: float
    rows: int | None = None  # a subset: only the first `rows` rows of every tensor

    @classmethod
    def load(cls, path: Path) -> Manifest:
        body = json.loads(path.read_text())
        return cls(
            files=[str(f) for f in body["files"]],
            weights=[int(w) for w in body["weights"]],
            chunk_size=int(body["chunk_size"]),
            group=int(body["group"]),
            beta=float(body["beta"]),
            rows=None if body.get("rows") is None else int(body["rows"]),
        )


@dataclass(frozen=True)
class FirstRows:
    """The first `rows` rows (along the first axis) of every tensor of an update file: a
    smaller model made of a prefix of each tensor's bytes."""

    update: UpdateFile
    rows: int

    @property
    def layout(self) -> dict[str, tuple[int, ...]]:
        return {name: (min(self.rows, shape[0]), *shape[1:]) for name, shape in self.update.layout.items()}

    def read_range(self, name: str, start: int, stop: int, out: Array | None = None) -> Array:
        if stop > math.prod(self.layout[name]):
            raise ValueError(f"coordinates {start}:{stop} outside the first {self.rows} rows of {name!r}")
        return self.update.read_range(name, start, stop, out)


def peak_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def open_files(manifest: Manifest) -> list[TensorSource]:
    files = [UpdateFile(path) for path in manifest.files]
    if manifest.rows is None:
        return list[TensorSource](files)
    return [FirstRows(update, manifest.rows) for update in files]


def load_all(manifest: Manifest) -> list[Tensors]:
    """Every update's tensors in memory (N x P values): what the in-memory rules and Flower take."""
    loaded = []
    for source in open_files(manifest):
        layout = source.layout
        loaded.append(
            {
                name: source.read_range(name, 0, math.prod(layout[name])).reshape(layout[name])
                for name in sorted(layout)
            }
        )
    return loaded


# --- streamed from the files: memory independent of N ---------------------------------------------


def fedledger_fedavg(manifest: Manifest) -> Tensors:
    """fedledger's FedAvg: exact int64 fixed point, `group` files read and added at a time."""
    files = open_files(manifest)
    return fedavg_files(zip(files, manifest.weights, strict=True), group=manifest.group)


def numpy_fedavg(manifest: Manifest) -> Tensors:
    """The plain numpy baseline: each file read into reused float32 buffers (the same reader),
    `acc += w * x` into float64 accumulators (numpy forms `w * x` in float32, since a Python int
    times a float32 array stays float32), and `acc / total` as float32 at the end."""
    files = open_files(manifest)
    layout = files[0].layout
    sums = {name: np.zeros(math.prod(shape), np.float64) for name, shape in layout.items()}
    buffers = {name: np.empty(math.prod(shape), np.float32) for name, shape in layout.items()}
    total = 0
    for update, weight in zip(files, manifest.weights, strict=True):
        for name, values in sums.items():
            values += weight * update.read_range(name, 0, values.size, buffers[name])
        total += weight
    return {name: (sums[name] / total).astype(np.float32).reshape(layout[name]) for name in sorted(sums)}


def fedledger_median(manifest: Manifest) -> Tensors:
    return coordinate_median_files(open_files(manifest), chunk_size=manifest.chunk_size)


def fedledger_trimmed_mean(manifest: Manifest) -> Tensors:
    return trimmed_mean_files(open_files(manifest), manifest.beta, chunk_size=manifest.chunk_size)


STREAMED: dict[str, Callable[[Manifest], Tensors]] = {
    "fedledger_fedavg": fedledger_fedavg,
    "numpy_fedavg": numpy_fedavg,
    "fedledger_median": fedledger_median,
    "fedledger_trimmed_mean": fedledger_trimmed_mean,
}


# --- in memory: the inputs loaded first (timed apart), then the aggregation timed ---------------


def inmemory_fedavg(manifest: Manifest, updates: Sequence[Tensors]) -> Tensors:
    return fedavg(zip(updates, manifest.weights, strict=True))


def inmemory_median(manifest: Manifest, updates: Sequence[Tensors]) -> Tensors:
    return coordinate_median(updates, chunk_size=manifest.chunk_size)


def inmemory_trimmed_mean(manifest: Manifest, updates: Sequence[Tensors]) -> Tensors:
    return trimmed_mean(updates, manifest.beta, chunk_size=manifest.chunk_size)


def _flower_results(manifest: Manifest, updates: Sequence[Tensors]) -> list[tuple[list[Array], int]]:
    """Flower's input: per trainer, its layers as a list of arrays (in name order) and its
    sample count. The lists hold the loaded arrays themselves, no copy."""
    return [
        ([tensors[name] for name in sorted(tensors)], weight)
        for tensors, weight in zip(updates, manifest.weights, strict=True)
    ]


def _named(updates: Sequence[Tensors], layers: Sequence[Array]) -> Tensors:
    return {name: np.asarray(layer) for name, layer in zip(sorted(updates[0]), layers, strict=True)}


def flower_fedavg(manifest: Manifest, updates: Sequence[Tensors]) -> Tensors:
    from flwr.server.strategy.aggregate import aggregate

    return _named(updates, aggregate(_flower_results(manifest, updates)))


def flower_median(manifest: Manifest, updates: Sequence[Tensors]) -> Tensors:
    from flwr.server.strategy.aggregate import aggregate_median

    return _named(updates, aggregate_median(_flower_results(manifest, updates)))


def flower_trimmed_mean(manifest: Manifest, updates: Sequence[Tensors]) -> Tensors:
    from flwr.server.strategy.aggregate import aggregate_trimmed_avg

    trimmed: list[Array] = aggregate_trimmed_avg(_flower_results(manifest, updates), manifest.beta)
    return _named(updates, trimmed)


IN_MEMORY: dict[str, Callable[[Manifest, Sequence[Tensors]], Tensors]] = {
    "inmemory_fedavg": inmemory_fedavg,
    "inmemory_median": inmemory_median,
    "inmemory_trimmed_mean": inmemory_trimmed_mean,
    "flower_fedavg": flower_fedavg,
    "flower_median": flower_median,
    "flower_trimmed_mean": flower_trimmed_mean,
}
IMPLEMENTATIONS = sorted([*STREAMED, *IN_MEMORY])


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(implementation: str, manifest: Manifest) -> tuple[dict[str, Any], Tensors]:
    """Runs one implementation; returns its measurements (wall and CPU seconds of the measured
    work, peak memory) and its output."""
    record: dict[str, Any] = {"implementation": implementation, "baseline_mib": peak_mib()}
    if implementation in STREAMED:
        started, cpu = time.perf_counter(), cpu_seconds()
        output = STREAMED[implementation](manifest)
    else:
        if implementation.startswith("flower_"):
            import flwr.server.strategy.aggregate  # noqa: F401  (imported before the clock starts)

            record["baseline_mib"] = peak_mib()
        started = time.perf_counter()
        updates = load_all(manifest)
        record["load_seconds"] = time.perf_counter() - started
        record["loaded_mib"] = peak_mib()
        started, cpu = time.perf_counter(), cpu_seconds()
        output = IN_MEMORY[implementation](manifest, updates)
    record["seconds"] = time.perf_counter() - started
    record["cpu_seconds"] = cpu_seconds() - cpu
    record["peak_mib"] = peak_mib()
    return record, output


def main(argv: Sequence[str]) -> None:
    if len(argv) != 3 or argv[0] not in IMPLEMENTATIONS:
        sys.exit(f"usage: aggregation_worker.py {{{','.join(IMPLEMENTATIONS)}}} MANIFEST RESULT")
    implementation, manifest_path, result_path = argv
    record, output = measure(implementation, Manifest.load(Path(manifest_path)))
    if any(values.dtype != np.float32 for values in output.values()):
        record["output_dtypes"] = {name: str(values.dtype) for name, values in output.items()}
    np.savez(result_path, **{name: np.asarray(values, np.float32) for name, values in output.items()})
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
