"""FederatedTask's batched path: trainers sign EIP-712 commitments, a relayer submits many in
one `commitBatch` (one Merkle root stored), and reveals prove each leaf with `revealBatch`.
A relayer can neither forge nor alter a commitment, nobody commits twice in a round by mixing
paths, and a batched update is revealed, aggregated, rewarded and claimed like any other."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from helpers import (
    ZERO_BYTES32,
    Update,
    attest,
    commit,
    end_commit_window,
    make_model,
    make_update,
    reverts,
)

from fedledger.chain.batching import (
    SignedCommitment,
    batch_leaf,
    merkle_proof,
    merkle_root,
    sign_commitment,
    signer_of,
)
from fedledger.chain.params import Phase


def key_of(account: Any) -> LocalAccount:
    signer: LocalAccount = Account.from_key(account.private_key)
    return signer


def signed(task: Any, chain: Any, trainer: Any, update: Update, round_: int = 0) -> SignedCommitment:
    return sign_commitment(
        key_of(trainer),
        chain_id=chain.chain_id,
        task=str(task.address),
        round_=round_,
        seal=update.seal(trainer),
    )


def entries(commitments: list[SignedCommitment]) -> list[tuple[bytes, bytes, bytes]]:
    return [c.as_tuple() for c in commitments]


def reveal_entries(trainers: list[Any], updates: dict[Any, Update], order: list[Any]) -> list[Any]:
    """`revealBatch` entries for `trainers`, proved in a batch committed in `order`."""
    leaves = [batch_leaf(t.address, updates[t].seal(t)) for t in order]
    return [
        (
            t.address,
            updates[t].digest,
            updates[t].cid,
            updates[t].samples,
            updates[t].salt,
            merkle_proof(leaves, order.index(t)),
        )
        for t in trainers
    ]


@pytest.fixture
def batch(
    task: Any, started: Any, chain: Any, trainers: list[Any], updates: dict[Any, Update], outsider: Any
) -> Any:
    """Every trainer's commitment, signed and committed by the outsider as relayer."""
    return task.commitBatch(
        0, entries([signed(task, chain, t, updates[t]) for t in trainers]), sender=outsider
    )


def test_sign_commitment__contract_recovers_the_trainer(task: Any, chain: Any, trainers: list[Any]) -> None:
    seal = make_update("x").seal(trainers[0])
    commitment = signed(task, chain, trainers[0], make_update("x"))
    digest = task.commitmentTypedDataHash(0, seal)

    assert (
        signer_of(commitment, chain_id=chain.chain_id, task=str(task.address), round_=0)
        == trainers[0].address
    )
    assert Account._recover_hash(digest, vrs=_vrs(commitment)) == trainers[0].address


def _vrs(commitment: SignedCommitment) -> tuple[int, int, int]:
    vs = int.from_bytes(commitment.vs, "big")
    return 27 + (vs >> 255), int.from_bytes(commitment.r, "big"), vs & ((1 << 255) - 1)


def test_commit_batch__relayer__stores_root_and_counts_every_commit(
    task: Any, batch: Any, trainers: list[Any], updates: dict[Any, Update], outsider: Any
) -> None:
    root = merkle_root([batch_leaf(t.address, updates[t].seal(t)) for t in trainers])

    assert batch.events == [task.BatchCommitted(0, 0, root, 4, outsider)]
    assert task.batchRoots(0) == [root]
    assert task.roundState(0).commits == 4
    assert all(task.lastCommittedRound(t) == (True, 0) for t in trainers)
    assert task.phase(0) == Phase.REVEAL  # every expected trainer committed: the window closed


def test_reveal_batch__in_two_parts__updates_revealed_like_single_ones(
    task: Any,
    batch: Any,
    trainers: list[Any],
    updates: dict[Any, Update],
    aggregators: list[Any],
    outsider: Any,
) -> None:
    first = task.revealBatch(0, 0, reveal_entries(trainers[:3], updates, trainers), sender=outsider)
    assert [e.trainer for e in first.events.filter(task.UpdateRevealed)] == trainers[:3]
    assert task.phase(0) == Phase.REVEAL
    task.revealBatch(0, 0, reveal_entries(trainers[3:], updates, trainers), sender=outsider)

    assert task.phase(0) == Phase.AGGREGATION
    state = task.roundState(0)
    assert (state.reveals, state.totalSamples) == (4, 1_000 + 2_000 + 3_000 + 4_000)
    assert all(
        task.commitment(0, t) == task.commitmentHash(updates[t].digest, updates[t].samples) for t in trainers
    )
    model = make_model("batched round")
    for aggregator in aggregators:
        attest(task, aggregator, model)
    assert task.phase(0) == Phase.FINALIZED
    claim = task.claimReward(0, updates[trainers[0]].digest, updates[trainers[0]].samples, sender=trainers[0])
    assert claim.events.filter(task.RewardClaimed)[0].amount == task.rewardOf(0, 1_000) > 0


def test_commit_batch__odd_sizes__every_leaf_provable(
    task: Any, started: Any, chain: Any, trainers: list[Any], updates: dict[Any, Update], outsider: Any
) -> None:
    order = trainers[:3]  # an odd count: the last leaf moves up a level unhashed
    task.commitBatch(0, entries([signed(task, chain, t, updates[t]) for t in order]), sender=outsider)
    end_commit_window(chain, task, 0)

    task.revealBatch(0, 0, reveal_entries(list(reversed(order)), updates, order), sender=outsider)

    assert task.roundState(0).reveals == 3


