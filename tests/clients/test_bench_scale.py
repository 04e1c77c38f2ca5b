"""bench/scale.py: how it deals trainers out and reports, and a real round at small scale
(Anvil with the Sei-like profile, the IPFS daemon, aggregator service processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench_modules import load_bench

from fedledger.chain.transactions import TxResult
from fedledger.relayer.relayer import RelayReport

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
if str(BENCH) not in sys.path:  # the benchmark imports chainload and scale_trainers from bench/
    sys.path.insert(0, str(BENCH))

scale = load_bench("scale")


def tx(gas: int, block: int) -> TxResult:
    return TxResult(
        label="t",
        tx_hash="0x",
        sender="0x",
        block_number=block,
        gas_used=gas,
        receipt={"transactionIndex": 0},
    )  # type: ignore[typeddict-item]


def test_chunks__deal_consecutive_items_and_lose_none() -> None:
    items = list(range(10))
    assert scale.chunks(items, 3) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert scale.chunks(items, 1) == [items]
    assert [item for chunk in scale.chunks(items, 4) for item in chunk] == items


def test_figures__name_the_round_by_its_trainers_and_split_the_gas_per_update() -> None:
    phases = scale.Phases(train=10.0, commit=1.0, reveal=3.0, aggregate=2.0, publish=2.5)
    measured = scale.Measured(
        trainers=200,
        phases=phases,
        round_seconds=16.0,
        train_seconds=[0.01, 0.03, 0.02],
        rss_before_kib=[100 * 1024, 110 * 1024],
        peak_kib=[300 * 1024, 350 * 1024],
        commits=[RelayReport([tx(1_000_000, 1)]), RelayReport([tx(1_800_000, 2)])],
        reveals=[RelayReport([tx(4_000_000, 3), tx(3_600_000, 4)])],
        attest_gas=[118_000, 530_000],
        accuracy_before=0.1,
        accuracy_after=0.2,
        accepted=199,
        rejected=1,
    )
    figures = scale.figures(measured)
    assert figures["scale_200_round_seconds"] == 16.0
    assert figures["scale_protocol_seconds"] == 6.0  # everything but the simulated training
    assert figures["scale_commit_transactions"] == 2 and figures["scale_reveal_transactions"] == 2
    assert figures["scale_commit_gas_per_update"] == 14_000
    assert figures["scale_reveal_gas_per_update"] == 38_000
    assert figures["scale_aggregator_peak_rss_mib"] == 350.0
    assert figures["scale_aggregator_rss_at_open_mib"] == 110.0
    assert figures["scale_train_seconds_per_trainer_median"] == 0.02
    assert figures["scale_reveal_seconds"] == 3.0 and figures["scale_publish_seconds"] == 2.5


def test_scale__one_small_round_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    command = [
        sys.executable, str(BENCH / "scale.py"),
        "--trainers", "6", "--workers", "1", "--aggregators", "2", "--relayers", "2", "--batch-size", "2",
        "--epochs", "1", "--out", str(out), "--run-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(out.read_text())
    figures = document["figures"]
    assert figures["scale_6_round_seconds"] > 0
    assert figures["scale_accepted"] == 6 and figures["scale_rejected"] == 0
    assert figures["scale_commit_transactions"] == 3 and figures["scale_reveal_transactions"] == 3
    assert 0 < figures["scale_commit_gas_per_update"] < figures["scale_reveal_gas_per_update"]
    assert len(figures["scale_attest_gas"]) == 2  # both aggregators were needed for the quorum
    assert figures["scale_aggregator_peak_rss_mib"] >= figures["scale_aggregator_rss_at_open_mib"] > 0
    phases = ("train", "commit", "reveal", "publish", "aggregate")
    assert all(figures[f"scale_{phase}_seconds"] > 0 for phase in phases)
    assert document["setup"]["expected_commits"] == 6


@pytest.mark.parametrize("option", ["--trainers=1", "--workers=0", "--batch-size=0"])
def test_scale__refuses_bad_options(option: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "scale.py"), option],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "Invalid value" in done.stderr
