"""bench/chainload on a real Anvil: a small federation set up with options, the batched
workload's signed commitments, a round change and later-round commits; and the throughput
figures of the batched and later-round workloads from made-up measurements."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:  # the benchmarks import chainload with bench/ on sys.path
    sys.path.insert(0, str(BENCH))

from chainload import federation, harness, report, workloads  # noqa: E402
from chainload.scenario import Scenario, ScenarioResult  # noqa: E402

from fedledger.chain.batching import SignedCommitment, batch_leaf, merkle_root, signer_of  # noqa: E402
from fedledger.chain.params import Phase, Role, TaskParameter  # noqa: E402
from fedledger.chain.rounds import Rounds  # noqa: E402
from fedledger.devnet import PROFILES, Profile, running_devnet  # noqa: E402

TRAINERS = 8


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[federation.Federation]:
    """8 trainers, 2 aggregators, 2 relayers on an Anvil mining every 0.1 s. The tests below use
    it in order: trainers 4-7 commit batched and trainers 0-3 singly in round 0, then round 1."""
    folder = tmp_path_factory.mktemp("chainload")
    profile = Profile("bench-test", federation.CHAIN_ID, block_time=0.1, ape_network=federation.APE_NETWORK)
    with running_devnet(profile, run_dir=folder) as devnet:
        yield federation.setup_federation(
            devnet.url,
            folder,
            TRAINERS,
            deploy_options=["--commit-window", "600"],
            aggregator_count=2,
            relayer_count=2,
        )


def test_deploy__options_after_the_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake_deploy(**kwargs: Any) -> tuple[str, None]:
        seen.update(kwargs)
        return "deployment", None

    monkeypatch.setattr(federation.ape_cli, "deploy", fake_deploy)
    assert federation.deploy("http://node", tmp_path, ["--commit-window", "60"]) == "deployment"
    options = seen["options"]
    assert options[:2] == ["--initial-model-digest", federation.default_deploy_options()[1]]
    assert options[-2:] == ["--commit-window", "60"]  # click keeps the last value of an option
    assert options.index("--commit-window") < len(options) - 2


def test_run_setup__chunks_of_at_most_60_full_blocks_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[list[harness.Call]] = []
    resets: list[str] = []

    class FakeRpc:
        def __init__(self, url: str) -> None:
            pass

        def __call__(self, method: str, params: list[Any]) -> Any:
            assert method == "eth_getBlockByNumber"
            return {"gasLimit": hex(1_000_000)}

    def fake_run(url: str, workload: harness.Workload, *args: Any, **kwargs: Any) -> None:
        sent.append(workload.calls)
        resets.append("run")

    monkeypatch.setattr(federation, "Rpc", FakeRpc)
    monkeypatch.setattr(federation, "reset_base_fee", lambda url: resets.append("reset"))
    monkeypatch.setattr(federation, "run_workload", fake_run)
    calls = [harness.Call(None, "0xb", data=hex(i), gas=400_000) for i in range(400)]  # type: ignore[arg-type]
    federation.run_setup("http://node", None, harness.Workload("setup", calls))  # type: ignore[arg-type]
    assert [len(chunk) for chunk in sent] == [150, 150, 100]  # 60 blocks of 1M gas: 150 calls
    assert [c for chunk in sent for c in chunk] == calls
    assert resets == ["reset", "run"] * 3


def test_setup_federation__deploy_options_and_aggregators(fed: federation.Federation) -> None:
    ledger = fed.ledger
    assert ledger.task_parameter(TaskParameter.COMMIT_WINDOW) == 600
    assert ledger.active_count(Role.AGGREGATOR) == 2 and len(fed.aggregators) == 2
    assert ledger.active_count(Role.TRAINER) == TRAINERS and len(fed.trainers) == TRAINERS
    assert ledger.round_state(0).expected_commits == TRAINERS and fed.round == 0
    assert all(ledger.w3.eth.get_balance(r.address) == federation.ETH_BALANCE for r in fed.relayers)
    assert fed.commit_gas > 50_000
    participants = {a.address for a in [*fed.aggregators, *fed.trainers]}
    assert len(participants) == 2 + TRAINERS and participants.isdisjoint(r.address for r in fed.relayers)


def _commitments(fed: federation.Federation, data: str) -> list[SignedCommitment]:
    function, args = fed.ledger.task.decode_function_input(data)
    assert function.fn_name == "commitBatch" and args["round"] == fed.round
    return [
        SignedCommitment(seal=bytes(entry["seal"]), r=bytes(entry["r"]), vs=bytes(entry["vs"]))
        for entry in args["commitments"]
    ]


def test_batched_workload__relayers_send_what_the_trainers_signed(fed: federation.Federation) -> None:
    trainers = fed.trainers[4:]
    workload = workloads.WORKLOADS["batched"](fed, trainers)
    assert workload.items == workload.commits == 4 and len(workload.calls) == 1  # 100 to a batch
    workload = workloads.batched_workload(fed, trainers, per_batch=3)
    assert [call.items for call in workload.calls] == [3, 1]
    assert [call.sender for call in workload.calls] == fed.relayers  # in turn
    signed = [c for call in workload.calls for c in _commitments(fed, call.data)]
    task = fed.ledger.task.address
    assert [signer_of(c, chain_id=fed.chain_id, task=task, round_=0) for c in signed] == [
        t.address for t in trainers
    ]
    assert len({c.seal for c in signed}) == 4
    assert workload.calls[0].gas > workload.calls[1].gas > 21_000  # an estimate per batch size

    measurement = harness.run_workload(fed.url, workload, fed.nonces, chain_id=fed.chain_id)
    assert measurement.items == 4 and measurement.txs == 2
    assert fed.ledger.round_state(0).commits == 4
    roots = Rounds(fed.ledger).batch_roots(0)
    first = [batch_leaf(t.address, c.seal) for t, c in zip(trainers[:3], signed[:3], strict=True)]
    assert roots[0] == merkle_root(first)


def test_advance_round__later_commits_cost_less(fed: federation.Federation) -> None:
    trainers = fed.trainers[:4]
    first = harness.run_workload(
        fed.url, workloads.commit_workload(fed, trainers), fed.nonces, chain_id=fed.chain_id
    )
    assert fed.ledger.round_state(0).commits == TRAINERS
    first_gas = fed.commit_gas

    assert federation.advance_round(fed) == 1
    assert fed.round == 1 and fed.ledger.phase(0) == Phase.CLOSED and fed.ledger.phase(1) == Phase.COMMIT
    assert fed.ledger.round_state(1).expected_commits == TRAINERS
    assert fed.commit_gas < first_gas

    later = workloads.commit_workload(fed, trainers)
    assert later.round == 1
    measured = harness.run_workload(fed.url, later, fed.nonces, chain_id=fed.chain_id)
    assert fed.ledger.round_state(1).commits == 4
    assert measured.gas_per_item < first.gas_per_item - 10_000


def test_reset_base_fee_and_wait_for_cadence(fed: federation.Federation) -> None:
    harness.reset_base_fee(fed.url, 7 * 10**9)
    harness.wait_for_cadence(fed.url, 0.1)  # a block later, at the chain's pace
    fees = fed.ledger.w3.eth.fee_history(3, "latest")["baseFeePerGas"]
    assert 7 * 10**9 in fees[:3]


# ---------------------------------------------------------------- figures


def _measurement(name: str, blocks: list[int], *, items_per_tx: int, gas_per_tx: int, gas_limit: int) -> Any:
    """`name` run over blocks seen every 0.4 s, `blocks[i]` of its transactions in block i."""
    calls, seen, txs, index = [], [], [], 0
    for number, count in enumerate(blocks):
        hashes = []
        for _ in range(count):
            tx_hash = f"0x{index:064x}"
            txs.append(
                harness.SignedTx(hash=tx_hash, raw="0x", sender="0xa", nonce=index, items=items_per_tx)
            )
            calls.append(harness.Call(sender=None, to="0xb", items=items_per_tx, gas=gas_limit))  # type: ignore[arg-type]
            hashes.append(tx_hash)
            index += 1
        seen.append(
            harness.BlockSeen(number, 0.4 * (number + 1), tuple(hashes), gas_per_tx * count, 10_000_000)
        )
    workload = harness.Workload(name, calls)
    sent = harness.Sent(first_send=0.0, last_ack=0.05)
    return harness.measure(workload, txs, sent, seen, gas_per_tx * len(txs), (None, 0.1))


def test_figures__batched_and_later_rounds() -> None:
    sei = PROFILES["sei-like"]
    local = ScenarioResult(Scenario(name="local", profile=sei, per_repetition=10, repetitions=1))
    local.runs = [
        (0, _measurement("transfers", [10], items_per_tx=1, gas_per_tx=21_000, gas_limit=21_000)),
        (0, _measurement("commits", [10], items_per_tx=1, gas_per_tx=57_756, gas_limit=57_757)),
    ]
    result = ScenarioResult(Scenario(name="sei-like", profile=sei, per_repetition=10, repetitions=1))
    result.runs = [
        (0, _measurement("transfers", [476, 476, 476], items_per_tx=1, gas_per_tx=21_000, gas_limit=21_000)),
        (0, _measurement("commits", [173, 173, 173], items_per_tx=1, gas_per_tx=57_756, gas_limit=57_757)),
        # 7 batches of 100 a block: 700 commitments every 0.4 s in the interior block.
        (
            0,
            _measurement(
                "batched", [7, 7, 7, 3], items_per_tx=100, gas_per_tx=1_338_000, gas_limit=1_350_000
            ),
        ),
        (
            0,
            _measurement(
                "later_commits", [245, 245, 245], items_per_tx=1, gas_per_tx=40_669, gas_limit=40_669
            ),
        ),
    ]
    figures = report.figures(local, None, result)
    bound = 10_000_000 / 13_380 / 0.4
    assert figures["batched_gas_used_per_update"] == 13_380
    assert figures["sei_profile_updates_per_second_batched"] == pytest.approx(700 / 0.4, abs=0.1)
    assert figures["sei_profile_gas_bound_updates_per_second_batched"] == pytest.approx(bound, abs=0.1)
    assert figures["sei_profile_gas_limit_share_batched"] == pytest.approx(700 / 0.4 / bound, abs=1e-3)
    assert figures["sei_profile_gas_limit_share_batched_packing_cap"] == pytest.approx(0.937, abs=1e-3)
    assert figures["sei_profile_updates_per_second_batched_wall_clock"] == pytest.approx(2_400 / 1.6, abs=0.1)
    assert figures["later_round_commit_gas_used"] == 40_669
    assert figures["sei_profile_updates_per_second_later_rounds"] == pytest.approx(245 / 0.4, abs=0.1)
    assert figures["sei_profile_gas_limit_share_later_rounds"] == pytest.approx(
        245 / 0.4 / (10_000_000 / 40_669 / 0.4), abs=1e-3
    )
    # The unbatched share is computed the same way.
    assert figures["sei_profile_gas_limit_share"] == pytest.approx(173 * 57_756 / 10_000_000, abs=1e-3)
    # Blocks seen every 0.4 s: the block clock agrees with the watcher's.
    for key in ("", "_batched", "_later_rounds"):
        assert (
            figures[f"sei_profile_gas_limit_share{key}_block_clock"]
            == figures[f"sei_profile_gas_limit_share{key}"]
        )


def test_figures__absent_workloads_give_none() -> None:
    sei = PROFILES["sei-like"]
    local = ScenarioResult(Scenario(name="local", profile=sei, per_repetition=10, repetitions=1))
    local.runs = [
        (0, _measurement("transfers", [10], items_per_tx=1, gas_per_tx=21_000, gas_limit=21_000)),
        (0, _measurement("commits", [10], items_per_tx=1, gas_per_tx=57_756, gas_limit=57_757)),
    ]
    figures = report.figures(local, None, local)
    for key in (
        "sei_profile_updates_per_second_batched",
        "sei_profile_gas_limit_share_batched",
        "sei_profile_gas_limit_share_batched_packing_cap",
        "sei_profile_updates_per_second_later_rounds",
    ):
        assert figures[key] is None
