"""bench/privacy.py: a real quick run end to end (3 trainers, 2 rounds, 800 digits, sigma 0 and 0.1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fedledger.learning.dp_sgd import DpSgdLedger
from fedledger.learning.privacy import PrivacyRule, epsilon

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "privacy.py"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    folder = tmp_path_factory.mktemp("privacy")
    out, doc = folder / "privacy.json", folder / "PRIVACY.md"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workers", "2", "--out", str(out), "--doc", str(doc)],
        cwd=REPO,
        check=True,
        timeout=300,
        capture_output=True,
    )
    return json.loads(out.read_text()), doc.read_text()


def test_quick_run__one_row_per_shards_rule_and_noise(quick_run: tuple[dict[str, Any], str]) -> None:
    report, _ = quick_run
    rows = report["rows"]
    assert [(r["shards"], r["rule"], r["sigma"]) for r in rows] == [
        (shards, rule, sigma)
        for shards in ("iid", "dirichlet")
        for rule in ("fedavg", "median")
        for sigma in (0, 0.1)
    ]
    for row in rows:
        assert 0 <= row["accuracy"] <= 1 and len(row["round_accuracy"]) == report["settings"]["rounds"] == 2
        if row["sigma"] == 0:
            assert row["epsilon"] is None and row["clip_norm"] is None
        else:  # the accountant's own figure for 2 rounds at this noise
            expected = epsilon([PrivacyRule(0.1, 1.0, 1e-5)] * 2, 1e-5)
            assert row["epsilon"] == pytest.approx(expected, rel=1e-3)
    assert report["accountant"].startswith("opacus RDPAccountant")
    assert report["command"].startswith("python ")


def test_quick_run__noise_costs_accuracy(quick_run: tuple[dict[str, Any], str]) -> None:
    report, _ = quick_run
    by = {(r["shards"], r["rule"], r["sigma"]): r["accuracy"] for r in report["rows"]}
    # sigma 0.1 on 46,730 weights is noise of norm ~22 against a clipped change of norm 1.
    assert by[("iid", "fedavg", 0.1)] < by[("iid", "fedavg", 0)] - 0.1


def test_quick_run__markdown_table(quick_run: tuple[dict[str, Any], str]) -> None:
    _, doc = quick_run
    assert doc.startswith("# Differential privacy")
    assert "| IID | FedAvg | no DP | ∞ (no noise) |" in doc
    assert "| Dirichlet(0.5) | median | 0.1 |" in doc
    assert "`python " in doc


def test_quick_run__dp_sgd_rows(quick_run: tuple[dict[str, Any], str]) -> None:
    report, doc = quick_run
    dp_sgd = report["dp_sgd"]
    assert dp_sgd["sigmas"] == [1.0] and dp_sgd["grad_clip"] == 1.0
    rows = dp_sgd["rows"]
    assert [(r["shards"], r["rule"], r["sigma"]) for r in rows] == [
        (shards, rule, 1.0) for shards in ("iid", "dirichlet") for rule in ("fedavg", "median")
    ]
    for row in rows:
        assert 0 <= row["accuracy"] <= 1 and row["smallest_shard"] > 0
        # The accountant's figure for the smallest shard's steps over the 2 rounds.
        batches = -(-row["smallest_shard"] // 32)
        expected = DpSgdLedger(history=[(1.0, 1 / batches, batches)] * 2).epsilon(1e-5)
        assert row["epsilon_per_example"] == pytest.approx(expected, rel=1e-3)
    assert "### Sample-level DP-SGD" in doc and "| IID | FedAvg | 1 |" in doc
