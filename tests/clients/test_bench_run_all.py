"""The benchmark suite's report: targets judged the right way round, every target shown."""

from __future__ import annotations

from pathlib import Path

from bench_modules import load_bench

ROOT = Path(__file__).resolve().parents[2]


def test_target__at_most_and_at_least() -> None:
    run_all = load_bench("run_all")
    assert run_all.Target("<=", 50_000, "").met(50_000)
    assert not run_all.Target("<=", 50_000, "").met(50_001)
    assert run_all.Target(">=", 0.8, "").met(0.8)
    assert not run_all.Target(">=", 0.8, "").met(0.79)


def test_render__every_target_with_its_verdict_and_failures_shown() -> None:
    run_all = load_bench("run_all")
    latest = {
        "date": "2026-11-23 00:00 UTC",
        "machine": {"cpu": "cpu", "cores": 2, "memory_gib": 24.0, "os": "linux", "python": "3.11"},
        "versions": {"anvil": "1.7.1"},
        "benchmarks": {
            "gas": {"command": "ape test", "figures": {"commit_gas": 54_259}, "seconds": 5},
            "overhead": {"command": "python bench/overhead.py", "failed": "boom", "seconds": 1},
        },
    }
    doc = run_all.render(latest)
    assert "| `commit_gas` | 54,259 | <= 50,000 |" in doc and "| missed |" in doc
    assert "| `fedavg_vs_numpy_ratio` | — |" in doc and "not measured" in doc
    assert all(f"`{key}`" in doc for key in [*run_all.TARGETS, *run_all.REPORTED])
    assert "Failed:" in doc and "boom" in doc
