"""`make bench`: runs every benchmark, merges bench/results/latest.json, writes docs/BENCHMARKS.md.

Each benchmark is its own process (so peak-memory figures do not mix) that writes
bench/results/<name>.json with a `figures` dict. This runner adds the machine, the versions
and the commands, and renders every figure beside its target and anchor. Benchmarks report;
they never fail on a slow machine — a benchmark that crashes is recorded as failed.

    python bench/run_all.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LATEST = RESULTS / "latest.json"
DOC = ROOT / "docs" / "BENCHMARKS.md"


@dataclass(frozen=True)
class Benchmark:
    name: str
    command: list[str]
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Target:
    """A figure's target (`op` is <= or >=) and what it is measured against."""

    op: str
    value: float
    anchor: str

    def met(self, measured: float) -> bool:
        return measured <= self.value if self.op == "<=" else measured >= self.value


BENCHMARKS = [
    Benchmark(
        "gas",
        ["ape", "test", "tests/contracts/test_gas.py", "--network", "ethereum:local:foundry", "-q"],
        (("FEDLEDGER_GAS_REPORT", "1"),),
    ),
    Benchmark("aggregation", [sys.executable, "bench/aggregation.py"]),
    Benchmark("throughput", [sys.executable, "bench/throughput.py"]),
    Benchmark("overhead", [sys.executable, "bench/overhead.py"]),
    Benchmark("scale", [sys.executable, "bench/scale.py"]),
]

TARGETS = {
    "commit_gas": Target(
        "<=", 50_000, "~46k floor of a commit that creates a slot; ours reuses per-trainer slots"
    ),
    "batch_commit_gas_per_update": Target("<=", 15_000, "amortized at batch size 100"),
    "commit_throughput_ratio": Target(">=", 0.8, "raw Anvil transfers, same harness, same run"),
    "sei_profile_gas_limit_share": Target(">=", 0.9, "gas-bound limit: 10M gas per 0.4 s block"),
    "sei_profile_gas_limit_share_batched": Target(
        ">=", 0.9, "the same limit, batches of 100 by 4 relayers (packing ceiling 0.933)"
    ),
    "fedavg_vs_numpy_ratio": Target("<=", 1.5, "plain numpy streaming sum over the same bytes"),
    "fedavg_speedup_vs_flower": Target(">=", 2.0, "Flower's FedAvg aggregate on identical inputs"),
    "protocol_overhead_share": Target("<=", 0.15, "round wall time of the demo"),
}
# Figures the issue asks for without a target: shown in the same table.
REPORTED = {
    "scale_1000_round_seconds": "one full round of 1,000 trainers through the real chain and IPFS",
    "scale_protocol_seconds": "the same round without the simulated training",
    "scale_aggregator_peak_rss_mib": "an aggregator's peak resident memory in that round",
}


def gas_figures() -> dict[str, Any]:
    """The gas test writes gas.json (call -> gas); the suite's key for a commit is commit_gas."""
    gas: dict[str, int] = json.loads((RESULTS / "gas.json").read_text())
    figures: dict[str, Any] = {f"gas_{call}": used for call, used in gas.items()}
    figures["commit_gas"] = gas["commitUpdate"]
    figures["first_commit_gas"] = gas["commitUpdate_first"]
    figures["reveal_gas"] = gas["revealUpdate"]
    figures["commit_and_reveal_gas"] = gas["commitUpdate"] + gas["revealUpdate"]
    figures["batch_commit_gas_per_update"] = gas["commitBatch_per_update"]
    figures["batch_reveal_gas_per_update"] = gas["revealBatch_per_update"]
    return figures


def run(benchmark: Benchmark) -> dict[str, Any]:
    """Runs one benchmark; its result file, or a record of its failure."""
    started = time.monotonic()
    env = {**os.environ, **dict(benchmark.env)}
    done = subprocess.run(benchmark.command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = round(time.monotonic() - started, 1)
    command = " ".join(f"{k}={v}" for k, v in benchmark.env) + " " * bool(benchmark.env) + _shown(benchmark)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-2000:]
        return {"benchmark": benchmark.name, "command": command, "failed": tail, "seconds": seconds}
    if benchmark.name == "gas":
        return {"benchmark": "gas", "command": command, "figures": gas_figures(), "seconds": seconds}
    result: dict[str, Any] = json.loads((RESULTS / f"{benchmark.name}.json").read_text())
    result.setdefault("seconds", seconds)
    return result


