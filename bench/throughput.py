"""Commit throughput on a local Anvil, against plain transfers measured by the same harness.

    python bench/throughput.py [--quick] [--out PATH] [--run-dir DIR]

writes bench/results/throughput.json.

The code lives in the `chainload` package next to this script (bench/chainload/): `harness`
(sign, send, watch, confirm and time a workload), `federation` (deploy and register, round 0
open), `workloads` (what is measured), `scenario` (fresh Anvil per repetition) and `report`
(figures). This script holds the scenarios, the notes and the command line.

The harness (`chainload.harness.run_workload`) takes a workload, a list of transactions not
yet signed, and
1. signs all of them first (eth-account, with coincurve doing the secp256k1 work), each
   sender's nonces assigned locally (`NonceBook`), so one sender can have many transactions
   in flight without asking the node (nonce pipelining);
2. sends them as JSON-RPC batches of `eth_sendRawTransaction` (the provider's
   `make_batch_request`) from a few threads;
3. watches new blocks (`eth_blockNumber` polled every few ms, then each block's transaction
   hashes) until every transaction is in a block, and fails after a timeout;
4. then confirms each one: a receipt with status 1, and every sender's mined nonce equal to
   the next nonce the book would assign.

Clocks (both are reported for every measurement):
- wall clock: from the first send to the moment the watcher saw the block that includes the
  last transaction. `tx_per_second` = confirmed transactions / that time. Anvil's block
  timestamps are whole seconds, so they cannot time 0.1 s blocks; the watcher's wall-clock
  observation is at most one poll (plus one RPC round trip) late.
- steady state: the transactions of the interior blocks (all but the first and the last
  block carrying the workload), over the time between the watcher seeing the first block and
  the last interior one. It leaves out the wait for the first block (however fast the client
  sends) and the part-full last block: the rate a saturated chain sustains, which is what a
  gas-bound limit describes.

Workloads (`WORKLOADS`): `transfers` (1 wei from each of M trainers to the next one, the raw
Anvil baseline), `commits` (`commitUpdate` from the same M trainers, once each, in the open
round 0) and, on the Sei-like chain, `batched`: B other trainers sign EIP-712 commitments before
the clock starts and a few relayers send them as `commitBatch` transactions of 100 (`items` =
commitments, so rates and gas count commitments). Each repetition starts a fresh Anvil (its
work per block grows with the state), deploys, registers M (+ B) trainers before round 0
opens, and runs the workloads back to back, alternating their order; the figures are medians
over the repetitions. On the Sei-like chain round 0 is then closed as stale (its deadlines
passed: Anvil's clock moved on) and the M trainers commit again in round 1 (`later_commits`:
a trainer's steady-state commit, cheaper than its first). A decomposition
(`decompose_workload`) sends a workload with mining paused and then mines it in one block, to
time accepting and executing transactions apart.

Setup is not timed: deploy with the project's ape script, set ETH balances (`anvil_setBalance`),
send the FED stakes, approvals and registrations through the same harness, open round 0.
Neither is the round change nor the trainers' signing of batched commitments.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from chainload.federation import APE_NETWORK, CHAIN_ID
from chainload.harness import BATCH_SIZE, MAX_FEE_PER_GAS, POLL_SECONDS, PRIORITY_FEE, SENDER_THREADS
from chainload.report import explanation, figures, scenario_report, signing_library
from chainload.rundir import run_directory
from chainload.scenario import Scenario, ScenarioResult, run_scenario
from chainload.workloads import COMMITMENTS_PER_BATCH

from fedledger.devnet import PROFILES, Profile

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "throughput.json"
COMMAND = "python bench/throughput.py"

LOCAL_BLOCK_TIME = 0.1
# Anvil's default block gas limit (30M) caps 0.1 s blocks at 300 Mgas/s: ~5,500 commits/s
# against ~14,000 transfers/s. The local comparison is about submission and mining, so its
# blocks are made big enough not to bind; the default is measured as well (`local-30m`).
LOCAL_GAS_LIMIT = 1_000_000_000
ANVIL_DEFAULT_GAS_LIMIT = 30_000_000
SEI = PROFILES["sei-like"]

# The Sei-like chain's batched workload: enough commitments for several full blocks (a block
# holds 7 batches of 100, ~700 commitments; 3,500 make 35 batches, 5 blocks, 3 of them interior).
SEI_BATCH_TRAINERS = 3_500
RELAYERS = 4
SEI_WORKLOADS = ("transfers", "commits", "batched")


def notes(quick: bool) -> list[str]:
    return [
        "Clock (commits_per_second, raw_tx_per_second): wall clock from the first "
        "eth_sendRawTransaction batch to the moment the block watcher (eth_blockNumber every "
        f"{POLL_SECONDS * 1000:.0f} ms) saw the block holding the workload's last transaction; "
        "transactions were signed before the clock started. Anvil's block timestamps are whole "
        "seconds, too coarse for 0.1 s blocks.",
        "Clock (sei_profile_*_per_second, *_steady): steady state: the transactions of the interior "
        "blocks (all but the first and the last block carrying the workload), over the time between "
        "the watcher seeing the first block and the last interior one. The first block also holds "
        "what piled up before it, from an unknown start (the wait for a block no client can "
        "shorten); the last is part-full because the workload ran out. This is the rate of a "
        "saturated chain, which the gas-bound limit describes. The wall-clock rate is reported "
        "next to it (sei_profile_updates_per_second_wall_clock).",
        f"Local chain: Anvil --block-time {LOCAL_BLOCK_TIME} --gas-limit {LOCAL_GAS_LIMIT:,}. Anvil's "
        f"default block gas limit ({ANVIL_DEFAULT_GAS_LIMIT:,}) at 0.1 s blocks caps commits at "
        "~5,500/s (gas) but transfers at ~14,000/s, so with it the ratio would measure gas, not the "
        "client and node; the big limit keeps both workloads submission- and mining-bound. The "
        "default limit is measured as well (default_gas_limit_*) when not --quick.",
        "Sei-like chain: Anvil --block-time 0.4 --gas-limit 10,000,000 (fedledger.devnet "
        "PROFILES['sei-like']); gas-bound limit = 10,000,000 / measured gas per commit / 0.4 s.",
        "Before each workload the next block's base fee is set back to Anvil's initial 1 gwei "
        "(anvil_setNextBlockBaseFeePerGas): every workload starts from the same fee, ~97 full "
        "blocks below the transactions' fee cap (10^14 wei). Without it, the setup's full blocks "
        "(5,000 registrations fill ~130) left the fee above the cap: Anvil held the first "
        "workload back for up to 49 blocks, and a setup stage past the cap lost its last 381 "
        "transactions. The setup itself goes in chunks of "
        "at most 60 full blocks, each from the initial fee. The harness also waits until two "
        "blocks came at least 3/4 of the block time apart: Anvil mines the interval ticks it "
        "missed while busy (gas estimates, a loaded machine) back to back.",
        "Block clock (*_gas_limit_share_block_clock): the steady-state items per block of the "
        "chain (the interior blocks' items over the block numbers they span) / the block time, "
        "over the gas bound: how full the blocks were, blind to when the watcher saw them. On a "
        "loaded machine Anvil mines late and then catches up in bursts, which the wall-clock "
        "steady rate counts as faster blocks (a share above 1); the block clock does not.",
        "Transaction gas limits: transfers 21,000; commits the eth_estimateGas of a commit with "
        "the costliest seal (no zero byte), with no margin: Anvil packs blocks by gas limit, not "
        "gas used. Every receipt was checked for status 1.",
        "Each repetition starts a fresh Anvil, deploys, registers M trainers (all before round 0 "
        "opened; setup is not timed) and measures M transfers (trainer i to trainer i+1) and M "
        "commits (one per trainer) back to back, alternating which goes first; figures are medians "
        "over repetitions. commit_throughput_ratio is the median of the per-repetition ratios "
        "(commits/s over transfers/s measured back to back on the same chain, so both saw the same "
        "load from the machine's other tenants); commit_throughput_ratio_of_medians = "
        "commits_per_second / raw_tx_per_second; commit_throughput_ratio_range: the smallest and "
        "largest per-repetition ratio.",
        "Why a fresh chain per repetition: Anvil 1.7.1's work per block grows with the chain's "
        "state (an empty pool kept ~0.2 cores busy at 0.1 s blocks with 2,000 trainers registered, "
        "~0.65 with 6,000, RSS 1.6 GB). With 12,000 trainers on one chain, ready transactions "
        "waited tens of blocks and 2,000 transfers were not all mined within 180 s; chains.idle_node_cpu "
        "records this load for each repetition, idle_blocks_after_submit any holding back.",
        "Confirmation: every transaction was seen in a block by the watcher, has a receipt with "
        "status 1, every sender's mined nonce equals the next locally assigned one, and round 0's "
        "on-chain commit count equals the commits sent.",
        "Chain id 713715 on both chains: ape's foundry provider cannot deploy to an "
        "interval-mining Anvil, so the deploy uses the sei:seilike:node network.",
        f"Batched (sei_profile_*_batched): on the Sei-like chains, besides the M trainers, B more "
        f"(setup.batch_trainers) are registered before round 0 opens; each signs an EIP-712 "
        f"Commitment(round 0, seal) before the clock starts (signing is the trainer's off-chain "
        f"work), and {RELAYERS} relayers (funded, not registered) send commitBatch(0, "
        f"{COMMITMENTS_PER_BATCH} signed commitments) transactions in turn, each relayer with "
        "pipelined nonces. items = commitments, so updates/s and gas per update count "
        "commitments; the gas-bound limit is 10,000,000 / gas used per commitment / 0.4 s, as for "
        "single commits. A batch's gas limit is the eth_estimateGas of a full batch (made before any "
        "batch of the round, so it includes the first batch's creation of the round's root array, "
        "~17k gas more than later batches) plus 12 gas per zero calldata byte. Anvil packs blocks by "
        "gas limit: floor(10M / batch limit) batches fit in a block, so a share of the gas bound "
        "above sei_profile_gas_limit_share_batched_packing_cap cannot be reached. The batched "
        "workload runs in the same round and on the same chain as transfers and commits (its own "
        "trainers, since a trainer commits once per round), alternating order with them.",
        "Later rounds (sei_profile_*_later_rounds): after the round-0 workloads, Anvil's clock is "
        "moved past round 0's aggregation deadline (evm_increaseTime), round 0 is closed as stale "
        "(closeStaleRound), which opens round 1 for every trainer; then the same M trainers each "
        "commit once more (commitUpdate(1, seal)): a trainer's later commit, which rewrites its "
        "seal's slot instead of creating it (commit_gas_used is the first commit's). Gas limit "
        "the estimate of such a commit (scenarios.sei-like.later_commit_gas_limit).",
        "Not measured: batched commits on the local chain. Its 0.1 s blocks with a 1G gas limit "
        "would take all of them in one or two blocks, so a wall-clock rate would time the block "
        "interval; a meaningful one needs tens of thousands of extra trainers, whose state slows "
        "Anvil's blocks for the local commit ratio measured on the same chains.",
        *(["--quick: a tiny run for the tests; the figures are not meaningful."] if quick else []),
    ]


def scenarios(quick: bool) -> list[Scenario]:
    local = Profile(
        "throughput-local",
        CHAIN_ID,
        block_time=LOCAL_BLOCK_TIME,
        gas_limit=LOCAL_GAS_LIMIT,
        ape_network=APE_NETWORK,
    )
    if quick:
        return [
            Scenario(name="local", profile=local, per_repetition=25, repetitions=1, decompositions=1),
            Scenario(
                name="sei-like",
                profile=SEI,
                per_repetition=250,
                repetitions=1,
                workloads=SEI_WORKLOADS,
                batch_trainers=300,
                relayers=2,
                later_workloads=("commits",),
            ),
        ]
    local_30m = Profile(
        "throughput-local-30m",
        CHAIN_ID,
        block_time=LOCAL_BLOCK_TIME,
        gas_limit=ANVIL_DEFAULT_GAS_LIMIT,
        ape_network=APE_NETWORK,
    )
    return [
        Scenario(name="local", profile=local, per_repetition=2_000, repetitions=9, decompositions=2),
        Scenario(name="local-30m", profile=local_30m, per_repetition=2_000, repetitions=5),
        Scenario(
            name="sei-like",
            profile=SEI,
            per_repetition=1_500,
            repetitions=3,
            workloads=SEI_WORKLOADS,
            batch_trainers=SEI_BATCH_TRAINERS,
            relayers=RELAYERS,
            later_workloads=("commits",),
        ),
    ]


def report(
    results: dict[str, ScenarioResult],
    quick: bool,
    argv: Sequence[str],
    seconds: float,
    load_at_start: Sequence[float],
) -> dict[str, Any]:
    local, sei = results["local"], results["sei-like"]
    return {
        "benchmark": "throughput",
        "command": " ".join([COMMAND, *map(shlex.quote, argv)]),
        "quick": quick,
        "figures": figures(local, results.get("local-30m"), sei),
        "targets": {"commit_throughput_ratio": 0.8, "sei_profile_gas_limit_share": 0.9},
        "setup": {
            "trainers": {name: r.scenario.per_repetition for name, r in results.items()},
            "txs_per_workload": {name: r.scenario.per_repetition for name, r in results.items()},
            "batch_trainers": {name: r.scenario.batch_trainers for name, r in results.items()},
            "relayers": {name: r.scenario.relayers for name, r in results.items()},
            "commitments_per_batch": COMMITMENTS_PER_BATCH,
            "repetitions": {name: r.scenario.repetitions for name, r in results.items()},
            "fresh_chain_per_repetition": True,
            "block_time": {name: r.scenario.profile.block_time for name, r in results.items()},
            "gas_limit": {name: r.scenario.profile.gas_limit for name, r in results.items()},
            "anvil": local.anvil,
            "signing": signing_library(),
            "batch_size": BATCH_SIZE,
            "sender_threads": SENDER_THREADS,
            "poll_seconds": POLL_SECONDS,
            "max_fee_per_gas": MAX_FEE_PER_GAS,
            "priority_fee": PRIORITY_FEE,
            "machine": {
                "cpu_count": os.cpu_count(),
                "load_average_at_start": list(load_at_start),
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
        },
        "explanation": explanation(local),
        "scenarios": {name: scenario_report(r) for name, r in results.items()},
        "total_seconds": round(seconds, 1),
        "notes": notes(quick),
    }


@click.command()
@click.option("--quick", is_flag=True, help="a tiny run (a few hundred trainers) for the tests")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Anvil logs and deployments (default: a temporary directory)",
)
def main(quick: bool, out: Path, run_dir: Path | None) -> None:
    """Measures commit throughput against raw transfers on local Anvils; writes the JSON report."""
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, ScenarioResult] = {}
    with run_directory(run_dir, "throughput") as folder:
        for scenario in scenarios(quick):
            results[scenario.name] = run_scenario(scenario, folder, lambda line: click.echo(line, err=True))
    document = report(results, quick, sys.argv[1:], time.perf_counter() - started, load_at_start)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    click.echo(json.dumps(document["figures"], indent=2))
    click.echo(f"wrote {out}", err=True)


if __name__ == "__main__":
    main()
