"""bench/throughput.py and its bench/chainload package: the harness's bookkeeping and a real
quick run end to end (the federation and workloads on a real Anvil: test_bench_chainload.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench_modules import load_bench

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
SCRIPT = BENCH / "throughput.py"

if str(BENCH) not in sys.path:  # the benchmarks import chainload with bench/ on sys.path
    sys.path.insert(0, str(BENCH))

from chainload import harness, workloads  # noqa: E402
from chainload import scenario as scenarios  # noqa: E402

throughput = load_bench("throughput")


def test_workload_order_alternates() -> None:
    names = ("transfers", "commits")
    assert scenarios.workload_order(names, 0) == ["transfers", "commits"]
    assert scenarios.workload_order(names, 1) == ["commits", "transfers"]
    assert scenarios.workload_order(names, 2) == ["transfers", "commits"]


def test_nonce_book__reads_once_then_counts_locally() -> None:
    calls: list[list[tuple[str, list[Any]]]] = []

    class FakeRpc:
        def batch(self, requests: list[tuple[str, list[Any]]]) -> list[str]:
            calls.append(requests)
            return ["0x5" for _ in requests]

    book = harness.NonceBook(FakeRpc())
    book.load(["0xa", "0xb", "0xa"])
    assert [book.take("0xa"), book.take("0xa"), book.take("0xb")] == [5, 6, 5]
    book.load(["0xa"])  # known: no request
    assert len(calls) == 1 and book.peek("0xa") == 7
    book.forget("0xa")
    book.load(["0xa"])
    assert book.peek("0xa") == 5


def _measurement(blocks: list[tuple[int, float, int]], items_per_tx: int = 1) -> Any:
    """A measurement of txs spread over `blocks` of (number, observed, workload txs)."""
    calls, seen, txs, index = [], [], [], 0
    for number, observed, count in blocks:
        hashes = []
        for _ in range(count):
            tx_hash = f"0x{index:064x}"
            txs.append(
                harness.SignedTx(hash=tx_hash, raw="0x", sender="0xa", nonce=index, items=items_per_tx)
            )
            calls.append(harness.Call(sender=None, to="0xb", items=items_per_tx))
            hashes.append(tx_hash)
            index += 1
        seen.append(harness.BlockSeen(number, observed, tuple(hashes), 21_000 * count, 30_000_000))
    workload = harness.Workload("transfers", calls)
    sent = harness.Sent(first_send=0.0, last_ack=0.05)
    return harness.measure(workload, txs, sent, seen, 21_000 * len(txs), (None, 0.1))


def test_measure__wall_clock_and_steady_state() -> None:
    # First send at 0; blocks seen at 0.1 (100 txs), 0.2 (200), 0.3 (200), 0.4 (50).
    m = _measurement([(7, 0.05, 0), (8, 0.1, 100), (9, 0.2, 200), (10, 0.3, 200), (11, 0.4, 50)])
    assert m.txs == 550 and m.blocks == 4 and m.first_block == 8
    assert m.txs_per_block == [100, 200, 200, 50]
    assert m.elapsed_seconds == pytest.approx(0.4)
    assert m.tx_per_second == pytest.approx(550 / 0.4)
    # Steady state: the interior blocks (9 and 10) over the time from block 8 to block 10.
    assert m.steady_tx_per_second == pytest.approx(400 / 0.2)
    assert m.gas_per_item == 21_000
    assert m.timeline[0] == (7, 0.05, 0)
    assert m.mean_block_interval == pytest.approx(0.0875)
    assert m.steady_items_per_block == pytest.approx(200)


def test_measure__block_clock_counts_blocks_not_seconds() -> None:
    # Blocks 2-4 came in a burst (10 ms apart), block 3 carried none of the workload.
    m = _measurement([(1, 0.4, 50), (2, 0.8, 50), (3, 0.81, 0), (4, 0.82, 50), (5, 1.2, 20)])
    assert m.steady_items_per_second == pytest.approx(100 / 0.42)  # the watcher's clock
    assert m.steady_items_per_block == pytest.approx(100 / 3)  # blocks 1 to 4: 3 intervals
    assert m.idle_blocks_after_submit == 1


def test_measure__items_per_transaction() -> None:
    m = _measurement([(1, 0.1, 10), (2, 0.2, 10), (3, 0.3, 10)], items_per_tx=4)
    assert m.items == 120 and m.items_per_second == pytest.approx(120 / 0.3)
    assert m.steady_items_per_second == pytest.approx(40 / 0.1)
    assert m.gas_per_item == pytest.approx(21_000 / 4)


def test_measure__too_few_blocks_for_a_steady_state() -> None:
    m = _measurement([(1, 0.1, 10), (2, 0.2, 10)])
    assert m.steady_tx_per_second is None and m.tx_per_second == pytest.approx(100)


def test_scenarios__full_run_fills_several_blocks_with_batches() -> None:
    sei = next(s for s in throughput.scenarios(False) if s.name == "sei-like")
    assert {"transfers", "commits", "batched"} <= set(sei.workloads) and sei.later_workloads == ("commits",)
    assert sei.relayers >= 2
    batch_gas = 1_350_000  # a batch of 100's estimate (~1.35M)
    batches_per_block = sei.profile.gas_limit // batch_gas
    blocks = sei.batch_trainers / workloads.COMMITMENTS_PER_BATCH / batches_per_block
    assert blocks >= 5  # steady state: 3 interior full blocks at least
    quick = next(s for s in throughput.scenarios(True) if s.name == "sei-like")
    assert quick.batch_trainers and quick.later_workloads


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("throughput")
    out = folder / "throughput.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--run-dir", str(folder / "run")],
        cwd=REPO,
        check=True,
        timeout=180,
        capture_output=True,
    )
    return json.loads(out.read_text()), folder / "run"


def test_quick_run__json_shape(quick_run: tuple[dict[str, Any], Path]) -> None:
    report, _ = quick_run
    assert report["benchmark"] == "throughput"
    assert report["command"].startswith("python bench/throughput.py") and "--quick" in report["command"]
    for key in ("figures", "setup", "notes", "scenarios", "explanation"):
        assert key in report
    figures = report["figures"]
    for key in (
        "commits_per_second",
        "raw_tx_per_second",
        "commit_throughput_ratio",
        "sei_profile_updates_per_second",
        "sei_profile_gas_limit_share",
        "sei_profile_gas_bound_updates_per_second",
    ):
        assert key in figures
    assert figures["commits_per_second"] > 0 and figures["raw_tx_per_second"] > 0
    assert figures["commit_throughput_ratio"] > 0
    assert figures["sei_profile_gas_bound_updates_per_second"] == pytest.approx(
        10_000_000 / figures["commit_gas_used"] / 0.4, rel=1e-3
    )
    # Quick: too few batches for a steady state, but the gas figures are there.
    assert 10_000 < figures["batched_gas_used_per_update"] < 15_000
    assert figures["sei_profile_gas_bound_updates_per_second_batched"] == pytest.approx(
        10_000_000 / figures["batched_gas_used_per_update"] / 0.4, rel=1e-3
    )
    assert 0.8 < figures["sei_profile_gas_limit_share_batched_packing_cap"] < 1
    assert 35_000 < figures["later_round_commit_gas_used"] < figures["commit_gas_used"]
    assert not any("not available yet" in note for note in report["notes"])
    setup = report["setup"]
    assert setup["anvil"].startswith("anvil/")
    assert "coincurve" in setup["signing"].lower()
    assert setup["block_time"] == {"local": 0.1, "sei-like": 0.4}
    assert setup["gas_limit"]["sei-like"] == 10_000_000


def test_quick_run__every_commit_confirmed_on_chain(quick_run: tuple[dict[str, Any], Path]) -> None:
    report, _ = quick_run
    for name, scenario in report["scenarios"].items():

        def runs(workload: str, scenario: dict[str, Any] = scenario) -> list[dict[str, Any]]:
            return [run for run in scenario["runs"] if run["workload"] == workload]

        commits, transfers = runs("commits"), runs("transfers")
        assert len(commits) == len(transfers) == scenario["repetitions"], name
        per, batch_trainers = scenario["per_repetition"], scenario["batch_trainers"]
        chains = scenario["chains"]
        assert len(chains) == scenario["repetitions"] + scenario["decompositions"]
        for chain in chains:  # round 0's on-chain commit count: every trainer of the chain committed
            assert chain["round_commits"] == chain["commits_sent"] == per + batch_trainers
            if scenario["later_workloads"] and not chain["decomposition"]:
                assert chain["later_round_commits"] == chain["later_commits_sent"] == per
        assert len(scenario["decomposition_runs"]) == 2 * scenario["decompositions"]
        for run in commits + transfers + runs("later_commits"):
            assert run["txs"] == run["items"] == per
        for run in scenario["runs"]:
            assert sum(run["txs_per_block"]) == run["txs"]
            assert run["elapsed_seconds"] > 0 and run["tx_per_second"] > 0
        assert all(run["gas_per_item"] > 50_000 for run in commits)
        assert all(run["gas_per_item"] == 21_000 for run in transfers)
        assert all(35_000 < run["gas_per_item"] < 50_000 for run in runs("later_commits"))
        for run in runs("batched"):  # 100 commitments to a transaction, a few relayers
            assert run["items"] == batch_trainers and run["txs"] == -(-batch_trainers // 100)
            assert run["gas_per_item"] < 15_000
    assert report["scenarios"]["local"]["decompositions"] == 1
    sei = report["scenarios"]["sei-like"]
    assert sei["batch_trainers"] > 0 and sei["relayers"] > 1
    assert len([r for r in sei["runs"] if r["workload"] == "batched"]) == sei["repetitions"]
    assert len([r for r in sei["runs"] if r["workload"] == "later_commits"]) == sei["repetitions"]


def test_quick_run__no_anvil_left_running(quick_run: tuple[dict[str, Any], Path]) -> None:
    _, run_dir = quick_run
    assert list(run_dir.rglob("anvil.log")), "the run kept its Anvil logs"
    assert not list(run_dir.rglob("anvil.json")), "an Anvil state file is left: a devnet was not stopped"
