"""Robustness of the aggregation rules against poisoning trainers: an in-process simulation.

No chain and no IPFS: the question is what each aggregation rule does to the global model when
some trainers poison their updates. MNIST (the 10k real digits), a seeded stratified split
(20% held out), N trainers with IID or Dirichlet(alpha) shards, the last k = round(share * N)
of them attackers. Every cell runs R rounds: each trainer trains from the global model on its
shard (attackers through the attack's `poison_data` / `poison_weights` hooks, as the real
trainer does), updates the codec would reject (non-finite or beyond `codec.MAX_ABS_VALUE`) are
dropped, the rule aggregates the rest (weights = sample counts) and the global model is scored
on the held-out set.

With 0% attackers the attack does not matter, so there is one clean cell per rule and shard
type; the tables repeat it in every attack's 0% row.

    python bench/robustness.py [--rounds R] [--epochs E] [--trainers N] [--workers 2] [--quick]

writes the measurements to bench/results/robustness.json and the report to docs/ROBUSTNESS.md.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from torch import nn

from fedledger.aggregation.rules import UnsupportedRuleError, aggregate, describe_rule
from fedledger.arrays import Array
from fedledger.attacks import Attack, AttackContext, attack_from_name, attack_parameters
from fedledger.chain.params import AggregationRule
from fedledger.learning.data import Dataset, load_mnist, split
from fedledger.learning.model import build_model, get_weights, set_weights
from fedledger.learning.partition import partition_dirichlet, partition_iid
from fedledger.learning.train import TrainConfig, TrainResult, evaluate, train_local
from fedledger.storage.codec import MAX_ABS_VALUE, within_bounds

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "robustness.json"
DEFAULT_DOC = REPO / "docs" / "ROBUSTNESS.md"

TEST_FRACTION = 0.2
TRIM_BASIS_POINTS = 2_000  # trimmed mean beta 0.2
COLLAPSE_POINTS = 20.0  # "collapses": at least this many accuracy points below clean
FEW_POINTS = 5.0  # "within a few points" of clean: at most this many points below

RULES: dict[str, AggregationRule] = {
    "fedavg": AggregationRule.FEDAVG,
    "median": AggregationRule.MEDIAN,
    "trimmed-mean": AggregationRule.TRIMMED_MEAN,
    "multi-krum": AggregationRule.MULTI_KRUM,
}
RULE_TITLES = {
    "fedavg": "FedAvg",
    "median": "Median",
    "trimmed-mean": "Trimmed mean (beta 0.2)",
    "multi-krum": "Multi-Krum (f = k)",
}
RULE_PARAMS = {
    "fedavg": "0 (ignored); weights = sample counts",
    "median": "0 (ignored); unweighted",
    "trimmed-mean": f"{TRIM_BASIS_POINTS} (beta 0.2); unweighted",
    "multi-krum": "f | (N - f) << 16 with f = min(k, (N - 3) // 2), N = accepted updates",
}
ROBUST_RULES = ("median", "trimmed-mean", "multi-krum")
ATTACK_TITLES = {"sign-flip": "sign flip", "scaling": "scaling", "noise": "noise", "label-flip": "label flip"}
SHARD_TITLES = {"iid": "IID", "dirichlet": "Dirichlet"}


@dataclass(frozen=True, kw_only=True)
class Grid:
    """What to vary: shard types, rules, attacks and attacker shares."""

    shards: tuple[str, ...]
    rules: tuple[str, ...]
    attacks: tuple[str, ...]
    shares: tuple[float, ...]


FULL_GRID = Grid(
    shards=("iid", "dirichlet"),
    rules=tuple(RULES),
    attacks=("sign-flip", "scaling", "noise", "label-flip"),
    shares=(0.0, 0.1, 0.2, 0.3),
)
QUICK_GRID = Grid(
    shards=("iid", "dirichlet"),
    rules=tuple(RULES),
    attacks=("sign-flip", "scaling"),
    shares=(0.0, 0.25),
)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What every cell shares."""

    trainers: int
    rounds: int
    epochs: int
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    alpha: float = 0.5
    seed: int = 0
    train_samples: int | None = None  # None: the whole training split


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One measured run: a rule on one shard type against `attackers` trainers running `attack`."""

    shards: str
    rule: str
    attack: str | None
    share: float
    attackers: int
    variant: str = ""  # what else tells this run apart (another experiment's setting)

    @property
    def id(self) -> str:
        base = f"{self.shards}/{self.rule}/{self.attack or 'clean'}/{self.attackers}"
        return f"{base}/{self.variant}" if self.variant else base


def attackers_for(share: float, trainers: int) -> int:
    """k = round(share * N): the last k trainers attack."""
    return round(share * trainers)


def rule_param(rule: str, attackers: int, count: int) -> tuple[int, int | None]:
    """The on-chain parameter of `rule` for `count` updates, and Multi-Krum's f (else None).

    Multi-Krum: f = k, lowered until N >= 2f + 3, and m = N - f (encoded explicitly: param 0
    would mean the default f). Trimmed mean: beta 0.2.
    """
    if RULES[rule] == AggregationRule.TRIMMED_MEAN:
        return TRIM_BASIS_POINTS, None
    if RULES[rule] == AggregationRule.MULTI_KRUM:
        f = max(0, min(attackers, (count - 3) // 2))
        return f | ((count - f) << 16), f
    return 0, None


def cells_for(grid: Grid, trainers: int) -> list[Cell]:
    """The cells to run: one clean cell per shard type and rule, then every attacked one."""
    cells: list[Cell] = []
    for shards in grid.shards:
        for rule in grid.rules:
            for share in grid.shares:
                k = attackers_for(share, trainers)
                if k == 0:
                    cells.append(Cell(shards=shards, rule=rule, attack=None, share=share, attackers=0))
                    continue
                for attack in grid.attacks:
                    cells.append(Cell(shards=shards, rule=rule, attack=attack, share=share, attackers=k))
    unique = {cell.id: cell for cell in cells}
    return list(unique.values())


@cache
def train_test(seed: int, train_samples: int | None) -> tuple[Dataset, Dataset]:
    """The seeded split (loaded once per process); optionally only the first training samples."""
    train, test = split(load_mnist(), TEST_FRACTION, seed)
    if train_samples is not None:
        train = train.subset(np.arange(min(train_samples, len(train))))
    return train, test


def shard_data(settings: Settings, shards: str) -> list[Dataset]:
    train, _ = train_test(settings.seed, settings.train_samples)
    if shards == "iid":
        parts = partition_iid(len(train), settings.trainers, settings.seed)
    elif shards == "dirichlet":
        parts = partition_dirichlet(train.labels, settings.trainers, settings.alpha, settings.seed)
    else:
        raise ValueError(f"unknown shard type {shards!r}")
    return [train.subset(part) for part in parts]


# What an honest trainer does to its trained model before releasing it, given the round's
# global model (e.g. differential privacy: clip and noise it).
UpdateTransform = Callable[[dict[str, Array], dict[str, Array]], dict[str, Array]]
LocalTraining = Callable[[nn.Module, Dataset, TrainConfig], TrainResult]


@dataclass(frozen=True)
class Honest:
    """How honest trainers train and what they release (both must pickle: worker processes)."""

    train: LocalTraining = train_local
    release: UpdateTransform | None = None


def run_cell(settings: Settings, cell: Cell, honest: Honest = Honest()) -> dict[str, Any]:
    """Runs `cell` for `settings.rounds` rounds and returns its measurements."""
    started = time.perf_counter()
    torch.set_num_threads(1)
    _, test = train_test(settings.seed, settings.train_samples)
    data = shard_data(settings, cell.shards)
    first_attacker = settings.trainers - cell.attackers
    attacks: list[Attack | None] = [
        attack_from_name(cell.attack).bind(AttackContext(trainer=f"trainer-{index}"))
        if cell.attack is not None and index >= first_attacker
        else None
        for index in range(settings.trainers)
    ]
    attacker_samples = sum(len(shard) for shard in data[first_attacker:])
    model = build_model(settings.seed)
    global_weights = get_weights(model)
    round_accuracy: list[float] = []
    excluded_attackers = excluded_honest = rejected = skipped = 0
    krum_f: list[int] = []
    for round_ in range(settings.rounds):
        updates: list[tuple[dict[str, Array], int]] = []
        owners: list[int] = []
        for index, shard in enumerate(data):
            attack = attacks[index]
            set_weights(model, global_weights)
            config = TrainConfig(
                epochs=settings.epochs,
                batch_size=settings.batch_size,
                learning_rate=settings.learning_rate,
                momentum=settings.momentum,
                seed=(settings.seed * 1_000 + index) * 1_000_003 + round_,
            )
            if attack is not None:
                result = train_local(model, attack.poison_data(shard, round_), config)
            else:
                result = honest.train(model, shard, config)
            trained = get_weights(model)
            if attack is not None:
                trained = attack.poison_weights(trained, global_weights, round_)
            elif honest.release is not None:
                trained = honest.release(trained, global_weights)
            if within_bounds(trained):
                updates.append((trained, result.num_samples))
                owners.append(index)
            else:
                rejected += 1
        param, f = rule_param(cell.rule, cell.attackers, len(updates))
        try:
            if not updates:
                raise UnsupportedRuleError("no acceptable updates")
            aggregation = aggregate(RULES[cell.rule], param, updates)
        except UnsupportedRuleError:
            skipped += 1  # as on chain: the round times out and the global model stays
        else:
            global_weights = aggregation.model
            for position in aggregation.excluded:
                if owners[position] >= first_attacker:
                    excluded_attackers += 1
                else:
                    excluded_honest += 1
            if f is not None:
                krum_f.append(f)
        set_weights(model, global_weights)
        round_accuracy.append(evaluate(model, test))
    return {
        "id": cell.id,
        **asdict(cell),
        "accuracy": round_accuracy[-1],
        "round_accuracy": round_accuracy,
        "rule_description": describe_rule(
            RULES[cell.rule], rule_param(cell.rule, cell.attackers, settings.trainers)[0]
        ),
        "attacker_sample_share": attacker_samples / sum(len(shard) for shard in data),
        "multi_krum_f": krum_f[0] if krum_f else None,
        "excluded_attacker_updates": excluded_attackers,
        "excluded_honest_updates": excluded_honest,
        "rejected_updates": rejected,
        "skipped_rounds": skipped,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _init_worker() -> None:
    torch.set_num_threads(1)


def run_cells(
    settings: Settings,
    cells: Sequence[Cell],
    workers: int,
    report: Callable[[dict[str, Any], int, int], None] | None = None,
    honest: Sequence[Honest] | None = None,
) -> list[dict[str, Any]]:
    """Every cell's result, in the order of `cells`: in this process, or over `workers` (<= 2)
    processes. `honest`: one per cell, how its honest trainers train and release."""
    results: dict[str, dict[str, Any]] = {}
    per_cell = list(honest) if honest is not None else [Honest()] * len(cells)
    if workers <= 1:
        _init_worker()
        for cell, behaviour in zip(cells, per_cell, strict=True):
            results[cell.id] = run_cell(settings, cell, behaviour)
            if report:
                report(results[cell.id], len(results), len(cells))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(workers, 2), mp_context=context, initializer=_init_worker
        ) as pool:
            futures: list[Future[dict[str, Any]]] = [
                pool.submit(run_cell, settings, cell, behaviour)
                for cell, behaviour in zip(cells, per_cell, strict=True)
            ]
            for future in as_completed(futures):
                result = future.result()
                results[result["id"]] = result
                if report:
                    report(result, len(results), len(cells))
    return [results[cell.id] for cell in cells]


def table_rows(grid: Grid, trainers: int, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (shards, attack, share, rule); 0% rows point at the shared clean cell."""
    by_id = {result["id"]: result for result in results}
    rows: list[dict[str, Any]] = []
    for shards in grid.shards:
        for attack in grid.attacks:
            for share in grid.shares:
                k = attackers_for(share, trainers)
                for rule in grid.rules:
                    cell_id = Cell(
                        shards=shards, rule=rule, attack=attack if k else None, share=share, attackers=k
                    ).id
                    rows.append(
                        {
                            "shards": shards,
                            "attack": attack,
                            "share": share,
                            "attackers": k,
                            "rule": rule,
                            "accuracy": by_id[cell_id]["accuracy"],
                            "cell": cell_id,
                            "reused_clean": k == 0,
                        }
                    )
    return rows