def test_commit_batch__relayer_alters_a_seal__recovers_someone_else(
    task: Any, started: Any, chain: Any, trainers: list[Any], updates: dict[Any, Update], outsider: Any
) -> None:
    honest = signed(task, chain, trainers[0], updates[trainers[0]])
    altered = SignedCommitment(make_update("relayer's choice").seal(trainers[0]), honest.r, honest.vs)
    impostor = signer_of(altered, chain_id=chain.chain_id, task=str(task.address), round_=0)

    with reverts(task.TaskNotEligibleTrainer, account=impostor):
        task.commitBatch(0, entries([altered]), sender=outsider)


def test_commit_batch__signature_for_another_round__rejected(
    task: Any, started: Any, chain: Any, trainers: list[Any], updates: dict[Any, Update], outsider: Any
) -> None:
    other_round = signed(task, chain, trainers[0], updates[trainers[0]], round_=7)
    impostor = signer_of(other_round, chain_id=chain.chain_id, task=str(task.address), round_=0)

    with reverts(task.TaskNotEligibleTrainer, account=impostor):
        task.commitBatch(0, entries([other_round]), sender=outsider)


def test_commit_batch__same_trainer_twice__reverts(
    task: Any, started: Any, chain: Any, trainers: list[Any], updates: dict[Any, Update], outsider: Any
) -> None:
    again = make_update("second")
    twice = [signed(task, chain, trainers[0], updates[trainers[0]]), signed(task, chain, trainers[0], again)]

    with reverts(task.TaskAlreadyCommitted, round=0, trainer=trainers[0].address):
        task.commitBatch(0, entries(twice), sender=outsider)


def test_commit__single_then_batched_or_batched_then_single__reverts(
    task: Any, started: Any, chain: Any, trainers: list[Any], updates: dict[Any, Update], outsider: Any
) -> None:
    single, batched = trainers[0], trainers[1]
    commit(task, single, updates[single])
    task.commitBatch(0, entries([signed(task, chain, batched, updates[batched])]), sender=outsider)

    with reverts(task.TaskAlreadyCommitted, round=0, trainer=single.address):
        task.commitBatch(0, entries([signed(task, chain, single, make_update("again"))]), sender=outsider)
    with reverts(task.TaskAlreadyCommitted, round=0, trainer=batched.address):
        commit(task, batched, make_update("again"))


def test_commit_batch__outsider_signature__not_eligible(
    task: Any, started: Any, chain: Any, outsider: Any, aggregators: list[Any]
) -> None:
    with reverts(task.TaskNotEligibleTrainer, account=aggregators[0].address):
        task.commitBatch(0, entries([signed(task, chain, aggregators[0], make_update("a"))]), sender=outsider)


def test_commit_batch__empty_zero_seal_or_wrong_phase__reverts(
    task: Any, started: Any, chain: Any, trainers: list[Any], updates: dict[Any, Update], outsider: Any
) -> None:
    with reverts(task.TaskEmptyBatch):
        task.commitBatch(0, [], sender=outsider)
    zero = sign_commitment(
        key_of(trainers[0]), chain_id=chain.chain_id, task=str(task.address), round_=0, seal=ZERO_BYTES32
    )
    with reverts(task.TaskZeroSeal):
        task.commitBatch(0, entries([zero]), sender=outsider)
    with reverts(task.TaskUnexpectedPhase, round=1, expected=Phase.COMMIT, actual=Phase.INACTIVE):
        task.commitBatch(
            1, entries([signed(task, chain, trainers[0], updates[trainers[0]], round_=1)]), sender=outsider
        )


def test_reveal_batch__wrong_proof_unknown_batch_twice_or_empty__reverts(
    task: Any, batch: Any, trainers: list[Any], updates: dict[Any, Update], outsider: Any
) -> None:
    [entry] = reveal_entries(trainers[:1], updates, trainers)
    wrong_proof = (*entry[:5], [ZERO_BYTES32, *entry[5][1:]])
    with reverts(task.TaskRevealMismatch, round=0, trainer=trainers[0].address):
        task.revealBatch(0, 0, [wrong_proof], sender=outsider)
    lying = (entry[0], entry[1], entry[2], entry[3] + 1, entry[4], entry[5])  # another sample count
    with reverts(task.TaskRevealMismatch, round=0, trainer=trainers[0].address):
        task.revealBatch(0, 0, [lying], sender=outsider)
    with reverts(task.TaskUnknownBatch, round=0, batchIndex=1):
        task.revealBatch(0, 1, [entry], sender=outsider)
    with reverts(task.TaskEmptyBatch):
        task.revealBatch(0, 0, [], sender=outsider)
    task.revealBatch(0, 0, [entry], sender=outsider)
    with reverts(task.TaskAlreadyRevealed, round=0, trainer=trainers[0].address):
        task.revealBatch(0, 0, [entry], sender=outsider)


def test_reveal_batch__during_commit_phase__reverts(
    task: Any, started: Any, chain: Any, trainers: list[Any], updates: dict[Any, Update], outsider: Any
) -> None:
    task.commitBatch(0, entries([signed(task, chain, trainers[0], updates[trainers[0]])]), sender=outsider)
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.REVEAL, actual=Phase.COMMIT):
        task.revealBatch(0, 0, reveal_entries(trainers[:1], updates, trainers[:1]), sender=outsider)


def test_reveal_update__single_path_cannot_open_a_batched_commitment(
    task: Any, batch: Any, trainers: list[Any], updates: dict[Any, Update]
) -> None:
    update = updates[trainers[0]]
    with reverts(task.TaskRevealMismatch, round=0, trainer=trainers[0].address):
        task.revealUpdate(
            0, trainers[0], update.digest, update.cid, update.samples, update.salt, sender=trainers[0]
        )
