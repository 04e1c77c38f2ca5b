"""Reentrancy: a whole deployment staked in HostileToken, an ERC-20 that calls back into the
contract moving it, from every function that moves tokens.

The token's callback comes from the token's own address, so the token is impersonated to play
the participant (`attacker`): a trainer whose reward is being paid, an aggregator withdrawing
fees, a staker withdrawing. Each test arms the callback to re-enter while tokens move and checks
that the reentrant call was refused (`ReentrancyGuardReentrantCall`) or found the state already
updated, and that balances show nothing was paid twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ape import compilers
from ape.contracts import ContractContainer
from eth_utils import keccak
from helpers import Model, Update, advance, make_update, rejection, run_round

from fedledger.chain.ape_deploy import DeployedContracts, deploy_all
from fedledger.chain.params import TOKEN, DeployParameters, RejectionReason, Role

REENTRANT_CALL = keccak(text="ReentrancyGuardReentrantCall()")[:4]
SLASH_REASON = keccak(text="reentrancy test slash")

Arm = Callable[[Any, bytes], None]  # arms the token: target contract, calldata


HOSTILE_TOKEN = Path(__file__).parent / "mocks" / "HostileToken.sol"


def compile_mock(project: Any, path: Path) -> ContractContainer:
    """A test-only contract, compiled on demand: it stays out of contracts/, so it is never
    part of the deployable project (nor of its ABI export or Slither run)."""
    [contract_type] = [c for c in compilers.compile([path], project=project) if c.name == path.stem]
    return ContractContainer(contract_type)


@pytest.fixture(scope="module")
def deployed(project: Any, owner: Any, deploy_params: DeployParameters) -> DeployedContracts:
    """The whole stack, deployed and wired as usual, on a HostileToken instead of FedToken."""
    hostile = owner.deploy(compile_mock(project, HOSTILE_TOKEN), owner.address, deploy_params.token_supply)
    return deploy_all(project, owner, deploy_params, token=hostile)


@pytest.fixture
def attacker(accounts: Any, token: Any) -> Any:
    """The hostile token's address, impersonated and given ETH for gas: the participant whose
    calls the token's callback repeats."""
    signer = accounts[token.address]
    signer.balance += 10 * 10**18
    return signer


@pytest.fixture
def arm(token: Any, owner: Any) -> Arm:
    """Factory: makes the token's next transfer or transferFrom call `target` with `calldata`."""

    def _arm(target: Any, calldata: bytes) -> None:
        token.arm(target, bytes(calldata), sender=owner)

    return _arm


def assert_reentry_blocked(token: Any) -> None:
    """The callback ran and the reentrant call reverted with ReentrancyGuardReentrantCall."""
    assert token.reentered()
    assert not token.reentrySucceeded()
    assert bytes(token.reentryReturnData()) == REENTRANT_CALL


def assert_registry_solvent(token: Any, registry: Any) -> None:
    """The registry's invariant: its token balance is exactly the bonded plus unbonding stake."""
    assert token.balanceOf(registry) == registry.totalStaked()


def assert_task_solvent(token: Any, task: Any) -> None:
    """The task holds at least what it owes trainers and aggregators."""
    assert token.balanceOf(task) >= task.reservedRewards()


def fund_and_approve(token: Any, owner: Any, account: Any, spender: Any, amount: int) -> None:
    token.transfer(account, amount, sender=owner)
    token.approve(spender, amount, sender=account)


# ---------------------------------------------------------------- StakingRegistry


def test_register__reentrant_add_stake_from_transfer_from__blocked(
    registry: Any, token: Any, owner: Any, attacker: Any, arm: Arm
) -> None:
    stake = 100 * TOKEN
    fund_and_approve(token, owner, attacker, registry, 2 * stake)
    arm(registry, registry.addStake.encode_input(stake))

    registry.register(int(Role.TRAINER), stake, sender=attacker)

    assert_reentry_blocked(token)
    assert registry.participant(attacker).stake == stake
    assert token.balanceOf(attacker) == stake  # one stake pulled, the second still held
    assert registry.totalStaked() == stake
    assert_registry_solvent(token, registry)


def test_register__reentrant_request_unstake__finds_stake_recorded_and_pays_nothing(
    registry: Any, token: Any, owner: Any, attacker: Any, arm: Arm
) -> None:
    stake = 100 * TOKEN
    fund_and_approve(token, owner, attacker, registry, stake)
    arm(registry, registry.requestUnstake.encode_input(stake))

    registry.register(int(Role.TRAINER), stake, sender=attacker)

    # requestUnstake has no guard: it runs before the stake is pulled, on the recorded stake,
    # moves it to unbonding, and pays nothing; the pull then completes.
    assert token.reentered() and token.reentrySucceeded()
    p = registry.participant(attacker)
    assert (p.role, p.stake, p.unbonding) == (Role.NONE, 0, stake)
    assert token.balanceOf(attacker) == 0
    assert_registry_solvent(token, registry)


