"""The figures and the per-scenario report of a throughput run, from its `ScenarioResult`s."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from importlib import metadata
from typing import Any

from eth_keys.backends import get_backend

from chainload.harness import Measurement
from chainload.scenario import ScenarioResult
from fedledger.devnet import Profile


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values present (None: a steady-state rate of a single block)."""
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def gas_bound(measurements: Sequence[Measurement], profile: Profile) -> float | None:
    """Items per second if every block were full of them: gas limit / gas per item / block time
    (None without measurements)."""
    assert profile.block_time is not None and profile.gas_limit is not None
    if not measurements:
        return None
    gas_per_item = sum(m.gas_used for m in measurements) / sum(m.items for m in measurements)
    return profile.gas_limit / gas_per_item / profile.block_time


def packing_cap(measurements: Sequence[Measurement], profile: Profile) -> float | None:
    """The largest share of the gas bound blocks packed by gas limit can reach: Anvil puts
    floor(block gas limit / transaction gas limit) transactions in a block, each using its
    gas used (not its limit) of it. Near 1 for small transactions, lower for big batches."""
    assert profile.gas_limit is not None
    if not measurements:
        return None
    per_tx_limit = max(m.gas_limit_per_tx for m in measurements)
    per_tx_used = sum(m.gas_used for m in measurements) / sum(m.txs for m in measurements)
    return (profile.gas_limit // per_tx_limit) * per_tx_used / profile.gas_limit


def steady_share(result: ScenarioResult, workload: str) -> dict[str, float | None]:
    """A workload's steady-state items/s on `result`'s chain, its gas bound and the share."""
    runs, profile = result.of(workload), result.scenario.profile
    assert profile.block_time is not None
    rate = median(m.steady_items_per_second for m in runs)
    bound = gas_bound(runs, profile)
    per_block = median(m.steady_items_per_block for m in runs)
    return {
        "rate": rate,
        "bound": bound,
        "share": ratio(rate, bound),
        "block_clock_share": ratio(None if per_block is None else per_block / profile.block_time, bound),
        "wall_clock": median(m.items_per_second for m in runs),
        "gas_per_item": median(m.gas_per_item for m in runs),
    }


def paired_ratios(result: ScenarioResult, steady: bool = False) -> list[float]:
    """commits / transfers within each repetition."""
    by_rep: dict[int, dict[str, Measurement]] = {}
    for repetition, m in result.runs:
        by_rep.setdefault(repetition, {})[m.workload] = m
    ratios = []
    for pair in by_rep.values():
        commits, transfers = pair["commits"].rate(steady), pair["transfers"].rate(steady)
        if commits is not None and transfers:
            ratios.append(commits / transfers)
    return ratios


def figures(local: ScenarioResult, local_30m: ScenarioResult | None, sei: ScenarioResult) -> dict[str, Any]:
    commits = median(m.items_per_second for m in local.of("commits"))
    raw = median(m.tx_per_second for m in local.of("transfers"))
    single, batched = steady_share(sei, "commits"), steady_share(sei, "batched")
    later, transfers = steady_share(sei, "later_commits"), steady_share(sei, "transfers")
    paired = paired_ratios(local)
    out: dict[str, Any] = {
        "commits_per_second": rounded(commits),
        "raw_tx_per_second": rounded(raw),
        "commit_throughput_ratio": rounded(median(paired), 3),
        "commit_throughput_ratio_of_medians": rounded(ratio(commits, raw), 3),
        "commit_throughput_ratio_range": [round(min(paired), 3), round(max(paired), 3)] if paired else None,
        "commits_per_second_steady": rounded(median(m.steady_items_per_second for m in local.of("commits"))),
        "raw_tx_per_second_steady": rounded(median(m.steady_tx_per_second for m in local.of("transfers"))),
        "commit_gas_used": rounded(median(m.gas_per_item for m in local.of("commits")), 0),
        "sei_profile_updates_per_second": rounded(single["rate"]),
        "sei_profile_gas_bound_updates_per_second": rounded(single["bound"]),
        "sei_profile_gas_limit_share": rounded(single["share"], 3),
        "sei_profile_gas_limit_share_block_clock": rounded(single["block_clock_share"], 3),
        "sei_profile_updates_per_second_wall_clock": rounded(single["wall_clock"]),
        "sei_profile_updates_per_second_batched": rounded(batched["rate"]),
        "sei_profile_gas_bound_updates_per_second_batched": rounded(batched["bound"]),
        "sei_profile_gas_limit_share_batched": rounded(batched["share"], 3),
        "sei_profile_gas_limit_share_batched_block_clock": rounded(batched["block_clock_share"], 3),
        "sei_profile_gas_limit_share_batched_packing_cap": rounded(
            packing_cap(sei.of("batched"), sei.scenario.profile), 3
        ),
        "sei_profile_updates_per_second_batched_wall_clock": rounded(batched["wall_clock"]),
        "batched_gas_used_per_update": rounded(batched["gas_per_item"], 0),
        "sei_profile_updates_per_second_later_rounds": rounded(later["rate"]),
        "sei_profile_gas_bound_updates_per_second_later_rounds": rounded(later["bound"]),
        "sei_profile_gas_limit_share_later_rounds": rounded(later["share"], 3),
        "sei_profile_gas_limit_share_later_rounds_block_clock": rounded(later["block_clock_share"], 3),
        "sei_profile_updates_per_second_later_rounds_wall_clock": rounded(later["wall_clock"]),
        "later_round_commit_gas_used": rounded(later["gas_per_item"], 0),
        "sei_profile_raw_tx_per_second": rounded(transfers["rate"]),
        "sei_profile_raw_gas_bound_tx_per_second": rounded(transfers["bound"]),
        "sei_profile_raw_gas_limit_share": rounded(transfers["share"], 3),
        "sei_profile_raw_gas_limit_share_block_clock": rounded(transfers["block_clock_share"], 3),
    }
    if local_30m is not None:
        commits_30m = median(m.items_per_second for m in local_30m.of("commits"))
        raw_30m = median(m.tx_per_second for m in local_30m.of("transfers"))
        out |= {
            "default_gas_limit_commits_per_second": rounded(commits_30m),
            "default_gas_limit_raw_tx_per_second": rounded(raw_30m),
            "default_gas_limit_commit_throughput_ratio": rounded(median(paired_ratios(local_30m)), 3),
            "default_gas_limit_gas_bound_commits_per_second": rounded(
                gas_bound(local_30m.of("commits"), local_30m.scenario.profile)
            ),
        }
    return out


def scenario_report(result: ScenarioResult) -> dict[str, Any]:
    profile = result.scenario.profile
    return {
        "anvil": result.anvil,
        "profile": {
            "block_time": profile.block_time,
            "gas_limit": profile.gas_limit,
            "chain_id": profile.chain_id,
        },
        "per_repetition": result.scenario.per_repetition,
        "repetitions": result.scenario.repetitions,
        "decompositions": result.scenario.decompositions,
        "chains": [_rounded(asdict(chain)) for chain in result.chains],
        "setup_gas_limits": result.setup_gas,
        "commit_gas_limit": result.commit_gas_limit,
        "later_commit_gas_limit": result.later_commit_gas_limit,
        "batch_trainers": result.scenario.batch_trainers,
        "relayers": result.scenario.relayers,
        "workloads": list(result.scenario.workloads),
        "later_workloads": list(result.scenario.later_workloads),
        "paired_commit_ratios": [round(r, 3) for r in paired_ratios(result)],
        "runs": [{"repetition": rep, **_rounded(asdict(m))} for rep, m in result.runs],
        "decomposition_runs": [_rounded(asdict(d)) for d in result.decompositions],
    }


def explanation(result: ScenarioResult) -> dict[str, Any]:
    """Where a transaction's time goes on `result`'s chain, by workload (medians, microseconds
    per transaction): Anvil's and this process's CPU in the measured runs, and the
    decompositions' accepting (submit) and executing (mine) apart. `serial_cost_ratio`: the
    commit ratio if accepting and mining a transaction were done one after the other."""
    out: dict[str, Any] = {}
    for name in result.scenario.workloads:
        runs = result.of(name)
        parts = [d for d in result.decompositions if d.workload == name]
        out[name] = {
            "node_cpu_us_per_tx": rounded(median(m.node_cpu_us_per_tx for m in runs)),
            "client_cpu_us_per_tx": rounded(median(m.client_cpu_us_per_tx for m in runs)),
            "submit_us_per_tx": rounded(median(d.submit_us_per_tx for d in parts)),
            "submit_node_cpu_us_per_tx": rounded(median(d.submit_node_cpu_us_per_tx for d in parts)),
            "mine_us_per_tx": rounded(median(d.mine_us_per_tx for d in parts)),
            "mine_node_cpu_us_per_tx": rounded(median(d.mine_node_cpu_us_per_tx for d in parts)),
        }
    if {"transfers", "commits"} <= out.keys():
        cost = {
            name: _sum_or_none(out[name]["submit_us_per_tx"], out[name]["mine_us_per_tx"])
            for name in ("transfers", "commits")
        }
        out["serial_cost_ratio"] = rounded(ratio(cost["transfers"], cost["commits"]), 3)
        out["summary"] = cost_summary(out["transfers"], out["commits"], out["serial_cost_ratio"])
    return out


def cost_summary(transfers: dict[str, Any], commits: dict[str, Any], serial: float | None) -> str:
    """One sentence per cost, transfers against commits (microseconds per transaction)."""

    def pair(key: str) -> str:
        return f"{_us(transfers[key])} vs {_us(commits[key])}"

    return (
        f"Per transaction, transfers vs commits (us, medians): accepting it with mining paused "
        f"{pair('submit_us_per_tx')} wall ({pair('submit_node_cpu_us_per_tx')} of Anvil CPU); "
        f"mining it {pair('mine_us_per_tx')} wall ({pair('mine_node_cpu_us_per_tx')} of Anvil CPU); "
        f"ratio if accepting and mining were serial: {serial}. In the measured runs Anvil used "
        f"{pair('node_cpu_us_per_tx')} of CPU and this process {pair('client_cpu_us_per_tx')}."
    )


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _sum_or_none(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


def signing_library() -> str:
    backend = type(get_backend()).__name__
    versions = {name: _version(name) for name in ("eth-account", "coincurve", "web3")}
    return f"eth-account {versions['eth-account']} ({backend}, coincurve {versions['coincurve']}), web3 {versions['web3']}"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"