def machine_info() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": affinity,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# --- the report ---------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _points(value: float) -> str:
    return f"{value:+.1f}"


def _share_label(share: float) -> str:
    return f"{100 * share:g}%"


def _lookup(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, float, str], float]:
    return {(r["shards"], r["attack"], r["share"], r["rule"]): float(r["accuracy"]) for r in rows}


def _clean(rows: Sequence[dict[str, Any]], shards: str, rule: str) -> float:
    return next(
        float(r["accuracy"])
        for r in rows
        if r["shards"] == shards and r["rule"] == rule and r["reused_clean"]
    )


def markdown_table(grid: Grid, rows: Sequence[dict[str, Any]], shards: str) -> list[str]:
    acc = _lookup(rows)
    header = ["Attack", "Attackers", *(RULE_TITLES[rule] for rule in grid.rules)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---:"] + ["---:"] * len(grid.rules)) + "|",
    ]
    for attack in grid.attacks:
        for share in grid.shares:
            k = next(r["attackers"] for r in rows if r["share"] == share)
            cells = []
            for rule in grid.rules:
                value = acc[(shards, attack, share, rule)]
                if k == 0:
                    cells.append(f"{_pct(value)}†")
                else:
                    cells.append(f"{_pct(value)} ({_points(100 * (value - _clean(rows, shards, rule)))})")
            lines.append(
                f"| {ATTACK_TITLES.get(attack, attack)} | {_share_label(share)} (k={k}) | "
                + " | ".join(cells)
                + " |"
            )
    return lines