def test_add_stake__reentrant_add_stake__blocked(
    registry: Any, token: Any, owner: Any, attacker: Any, register: Callable[..., Any], arm: Arm
) -> None:
    stake = 100 * TOKEN
    register(attacker, Role.TRAINER, stake)
    fund_and_approve(token, owner, attacker, registry, 2 * stake)
    arm(registry, registry.addStake.encode_input(stake))

    registry.addStake(stake, sender=attacker)

    assert_reentry_blocked(token)
    assert registry.participant(attacker).stake == 2 * stake
    assert registry.totalStaked() == 2 * stake
    assert_registry_solvent(token, registry)


def test_withdraw__reentrant_withdraw__blocked_and_paid_once(
    registry: Any,
    token: Any,
    attacker: Any,
    trainers: list[Any],
    register: Callable[..., Any],
    arm: Arm,
    deploy_params: DeployParameters,
    chain: Any,
) -> None:
    stake = 100 * TOKEN
    register(trainers[0], Role.TRAINER, stake)  # so a second payout would find the tokens
    register(attacker, Role.TRAINER, stake)
    registry.requestUnstake(stake, sender=attacker)
    advance(chain, deploy_params.unbonding_period)
    arm(registry, registry.withdraw.encode_input())

    registry.withdraw(sender=attacker)

    assert_reentry_blocked(token)
    assert token.balanceOf(attacker) == stake
    assert registry.participant(attacker).unbonding == 0
    assert registry.totalStaked() == stake  # the other trainer's
    assert_registry_solvent(token, registry)


def test_slash__reentrant_withdraw_of_matured_unbonding__blocked(
    registry: Any,
    token: Any,
    task: Any,
    attacker: Any,
    register: Callable[..., Any],
    task_signer: Any,
    arm: Arm,
    deploy_params: DeployParameters,
    chain: Any,
) -> None:
    stake = 200 * TOKEN
    register(attacker, Role.TRAINER, stake)
    registry.requestUnstake(100 * TOKEN, sender=attacker)
    advance(chain, deploy_params.unbonding_period)  # the unbonding half could be withdrawn now
    task_balance = token.balanceOf(task)
    arm(registry, registry.withdraw.encode_input())

    # The slash pays the task with `transfer`; the callback tries to pull the unbonding stake out.
    registry.slash(attacker, 150 * TOKEN, SLASH_REASON, sender=task_signer)

    assert_reentry_blocked(token)
    p = registry.participant(attacker)
    assert (p.stake, p.unbonding) == (0, 50 * TOKEN)  # bonded first, then unbonding
    assert token.balanceOf(attacker) == 0
    assert token.balanceOf(task) == task_balance + 150 * TOKEN
    assert_registry_solvent(token, registry)


# ---------------------------------------------------------------- FederatedTask


@pytest.fixture
def attacker_update() -> Update:
    return make_update("hostile-update", 2_500)


@pytest.fixture
def trainer_round(
    task: Any,
    owner: Any,
    attacker: Any,
    register: Callable[..., Any],
    active_trainers: list[Any],
    active_aggregators: list[Any],
    updates: dict[Any, Update],
    attacker_update: Update,
) -> dict[Any, Update]:
    """Round 0 open with the attacker as a fifth trainer; returns every trainer's update."""
    register(attacker, Role.TRAINER)
    task.start(sender=owner)
    return {**updates, attacker: attacker_update}


def test_claim_reward__reentrant_claim__blocked_and_paid_once(
    task: Any,
    token: Any,
    attacker: Any,
    trainer_round: dict[Any, Update],
    attacker_update: Update,
    aggregators: list[Any],
    model: Model,
    arm: Arm,
    chain: Any,
) -> None:
    run_round(chain, task, trainer_round, aggregators, model)
    reward = int(task.rewardOf(0, attacker_update.samples))
    reserved = int(task.reservedRewards())
    claim = task.claimReward.encode_input(0, attacker_update.digest, attacker_update.samples)
    arm(task, claim)

    task.claimReward(0, attacker_update.digest, attacker_update.samples, sender=attacker)

    assert_reentry_blocked(token)
    assert reward > 0
    assert token.balanceOf(attacker) == reward
    assert task.rewardClaimed(0, attacker)
    assert task.reservedRewards() == reserved - reward
    assert_task_solvent(token, task)


def test_claim_reward__reentrant_withdraw_fees__blocked(
    task: Any,
    token: Any,
    attacker: Any,
    trainer_round: dict[Any, Update],
    attacker_update: Update,
    aggregators: list[Any],
    model: Model,
    arm: Arm,
    chain: Any,
) -> None:
    run_round(chain, task, trainer_round, aggregators, model)
    arm(task, task.withdrawFees.encode_input())

    task.claimReward(0, attacker_update.digest, attacker_update.samples, sender=attacker)

    # One guard covers every paying function of the task, not only the one being run.
    assert_reentry_blocked(token)
    assert token.balanceOf(attacker) == task.rewardOf(0, attacker_update.samples)


