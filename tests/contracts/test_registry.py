"""StakingRegistry: registration, stake, unbonding, slashing, voting power, governance, and
every `Registry*` error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_utils import keccak
from helpers import UINT128_MAX, ZERO_ADDRESS, advance, next_block_at, reverts

from fedledger.chain.params import TOKEN, DeployParameters, RegistryParameter, Role

REASON = keccak(text="round slash")
MIN_TRAINER = 100 * TOKEN
MIN_AGGREGATOR = 1_000 * TOKEN
UNBONDING = 3_600
ROUND_DURATION = 300  # commit window + reveal window + aggregation window


@pytest.fixture
def trainer(register: Callable[..., Any], trainers: list[Any]) -> Any:
    """A trainer registered with twice the minimum stake."""
    register(trainers[0], Role.TRAINER, 2 * MIN_TRAINER)
    return trainers[0]


@pytest.fixture
def aggregator(register: Callable[..., Any], aggregators: list[Any]) -> Any:
    """An aggregator registered with the minimum stake."""
    register(aggregators[0], Role.AGGREGATOR, MIN_AGGREGATOR)
    return aggregators[0]


@pytest.fixture
def fresh_registry(project: Any, owner: Any, token: Any, timelock: Any) -> Callable[..., Any]:
    """Factory: a second registry, not bound to any task, with the given unbonding period."""

    def _fresh(unbonding: int = UNBONDING) -> Any:
        return owner.deploy(project.StakingRegistry, token, timelock, MIN_TRAINER, MIN_AGGREGATOR, unbonding)

    return _fresh


# ---------------------------------------------------------------- deployment and binding


def test_deploy__wiring_and_parameters(
    registry: Any, token: Any, task: Any, timelock: Any, deploy_params: DeployParameters
) -> None:
    assert registry.stakeToken() == token
    assert registry.timelock() == timelock
    assert registry.task() == task
    assert registry.parameter(RegistryParameter.MIN_TRAINER_STAKE) == deploy_params.min_trainer_stake
    assert registry.parameter(RegistryParameter.MIN_AGGREGATOR_STAKE) == deploy_params.min_aggregator_stake
    assert registry.parameter(RegistryParameter.UNBONDING_PERIOD) == deploy_params.unbonding_period
    assert registry.CLOCK_MODE() == "mode=timestamp"
    assert registry.totalStaked() == 0


def test_constructor__zero_token__reverts(project: Any, owner: Any, timelock: Any) -> None:
    with reverts(project.StakingRegistry.RegistryZeroAddress):
        owner.deploy(project.StakingRegistry, ZERO_ADDRESS, timelock, MIN_TRAINER, MIN_AGGREGATOR, UNBONDING)


def test_constructor__zero_timelock__reverts(project: Any, owner: Any, token: Any) -> None:
    with reverts(project.StakingRegistry.RegistryZeroAddress):
        owner.deploy(project.StakingRegistry, token, ZERO_ADDRESS, MIN_TRAINER, MIN_AGGREGATOR, UNBONDING)


def test_constructor__zero_minimum__reverts(project: Any, owner: Any, token: Any, timelock: Any) -> None:
    with reverts(
        project.StakingRegistry.RegistryInvalidParameter,
        parameter=RegistryParameter.MIN_TRAINER_STAKE,
        value=0,
    ):
        owner.deploy(project.StakingRegistry, token, timelock, 0, MIN_AGGREGATOR, UNBONDING)


def test_bind_task__by_deployer__emits_task_bound(
    fresh_registry: Callable[..., Any], task: Any, owner: Any
) -> None:
    registry = fresh_registry()

    tx = registry.bindTask(task, sender=owner)

    assert tx.events == [registry.TaskBound(task)]
    assert registry.task() == task


def test_bind_task__not_deployer__reverts(registry: Any, task: Any, outsider: Any) -> None:
    with reverts(registry.RegistryOnlyDeployer, caller=outsider.address):
        registry.bindTask(task, sender=outsider)


def test_bind_task__zero_address__reverts(fresh_registry: Callable[..., Any], owner: Any) -> None:
    registry = fresh_registry()
    with reverts(registry.RegistryZeroAddress):
        registry.bindTask(ZERO_ADDRESS, sender=owner)


def test_bind_task__twice__reverts(registry: Any, task: Any, owner: Any) -> None:
    with reverts(registry.RegistryTaskAlreadyBound, task=task.address):
        registry.bindTask(task, sender=owner)


def test_bind_task__unbonding_not_longer_than_round__reverts(
    fresh_registry: Callable[..., Any], task: Any, owner: Any
) -> None:
    registry = fresh_registry(unbonding=ROUND_DURATION)
    with reverts(
        registry.RegistryInvalidParameter, parameter=RegistryParameter.UNBONDING_PERIOD, value=ROUND_DURATION
    ):
        registry.bindTask(task, sender=owner)


def test_register__task_not_bound__reverts(
    fresh_registry: Callable[..., Any], token: Any, owner: Any, trainers: list[Any]
) -> None:
    registry = fresh_registry()
    token.transfer(trainers[0], MIN_TRAINER, sender=owner)
    token.approve(registry, MIN_TRAINER, sender=trainers[0])

    with reverts(registry.RegistryTaskNotBound):
        registry.register(Role.TRAINER, MIN_TRAINER, sender=trainers[0])


# ---------------------------------------------------------------- register


def test_register__trainer__stakes_and_syncs_task(
    registry: Any, token: Any, task: Any, register: Callable[..., Any], trainers: list[Any]
) -> None:
    account = trainers[0]

    tx = register(account, Role.TRAINER, 150 * TOKEN)

    now = tx.timestamp
    assert tx.events.filter(registry.Registered) == [registry.Registered(account, Role.TRAINER, 150 * TOKEN)]
    assert tx.events.filter(task.TrainerSynced) == [task.TrainerSynced(account, now)]
    assert tx.events.filter(token.Transfer) == [token.Transfer(account, registry, 150 * TOKEN)]
    p = registry.participant(account)
    assert (p.role, p.active, p.activeSince, p.stake, p.unbonding, p.unbondingEnd) == (
        Role.TRAINER,
        True,
        now,
        150 * TOKEN,
        0,
        0,
    )
    assert registry.activeRole(account, Role.TRAINER) == (True, now)
    assert registry.activeRole(account, Role.AGGREGATOR) == (False, now)
    assert registry.activeCount(Role.TRAINER) == 1
    assert registry.totalActiveStake(Role.TRAINER) == 150 * TOKEN
    assert registry.totalStaked() == 150 * TOKEN == token.balanceOf(registry)
    assert registry.slashableStake(account) == 150 * TOKEN
    assert task.trainerActiveSince(account) == now


def test_register__aggregator__does_not_sync_task(
    registry: Any, task: Any, register: Callable[..., Any], aggregators: list[Any]
) -> None:
    tx = register(aggregators[0], Role.AGGREGATOR)

    assert tx.events.filter(registry.Registered) == [
        registry.Registered(aggregators[0], Role.AGGREGATOR, MIN_AGGREGATOR)
    ]
    assert tx.events.filter(task.TrainerSynced) == []
    assert task.trainerActiveSince(aggregators[0]) == 0
    assert registry.activeCount(Role.AGGREGATOR) == 1
    assert registry.totalActiveStake(Role.AGGREGATOR) == MIN_AGGREGATOR
    assert registry.activeCount(Role.TRAINER) == 0


def test_register__self_delegates_votes_equal_to_stake(
    registry: Any, register: Callable[..., Any], trainers: list[Any], chain: Any
) -> None:
    account = trainers[0]

    tx = register(account, Role.TRAINER, 150 * TOKEN)

    assert registry.delegates(account) == account
    assert tx.events.filter(registry.DelegateChanged) == [
        registry.DelegateChanged(account, ZERO_ADDRESS, account)
    ]
    # Counted once: 0 -> stake (registering used to count the stake twice).
    assert tx.events.filter(registry.DelegateVotesChanged) == [
        registry.DelegateVotesChanged(account, 0, 150 * TOKEN)
    ]
    assert registry.getVotes(account) == 150 * TOKEN
    registered_at = tx.timestamp
    advance(chain, 5)
    assert registry.getPastVotes(account, registered_at) == 150 * TOKEN
    assert registry.getPastVotes(account, registered_at - 1) == 0
    assert registry.getPastTotalSupply(registered_at) == 150 * TOKEN


def test_register__votes_follow_stake_changes(
    registry: Any, trainer: Any, token: Any, owner: Any, chain: Any
) -> None:
    token.transfer(trainer, 50 * TOKEN, sender=owner)
    token.approve(registry, 50 * TOKEN, sender=trainer)
    added = registry.addStake(50 * TOKEN, sender=trainer)
    assert registry.getVotes(trainer) == 250 * TOKEN
    advance(chain, 5)
    unstaked = registry.requestUnstake(100 * TOKEN, sender=trainer)
    assert registry.getVotes(trainer) == 150 * TOKEN
    advance(chain, 5)

    assert registry.getPastVotes(trainer, added.timestamp) == 250 * TOKEN
    assert registry.getPastVotes(trainer, unstaked.timestamp) == 150 * TOKEN
    assert registry.getPastTotalSupply(added.timestamp) == 250 * TOKEN
    assert registry.getPastTotalSupply(unstaked.timestamp) == 150 * TOKEN


def test_register__role_none__reverts(registry: Any, outsider: Any) -> None:
    with reverts(registry.RegistryInvalidRole):
        registry.register(Role.NONE, MIN_TRAINER, sender=outsider)


def test_register__twice__reverts(registry: Any, trainer: Any) -> None:
    with reverts(registry.RegistryAlreadyRegistered, account=trainer.address, role=Role.TRAINER):
        registry.register(Role.AGGREGATOR, MIN_AGGREGATOR, sender=trainer)


@pytest.mark.parametrize(
    ("role", "minimum"), [(Role.TRAINER, MIN_TRAINER), (Role.AGGREGATOR, MIN_AGGREGATOR)]
)
def test_register__below_minimum__reverts(registry: Any, outsider: Any, role: Role, minimum: int) -> None:
    with reverts(registry.RegistryStakeBelowMinimum, stake=minimum - 1, minimum=minimum):
        registry.register(role, minimum - 1, sender=outsider)


# ---------------------------------------------------------------- addStake


def test_add_stake__active__increases_stake(registry: Any, token: Any, trainer: Any, owner: Any) -> None:
    token.transfer(trainer, 30 * TOKEN, sender=owner)
    token.approve(registry, 30 * TOKEN, sender=trainer)

    tx = registry.addStake(30 * TOKEN, sender=trainer)

    assert tx.events.filter(registry.StakeAdded) == [registry.StakeAdded(trainer, 30 * TOKEN, 230 * TOKEN)]
    assert tx.events.filter(registry.ActiveChanged) == []
    assert registry.participant(trainer).stake == 230 * TOKEN
    assert registry.totalActiveStake(Role.TRAINER) == 230 * TOKEN
    assert registry.totalStaked() == 230 * TOKEN == token.balanceOf(registry)


def test_add_stake__zero__reverts(registry: Any, trainer: Any) -> None:
    with reverts(registry.RegistryZeroAmount):
        registry.addStake(0, sender=trainer)


def test_add_stake__not_registered__reverts(registry: Any, outsider: Any) -> None:
    with reverts(registry.RegistryNotRegistered, account=outsider.address):
        registry.addStake(TOKEN, sender=outsider)


# ---------------------------------------------------------------- requestUnstake and withdraw


def test_request_unstake__partial__starts_unbonding(registry: Any, task: Any, trainer: Any) -> None:
    tx = registry.requestUnstake(60 * TOKEN, sender=trainer)

    end = tx.timestamp + UNBONDING
    assert tx.events.filter(registry.UnstakeRequested) == [
        registry.UnstakeRequested(trainer, 60 * TOKEN, end)
    ]
    assert tx.events.filter(registry.Deregistered) == []
    assert tx.events.filter(task.TrainerSynced) == []
    p = registry.participant(trainer)
    assert (p.role, p.active, p.stake, p.unbonding, p.unbondingEnd) == (
        Role.TRAINER,
        True,
        140 * TOKEN,
        60 * TOKEN,
        end,
    )
    assert registry.totalActiveStake(Role.TRAINER) == 140 * TOKEN
    assert registry.totalStaked() == 200 * TOKEN  # unbonding stake stays in the registry
    assert registry.slashableStake(trainer) == 200 * TOKEN
    assert registry.getVotes(trainer) == 140 * TOKEN


def test_request_unstake__everything__leaves_role(registry: Any, task: Any, trainer: Any) -> None:
    tx = registry.requestUnstake(2 * MIN_TRAINER, sender=trainer)

    assert tx.events.filter(registry.ActiveChanged) == [registry.ActiveChanged(trainer, False)]
    assert tx.events.filter(registry.Deregistered) == [registry.Deregistered(trainer, Role.TRAINER)]
    assert tx.events.filter(task.TrainerSynced) == [task.TrainerSynced(trainer, 0)]
    p = registry.participant(trainer)
    assert (p.role, p.active, p.stake, p.unbonding) == (Role.NONE, False, 0, 2 * MIN_TRAINER)
    assert registry.activeCount(Role.TRAINER) == 0
    assert registry.totalActiveStake(Role.TRAINER) == 0
    assert task.trainerActiveSince(trainer) == 0
    assert registry.getVotes(trainer) == 0


def test_request_unstake__twice__extends_unbonding_end(registry: Any, trainer: Any, chain: Any) -> None:
    registry.requestUnstake(10 * TOKEN, sender=trainer)
    advance(chain, 100)

    tx = registry.requestUnstake(10 * TOKEN, sender=trainer)

    p = registry.participant(trainer)
    assert p.unbonding == 20 * TOKEN
    assert p.unbondingEnd == tx.timestamp + UNBONDING


def test_request_unstake__zero__reverts(registry: Any, trainer: Any) -> None:
    with reverts(registry.RegistryZeroAmount):
        registry.requestUnstake(0, sender=trainer)


def test_request_unstake__not_registered__reverts(registry: Any, outsider: Any) -> None:
    with reverts(registry.RegistryNotRegistered, account=outsider.address):
        registry.requestUnstake(TOKEN, sender=outsider)


def test_request_unstake__more_than_stake__reverts(registry: Any, trainer: Any) -> None:
    with reverts(
        registry.RegistryInsufficientStake, requested=2 * MIN_TRAINER + 1, available=2 * MIN_TRAINER
    ):
        registry.requestUnstake(2 * MIN_TRAINER + 1, sender=trainer)


def test_request_unstake__leaving_less_than_minimum__reverts(registry: Any, trainer: Any) -> None:
    with reverts(registry.RegistryStakeBelowMinimum, stake=MIN_TRAINER - 1, minimum=MIN_TRAINER):
        registry.requestUnstake(MIN_TRAINER + 1, sender=trainer)


def test_withdraw__after_unbonding__pays_out(registry: Any, token: Any, trainer: Any, chain: Any) -> None:
    requested = registry.requestUnstake(60 * TOKEN, sender=trainer)
    end = requested.timestamp + UNBONDING
    balance = token.balanceOf(trainer)
    next_block_at(chain, end)  # the first second allowed

    tx = registry.withdraw(sender=trainer)

    assert tx.timestamp == end
    assert tx.events.filter(registry.Withdrawn) == [registry.Withdrawn(trainer, 60 * TOKEN)]
    assert tx.events.filter(token.Transfer) == [token.Transfer(registry, trainer, 60 * TOKEN)]
    assert token.balanceOf(trainer) == balance + 60 * TOKEN
    p = registry.participant(trainer)
    assert (p.stake, p.unbonding, p.unbondingEnd) == (140 * TOKEN, 0, 0)
    assert registry.totalStaked() == 140 * TOKEN == token.balanceOf(registry)


def test_withdraw__one_second_early__reverts(registry: Any, trainer: Any, chain: Any) -> None:
    requested = registry.requestUnstake(60 * TOKEN, sender=trainer)
    end = requested.timestamp + UNBONDING
    next_block_at(chain, end - 1)

    with reverts(registry.RegistryUnbondingNotOver, unbondingEnd=end, nowTimestamp=end - 1):
        registry.withdraw(sender=trainer)


def test_withdraw__nothing_unbonding__reverts(registry: Any, trainer: Any) -> None:
    with reverts(registry.RegistryNothingToWithdraw, account=trainer.address):
        registry.withdraw(sender=trainer)


def test_withdraw__after_leaving_and_rejoining__keeps_unbonding(
    registry: Any, token: Any, trainer: Any, owner: Any, chain: Any
) -> None:
    left = registry.requestUnstake(2 * MIN_TRAINER, sender=trainer)
    advance(chain, 10)
    token.transfer(trainer, MIN_AGGREGATOR, sender=owner)
    token.approve(registry, MIN_AGGREGATOR, sender=trainer)

    rejoined = registry.register(Role.AGGREGATOR, MIN_AGGREGATOR, sender=trainer)

    assert rejoined.events.filter(registry.Registered) == [
        registry.Registered(trainer, Role.AGGREGATOR, MIN_AGGREGATOR)
    ]
    # Already self-delegated: no new delegation, and the new stake is counted once.
    assert rejoined.events.filter(registry.DelegateChanged) == []
    assert registry.getVotes(trainer) == MIN_AGGREGATOR
    p = registry.participant(trainer)
    assert (p.role, p.stake, p.unbonding) == (Role.AGGREGATOR, MIN_AGGREGATOR, 2 * MIN_TRAINER)
    next_block_at(chain, left.timestamp + UNBONDING)
    registry.withdraw(sender=trainer)
    assert registry.participant(trainer).unbonding == 0
    assert registry.totalStaked() == MIN_AGGREGATOR == token.balanceOf(registry)


# ---------------------------------------------------------------- slash


def test_slash__by_task__sends_stake_to_task(
    registry: Any, token: Any, task: Any, trainer: Any, task_signer: Any
) -> None:
    task_balance = token.balanceOf(task)

    tx = registry.slash(trainer, 50 * TOKEN, REASON, sender=task_signer)

    assert tx.events.filter(registry.Slashed) == [registry.Slashed(trainer, task_signer, 50 * TOKEN, REASON)]
    assert tx.events.filter(token.Transfer) == [token.Transfer(registry, task, 50 * TOKEN)]
    assert tx.events.filter(registry.ActiveChanged) == []  # 150 is still above the minimum
    assert token.balanceOf(task) == task_balance + 50 * TOKEN
    assert registry.participant(trainer).stake == 150 * TOKEN
    assert registry.totalActiveStake(Role.TRAINER) == 150 * TOKEN
    assert registry.totalStaked() == 150 * TOKEN == token.balanceOf(registry)
    assert registry.getVotes(trainer) == 150 * TOKEN


def test_slash__more_than_bonded__takes_unbonding_too(registry: Any, trainer: Any, task_signer: Any) -> None:
    registry.requestUnstake(80 * TOKEN, sender=trainer)  # 120 bonded, 80 unbonding

    registry.slash(trainer, 150 * TOKEN, REASON, sender=task_signer)

    p = registry.participant(trainer)
    assert (p.stake, p.unbonding) == (0, 50 * TOKEN)
    assert registry.slashableStake(trainer) == 50 * TOKEN
    assert registry.totalStaked() == 50 * TOKEN
    assert registry.getVotes(trainer) == 0


def test_slash__everything__allowed(registry: Any, token: Any, trainer: Any, task_signer: Any) -> None:
    registry.slash(trainer, 2 * MIN_TRAINER, REASON, sender=task_signer)

    assert registry.slashableStake(trainer) == 0
    assert registry.totalStaked() == 0 == token.balanceOf(registry)


def test_slash__below_minimum__deactivates_and_syncs_task(
    registry: Any, task: Any, trainer: Any, task_signer: Any
) -> None:
    tx = registry.slash(trainer, MIN_TRAINER + 1, REASON, sender=task_signer)

    assert tx.events.filter(registry.ActiveChanged) == [registry.ActiveChanged(trainer, False)]
    assert tx.events.filter(task.TrainerSynced) == [task.TrainerSynced(trainer, 0)]
    p = registry.participant(trainer)
    assert (p.role, p.active, p.stake) == (Role.TRAINER, False, MIN_TRAINER - 1)
    assert registry.activeCount(Role.TRAINER) == 0
    assert registry.totalActiveStake(Role.TRAINER) == 0
    assert registry.activeRole(trainer, Role.TRAINER)[0] is False
    assert task.trainerActiveSince(trainer) == 0
    # An inactive participant keeps its (reduced) voting power.
    assert registry.getVotes(trainer) == MIN_TRAINER - 1


def test_add_stake__back_to_minimum__reactivates_and_syncs_task(
    registry: Any, token: Any, task: Any, trainer: Any, owner: Any, task_signer: Any, chain: Any
) -> None:
    registry.slash(trainer, 150 * TOKEN, REASON, sender=task_signer)  # 50 left: inactive
    token.transfer(trainer, 50 * TOKEN, sender=owner)
    token.approve(registry, 50 * TOKEN, sender=trainer)
    advance(chain, 10)

    tx = registry.addStake(50 * TOKEN, sender=trainer)

    now = tx.timestamp
    assert tx.events.filter(registry.ActiveChanged) == [registry.ActiveChanged(trainer, True)]
    assert tx.events.filter(task.TrainerSynced) == [task.TrainerSynced(trainer, now)]
    assert tx.events.filter(registry.StakeAdded) == [registry.StakeAdded(trainer, 50 * TOKEN, MIN_TRAINER)]
    p = registry.participant(trainer)
    assert (p.active, p.activeSince, p.stake) == (True, now, MIN_TRAINER)
    assert registry.activeCount(Role.TRAINER) == 1
    assert registry.totalActiveStake(Role.TRAINER) == MIN_TRAINER
    assert task.trainerActiveSince(trainer) == now


def test_add_stake__still_below_minimum__stays_inactive(
    registry: Any, token: Any, task: Any, trainer: Any, owner: Any, task_signer: Any
) -> None:
    registry.slash(trainer, 150 * TOKEN, REASON, sender=task_signer)
    token.transfer(trainer, 10 * TOKEN, sender=owner)
    token.approve(registry, 10 * TOKEN, sender=trainer)

    tx = registry.addStake(10 * TOKEN, sender=trainer)

    assert tx.events.filter(registry.ActiveChanged) == []
    assert tx.events.filter(task.TrainerSynced) == []
    assert registry.participant(trainer).active is False
    assert registry.totalActiveStake(Role.TRAINER) == 0
    assert registry.getVotes(trainer) == 60 * TOKEN


def test_request_unstake__inactive_partial__reverts_and_full_leaves(
    registry: Any, task: Any, trainer: Any, task_signer: Any
) -> None:
    registry.slash(trainer, 150 * TOKEN, REASON, sender=task_signer)  # 50 left: inactive

    with reverts(registry.RegistryStakeBelowMinimum, stake=40 * TOKEN, minimum=MIN_TRAINER):
        registry.requestUnstake(10 * TOKEN, sender=trainer)
    tx = registry.requestUnstake(50 * TOKEN, sender=trainer)

    assert tx.events.filter(registry.ActiveChanged) == []  # it was already inactive
    assert tx.events.filter(registry.Deregistered) == [registry.Deregistered(trainer, Role.TRAINER)]
    assert registry.activeCount(Role.TRAINER) == 0
    assert registry.participant(trainer).role == Role.NONE


def test_slash__aggregator_below_minimum__deactivates_without_task_sync(
    registry: Any, task: Any, aggregator: Any, task_signer: Any
) -> None:
    tx = registry.slash(aggregator, TOKEN, REASON, sender=task_signer)

    assert tx.events.filter(registry.ActiveChanged) == [registry.ActiveChanged(aggregator, False)]
    assert tx.events.filter(task.TrainerSynced) == []
    assert registry.activeCount(Role.AGGREGATOR) == 0
    assert registry.totalActiveStake(Role.AGGREGATOR) == 0


@pytest.mark.parametrize("caller", ["outsider", "owner", "trainer", "timelock"])
def test_slash__not_task__reverts(
    registry: Any, trainer: Any, outsider: Any, owner: Any, timelock_signer: Any, caller: str
) -> None:
    # Governance cannot slash: a captured vote would take the stake of everyone who stayed.
    sender = {"outsider": outsider, "owner": owner, "trainer": trainer, "timelock": timelock_signer}[caller]
    with reverts(registry.RegistryUnauthorizedSlasher, caller=sender.address):
        registry.slash(trainer, TOKEN, REASON, sender=sender)


def test_slash__zero__reverts(registry: Any, trainer: Any, task_signer: Any) -> None:
    with reverts(registry.RegistryZeroAmount):
        registry.slash(trainer, 0, REASON, sender=task_signer)


def test_slash__more_than_slashable__reverts(registry: Any, trainer: Any, task_signer: Any) -> None:
    registry.requestUnstake(50 * TOKEN, sender=trainer)
    with reverts(registry.RegistrySlashExceedsStake, amount=200 * TOKEN + 1, slashable=200 * TOKEN):
        registry.slash(trainer, 200 * TOKEN + 1, REASON, sender=task_signer)


def test_slash__unregistered__reverts(registry: Any, outsider: Any, task_signer: Any) -> None:
    with reverts(registry.RegistrySlashExceedsStake, amount=1, slashable=0):
        registry.slash(outsider, 1, REASON, sender=task_signer)


# ---------------------------------------------------------------- governance


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        (RegistryParameter.MIN_TRAINER_STAKE, 50 * TOKEN),
        (RegistryParameter.MIN_AGGREGATOR_STAKE, 2_000 * TOKEN),
        (RegistryParameter.UNBONDING_PERIOD, 7_200),
        (RegistryParameter.UNBONDING_PERIOD, ROUND_DURATION + 1),
        (RegistryParameter.UNBONDING_PERIOD, 365 * 86_400),
        (RegistryParameter.MIN_TRAINER_STAKE, UINT128_MAX),
    ],
)
def test_set_parameter__by_timelock__changes_value(
    registry: Any, timelock_signer: Any, parameter: RegistryParameter, value: int
) -> None:
    old = registry.parameter(parameter)

    tx = registry.setParameter(parameter, value, sender=timelock_signer)

    assert tx.events == [registry.ParameterChanged(parameter, old, value)]
    assert registry.parameter(parameter) == value


@pytest.mark.parametrize("caller", ["owner", "outsider", "task"])
def test_set_parameter__not_timelock__reverts(
    registry: Any, owner: Any, outsider: Any, task: Any, accounts: Any, caller: str
) -> None:
    sender = {"owner": owner, "outsider": outsider, "task": None}[caller]
    if sender is None:
        sender = accounts[task.address]
        sender.balance += 10**18
    with reverts(registry.RegistryOnlyGovernance, caller=sender.address):
        registry.setParameter(RegistryParameter.MIN_TRAINER_STAKE, TOKEN, sender=sender)


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        (RegistryParameter.MIN_TRAINER_STAKE, 0),
        (RegistryParameter.MIN_AGGREGATOR_STAKE, 0),
        (RegistryParameter.MIN_AGGREGATOR_STAKE, UINT128_MAX + 1),
        (RegistryParameter.UNBONDING_PERIOD, 0),
        (RegistryParameter.UNBONDING_PERIOD, ROUND_DURATION),  # must outlast a round
        (RegistryParameter.UNBONDING_PERIOD, 365 * 86_400 + 1),
    ],
)
def test_set_parameter__out_of_range__reverts(
    registry: Any, timelock_signer: Any, parameter: RegistryParameter, value: int
) -> None:
    with reverts(registry.RegistryInvalidParameter, parameter=parameter, value=value):
        registry.setParameter(parameter, value, sender=timelock_signer)


def test_set_parameter__higher_minimum__applies_to_new_stakes(
    registry: Any,
    trainer: Any,
    timelock_signer: Any,
    task_signer: Any,
    register: Callable[..., Any],
    trainers: list[Any],
) -> None:
    registry.setParameter(RegistryParameter.MIN_TRAINER_STAKE, 300 * TOKEN, sender=timelock_signer)

    # Existing trainers stay active; new ones need the new minimum.
    assert registry.activeRole(trainer, Role.TRAINER)[0] is True
    with reverts(registry.RegistryStakeBelowMinimum, stake=200 * TOKEN, minimum=300 * TOKEN):
        register(trainers[1], Role.TRAINER, 200 * TOKEN)
    # A slash re-checks the minimum.
    registry.slash(trainer, TOKEN, REASON, sender=task_signer)
    assert registry.activeRole(trainer, Role.TRAINER)[0] is False
