"""Gas used by each user-facing call, measured on one realistic run through the protocol, and
written to bench/results/gas.json for the docs. The commit path has a budget."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from helpers import Proposal, advance, attest, commit, make_model, make_update, next_block_at, reveal

from fedledger.chain.batching import batch_leaf, merkle_proof, sign_commitment
from fedledger.chain.params import TOKEN, AggregationRule, Role, TaskParameter, VoteType

COMMIT_GAS_BUDGET = 50_000
# The reveal stores the round's commitment (a new slot), so that the commit need not.
REVEAL_GAS_BUDGET = 75_000
BATCH_SIZE = 100
BATCH_COMMIT_GAS_PER_UPDATE_BUDGET = 15_000
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "gas.json"


def record(gas: dict[str, int]) -> None:
    """`make gas` (FEDLEDGER_GAS_REPORT=1) merges the figures into the committed gas.json."""
    if os.environ.get("FEDLEDGER_GAS_REPORT"):
        known = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(dict(sorted({**known, **gas}.items())), indent=2) + "\n")


def test_gas__user_facing_calls__within_budget_and_recorded(
    task: Any,
    registry: Any,
    token: Any,
    governor: Any,
    register: Callable[..., Any],
    trainers: list[Any],
    aggregators: list[Any],
    owner: Any,
    chain: Any,
) -> None:
    gas: dict[str, int] = {}

    # Registry. The last trainer's registration is the typical one (role counters already warm).
    # Stake changes write vote checkpoints, and a checkpoint in a new second takes a new slot:
    # each measured call gets a second of its own, so the figures do not depend on timing.
    for trainer in trainers:
        advance(chain, 1)
        gas["register"] = int(register(trainer, Role.TRAINER, 200 * TOKEN).gas_used)
    for aggregator in aggregators:
        register(aggregator, Role.AGGREGATOR)
    token.transfer(trainers[0], 50 * TOKEN, sender=owner)
    token.approve(registry, 50 * TOKEN, sender=trainers[0])
    advance(chain, 1)
    gas["addStake"] = int(registry.addStake(50 * TOKEN, sender=trainers[0]).gas_used)
    advance(chain, 1)
    unstake = registry.requestUnstake(50 * TOKEN, sender=trainers[0])
    gas["requestUnstake"] = int(unstake.gas_used)

    # One round: every commit, a non-final attestation, the finalizing one, claims and fees.
    gas["start"] = int(task.start(sender=owner).gas_used)
    updates = {t: make_update(f"gas-{i}", 1_000 * (i + 1)) for i, t in enumerate(trainers)}
    # A trainer's first commit creates its seal slot; every later one reuses it.
    gas["commitUpdate_first"] = max(int(commit(task, t, update).gas_used) for t, update in updates.items())
    reveals = [int(reveal(task, t, update).gas_used) for t, update in updates.items()]
    gas["revealUpdate"] = max(reveals)
    model = make_model("gas-model")
    gas["attest"] = int(attest(task, aggregators[0], model).gas_used)
    attest(task, aggregators[1], model)
    gas["attest_finalizing"] = int(attest(task, aggregators[2], model).gas_used)
    first = make_update("gas-0", 1_000)
    gas["claimReward"] = int(task.claimReward(0, first.digest, first.samples, sender=trainers[0]).gas_used)
    gas["withdrawFees"] = int(task.withdrawFees(sender=aggregators[0]).gas_used)
    # Round 1: the steady-state commit, what every round after a trainer's first costs.
    commits = [int(commit(task, t, make_update(f"gas-r1-{i}")).gas_used) for i, t in enumerate(trainers)]
    gas["commitUpdate"] = max(commits)

    # Governance: propose, vote, queue, execute one parameter change.
    proposal = Proposal.of(
        [(task, task.setParameter.encode_input(TaskParameter.AGGREGATION_RULE, AggregationRule.MEDIAN))],
        "gas: median aggregation",
    )
    # The governor counts stake at clock() - 1: on a fast machine everything above can share
    # the proposer's registration second, so let a second pass first.
    advance(chain, 1)
    gas["propose"] = int(proposal.propose(governor, trainers[1]).gas_used)
    proposal_id = proposal.id(governor)
    advance(chain, 2)
    votes = [int(governor.castVote(proposal_id, VoteType.FOR, sender=a).gas_used) for a in aggregators]
    gas["castVote"] = votes[-1]
    advance(chain, 21)
    queued = proposal.queue(governor, owner)
    gas["queue"] = int(queued.gas_used)
    chain.mine(timestamp=queued.timestamp + 5)
    gas["execute"] = int(proposal.execute(governor, owner).gas_used)
    assert task.parameter(TaskParameter.AGGREGATION_RULE) == AggregationRule.MEDIAN

    # Withdraw once the unbonding period is over.
    next_block_at(chain, unstake.timestamp + 3_600)
    gas["withdraw"] = int(registry.withdraw(sender=trainers[0]).gas_used)

    record(gas)

    assert max(commits) <= COMMIT_GAS_BUDGET, f"commitUpdate used {commits} gas"
    assert max(reveals) <= REVEAL_GAS_BUDGET, f"revealUpdate used {reveals} gas"


def test_gas__batch_of_100__per_update_within_budget_and_recorded(
    task: Any,
    registry: Any,
    token: Any,
    owner: Any,
    accounts: Any,
    aggregators: list[Any],
    outsider: Any,
    chain: Any,
) -> None:
    trainers = [accounts.generate_test_account() for _ in range(BATCH_SIZE)]
    for trainer in trainers:
        trainer.balance = 10**18
        token.transfer(trainer, 100 * TOKEN, sender=owner)
        token.approve(registry, 100 * TOKEN, sender=trainer)
        registry.register(int(Role.TRAINER), 100 * TOKEN, sender=trainer)
    registry_register(registry, token, owner, aggregators[0])
    advance(chain, 1)
    task.start(sender=owner)
    updates = {t: make_update(f"batch-{i}") for i, t in enumerate(trainers)}
    signed = [
        sign_commitment(
            Account.from_key(t.private_key),
            chain_id=chain.chain_id,
            task=str(task.address),
            round_=0,
            seal=u.seal(t),
        ).as_tuple()
        for t, u in updates.items()
    ]

    committed = task.commitBatch(0, signed, sender=outsider)
    leaves = [batch_leaf(t.address, u.seal(t)) for t, u in updates.items()]
    reveals = [
        (t.address, u.digest, u.cid, u.samples, u.salt, merkle_proof(leaves, i))
        for i, (t, u) in enumerate(updates.items())
    ]
    revealed = task.revealBatch(0, 0, reveals, sender=outsider)

    assert task.roundState(0).reveals == BATCH_SIZE
    per_update = {
        "commitBatch_per_update": int(committed.gas_used) // BATCH_SIZE,
        "revealBatch_per_update": int(revealed.gas_used) // BATCH_SIZE,
    }
    record(per_update)
    assert per_update["commitBatch_per_update"] <= BATCH_COMMIT_GAS_PER_UPDATE_BUDGET, per_update


def registry_register(registry: Any, token: Any, owner: Any, aggregator: Any) -> None:
    token.transfer(aggregator, 1_000 * TOKEN, sender=owner)
    token.approve(registry, 1_000 * TOKEN, sender=aggregator)
    registry.register(int(Role.AGGREGATOR), 1_000 * TOKEN, sender=aggregator)