def _shown(benchmark: Benchmark) -> str:
    return " ".join("python" if part == sys.executable else part for part in benchmark.command)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kib = next(
        (int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal")),
        0,
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    found = {name: _version(name) for name in ("eth-ape", "web3", "numpy", "torch", "safetensors")}
    anvil = subprocess.run(["anvil", "--version"], capture_output=True, text=True, check=False)
    found["anvil"] = anvil.stdout.splitlines()[0] if anvil.returncode == 0 and anvil.stdout else "?"
    return found


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def render(latest: dict[str, Any]) -> str:
    """docs/BENCHMARKS.md: every target beside its figure, then all figures per benchmark."""
    figures: dict[str, Any] = {}
    for result in latest["benchmarks"].values():
        figures.update(result.get("figures", {}))
    rows = []
    for key, target in TARGETS.items():
        measured = figures.get(key)
        verdict = "not measured" if measured is None else ("met" if target.met(measured) else "missed")
        shown = "—" if measured is None else _fmt(measured)
        rows.append(f"| `{key}` | {shown} | {target.op} {_fmt(target.value)} | {target.anchor} | {verdict} |")
    for key, anchor in REPORTED.items():
        measured = figures.get(key)
        shown, verdict = ("—", "not measured") if measured is None else (_fmt(measured), "reported")
        rows.append(f"| `{key}` | {shown} | — | {anchor} | {verdict} |")
    sections = []
    for name, result in latest["benchmarks"].items():
        lines = [f"### {name}", "", f"`{result.get('command', '')}` ({result.get('seconds', '?')} s)", ""]
        if "failed" in result:
            lines += ["Failed:", "", "```", result["failed"], "```"]
        else:
            lines += ["| figure | value |", "| --- | ---: |"]
            lines += [f"| `{k}` | {_fmt(v)} |" for k, v in result.get("figures", {}).items()]
            lines += [f"- {note}" for note in result.get("notes", [])]
        sections.append("\n".join(lines))
    info = latest["machine"]
    env = ", ".join(f"{k} {v}" for k, v in latest["versions"].items())
    return (
        "# Benchmarks\n\n"
        f"`make bench` on {latest['date']}: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"{info['os']}, Python {info['python']}; {env}. Figures are as measured in one run "
        "(bench/results/latest.json); ratios compare implementations measured side by side in that run.\n\n"
        "| key | measured | target | anchor | verdict |\n| --- | ---: | --- | --- | --- |\n"
        + "\n".join(rows)
        + "\n\n## Where a target is missed\n\n"
        + misses()
        + "\n\n## All figures\n\n"
        + "\n\n".join(sections)
        + "\n"
    )


def misses() -> str:
    """bench/misses.md, written by hand from the measured figures: why a target is missed."""
    path = ROOT / "bench" / "misses.md"
    return path.read_text().strip() if path.exists() else "None recorded."


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=[b.name for b in BENCHMARKS], help="run only these")
    args = parser.parse_args(argv)
    previous: dict[str, Any] = json.loads(LATEST.read_text()) if LATEST.exists() else {"benchmarks": {}}
    results = dict(previous.get("benchmarks", {}))
    for benchmark in BENCHMARKS:
        if args.only and benchmark.name not in args.only:
            # Not run now: keep what latest.json has, unless the benchmark's own result file is
            # newer (it was run by itself since).
            saved = RESULTS / f"{benchmark.name}.json"
            newer = benchmark.name not in results or (
                LATEST.exists() and saved.exists() and saved.stat().st_mtime > LATEST.stat().st_mtime
            )
            if benchmark.name != "gas" and saved.exists() and newer:
                results[benchmark.name] = json.loads(saved.read_text())
            continue
        print(f"bench: {benchmark.name} ...", flush=True)
        results[benchmark.name] = run(benchmark)
        print(
            f"bench: {benchmark.name}: {json.dumps(results[benchmark.name].get('figures', 'failed'))}",
            flush=True,
        )
    latest = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(),
        "benchmarks": results,
        "figures": {k: v for r in results.values() for k, v in r.get("figures", {}).items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    LATEST.write_text(json.dumps(latest, indent=2) + "\n")
    DOC.write_text(render(latest))
    print(f"bench: wrote {LATEST.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