def observations(
    grid: Grid, rows: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]], shards: str
) -> list[str]:
    """Sentences computed from the numbers of one shard type."""
    acc = _lookup(rows)
    attacked_shares = [
        share for share in grid.shares if any(r["share"] == share and r["attackers"] for r in rows)
    ]
    clean = {rule: _clean(rows, shards, rule) for rule in grid.rules}
    out = [
        "Clean accuracy: "
        + ", ".join(f"{RULE_TITLES[rule]} {_pct(clean[rule])}%" for rule in grid.rules)
        + "."
    ]
    for rule in grid.rules:
        changes = [
            (100 * (acc[(shards, attack, share, rule)] - clean[rule]), attack, share)
            for attack in grid.attacks
            for share in attacked_shares
        ]
        if not changes:
            continue
        worst = min(changes)
        mean = sum(c for c, _, _ in changes) / len(changes)
        within = sum(c >= -FEW_POINTS for c, _, _ in changes)
        out.append(
            f"{RULE_TITLES[rule]}: over its {len(changes)} attacked cells the accuracy changes by "
            f"{_points(mean)} points on average vs clean, and stays at most {FEW_POINTS:g} points below "
            f"clean in {within} of them; worst {_points(worst[0])} "
            f"({ATTACK_TITLES.get(worst[1], worst[1])}, {_share_label(worst[2])})."
        )
    krum = [r for r in results if r["shards"] == shards and r["rule"] == "multi-krum" and r["attackers"]]
    if krum:
        attacker_updates = sum(r["attackers"] for r in krum) * len(krum[0]["round_accuracy"])
        excluded = sum(r["excluded_attacker_updates"] for r in krum)
        honest = sum(r["excluded_honest_updates"] for r in krum)
        out.append(
            f"Multi-Krum left out {excluded} of the {attacker_updates} attacker updates "
            f"({100 * excluded / max(attacker_updates, 1):.0f}%) and {honest} honest ones over its attacked cells."
        )
    rejected = sum(r["rejected_updates"] for r in results if r["shards"] == shards)
    skipped = sum(r["skipped_rounds"] for r in results if r["shards"] == shards)
    if rejected or skipped:
        out.append(
            f"{rejected} updates were dropped as the codec would reject them (non-finite or beyond "
            f"±{MAX_ABS_VALUE:g}), and {skipped} rounds kept the previous model (no applicable aggregation)."
        )
    return out


