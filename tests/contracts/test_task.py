"""FederatedTask: the round lifecycle (commit, attest, finalize or close), rewards, fees,
slashing of rejected trainers and dissenting aggregators, parameters, and every `Task*` error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak
from helpers import (
    BPS,
    UINT64_MAX,
    UINT128_MAX,
    ZERO_BYTES32,
    Model,
    Update,
    advance,
    attest,
    commit,
    commit_all,
    commit_and_reveal,
    end_commit_window,
    end_reveal_window,
    make_model,
    make_update,
    next_block_at,
    rejection,
    result_key,
    reveal,
    reveal_all,
    reverts,
    run_round,
    sort_rejections,
)

from fedledger.chain.params import (
    TOKEN,
    DeployParameters,
    Phase,
    RejectionReason,
    Role,
    RoundStatus,
    TaskParameter,
)

COMMIT_WINDOW = 120
REVEAL_WINDOW = 60
AGGREGATION_WINDOW = 120
REWARD = 100 * TOKEN
FEE = 10 * TOKEN
TRAINER_STAKE = 100 * TOKEN
TRAINER_SLASH = TRAINER_STAKE * 1_000 // 10_000
SLASH_REASON_ATTESTATION_MISMATCH = (0xA0).to_bytes(32, "big")
UNEQUAL_AGGREGATORS = pytest.mark.parametrize(
    "aggregator_stakes", [[2_000 * TOKEN, 1_000 * TOKEN, 1_000 * TOKEN]], ids=["2000-1000-1000"]
)
PROVABLE = [
    RejectionReason.DIGEST_MISMATCH,
    RejectionReason.MALFORMED,
    RejectionReason.NON_FINITE,
    RejectionReason.OVERSIZE,
    RejectionReason.WRONG_BINDING,
]


def reason_code(reason: RejectionReason) -> bytes:
    return int(reason).to_bytes(32, "big")


def deadlines(task: Any, round_: int) -> tuple[int, int]:
    state = task.roundState(round_)
    return int(state.commitDeadline), int(state.aggregationDeadline)


def all_deadlines(task: Any, round_: int) -> tuple[int, int, int]:
    state = task.roundState(round_)
    return int(state.commitDeadline), int(state.revealDeadline), int(state.aggregationDeadline)


# ---------------------------------------------------------------- deployment and start


def test_deploy__initial_model_and_parameters(
    task: Any, registry: Any, token: Any, timelock: Any, deploy_params: DeployParameters
) -> None:
    model = task.globalModel()
    assert (model.digest, model.version, model.cid) == (
        deploy_params.initial_model_digest,
        0,
        deploy_params.initial_model_cid,
    )
    assert task.registry() == registry
    assert task.rewardToken() == token
    assert task.timelock() == timelock
    assert task.modelSpecHash() == deploy_params.model_spec_hash
    assert task.modelSpecCid() == deploy_params.model_spec_cid
    for parameter, value in zip(TaskParameter, deploy_params.task.as_tuple(), strict=True):
        assert task.parameter(parameter) == value, parameter.name
    assert task.roundDuration() == COMMIT_WINDOW + REVEAL_WINDOW + AGGREGATION_WINDOW
    assert task.phase(0) == Phase.INACTIVE
    assert task.availableRewards() == deploy_params.reward_pool


@pytest.mark.parametrize(
    ("digest", "cid", "spec_cid", "error"),
    [
        (ZERO_BYTES32, "bafy", "", "TaskZeroDigest"),
        (b"\x01" * 32, "", "", "TaskInvalidCid"),
        (b"\x01" * 32, "bafy", "b" * 129, "TaskInvalidCid"),
    ],
)
def test_constructor__bad_initial_model__reverts(
    project: Any,
    owner: Any,
    registry: Any,
    timelock: Any,
    deploy_params: DeployParameters,
    digest: bytes,
    cid: str,
    spec_cid: str,
    error: str,
) -> None:
    with reverts(getattr(project.FederatedTask, error)):
        owner.deploy(
            project.FederatedTask,
            registry,
            timelock,
            digest,
            cid,
            ZERO_BYTES32,
            spec_cid,
            deploy_params.task.as_tuple(),
        )


def test_start__enough_participants__opens_round_zero(
    task: Any,
    owner: Any,
    active_trainers: list[Any],
    active_aggregators: list[Any],
    deploy_params: DeployParameters,
) -> None:
    tx = task.start(sender=owner)

    now = tx.timestamp
    assert tx.events == [
        task.RoundOpened(
            0,
            now + COMMIT_WINDOW,
            now + COMMIT_WINDOW + REVEAL_WINDOW,
            now + COMMIT_WINDOW + REVEAL_WINDOW + AGGREGATION_WINDOW,
            len(active_trainers),
        )
    ]
    state = task.roundState(0)
    assert (state.openedAt, state.commits, state.expectedCommits, state.status, state.sampleCap) == (
        now,
        0,
        4,
        RoundStatus.OPEN,
        deploy_params.task.sample_cap,
    )
    config = task.roundConfig(0)
    params = deploy_params.task
    assert (config.rewardPerRound, config.aggregatorFee, config.minUpdates, config.quorumBps) == (
        params.reward_per_round,
        params.aggregator_fee,
        params.min_updates,
        params.quorum_bps,
    )
    assert (config.trainerSlashBps, config.outlierSlashBps, config.aggregatorSlashBps) == (
        params.trainer_slash_bps,
        params.outlier_slash_bps,
        params.aggregator_slash_bps,
    )
    assert task.currentRound() == 0
    assert task.phase(0) == Phase.COMMIT


def test_start__twice__reverts(task: Any, started: Any, outsider: Any) -> None:
    with reverts(task.TaskAlreadyStarted):
        task.start(sender=outsider)


def test_start__too_few_trainers__reverts(
    task: Any, register: Callable[..., Any], trainers: list[Any], aggregators: list[Any], outsider: Any
) -> None:
    register(trainers[0], Role.TRAINER)
    register(aggregators[0], Role.AGGREGATOR)

    with reverts(task.TaskNotEnoughTrainers, active=1, required=2):
        task.start(sender=outsider)


def test_start__no_aggregator__reverts(task: Any, active_trainers: list[Any], outsider: Any) -> None:
    with reverts(task.TaskNoAggregators):
        task.start(sender=outsider)


# ---------------------------------------------------------------- commit


def test_commit__eligible_trainer__stores_seal_only(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update]
) -> None:
    trainer, update = trainers[0], updates[trainers[0]]
    seal = keccak(
        encode(
            ["address", "bytes32", "uint256", "bytes32"],
            [trainer.address, update.digest, update.samples, update.salt],
        )
    )

    tx = commit(task, trainer, update)

    # Nothing about the update (digest, CID, samples) is public until the reveal.
    assert tx.events == [task.UpdateCommitted(0, trainer, seal)]
    assert seal == task.sealOf(trainer, update.digest, update.samples, update.salt)
    assert task.lastCommittedRound(trainer) == (True, 0)
    assert task.lastCommittedRound(trainers[1]) == (False, 0)
    assert task.taggedSealOf(trainer) == keccak(encode(["uint256", "bytes32"], [0, seal]))
    assert task.commitment(0, trainer) == ZERO_BYTES32  # nothing revealed yet
    state = task.roundState(0)
    assert (state.commits, state.reveals, state.totalSamples) == (1, 0, 0)
    assert task.phase(0) == Phase.COMMIT


def test_commit__last_second_of_window__accepted(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update], chain: Any
) -> None:
    commit_deadline, _ = deadlines(task, 0)
    next_block_at(chain, commit_deadline - 1)

    tx = commit(task, trainers[0], updates[trainers[0]])

    assert tx.timestamp == commit_deadline - 1


def test_commit__after_deadline_with_too_few_commits__reverts(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update], chain: Any
) -> None:
    commit(task, trainers[0], updates[trainers[0]])
    commit_deadline, _ = deadlines(task, 0)
    next_block_at(chain, commit_deadline)

    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.COMMIT, actual=Phase.STALE):
        commit(task, trainers[1], updates[trainers[1]])


def test_commit__after_deadline_with_enough_commits__reverts(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update], chain: Any
) -> None:
    commit(task, trainers[0], updates[trainers[0]])
    commit(task, trainers[1], updates[trainers[1]])
    commit_deadline, _ = deadlines(task, 0)
    next_block_at(chain, commit_deadline)

    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.COMMIT, actual=Phase.REVEAL):
        commit(task, trainers[2], updates[trainers[2]])


def test_commit__before_start__reverts(
    task: Any, active_trainers: list[Any], updates: dict[Any, Update]
) -> None:
    trainer = active_trainers[0]
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.COMMIT, actual=Phase.INACTIVE):
        commit(task, trainer, updates[trainer], round_=0)


def test_commit__future_round__reverts(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update]
) -> None:
    with reverts(task.TaskUnexpectedPhase, round=1, expected=Phase.COMMIT, actual=Phase.INACTIVE):
        commit(task, trainers[0], updates[trainers[0]], round_=1)


def test_commit__zero_seal__reverts(task: Any, started: Any, trainers: list[Any]) -> None:
    with reverts(task.TaskZeroSeal):
        task.commitUpdate(0, ZERO_BYTES32, sender=trainers[0])


@pytest.mark.parametrize("who", ["outsider", "aggregator"])
def test_commit__not_a_trainer__reverts(
    task: Any, started: Any, outsider: Any, aggregators: list[Any], who: str
) -> None:
    account = outsider if who == "outsider" else aggregators[0]
    with reverts(task.TaskNotEligibleTrainer, account=account.address):
        commit(task, account, make_update("x"))


def test_commit__registered_after_round_opened__reverts_until_next_round(
    task: Any,
    started: Any,
    register: Callable[..., Any],
    outsider: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    chain: Any,
) -> None:
    advance(chain, 1)
    register(outsider, Role.TRAINER)
    late = make_update("late")

    with reverts(task.TaskNotEligibleTrainer, account=outsider.address):
        commit(task, outsider, late)

    run_round(chain, task, updates, aggregators, model)
    assert task.roundState(1).expectedCommits == 5
    tx = commit(task, outsider, late)
    assert tx.events == [task.UpdateCommitted(1, outsider, late.seal(outsider))]


def test_commit__trainer_left__reverts(
    task: Any, registry: Any, started: Any, trainers: list[Any], updates: dict[Any, Update]
) -> None:
    registry.requestUnstake(TRAINER_STAKE, sender=trainers[0])

    with reverts(task.TaskNotEligibleTrainer, account=trainers[0].address):
        commit(task, trainers[0], updates[trainers[0]])


def test_commit__twice__reverts(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update]
) -> None:
    commit(task, trainers[0], updates[trainers[0]])
    with reverts(task.TaskAlreadyCommitted, round=0, trainer=trainers[0].address):
        commit(task, trainers[0], make_update("second"))


def test_commit__all_expected_trainers__closes_window_early(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update]
) -> None:
    commit_deadline, _ = deadlines(task, 0)
    for trainer in trainers[:3]:
        commit(task, trainer, updates[trainer])
    assert task.phase(0) == Phase.COMMIT

    last = commit(task, trainers[3], updates[trainers[3]])

    assert last.timestamp < commit_deadline
    assert task.phase(0) == Phase.REVEAL
    assert task.roundState(0).commits == 4


def test_commit__copied_seal__cannot_be_revealed_by_the_copier(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update], chain: Any
) -> None:
    victim, copier = trainers[0], trainers[1]
    update = updates[victim]
    commit(task, victim, update)
    # The copier commits the victim's seal byte for byte (it is public in the event).
    task.commitUpdate(0, update.seal(victim), sender=copier)
    end_commit_window(chain, task, 0)
    reveal(task, victim, update)

    # Even knowing the victim's opening, the copier cannot open the copied seal as its own.
    with reverts(task.TaskRevealMismatch, round=0, trainer=copier.address):
        reveal(task, copier, update)


# ---------------------------------------------------------------- reveal


@pytest.fixture
def sealed(task: Any, started: Any, updates: dict[Any, Update], chain: Any) -> dict[Any, Update]:
    """Every trainer committed its seal: round 0 is in its reveal phase."""
    commit_all(task, updates)
    assert task.phase(0) == Phase.REVEAL
    return updates


def test_reveal__opens_seal__stores_commitment_and_counts_samples(
    task: Any, sealed: dict[Any, Update], trainers: list[Any]
) -> None:
    trainer, update = trainers[0], sealed[trainers[0]]

    tx = reveal(task, trainer, update)

    assert tx.events == [task.UpdateRevealed(0, trainer, update.digest, update.cid, update.samples)]
    stored = keccak(encode(["bytes32", "uint256"], [update.digest, update.samples]))
    assert task.commitment(0, trainer) == stored == task.commitmentHash(update.digest, update.samples)
    state = task.roundState(0)
    assert (state.commits, state.reveals, state.totalSamples) == (4, 1, update.samples)
    assert task.phase(0) == Phase.REVEAL


def test_reveal__by_a_relayer__accepted_for_the_trainer(
    task: Any, sealed: dict[Any, Update], trainers: list[Any], outsider: Any
) -> None:
    trainer, update = trainers[0], sealed[trainers[0]]

    tx = reveal(task, trainer, update, sender=outsider)

    assert tx.events == [task.UpdateRevealed(0, trainer, update.digest, update.cid, update.samples)]


def test_reveal__all_committed__closes_window_early(
    task: Any, sealed: dict[Any, Update], trainers: list[Any]
) -> None:
    _, reveal_deadline, _ = all_deadlines(task, 0)
    receipts = reveal_all(task, sealed)

    assert receipts[-1].timestamp < reveal_deadline
    assert task.phase(0) == Phase.AGGREGATION
    assert task.roundState(0).reveals == 4


def test_reveal__samples_above_cap__count_as_cap(
    task: Any, started: Any, trainers: list[Any], chain: Any
) -> None:
    updates = {trainers[0]: make_update("big", 25_000), trainers[1]: make_update("max", UINT64_MAX)}
    commit_and_reveal(chain, task, updates)

    assert task.roundState(0).totalSamples == 2 * 10_000


def test_reveal__during_commit_phase__reverts(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update]
) -> None:
    commit(task, trainers[0], updates[trainers[0]])
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.REVEAL, actual=Phase.COMMIT):
        reveal(task, trainers[0], updates[trainers[0]])


def test_reveal__after_reveal_deadline__reverts(
    task: Any, sealed: dict[Any, Update], trainers: list[Any], chain: Any
) -> None:
    reveal_all(task, {t: sealed[t] for t in trainers[:2]})
    _, reveal_deadline, _ = all_deadlines(task, 0)
    next_block_at(chain, reveal_deadline)

    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.REVEAL, actual=Phase.AGGREGATION):
        reveal(task, trainers[2], sealed[trainers[2]])


def test_reveal__last_second_of_window__accepted(
    task: Any, sealed: dict[Any, Update], trainers: list[Any], chain: Any
) -> None:
    _, reveal_deadline, _ = all_deadlines(task, 0)
    next_block_at(chain, reveal_deadline - 1)

    tx = reveal(task, trainers[0], sealed[trainers[0]])

    assert tx.timestamp == reveal_deadline - 1


@pytest.mark.parametrize("field", ["digest", "samples", "salt", "trainer"])
def test_reveal__wrong_opening__reverts(
    task: Any, sealed: dict[Any, Update], trainers: list[Any], field: str
) -> None:
    trainer, update = trainers[0], sealed[trainers[0]]
    wrong = {
        "digest": Update(b"\x07" * 32, update.cid, update.samples, update.salt),
        "samples": Update(update.digest, update.cid, update.samples + 1, update.salt),
        "salt": Update(update.digest, update.cid, update.samples, b"\x07" * 32),
        "trainer": update,
    }[field]
    claimed = trainers[1] if field == "trainer" else trainer

    with reverts(task.TaskRevealMismatch, round=0, trainer=claimed.address):
        reveal(task, claimed, wrong, sender=trainer)


def test_reveal__nothing_committed__reverts(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update], chain: Any
) -> None:
    commit_all(task, {t: updates[t] for t in trainers[:2]})
    end_commit_window(chain, task, 0)

    with reverts(task.TaskRevealMismatch, round=0, trainer=trainers[2].address):
        reveal(task, trainers[2], updates[trainers[2]])


def test_reveal__twice__reverts(task: Any, sealed: dict[Any, Update], trainers: list[Any]) -> None:
    trainer, update = trainers[0], sealed[trainers[0]]
    reveal(task, trainer, update)

    with reverts(task.TaskAlreadyRevealed, round=0, trainer=trainer.address):
        reveal(task, trainer, update)


def test_reveal__zero_digest__reverts(task: Any, sealed: dict[Any, Update], trainers: list[Any]) -> None:
    with reverts(task.TaskZeroDigest):
        reveal(task, trainers[0], Update(ZERO_BYTES32, "bafy", 10))


@pytest.mark.parametrize("length", [0, 129])
def test_reveal__invalid_cid__reverts(
    task: Any, sealed: dict[Any, Update], trainers: list[Any], length: int
) -> None:
    update = sealed[trainers[0]]
    with reverts(task.TaskInvalidCid, length=length):
        reveal(task, trainers[0], Update(update.digest, "c" * length, update.samples, update.salt))


def test_reveal__cid_of_128_bytes__accepted(task: Any, started: Any, trainers: list[Any], chain: Any) -> None:
    update = Update(b"\x01" * 32, "c" * 128, 10)
    commit(task, trainers[0], update)
    commit(task, trainers[1], make_update("other"))
    end_commit_window(chain, task, 0)

    tx = reveal(task, trainers[0], update)

    assert tx.events == [task.UpdateRevealed(0, trainers[0], b"\x01" * 32, "c" * 128, 10)]


@pytest.mark.parametrize("samples", [0, UINT64_MAX + 1])
def test_reveal__invalid_sample_count__reverts(
    task: Any, sealed: dict[Any, Update], trainers: list[Any], samples: int
) -> None:
    with reverts(task.TaskInvalidSampleCount, numSamples=samples):
        reveal(task, trainers[0], Update(b"\x01" * 32, "bafy", samples))


def test_reveal__fewer_than_min_updates_by_deadline__round_goes_stale(
    task: Any, sealed: dict[Any, Update], trainers: list[Any], chain: Any
) -> None:
    reveal(task, trainers[0], sealed[trainers[0]])
    _, reveal_deadline, _ = all_deadlines(task, 0)
    chain.mine(timestamp=reveal_deadline)

    # Two commits but one reveal: below the minimum of two updates.
    assert task.phase(0) == Phase.STALE


def test_reveal__unrevealed_commit__earns_nothing(
    task: Any,
    sealed: dict[Any, Update],
    trainers: list[Any],
    aggregators: list[Any],
    model: Model,
    chain: Any,
) -> None:
    revealed = {t: sealed[t] for t in trainers[:3]}
    reveal_all(task, revealed)
    end_reveal_window(chain, task, 0)
    for aggregator in aggregators:
        attest(task, aggregator, model)

    assert task.phase(0) == Phase.FINALIZED
    assert task.roundResult(0).acceptedSamples == 1_000 + 2_000 + 3_000
    silent = trainers[3]
    with reverts(task.TaskNoReward, round=0, trainer=silent.address):
        task.claimReward(0, sealed[silent].digest, sealed[silent].samples, sender=silent)


# ---------------------------------------------------------------- attest


@pytest.fixture
def committed(task: Any, started: Any, updates: dict[Any, Update], chain: Any) -> dict[Any, Update]:
    """Every trainer committed and revealed its update: round 0 is in its aggregation phase."""
    commit_and_reveal(chain, task, updates)
    assert task.phase(0) == Phase.AGGREGATION
    return updates


def test_attest__short_of_quorum__records_support(
    task: Any, committed: dict[Any, Update], aggregators: list[Any], model: Model
) -> None:
    key = result_key(0, model.digest, [])

    tx = attest(task, aggregators[0], model)

    assert tx.events == [task.AttestationSubmitted(0, aggregators[0], key, model.digest, model.cid, 0)]
    assert task.attestation(0, aggregators[0]) == key
    assert task.attesters(0) == [aggregators[0]]
    assert task.support(0, key) == 1_000 * TOKEN
    assert task.phase(0) == Phase.AGGREGATION


def test_attest__two_of_three_equal_aggregators__short_of_two_thirds_quorum(
    task: Any, committed: dict[Any, Update], aggregators: list[Any], model: Model
) -> None:
    attest(task, aggregators[0], model)
    tx = attest(task, aggregators[1], model)

    # 2/3 of the stake is 6666.67 bps, below the 6667 bps quorum: all three must agree.
    assert tx.events.filter(task.RoundFinalized) == []
    assert task.phase(0) == Phase.AGGREGATION


def test_attest__quorum__finalizes_and_opens_next_round(
    task: Any, committed: dict[Any, Update], aggregators: list[Any], model: Model
) -> None:
    key = result_key(0, model.digest, [])
    attest(task, aggregators[0], model)
    attest(task, aggregators[1], model)

    tx = attest(task, aggregators[2], model)

    now = tx.timestamp
    share = FEE // 3
    assert tx.events.filter(task.RoundFinalized) == [
        task.RoundFinalized(0, key, model.digest, model.cid, 4, 0, REWARD)
    ]
    assert tx.events.filter(task.FeeCredited) == [task.FeeCredited(0, a, share) for a in aggregators]
    assert tx.events.filter(task.RoundOpened) == [
        task.RoundOpened(
            1,
            now + COMMIT_WINDOW,
            now + COMMIT_WINDOW + REVEAL_WINDOW,
            now + COMMIT_WINDOW + REVEAL_WINDOW + AGGREGATION_WINDOW,
            4,
        )
    ]
    assert task.phase(0) == Phase.FINALIZED
    assert task.roundState(0).status == RoundStatus.FINALIZED
    assert task.currentRound() == 1
    assert task.phase(1) == Phase.COMMIT
    result = task.roundResult(0)
    assert (result.resultKey, result.modelDigest, result.trainerReward, result.acceptedSamples) == (
        key,
        model.digest,
        REWARD,
        10_000,
    )
    assert (result.rejectedCount, result.modelCid) == (0, model.cid)
    global_model = task.globalModel()
    assert (global_model.digest, global_model.version, global_model.cid) == (model.digest, 1, model.cid)
    # The fee's division dust (1 wei) goes back to the pool.
    assert task.reservedRewards() == REWARD + 3 * share
    assert [task.feesOf(a) for a in aggregators] == [share] * 3


def test_attest__attesters_that_left__do_not_count_toward_quorum(
    task: Any,
    registry: Any,
    owner: Any,
    accounts: Any,
    outsider: Any,
    register: Callable[..., Any],
    active_trainers: list[Any],
    active_aggregators: list[Any],
    updates: dict[Any, Any],
    chain: Any,
) -> None:
    # Three honest aggregators and three colluding ones, 1,000 each: the colluders hold half the
    # stake, short of the 66.67 % quorum.
    colluders = [owner, accounts[8], outsider]
    for colluder in colluders:
        register(colluder, Role.AGGREGATOR, 1_000 * TOKEN)
    task.start(sender=owner)
    commit_and_reveal(chain, task, updates)
    forged = make_model("forged model")

    # Each colluder attests, then leaves at once, taking its stake out of the quorum's total.
    for colluder in colluders[:-1]:
        attest(task, colluder, forged)
        registry.requestUnstake(1_000 * TOKEN, sender=colluder)
    attest(task, colluders[-1], forged)

    assert Phase(task.phase(0)) == Phase.AGGREGATION
    assert task.globalModel().digest != forged.digest


def test_attest__commit_phase__reverts(task: Any, started: Any, aggregators: list[Any], model: Model) -> None:
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.AGGREGATION, actual=Phase.COMMIT):
        attest(task, aggregators[0], model)


def test_attest__finalized_round__reverts(
    task: Any, started: Any, updates: dict[Any, Update], aggregators: list[Any], model: Model, chain: Any
) -> None:
    run_round(chain, task, updates, aggregators, model)
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.AGGREGATION, actual=Phase.FINALIZED):
        attest(task, aggregators[0], model, round_=0)


def test_attest__after_aggregation_deadline__reverts(
    task: Any, committed: dict[Any, Update], aggregators: list[Any], model: Model, chain: Any
) -> None:
    _, aggregation_deadline = deadlines(task, 0)
    next_block_at(chain, aggregation_deadline)
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.AGGREGATION, actual=Phase.STALE):
        attest(task, aggregators[0], model)


def test_attest__zero_digest__reverts(
    task: Any, committed: dict[Any, Update], aggregators: list[Any]
) -> None:
    with reverts(task.TaskZeroDigest):
        attest(task, aggregators[0], Model(ZERO_BYTES32, "bafy"))


@pytest.mark.parametrize("length", [0, 129])
def test_attest__invalid_cid__reverts(
    task: Any, committed: dict[Any, Update], aggregators: list[Any], length: int
) -> None:
    with reverts(task.TaskInvalidCid, length=length):
        attest(task, aggregators[0], Model(b"\x01" * 32, "m" * length))


@pytest.mark.parametrize("who", ["trainer", "outsider"])
def test_attest__not_an_aggregator__reverts(
    task: Any, committed: dict[Any, Update], trainers: list[Any], outsider: Any, model: Model, who: str
) -> None:
    account = trainers[0] if who == "trainer" else outsider
    with reverts(task.TaskNotAggregator, account=account.address):
        attest(task, account, model)


def test_attest__inactive_aggregator__reverts(
    task: Any,
    registry: Any,
    committed: dict[Any, Update],
    aggregators: list[Any],
    model: Model,
    task_signer: Any,
) -> None:
    registry.slash(aggregators[0], TOKEN, b"\x00" * 32, sender=task_signer)

    with reverts(task.TaskNotAggregator, account=aggregators[0].address):
        attest(task, aggregators[0], model)


def test_attest__twice__reverts(
    task: Any, committed: dict[Any, Update], aggregators: list[Any], model: Model
) -> None:
    attest(task, aggregators[0], model)
    with reverts(task.TaskAlreadyAttested, round=0, aggregator=aggregators[0].address):
        attest(task, aggregators[0], make_model("changed my mind"))


def test_attest__rejections_not_sorted__reverts(
    task: Any, committed: dict[Any, Update], trainers: list[Any], aggregators: list[Any], model: Model
) -> None:
    ordered = sort_rejections(rejection(t, RejectionReason.MALFORMED, committed[t]) for t in trainers[:2])

    with reverts(task.TaskRejectionsNotSorted):
        attest(task, aggregators[0], model, list(reversed(ordered)))


def test_attest__same_trainer_twice__reverts(
    task: Any, committed: dict[Any, Update], trainers: list[Any], aggregators: list[Any], model: Model
) -> None:
    once = rejection(trainers[0], RejectionReason.MALFORMED, committed[trainers[0]])
    with reverts(task.TaskRejectionsNotSorted):
        attest(task, aggregators[0], model, [once, once])


def test_attest__rejection_reason_none__reverts(
    task: Any, committed: dict[Any, Update], trainers: list[Any], aggregators: list[Any], model: Model
) -> None:
    with reverts(task.TaskInvalidRejectionReason, trainer=trainers[0].address):
        attest(
            task,
            aggregators[0],
            model,
            [rejection(trainers[0], RejectionReason.NONE, committed[trainers[0]])],
        )


@pytest.mark.parametrize("mismatch", ["digest", "samples", "not-committed"])
def test_attest__rejection_not_matching_commitment__reverts(
    task: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    chain: Any,
    mismatch: str,
) -> None:
    commit_and_reveal(chain, task, {t: updates[t] for t in trainers[:3]})
    trainer, update = trainers[0], updates[trainers[0]]
    if mismatch == "digest":
        named = Update(make_update("other").digest, update.cid, update.samples)
    elif mismatch == "samples":
        named = Update(update.digest, update.cid, update.samples + 1)
    else:
        trainer, named = trainers[3], updates[trainers[3]]

    with reverts(task.TaskRejectionMismatch, trainer=trainer.address):
        attest(task, aggregators[0], model, [rejection(trainer, RejectionReason.DIGEST_MISMATCH, named)])


# ---------------------------------------------------------------- rejections and slashing


@pytest.mark.parametrize("reason", PROVABLE, ids=[r.name for r in PROVABLE])
def test_finalize__provable_rejection__slashes_trainer_and_withholds_reward(
    task: Any,
    registry: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    chain: Any,
    reason: RejectionReason,
) -> None:
    bad = trainers[1]
    rejections = [rejection(bad, reason, updates[bad])]

    tx = run_round(chain, task, updates, aggregators, model, rejections)

    key = result_key(0, model.digest, rejections)
    assert tx.events.filter(task.UpdateRejected) == [task.UpdateRejected(0, bad, reason)]
    assert tx.events.filter(registry.Slashed) == [
        registry.Slashed(bad, task, TRAINER_SLASH, reason_code(reason))
    ]
    # 90 left of a 100 minimum: the trainer drops out, and the task hears of it.
    assert tx.events.filter(registry.ActiveChanged) == [registry.ActiveChanged(bad, False)]
    assert tx.events.filter(task.TrainerSynced) == [task.TrainerSynced(bad, 0)]
    assert tx.events.filter(task.RoundFinalized) == [
        task.RoundFinalized(0, key, model.digest, model.cid, 3, 1, REWARD)
    ]
    assert task.rejection(0, bad) == reason
    assert task.roundResult(0).acceptedSamples == 10_000 - updates[bad].samples
    assert registry.participant(bad).stake == TRAINER_STAKE - TRAINER_SLASH
    assert task.roundState(1).expectedCommits == 3
    with reverts(task.TaskNoReward, round=0, trainer=bad.address):
        task.claimReward(0, updates[bad].digest, updates[bad].samples, sender=bad)


@pytest.mark.parametrize(
    "reason", [RejectionReason.UNAVAILABLE, RejectionReason.DUPLICATE, RejectionReason.OUTLIER]
)
def test_finalize__unprovable_rejection__not_slashed_at_default_rates(
    task: Any,
    registry: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    chain: Any,
    reason: RejectionReason,
) -> None:
    bad = trainers[2]

    tx = run_round(chain, task, updates, aggregators, model, [rejection(bad, reason, updates[bad])])

    assert tx.events.filter(task.UpdateRejected) == [task.UpdateRejected(0, bad, reason)]
    assert tx.events.filter(registry.Slashed) == []
    assert registry.participant(bad).stake == TRAINER_STAKE
    assert registry.activeRole(bad, Role.TRAINER)[0] is True
    with reverts(task.TaskNoReward, round=0, trainer=bad.address):
        task.claimReward(0, updates[bad].digest, updates[bad].samples, sender=bad)


def test_finalize__outlier__slashed_at_outlier_rate(
    task: Any,
    registry: Any,
    active_trainers: list[Any],
    active_aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    timelock_signer: Any,
    owner: Any,
    chain: Any,
) -> None:
    task.setParameter(TaskParameter.OUTLIER_SLASH_BPS, 500, sender=timelock_signer)
    task.start(sender=owner)
    bad = active_trainers[0]

    tx = run_round(
        chain,
        task,
        updates,
        active_aggregators,
        model,
        [rejection(bad, RejectionReason.OUTLIER, updates[bad])],
    )

    amount = TRAINER_STAKE * 500 // 10_000
    assert tx.events.filter(registry.Slashed) == [
        registry.Slashed(bad, task, amount, reason_code(RejectionReason.OUTLIER))
    ]


def test_finalize__several_rejections__sorted_and_all_applied(
    task: Any,
    registry: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    chain: Any,
) -> None:
    rejections = sort_rejections(
        [
            rejection(trainers[0], RejectionReason.MALFORMED, updates[trainers[0]]),
            rejection(trainers[3], RejectionReason.UNAVAILABLE, updates[trainers[3]]),
        ]
    )

    tx = run_round(chain, task, updates, aggregators, model, rejections)

    assert len(tx.events.filter(task.UpdateRejected)) == 2
    assert tx.events.filter(registry.Slashed) == [
        registry.Slashed(account=trainers[0], slasher=task, amount=TRAINER_SLASH)
    ]
    result = task.roundResult(0)
    assert (result.rejectedCount, result.acceptedSamples) == (2, 2_000 + 3_000)


def test_finalize__every_update_rejected__no_trainer_reward(
    task: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    chain: Any,
) -> None:
    reserved = task.reservedRewards()
    rejections = sort_rejections(rejection(t, RejectionReason.UNAVAILABLE, updates[t]) for t in trainers)

    tx = run_round(chain, task, updates, aggregators, model, rejections)

    assert tx.events.filter(task.RoundFinalized)[0].trainerReward == 0
    assert task.roundResult(0).acceptedSamples == 0
    assert task.rewardOf(0, 1_000) == 0
    assert task.reservedRewards() == reserved + 3 * (FEE // 3)


# ---------------------------------------------------------------- aggregators: dissent and fees


@UNEQUAL_AGGREGATORS
def test_finalize__dissenting_aggregator__slashed_and_unpaid(
    task: Any,
    registry: Any,
    committed: dict[Any, Update],
    aggregators: list[Any],
    model: Model,
) -> None:
    dissent = make_model("a different aggregate")
    attest(task, aggregators[2], dissent)  # 1000 of 4000
    attest(task, aggregators[0], model)  # 2000 of 4000

    tx = attest(task, aggregators[1], model)  # 3000 of 4000 >= 66.67 %

    slash = 1_000 * TOKEN * 2_000 // 10_000
    assert tx.events.filter(task.RoundFinalized)[0].resultKey == result_key(0, model.digest, [])
    assert tx.events.filter(registry.Slashed) == [
        registry.Slashed(aggregators[2], task, slash, SLASH_REASON_ATTESTATION_MISMATCH)
    ]
    assert tx.events.filter(registry.ActiveChanged) == [registry.ActiveChanged(aggregators[2], False)]
    # The two winners split the fee; the dissenter earns nothing.
    assert tx.events.filter(task.FeeCredited) == [
        task.FeeCredited(0, aggregators[0], FEE // 2),
        task.FeeCredited(0, aggregators[1], FEE // 2),
    ]
    assert task.feesOf(aggregators[2]) == 0
    assert registry.participant(aggregators[2]).stake == 1_000 * TOKEN - slash
    with reverts(task.TaskNoFees, aggregator=aggregators[2].address):
        task.withdrawFees(sender=aggregators[2])


@UNEQUAL_AGGREGATORS
def test_finalize__silent_aggregator__neither_paid_nor_slashed(
    task: Any, registry: Any, committed: dict[Any, Update], aggregators: list[Any], model: Model
) -> None:
    attest(task, aggregators[0], model)
    tx = attest(task, aggregators[1], model)

    assert tx.events.filter(registry.Slashed) == []
    assert task.feesOf(aggregators[2]) == 0
    assert registry.participant(aggregators[2]).stake == 1_000 * TOKEN


def test_withdraw_fees__credited__pays_out(
    task: Any,
    token: Any,
    started: Any,
    updates: dict[Any, Update],
    aggregators: list[Any],
    model: Model,
    chain: Any,
) -> None:
    run_round(chain, task, updates, aggregators, model)
    share = FEE // 3
    reserved = task.reservedRewards()
    balance = token.balanceOf(aggregators[0])

    tx = task.withdrawFees(sender=aggregators[0])

    assert tx.events.filter(task.FeesWithdrawn) == [task.FeesWithdrawn(aggregators[0], share)]
    assert tx.events.filter(token.Transfer) == [token.Transfer(task, aggregators[0], share)]
    assert token.balanceOf(aggregators[0]) == balance + share
    assert task.feesOf(aggregators[0]) == 0
    assert task.reservedRewards() == reserved - share
    with reverts(task.TaskNoFees, aggregator=aggregators[0].address):
        task.withdrawFees(sender=aggregators[0])


def test_withdraw_fees__none__reverts(task: Any, outsider: Any) -> None:
    with reverts(task.TaskNoFees, aggregator=outsider.address):
        task.withdrawFees(sender=outsider)


# ---------------------------------------------------------------- rewards


@pytest.fixture
def uneven_updates(trainers: list[Any]) -> dict[Any, Update]:
    """Sample counts 100, 300, 600 and 20000; the last counts as the 10000 cap."""
    samples = [100, 300, 600, 20_000]
    return {t: make_update(f"uneven-{i}", s) for i, (t, s) in enumerate(zip(trainers, samples, strict=True))}


def test_claim_reward__proportional_to_capped_samples(
    task: Any,
    token: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    uneven_updates: dict[Any, Update],
    model: Model,
    chain: Any,
) -> None:
    run_round(chain, task, uneven_updates, aggregators, model)
    total = 100 + 300 + 600 + 10_000
    assert task.roundResult(0).acceptedSamples == total
    paid = 0

    for trainer, update in uneven_updates.items():
        expected = REWARD * min(update.samples, 10_000) // total
        assert task.rewardOf(0, update.samples) == expected
        reserved = task.reservedRewards()
        tx = task.claimReward(0, update.digest, update.samples, sender=trainer)
        assert tx.events.filter(task.RewardClaimed) == [task.RewardClaimed(0, trainer, expected)]
        assert tx.events.filter(token.Transfer) == [token.Transfer(task, trainer, expected)]
        assert task.rewardClaimed(0, trainer) is True
        assert task.reservedRewards() == reserved - expected
        paid += expected

    assert REWARD - paid < len(trainers)  # only rounding dust stays reserved


def test_claim_reward__twice__reverts(
    task: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    chain: Any,
) -> None:
    run_round(chain, task, updates, aggregators, model)
    update = updates[trainers[0]]
    task.claimReward(0, update.digest, update.samples, sender=trainers[0])

    with reverts(task.TaskRewardAlreadyClaimed, round=0, trainer=trainers[0].address):
        task.claimReward(0, update.digest, update.samples, sender=trainers[0])


@pytest.mark.parametrize("case", ["wrong-digest", "wrong-samples", "did-not-commit", "outsider"])
def test_claim_reward__not_earned__reverts(
    task: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    outsider: Any,
    model: Model,
    chain: Any,
    case: str,
) -> None:
    run_round(chain, task, {t: updates[t] for t in trainers[:3]}, aggregators, model)
    claimant, update = trainers[0], updates[trainers[0]]
    if case == "wrong-digest":
        update = Update(make_update("forged").digest, update.cid, update.samples)
    elif case == "wrong-samples":
        update = Update(update.digest, update.cid, update.samples * 2)
    elif case == "did-not-commit":
        claimant, update = trainers[3], updates[trainers[3]]
    else:
        claimant = outsider

    with reverts(task.TaskNoReward, round=0, trainer=claimant.address):
        task.claimReward(0, update.digest, update.samples, sender=claimant)


def test_claim_reward__round_not_finalized__reverts(
    task: Any, started: Any, trainers: list[Any], updates: dict[Any, Update]
) -> None:
    update = updates[trainers[0]]
    commit(task, trainers[0], update)
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.FINALIZED, actual=Phase.COMMIT):
        task.claimReward(0, update.digest, update.samples, sender=trainers[0])


def test_open_round__reward_and_fee_above_the_pool_cap__cut_in_proportion_and_paid(
    task: Any,
    active_trainers: list[Any],
    active_aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    timelock_signer: Any,
    owner: Any,
    deploy_params: DeployParameters,
    chain: Any,
) -> None:
    pool = deploy_params.reward_pool
    task.setParameter(TaskParameter.REWARD_PER_ROUND, 10 * pool, sender=timelock_signer)
    task.setParameter(TaskParameter.AGGREGATOR_FEE, pool, sender=timelock_signer)
    limit = pool * int(task.MAX_ROUND_PAYOUT_BPS()) // BPS  # 1 % of the unpromised pool
    reward, fee = 10 * pool * limit // (11 * pool), pool * limit // (11 * pool)

    opened = task.start(sender=owner)

    assert opened.events.filter(task.RoundPayoutCapped) == [task.RoundPayoutCapped(0, reward, fee)]
    config = task.roundConfig(0)
    assert (config.rewardPerRound, config.aggregatorFee) == (reward, fee)
    # The governed values stay as voted; only what a round may pay is cut.
    assert task.parameter(TaskParameter.REWARD_PER_ROUND) == 10 * pool

    tx = run_round(chain, task, updates, active_aggregators, model)

    assert tx.events.filter(task.RoundFinalized)[0].trainerReward == reward
    share = fee // len(active_aggregators)
    assert tx.events.filter(task.FeeCredited) == [task.FeeCredited(0, a, share) for a in active_aggregators]
    assert task.reservedRewards() == reward + share * len(active_aggregators)
    # Round 1 opens from what is left, cut again.
    left = pool - task.reservedRewards()
    assert task.roundConfig(1).rewardPerRound == 10 * pool * (left // 100) // (11 * pool)
    assert tx.events.filter(task.RoundPayoutCapped)[0].round == 1


def test_open_round__empty_pool__pays_nothing(
    project: Any,
    accounts: Any,
    owner: Any,
    deploy_params: DeployParameters,
) -> None:
    import dataclasses

    from fedledger.chain.ape_deploy import deploy_all

    deployed = deploy_all(project, owner, dataclasses.replace(deploy_params, reward_pool=0))
    for i, role in [(1, 1), (2, 1), (5, 2)]:
        stake = (100 if role == 1 else 1_000) * TOKEN
        deployed.token.transfer(accounts[i], stake, sender=owner)
        deployed.token.approve(deployed.registry, stake, sender=accounts[i])
        deployed.registry.register(role, stake, sender=accounts[i])

    opened = deployed.task.start(sender=owner)

    assert opened.events.filter(deployed.task.RoundPayoutCapped) == [deployed.task.RoundPayoutCapped(0, 0, 0)]
    config = deployed.task.roundConfig(0)
    assert (config.rewardPerRound, config.aggregatorFee) == (0, 0)


# ---------------------------------------------------------------- stale rounds


def test_close_stale_round__too_few_commits__opens_next_round(
    task: Any,
    started: Any,
    trainers: list[Any],
    updates: dict[Any, Update],
    outsider: Any,
    chain: Any,
    deploy_params: DeployParameters,
) -> None:
    commit(task, trainers[0], updates[trainers[0]])
    commit_deadline, _ = deadlines(task, 0)
    chain.mine(timestamp=commit_deadline)
    assert task.phase(0) == Phase.STALE

    tx = task.closeStaleRound(sender=outsider)

    now = tx.timestamp
    assert tx.events == [
        task.RoundClosed(0, 1),
        task.RoundOpened(
            1,
            now + COMMIT_WINDOW,
            now + COMMIT_WINDOW + REVEAL_WINDOW,
            now + COMMIT_WINDOW + REVEAL_WINDOW + AGGREGATION_WINDOW,
            4,
        ),
    ]
    assert task.phase(0) == Phase.CLOSED
    assert task.currentRound() == 1
    assert task.phase(1) == Phase.COMMIT
    model = task.globalModel()
    assert (model.digest, model.version) == (deploy_params.initial_model_digest, 0)
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.FINALIZED, actual=Phase.CLOSED):
        task.claimReward(0, updates[trainers[0]].digest, updates[trainers[0]].samples, sender=trainers[0])


def test_close_stale_round__no_quorum_by_deadline__nobody_paid_or_slashed(
    task: Any,
    registry: Any,
    committed: dict[Any, Update],
    aggregators: list[Any],
    model: Model,
    outsider: Any,
    chain: Any,
) -> None:
    attest(task, aggregators[0], model)
    attest(task, aggregators[1], make_model("another"))
    _, aggregation_deadline = deadlines(task, 0)
    chain.mine(timestamp=aggregation_deadline - 2)
    assert task.phase(0) == Phase.AGGREGATION
    next_block_at(chain, aggregation_deadline - 1)
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.STALE, actual=Phase.AGGREGATION):
        task.closeStaleRound(sender=outsider)
    chain.mine(timestamp=aggregation_deadline)
    assert task.phase(0) == Phase.STALE

    tx = task.closeStaleRound(sender=outsider)

    assert tx.events.filter(task.RoundClosed) == [task.RoundClosed(0, 4)]
    assert tx.events.filter(registry.Slashed) == []
    assert [task.feesOf(a) for a in aggregators] == [0, 0, 0]
    assert task.globalModel().version == 0


def test_close_stale_round__then_next_round_finalizes(
    task: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    outsider: Any,
    chain: Any,
) -> None:
    commit_deadline, _ = deadlines(task, 0)
    next_block_at(chain, commit_deadline)
    assert task.closeStaleRound(sender=outsider).events.filter(task.RoundClosed) == [task.RoundClosed(0, 0)]

    run_round(chain, task, updates, aggregators, model)

    assert task.phase(1) == Phase.FINALIZED
    assert (task.globalModel().digest, task.globalModel().version) == (model.digest, 1)


def test_close_stale_round__commit_phase__reverts(task: Any, started: Any, outsider: Any) -> None:
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.STALE, actual=Phase.COMMIT):
        task.closeStaleRound(sender=outsider)


def test_close_stale_round__before_start__reverts(task: Any, outsider: Any) -> None:
    with reverts(task.TaskUnexpectedPhase, round=0, expected=Phase.STALE, actual=Phase.INACTIVE):
        task.closeStaleRound(sender=outsider)


# ---------------------------------------------------------------- several rounds


def test_rounds__global_model_follows_each_finalization(
    task: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    chain: Any,
) -> None:
    models = [make_model(f"model-{r}") for r in range(3)]
    for round_, model in enumerate(models):
        assert task.currentRound() == round_
        fresh = {t: make_update(f"r{round_}-{t.address}", u.samples) for t, u in updates.items()}
        run_round(chain, task, fresh, aggregators, model)
        assert task.roundResult(round_).modelDigest == model.digest
        current = task.globalModel()
        assert (current.digest, current.version, current.cid) == (model.digest, round_ + 1, model.cid)

    # Rewards of an old round stay claimable.
    first = {t: make_update(f"r0-{t.address}", u.samples) for t, u in updates.items()}
    task.claimReward(0, first[trainers[0]].digest, first[trainers[0]].samples, sender=trainers[0])


# ---------------------------------------------------------------- parameters


VALID_PARAMETERS = [
    (TaskParameter.COMMIT_WINDOW, 1),
    (TaskParameter.COMMIT_WINDOW, 3_600 - REVEAL_WINDOW - AGGREGATION_WINDOW - 1),
    (TaskParameter.REVEAL_WINDOW, 3_600 - COMMIT_WINDOW - AGGREGATION_WINDOW - 1),
    (TaskParameter.AGGREGATION_WINDOW, 3_600 - COMMIT_WINDOW - REVEAL_WINDOW - 1),
    (TaskParameter.MIN_UPDATES, 2**24 - 1),
    (TaskParameter.AGGREGATION_RULE, 1),
    (TaskParameter.AGGREGATION_RULE, 3),
    (TaskParameter.AGGREGATION_PARAM, UINT64_MAX),
    (TaskParameter.REWARD_PER_ROUND, 0),
    (TaskParameter.REWARD_PER_ROUND, UINT128_MAX),
    (TaskParameter.AGGREGATOR_FEE, UINT128_MAX),
    (TaskParameter.SAMPLE_CAP, 1),
    (TaskParameter.SAMPLE_CAP, 2**32 - 1),
    (TaskParameter.TRAINER_SLASH_BPS, 5_000),  # MAX_SLASH_BPS: half a stake at most
    (TaskParameter.OUTLIER_SLASH_BPS, 5_000),
    (TaskParameter.AGGREGATOR_SLASH_BPS, 5_000),
    (TaskParameter.AGGREGATOR_SLASH_BPS, 0),
    (TaskParameter.QUORUM_BPS, 5_001),
    (TaskParameter.QUORUM_BPS, 10_000),
    (TaskParameter.CLIP_NORM, 0),
    (TaskParameter.CLIP_NORM, UINT64_MAX),
    (TaskParameter.DP_NOISE_MULTIPLIER, 0),
    (TaskParameter.DP_NOISE_MULTIPLIER, 2**32 - 1),
    (TaskParameter.DP_CLIP_NORM, UINT64_MAX),
    (TaskParameter.DP_DELTA, 0),
    (TaskParameter.DP_DELTA, 10**12 - 1),
]

INVALID_PARAMETERS = [
    (TaskParameter.COMMIT_WINDOW, 0),
    (TaskParameter.COMMIT_WINDOW, 30 * 86_400 + 1),
    (
        TaskParameter.COMMIT_WINDOW,
        3_600 - REVEAL_WINDOW - AGGREGATION_WINDOW,
    ),  # the round must end before unbonding
    (TaskParameter.REVEAL_WINDOW, 0),
    (TaskParameter.REVEAL_WINDOW, 30 * 86_400 + 1),
    (TaskParameter.REVEAL_WINDOW, 3_600 - COMMIT_WINDOW - AGGREGATION_WINDOW),
    (TaskParameter.AGGREGATION_WINDOW, 0),
    (TaskParameter.AGGREGATION_WINDOW, 30 * 86_400 + 1),
    (TaskParameter.AGGREGATION_WINDOW, 3_600 - COMMIT_WINDOW - REVEAL_WINDOW),
    (TaskParameter.MIN_UPDATES, 0),
    (TaskParameter.MIN_UPDATES, 2**24),
    (TaskParameter.AGGREGATION_RULE, 4),
    (TaskParameter.AGGREGATION_PARAM, UINT64_MAX + 1),
    (TaskParameter.REWARD_PER_ROUND, UINT128_MAX + 1),
    (TaskParameter.AGGREGATOR_FEE, UINT128_MAX + 1),
    (TaskParameter.SAMPLE_CAP, 0),
    (TaskParameter.SAMPLE_CAP, 2**32),
    (TaskParameter.TRAINER_SLASH_BPS, 5_001),
    (TaskParameter.OUTLIER_SLASH_BPS, 5_001),
    (TaskParameter.AGGREGATOR_SLASH_BPS, 5_001),
    (TaskParameter.TRAINER_SLASH_BPS, 10_000),
    (TaskParameter.QUORUM_BPS, 5_000),  # a strict majority is needed
    (TaskParameter.QUORUM_BPS, 10_001),
    (TaskParameter.CLIP_NORM, UINT64_MAX + 1),
    (TaskParameter.DP_NOISE_MULTIPLIER, 2**32),
    (TaskParameter.DP_CLIP_NORM, UINT64_MAX + 1),
    (TaskParameter.DP_DELTA, 10**12),  # a delta of 1 is no guarantee
]


def _ids(cases: list[tuple[TaskParameter, int]]) -> list[str]:
    return [f"{p.name}={v}" for p, v in cases]


@pytest.mark.parametrize(("parameter", "value"), VALID_PARAMETERS, ids=_ids(VALID_PARAMETERS))
def test_set_parameter__in_range__changes_value(
    task: Any, timelock_signer: Any, parameter: TaskParameter, value: int
) -> None:
    old = task.parameter(parameter)

    tx = task.setParameter(parameter, value, sender=timelock_signer)

    assert tx.events == [task.ParameterChanged(parameter, old, value)]
    assert task.parameter(parameter) == value


@pytest.mark.parametrize(("parameter", "value"), INVALID_PARAMETERS, ids=_ids(INVALID_PARAMETERS))
def test_set_parameter__out_of_range__reverts(
    task: Any, timelock_signer: Any, parameter: TaskParameter, value: int
) -> None:
    with reverts(task.TaskInvalidParameter, parameter=parameter, value=value):
        task.setParameter(parameter, value, sender=timelock_signer)


def test_set_parameter__windows_follow_unbonding_period(
    task: Any, registry: Any, timelock_signer: Any
) -> None:
    registry.setParameter(2, 40 * 86_400, sender=timelock_signer)  # UnbondingPeriod

    task.setParameter(TaskParameter.COMMIT_WINDOW, 30 * 86_400, sender=timelock_signer)

    assert task.roundDuration() == 30 * 86_400 + REVEAL_WINDOW + AGGREGATION_WINDOW


@pytest.mark.parametrize("who", ["owner", "trainer"])
def test_set_parameter__not_timelock__reverts(task: Any, owner: Any, trainers: list[Any], who: str) -> None:
    sender = owner if who == "owner" else trainers[0]
    with reverts(task.TaskOnlyGovernance, caller=sender.address):
        task.setParameter(TaskParameter.AGGREGATION_RULE, 1, sender=sender)


def test_set_parameter__mid_round__applies_from_next_round(
    task: Any,
    registry: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    uneven_updates: dict[Any, Update],
    model: Model,
    timelock_signer: Any,
    chain: Any,
) -> None:
    before = task.roundState(0)
    for parameter, value in [
        (TaskParameter.REWARD_PER_ROUND, 50 * TOKEN),
        (TaskParameter.AGGREGATOR_FEE, 4 * TOKEN),
        (TaskParameter.SAMPLE_CAP, 150),
        (TaskParameter.MIN_UPDATES, 3),
        (TaskParameter.COMMIT_WINDOW, 60),
        (TaskParameter.REVEAL_WINDOW, 30),
        (TaskParameter.AGGREGATION_RULE, 2),
        (TaskParameter.DP_NOISE_MULTIPLIER, 1_100_000),
        (TaskParameter.DP_CLIP_NORM, 500_000),
        (TaskParameter.DP_DELTA, 1_000),
        (TaskParameter.QUORUM_BPS, 6_000),
        (TaskParameter.TRAINER_SLASH_BPS, 5_000),
        (TaskParameter.CLIP_NORM, 2_500_000),
    ]:
        task.setParameter(parameter, value, sender=timelock_signer)

    # Round 0 keeps the rules it opened with.
    state, config = task.roundState(0), task.roundConfig(0)
    assert (state.commitDeadline, state.revealDeadline, state.aggregationDeadline, state.sampleCap) == (
        before.commitDeadline,
        before.revealDeadline,
        before.aggregationDeadline,
        10_000,
    )
    assert (config.rewardPerRound, config.minUpdates, config.aggregationRule, config.quorumBps) == (
        REWARD,
        2,
        0,
        6_667,
    )
    assert config.clipNorm == 0
    assert (config.dpNoiseMultiplier, config.dpClipNorm, config.dpDelta) == (0, 0, 10_000_000)
    bad = trainers[0]
    rejections = [rejection(bad, RejectionReason.MALFORMED, uneven_updates[bad])]
    tx = run_round(chain, task, uneven_updates, aggregators, model, rejections)
    finalized = tx.events.filter(task.RoundFinalized)[0]
    assert finalized.trainerReward == REWARD
    assert tx.events.filter(task.FeeCredited)[0].amount == FEE // 3
    assert task.roundResult(0).acceptedSamples == 300 + 600 + 10_000  # capped at round 0's 10000
    # Slashed at round 0's 10 %, not the new 50 %.
    assert tx.events.filter(registry.Slashed) == [
        registry.Slashed(bad, task, TRAINER_SLASH, reason_code(RejectionReason.MALFORMED))
    ]

    # Round 1 runs under the new rules.
    now = tx.timestamp
    state, config = task.roundState(1), task.roundConfig(1)
    assert (state.commitDeadline, state.revealDeadline, state.aggregationDeadline, state.sampleCap) == (
        now + 60,
        now + 60 + 30,
        now + 60 + 30 + AGGREGATION_WINDOW,
        150,
    )
    assert (config.rewardPerRound, config.aggregatorFee, config.minUpdates) == (50 * TOKEN, 4 * TOKEN, 3)
    assert (config.aggregationRule, config.quorumBps, config.trainerSlashBps) == (2, 6_000, 5_000)
    assert config.clipNorm == 2_500_000
    assert (config.dpNoiseMultiplier, config.dpClipNorm, config.dpDelta) == (1_100_000, 500_000, 1_000)


# ---------------------------------------------------------------- funding and registry hook


def test_fund_rewards__adds_to_pool(task: Any, token: Any, owner: Any) -> None:
    available = task.availableRewards()
    token.approve(task, 500 * TOKEN, sender=owner)

    tx = task.fundRewards(500 * TOKEN, sender=owner)

    assert tx.events.filter(task.RewardsFunded) == [task.RewardsFunded(owner, 500 * TOKEN)]
    assert tx.events.filter(token.Transfer) == [token.Transfer(owner, task, 500 * TOKEN)]
    assert task.availableRewards() == available + 500 * TOKEN


def test_fund_rewards__zero__reverts(task: Any, owner: Any) -> None:
    with reverts(task.TaskZeroAmount):
        task.fundRewards(0, sender=owner)


@pytest.mark.parametrize("who", ["owner", "trainer"])
def test_sync_trainer__not_registry__reverts(task: Any, owner: Any, trainers: list[Any], who: str) -> None:
    sender = owner if who == "owner" else trainers[0]
    with reverts(task.TaskOnlyRegistry, caller=sender.address):
        task.syncTrainer(sender, 1, sender=sender)


def test_default_quorum__two_of_three_equal_aggregators__finalize(project: Any, accounts: Any) -> None:
    import dataclasses
    import hashlib

    from fedledger.chain.ape_deploy import deploy_all
    from fedledger.chain.params import DeployParameters, TaskParameters

    owner, trainer_a, trainer_b, *aggregators = (accounts[i] for i in range(6))
    params = DeployParameters(
        initial_model_digest=hashlib.sha256(b"m0").digest(),
        initial_model_cid="bafkreim0",
        model_spec_hash=hashlib.sha256(b"spec").digest(),
        task=TaskParameters(),
    )
    assert dataclasses.asdict(params.task)["quorum_bps"] == 6_666
    d = deploy_all(project, owner, params)
    for account, role, stake in [(trainer_a, 1, 100), (trainer_b, 1, 100)] + [
        (a, 2, 1_000) for a in aggregators
    ]:
        d.token.transfer(account, stake * TOKEN, sender=owner)
        d.token.approve(d.registry, stake * TOKEN, sender=account)
        d.registry.register(role, stake * TOKEN, sender=account)
    d.task.start(sender=owner)
    updates = {t: make_update(t.address) for t in (trainer_a, trainer_b)}
    commit_all(d.task, updates)
    reveal_all(d.task, updates)
    model = hashlib.sha256(b"m1").digest()

    first = d.task.attest(0, model, "bafkreim1", [], sender=aggregators[0])
    second = d.task.attest(0, model, "bafkreim1", [], sender=aggregators[1])

    assert first.events.filter(d.task.RoundFinalized) == []
    assert len(second.events.filter(d.task.RoundFinalized)) == 1
    assert d.task.currentRound() == 1


def test_reveal__opening_of_an_earlier_round__never_fits_a_later_commit(
    task: Any,
    started: Any,
    trainers: list[Any],
    aggregators: list[Any],
    updates: dict[Any, Update],
    model: Model,
    chain: Any,
    outsider: Any,
) -> None:
    # Round 0: every trainer commits and reveals; the openings are public from then on.
    run_round(chain, task, updates, aggregators, model)
    trainer, old = trainers[0], updates[trainers[0]]
    commit_all(task, {t: make_update(f"round-1-{i}") for i, t in enumerate(trainers)}, 1)

    # Replaying the round-0 opening against the round-1 commit (e.g. to get it rejected as a
    # wrong binding) fails: the stored seal is tagged with its round.
    with reverts(task.TaskRevealMismatch, round=1, trainer=trainer.address):
        reveal(task, trainer, old, round_=1, sender=outsider)