def test_finalize__reentrant_claim_during_slash__pays_no_more_than_the_reward(
    task: Any,
    token: Any,
    registry: Any,
    attacker: Any,
    trainers: list[Any],
    trainer_round: dict[Any, Update],
    attacker_update: Update,
    aggregators: list[Any],
    model: Model,
    arm: Arm,
    chain: Any,
) -> None:
    """The finalizing attestation slashes a rejected trainer; the registry pays the slashed stake
    to the task with `transfer`, and the callback claims the attacker's reward for the round
    being finalized, from the middle of the finalization."""
    bad = trainers[0]
    rejections = [rejection(bad, RejectionReason.MALFORMED, trainer_round[bad])]
    claim = task.claimReward.encode_input(0, attacker_update.digest, attacker_update.samples)
    arm(task, claim)  # commits and attestations move no tokens: the slash is the first transfer

    run_round(chain, task, trainer_round, aggregators, model, rejections)

    assert token.reentered()
    reward = int(task.rewardOf(0, attacker_update.samples))
    if not task.rewardClaimed(0, attacker):
        task.claimReward(0, attacker_update.digest, attacker_update.samples, sender=attacker)
    assert token.balanceOf(attacker) <= reward
    assert_task_solvent(token, task)
    assert_registry_solvent(token, registry)


def test_finalize__reentrant_claim_during_slash__still_pays_the_full_reward(
    task: Any,
    token: Any,
    attacker: Any,
    trainers: list[Any],
    trainer_round: dict[Any, Update],
    attacker_update: Update,
    aggregators: list[Any],
    model: Model,
    arm: Arm,
    chain: Any,
) -> None:
    bad = trainers[0]
    rejections = [rejection(bad, RejectionReason.MALFORMED, trainer_round[bad])]
    arm(task, task.claimReward.encode_input(0, attacker_update.digest, attacker_update.samples))
    run_round(chain, task, trainer_round, aggregators, model, rejections)

    if not task.rewardClaimed(0, attacker):  # the reentrant claim was refused: claim now
        task.claimReward(0, attacker_update.digest, attacker_update.samples, sender=attacker)

    assert token.balanceOf(attacker) == task.rewardOf(0, attacker_update.samples) > 0


@pytest.fixture
def aggregator_round(
    task: Any,
    owner: Any,
    attacker: Any,
    register: Callable[..., Any],
    active_trainers: list[Any],
    active_aggregators: list[Any],
    deploy_params: DeployParameters,
) -> list[Any]:
    """Round 0 open with the attacker as a fourth aggregator, first in attestation order."""
    register(attacker, Role.AGGREGATOR, deploy_params.min_aggregator_stake)
    task.start(sender=owner)
    return [attacker, *active_aggregators]


def test_withdraw_fees__reentrant_withdraw_fees__blocked_and_paid_once(
    task: Any,
    token: Any,
    attacker: Any,
    aggregator_round: list[Any],
    updates: dict[Any, Update],
    model: Model,
    arm: Arm,
    chain: Any,
) -> None:
    run_round(chain, task, updates, aggregator_round, model)
    fees = int(task.feesOf(attacker))
    reserved = int(task.reservedRewards())
    arm(task, task.withdrawFees.encode_input())

    task.withdrawFees(sender=attacker)

    assert_reentry_blocked(token)
    assert fees > 0
    assert token.balanceOf(attacker) == fees
    assert task.feesOf(attacker) == 0
    assert task.reservedRewards() == reserved - fees
    assert_task_solvent(token, task)


def test_withdraw_fees__reentrant_claim_reward__blocked(
    task: Any,
    token: Any,
    attacker: Any,
    aggregator_round: list[Any],
    updates: dict[Any, Update],
    trainers: list[Any],
    model: Model,
    arm: Arm,
    chain: Any,
) -> None:
    run_round(chain, task, updates, aggregator_round, model)
    fees = int(task.feesOf(attacker))
    update = updates[trainers[0]]
    arm(task, task.claimReward.encode_input(0, update.digest, update.samples))

    task.withdrawFees(sender=attacker)

    # One guard covers every paying function of the task, not only the one being run.
    assert_reentry_blocked(token)
    assert token.balanceOf(attacker) == fees


def test_fund_rewards__reentrant_fund_rewards__blocked_and_pulled_once(
    task: Any, token: Any, owner: Any, attacker: Any, arm: Arm
) -> None:
    amount = 1_000 * TOKEN
    token.approve(task, 2 * amount, sender=owner)
    fund_and_approve(token, owner, attacker, task, amount)  # the callback could pay, if let in
    balance = int(token.balanceOf(task))
    arm(task, task.fundRewards.encode_input(amount))

    task.fundRewards(amount, sender=owner)

    assert_reentry_blocked(token)
    assert token.balanceOf(task) == balance + amount
    assert token.balanceOf(attacker) == amount
    assert task.availableRewards() == balance + amount - task.reservedRewards()