def expectation(grid: Grid, rows: Sequence[dict[str, Any]], shards: str) -> str:
    """The literature's expectation for model poisoning, checked against one shard type."""
    acc = _lookup(rows)
    attacked = sorted(
        share for share in grid.shares if any(r["share"] == share and r["attackers"] for r in rows)
    )
    targets = [attack for attack in ("scaling", "sign-flip") if attack in grid.attacks]
    if not attacked or not targets or "fedavg" not in grid.rules:
        return (
            "The grid has no attacked FedAvg cell under scaling or sign flip to compare with the expectation."
        )
    share = attacked[0]
    parts: list[str] = []
    collapsed = 0
    for attack in targets:
        change = 100 * (acc[(shards, attack, share, "fedavg")] - _clean(rows, shards, "fedavg"))
        collapsed += change <= -COLLAPSE_POINTS
        parts.append(f"{_points(change)} points under {ATTACK_TITLES[attack]}")
    robust = [rule for rule in ROBUST_RULES if rule in grid.rules]
    robust_changes = [
        (100 * (acc[(shards, attack, share, rule)] - _clean(rows, shards, rule)), rule, attack)
        for rule in robust
        for attack in targets
    ]
    held = sum(c >= -FEW_POINTS for c, _, _ in robust_changes)
    fed = (
        "a collapse in both"
        if collapsed == len(targets)
        else "a collapse in neither"
        if collapsed == 0
        else f"a collapse in {collapsed} of {len(targets)}"
    )
    worst = min(robust_changes) if robust_changes else None
    robust_text = (
        f"the robust rules end no more than {FEW_POINTS:g} points below their clean accuracy in {held} of "
        f"{len(robust_changes)} such cells (worst: {RULE_TITLES[worst[1]]} under "
        f"{ATTACK_TITLES[worst[2]]}, {_points(worst[0])} points)"
        if worst
        else "no robust rule was run"
    )
    verdict = (
        "matches the expectation"
        if collapsed == len(targets) and held == len(robust_changes)
        else "does not match the expectation"
        if collapsed == 0 and held < len(robust_changes)
        else "matches the expectation only in part"
    )
    return (
        "Expected (Yin et al. 2018; Blanchard et al. 2017): FedAvg collapses under scaling or sign "
        "flip from 10% attackers while robust rules stay within a few points of clean. Measured at "
        f"{_share_label(share)} attackers: FedAvg changes by {' and '.join(parts)} ({fed}, counting a "
        f"fall of at least {COLLAPSE_POINTS:g} points below clean as a collapse), and {robust_text}. "
        f"So this run {verdict}."
    )


