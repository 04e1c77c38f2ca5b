"""bench/robustness.py: the grid, the rule parameters, and a real quick run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench_modules import load_bench

from fedledger.aggregation.rules import krum_parameters

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "robustness.py"


bench = load_bench("robustness")


def test_attackers_are_rounded_shares() -> None:
    assert [bench.attackers_for(share, 20) for share in (0.0, 0.1, 0.2, 0.3)] == [0, 2, 4, 6]
    assert bench.attackers_for(0.25, 4) == 1


@pytest.mark.parametrize(("attackers", "count"), [(0, 20), (2, 20), (6, 20), (6, 14), (1, 4), (9, 20)])
def test_multi_krum_parameter__f_is_k_capped_to_a_valid_value(attackers: int, count: int) -> None:
    param, f = bench.rule_param("multi-krum", attackers, count)
    assert param != 0  # 0 would select the default f, not ours
    assert f == min(attackers, (count - 3) // 2)
    assert krum_parameters(param, count) == (f, count - f)


def test_other_rule_parameters() -> None:
    assert bench.rule_param("trimmed-mean", 4, 20) == (2000, None)
    assert bench.rule_param("fedavg", 4, 20) == (0, None)
    assert bench.rule_param("median", 4, 20) == (0, None)


def test_full_grid__one_clean_cell_per_rule_and_shards() -> None:
    cells = bench.cells_for(bench.FULL_GRID, 20)
    clean = [cell for cell in cells if cell.attackers == 0]
    assert len(clean) == 2 * 4
    assert all(cell.attack is None for cell in clean)
    assert len(cells) == 2 * 4 * (1 + 3 * 4)
    assert len({cell.id for cell in cells}) == len(cells)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    folder = tmp_path_factory.mktemp("robustness")
    out, doc = folder / "robustness.json", folder / "ROBUSTNESS.md"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workers", "2", "--out", str(out), "--doc", str(doc)],
        cwd=REPO,
        check=True,
        timeout=180,
        capture_output=True,
    )
    return json.loads(out.read_text()), doc.read_text()


def test_quick_run__json_structure(quick_run: tuple[dict[str, Any], str]) -> None:
    report, _ = quick_run
    for key in ("command", "machine", "seeds", "settings", "grid", "rules", "attacks", "cells", "table"):
        assert key in report
    assert report["machine"]["cpu_count"] >= 1
    assert report["machine"]["python"] and report["machine"]["torch"]
    assert "--quick" in report["command"]
    assert report["quick"] is True
    assert report["settings"]["trainers"] == 4 and report["settings"]["rounds"] == 2
    assert report["total_seconds"] > 0
    grid = report["grid"]
    rows = report["table"]
    assert len(rows) == len(grid["shards"]) * len(grid["attacks"]) * len(grid["shares"]) * len(grid["rules"])
    for cell in report["cells"]:
        assert cell["seconds"] > 0
        assert len(cell["round_accuracy"]) == report["settings"]["rounds"]
        assert cell["round_accuracy"][-1] == cell["accuracy"]


def test_quick_run__accuracies_in_unit_interval(quick_run: tuple[dict[str, Any], str]) -> None:
    report, _ = quick_run
    values = [row["accuracy"] for row in report["table"]]
    for cell in report["cells"]:
        values += [cell["accuracy"], *cell["round_accuracy"]]
    assert values and all(0.0 <= value <= 1.0 for value in values)


def test_quick_run__clean_cells_reused_across_attacks(quick_run: tuple[dict[str, Any], str]) -> None:
    report, _ = quick_run
    cells = {cell["id"]: cell for cell in report["cells"]}
    grid = report["grid"]
    for shards in grid["shards"]:
        for rule in grid["rules"]:
            clean_rows = [
                row
                for row in report["table"]
                if row["shards"] == shards and row["rule"] == rule and row["attackers"] == 0
            ]
            assert {row["attack"] for row in clean_rows} == set(grid["attacks"])
            assert all(row["reused_clean"] for row in clean_rows)
            (cell_id,) = {row["cell"] for row in clean_rows}
            assert cells[cell_id]["attack"] is None
            assert all(row["accuracy"] == cells[cell_id]["accuracy"] for row in clean_rows)
            measured_clean = [
                c
                for c in report["cells"]
                if c["shards"] == shards and c["rule"] == rule and c["attackers"] == 0
            ]
            assert len(measured_clean) == 1
    attacked = [row for row in report["table"] if row["attackers"]]
    assert attacked and not any(row["reused_clean"] for row in attacked)
    assert all(cells[row["cell"]]["attack"] == row["attack"] for row in attacked)


def test_quick_run__markdown_lists_every_rule(quick_run: tuple[dict[str, Any], str]) -> None:
    report, doc = quick_run
    headers = [line for line in doc.splitlines() if line.startswith("| Attack |")]
    assert len(headers) == len(report["grid"]["shards"])
    for header in headers:
        for rule in report["grid"]["rules"]:
            assert f"| {bench.RULE_TITLES[rule]} " in header + " "
    assert report["command"] in doc
    assert "## What we see" in doc