def non_iid_sentence(grid: Grid, rows: Sequence[dict[str, Any]]) -> str | None:
    if not {"iid", "dirichlet"} <= set(grid.shards) or "fedavg" not in grid.rules:
        return None
    robust = [rule for rule in ROBUST_RULES if rule in grid.rules]
    parts = []
    lower = 0
    for rule in robust:
        gap = 100 * (_clean(rows, "dirichlet", rule) - _clean(rows, "dirichlet", "fedavg"))
        loss = 100 * (_clean(rows, "dirichlet", rule) - _clean(rows, "iid", rule))
        lower += gap < 0
        parts.append(
            f"{RULE_TITLES[rule]} {_points(gap)} vs FedAvg ({_points(loss)} vs its own IID accuracy)"
        )
    return (
        "Expected: robust rules lose some clean accuracy under non-IID shards. Measured, clean runs "
        "under Dirichlet shards: "
        + "; ".join(parts)
        + f"; FedAvg itself {_points(100 * (_clean(rows, 'dirichlet', 'fedavg') - _clean(rows, 'iid', 'fedavg')))} "
        f"vs IID. {lower} of {len(robust)} robust rules end below FedAvg."
    )


def attacker_sample_shares(grid: Grid, results: Sequence[dict[str, Any]]) -> str:
    """How much of the training data the attackers hold: what FedAvg's weights give them."""
    parts = []
    for shards in grid.shards:
        by_k = sorted(
            {(r["attackers"], r["attacker_sample_share"]) for r in results if r["shards"] == shards}
        )
        attacked = [f"{100 * share:.1f}% (k={k})" for k, share in by_k if k]
        if attacked:
            parts.append(f"{SHARD_TITLES.get(shards, shards)} {', '.join(attacked)}")
    if not parts:
        return ""
    return "- Share of the training samples the attackers hold (FedAvg's weight): " + "; ".join(parts) + "."


def krum_clean_note(grid: Grid, rows: Sequence[dict[str, Any]]) -> str:
    """Multi-Krum's clean run has f = 0 and m = N: it selects every update, as FedAvg averages them."""
    if not {"fedavg", "multi-krum"} <= set(grid.rules):
        return ""
    same = all(_clean(rows, shards, "multi-krum") == _clean(rows, shards, "fedavg") for shards in grid.shards)
    return "Multi-Krum's clean run has f = 0 and m = N, so it selects every update; " + (
        "its accuracy is identical to FedAvg's, as measured."
        if same
        else "its accuracy nevertheless differs from FedAvg's (see the tables)."
    )


def render_markdown(report: dict[str, Any], grid: Grid) -> str:
    settings = report["settings"]
    rows = report["table"]
    results = report["cells"]
    machine = report["machine"]
    lines = [
        "# Robustness of the aggregation rules",
        "",
        "Generated by `bench/robustness.py` (do not edit by hand; rerun `make robustness`). "
        "Raw numbers: `bench/results/robustness.json`.",
        "",
        "A pure in-process simulation (no chain, no IPFS): the same learning code, attacks and "
        "aggregation rules the trainers and aggregators use, with the protocol left out.",
        "",
        "## Command",
        "",
        "```",
        report["command"],
        "```",
        "",
        "## Settings",
        "",
        f"- Data: MNIST, the {report['data']['total']} real digits; seeded stratified split, "
        f"{report['data']['test']} held out (20%), {report['data']['train']} used for training.",
        f"- {settings['trainers']} trainers; shards IID or Dirichlet(alpha {settings['alpha']:g}); "
        f"attackers are the last k = round(share x {settings['trainers']}) trainers.",
        f"- {settings['rounds']} rounds; local training {settings['epochs']} epoch(s) of SGD "
        f"(batch {settings['batch_size']}, learning rate {settings['learning_rate']:g}, momentum "
        f"{settings['momentum']:g}) from the global model; the same seeds in every cell.",
        "- Attacks (library defaults): "
        + "; ".join(
            f"{name} ({', '.join(f'{key} {value}' for key, value in params.items())})"
            for name, params in report["attacks"].items()
        )
        + ".",
        "- Rules: FedAvg (weights = sample counts); coordinate median; trimmed mean beta 0.2 "
        f"(param {TRIM_BASIS_POINTS}); Multi-Krum with f = k (lowered until N >= 2f + 3) and m = N - f.",
        "- Cells: accuracy of the final global model on the held-out set. "
        "† 0% attackers: one clean run per rule and shard type, reused in every attack's row "
        "(the attack does not matter with no attacker). " + krum_clean_note(grid, rows),
        "- Other cells: accuracy % (points vs the rule's clean run).",
        f"- Machine: {machine['cpu_count']} CPUs, Python {machine['python']}, torch {machine['torch']}; "
        f"{report['workers']} worker process(es), 1 torch thread each; {len(results)} runs in "
        f"{report['total_seconds'] / 60:.1f} minutes.",
    ]
    shares_line = attacker_sample_shares(grid, results)
    if shares_line:
        lines.append(shares_line)
    if report.get("note"):
        lines += ["", f"**Note.** {report['note']}"]
    for shards in grid.shards:
        title = SHARD_TITLES.get(shards, shards)
        if shards == "dirichlet":
            title += f" (alpha {settings['alpha']:g})"
        lines += ["", f"## {title} shards", "", *markdown_table(grid, rows, shards)]
    lines += ["", "## What we see", ""]
    for shards in grid.shards:
        title = SHARD_TITLES.get(shards, shards)
        lines.append(f"- **{title}.** " + " ".join(observations(grid, rows, results, shards)))
    for shards in grid.shards:
        lines.append(
            f"- **Expectation, {SHARD_TITLES.get(shards, shards)}.** " + expectation(grid, rows, shards)
        )
    sentence = non_iid_sentence(grid, rows)
    if sentence:
        lines.append(f"- **Non-IID.** {sentence}")
    return "\n".join(lines) + "\n"


# --- the command line ------------------------------------------------------------------------------


@click.command()
@click.option("--rounds", type=click.IntRange(min=1), default=None, help="Rounds per cell [5; quick 2].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Local epochs per round [1].")
@click.option("--trainers", type=click.IntRange(min=3), default=None, help="Trainers [20; quick 4].")
@click.option(
    "--workers", type=click.IntRange(1, 2), default=2, show_default=True, help="Processes (at most 2)."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the split, shards, model and training."
)
@click.option("--alpha", type=float, default=0.5, show_default=True, help="Dirichlet concentration.")
@click.option(
    "--train-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Use only this many training digits [all; quick 800].",
)
@click.option("--quick", is_flag=True, help="A tiny grid (4 trainers, 2 rounds, 2 attacks, shares 0/25%).")
@click.option("--note", default="", help="A note printed at the top of the report.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True
)
@click.option(
    "--doc", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_DOC, show_default=True
)
def main(
    rounds: int | None,
    epochs: int | None,
    trainers: int | None,
    workers: int,
    seed: int,
    alpha: float,
    train_samples: int | None,
    quick: bool,
    note: str,
    out: Path,
    doc: Path,
) -> None:
    """Final held-out accuracy of each aggregation rule under each attack, share and shard type."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    grid = QUICK_GRID if quick else FULL_GRID
    settings = Settings(
        trainers=trainers or (4 if quick else 20),
        rounds=rounds or (2 if quick else 5),
        epochs=epochs or 1,
        alpha=alpha,
        seed=seed,
        train_samples=train_samples or (800 if quick else None),
    )
    train, test = train_test(settings.seed, settings.train_samples)
    cells = cells_for(grid, settings.trainers)
    click.echo(f"{len(cells)} runs, {workers} worker(s): {settings}", err=True)

    def progress(result: dict[str, Any], done: int, total: int) -> None:
        click.echo(
            f"[{done}/{total}] {result['id']}: accuracy {result['accuracy']:.4f} ({result['seconds']:.1f} s)",
            err=True,
        )
        sys.stderr.flush()

    results = run_cells(settings, cells, workers, progress)
    rows = table_rows(grid, settings.trainers, results)
    report: dict[str, Any] = {
        "experiment": "robustness of aggregation rules (in-process simulation)",
        "command": shlex.join(["python", *sys.argv]),
        "quick": quick,
        "note": note,
        "machine": machine_info(),
        "workers": workers,
        "torch_threads_per_process": 1,
        "seeds": {
            "split": settings.seed,
            "shards": settings.seed,
            "model": settings.seed,
            "training": "(seed * 1000 + trainer) * 1000003 + round",
            "attacks": "library default seed 0, per trainer name and round",
        },
        "settings": asdict(settings),
        "data": {"total": len(load_mnist()), "train": len(train), "test": len(test)},
        "grid": asdict(grid),
        "rules": {
            rule: {"rule": RULES[rule].name, "title": RULE_TITLES[rule], "param": RULE_PARAMS[rule]}
            for rule in grid.rules
        },
        "attacks": {attack: attack_parameters(attack) for attack in grid.attacks},
        "cells": results,
        "table": rows,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render_markdown(report, grid))
    click.echo(f"wrote {out} and {doc} in {report['total_seconds']:.0f} s", err=True)


def _json_default(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {value!r}")


if __name__ == "__main__":
    main()
