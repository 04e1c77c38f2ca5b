"""Governance capture (security review, issue 15, finding 4), played on a real Anvil against
the default deployment (`DeployParameters()`: the network governance profile).

The review's attack: with the old defaults (voting delay 1 s, period 20 s, quorum 4 %,
timelock 5 s) an outsider holding 4.2 % of the stake passed, alone and within 28 seconds, a
proposal that slashed every participant through the timelock (one of them already unbonding)
and set the reward per round to 2^128-1, then drained the pool. Each test below performs one
part of it, or a variant an attacker would try next, and fails on the contracts and defaults
the review attacked:

- a small holder alone cannot reach the quorum;
- an attacker with a majority still cannot slash anyone through governance, nor drain the pool
  faster than 1 % of what is left per round, nor set slash rates above half a stake, nor
  shorten governance's own delays or lower its quorum below the deployment's;
- a staker who sees a hostile proposal queued can still withdraw before it executes;
- a change executed mid-round (front-running the finalization) does not touch the open round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from eth_utils import keccak
from helpers import (
    UINT128_MAX,
    Proposal,
    advance,
    attest_until_finalized,
    commit_and_reveal,
    make_model,
    make_update,
    pass_and_queue,
    rejection,
    reverts,
    run_round,
    wait_for_eta,
)

from fedledger.chain.params import (
    TOKEN,
    DeployParameters,
    ProposalState,
    RejectionReason,
    Role,
    TaskParameter,
    VoteType,
)

REASON = keccak(text="captured governance")
ATTACKER_SMALL_STAKE = 150 * TOKEN  # 4.2 % of the 3,550 FED voting stake
ATTACKER_MAJORITY_STAKE = 4_000 * TOKEN  # 54 % of the voting stake


@pytest.fixture(scope="module")
def deploy_params() -> DeployParameters:
    """What `ape run deploy` deploys unless told otherwise on a network: the defaults."""
    return DeployParameters(
        initial_model_digest=hashlib.sha256(b"attack initial model").digest(),
        initial_model_cid="bafkreiattackinitialmodel",
        model_spec_hash=hashlib.sha256(b"attack model spec").digest(),
    )


@pytest.fixture
def honest(active_trainers: list[Any], active_aggregators: list[Any]) -> list[Any]:
    """Four trainers (100 FED each) and three aggregators (1,000 FED each): 3,400 FED."""
    return active_trainers + active_aggregators


@pytest.fixture
def attacker(register: Callable[..., Any], outsider: Any) -> Callable[[int], Any]:
    """Factory: the outsider registers with `stake` (as an aggregator when it has the minimum,
    else as a trainer) and becomes the attacker."""

    def _attacker(stake: int) -> Any:
        register(outsider, Role.AGGREGATOR if stake >= 1_000 * TOKEN else Role.TRAINER, stake)
        return outsider

    return _attacker


def pass_alone(governor: Any, proposal: Proposal, voter: Any, chain: Any) -> tuple[int, Any]:
    """`voter` proposes, waits for the vote, votes for alone and waits for the vote to end;
    returns the proposal id and the proposal receipt."""
    advance(chain, 1)  # the stake must be in the past for `propose`
    proposed = proposal.propose(governor, voter)
    proposal_id = proposal.id(governor)
    advance(chain, int(governor.votingDelay()) + 1)
    governor.castVote(proposal_id, int(VoteType.FOR), sender=voter)
    advance(chain, int(governor.votingPeriod()) + 1)
    return proposal_id, proposed


def pass_as(governor: Any, proposal: Proposal, attacker: Any, chain: Any) -> Any:
    """Passes `proposal` with `attacker`'s (majority) vote alone and queues it."""
    advance(chain, 1)  # the stake must be in the past for `propose`
    return pass_and_queue(governor, proposal, attacker, [attacker], chain)


def slash_everyone(registry: Any, accounts: list[Any]) -> list[tuple[Any, bytes]]:
    """Calls slashing each account of everything it has at stake, unbonding included."""
    return [
        (registry, registry.slash.encode_input(account, registry.slashableStake(account), REASON))
        for account in accounts
    ]


# ---------------------------------------------------------------- the review's attack


def test_attack__small_holder_alone__cannot_reach_the_default_quorum(
    governor: Any,
    registry: Any,
    task: Any,
    honest: list[Any],
    attacker: Callable[[int], Any],
    chain: Any,
) -> None:
    mallory = attacker(ATTACKER_SMALL_STAKE)
    proposal = Proposal.of(
        [
            *slash_everyone(registry, honest),
            (task, task.setParameter.encode_input(TaskParameter.REWARD_PER_ROUND, UINT128_MAX)),
        ],
        "slash everyone, pay me the pool",
    )

    proposal_id, proposed = pass_alone(governor, proposal, mallory, chain)

    snapshot = int(governor.proposalSnapshot(proposal_id))
    total_votes = 3_400 * TOKEN + ATTACKER_SMALL_STAKE
    assert governor.quorum(snapshot) == total_votes * int(governor.quorumNumerator(snapshot)) // 100
    assert governor.quorum(snapshot) > ATTACKER_SMALL_STAKE
    assert governor.state(proposal_id) == ProposalState.DEFEATED
    # Had it passed, it could not have taken effect before everyone had days of notice.
    earliest = int(proposed.timestamp) + int(governor.votingDelay()) + int(governor.votingPeriod())
    assert earliest - int(proposed.timestamp) >= 6 * 86_400


def test_attack__majority_slashes_everyone_through_governance__execution_reverts(
    governor: Any,
    registry: Any,
    timelock: Any,
    token: Any,
    honest: list[Any],
    attacker: Callable[[int], Any],
    chain: Any,
) -> None:
    leaving = honest[3]  # a trainer that started unbonding before the proposal
    registry.requestUnstake(100 * TOKEN, sender=leaving)
    mallory = attacker(ATTACKER_MAJORITY_STAKE)
    at_stake = {account: int(registry.slashableStake(account)) for account in honest}
    proposal = Proposal.of(slash_everyone(registry, honest), "slash everyone")
    pass_as(governor, proposal, mallory, chain)
    wait_for_eta(chain, governor, proposal)

    with reverts(registry.RegistryUnauthorizedSlasher, caller=timelock.address):
        proposal.execute(governor, mallory)

    assert {account: int(registry.slashableStake(account)) for account in honest} == at_stake
    assert registry.participant(leaving).unbonding == 100 * TOKEN
    registry.withdraw(sender=leaving)  # its unbonding is long over
    assert token.balanceOf(leaving) == 100 * TOKEN


def test_attack__majority_sets_the_reward_to_the_maximum__pool_loses_at_most_1_percent_a_round(
    governor: Any,
    task: Any,
    owner: Any,
    honest: list[Any],
    trainers: list[Any],
    aggregators: list[Any],
    attacker: Callable[[int], Any],
    deploy_params: DeployParameters,
    chain: Any,
) -> None:
    mallory = attacker(ATTACKER_MAJORITY_STAKE)
    proposal = Proposal.of(
        [
            (task, task.setParameter.encode_input(TaskParameter.REWARD_PER_ROUND, UINT128_MAX)),
            (task, task.setParameter.encode_input(TaskParameter.AGGREGATOR_FEE, UINT128_MAX)),
        ],
        "pay the whole pool now",
    )
    pass_as(governor, proposal, mallory, chain)
    wait_for_eta(chain, governor, proposal)
    proposal.execute(governor, mallory)
    assert task.parameter(TaskParameter.REWARD_PER_ROUND) == UINT128_MAX  # the vote stands ...
    task.start(sender=owner)
    updates = {trainer: make_update(f"drain-{i}", 1_000) for i, trainer in enumerate(trainers)}
    pool = deploy_params.reward_pool

    for round_ in range(3):
        available = int(task.availableRewards())
        run_round(chain, task, updates, [mallory, *aggregators], make_model(f"drain-model-{round_}"))
        # ... but each round pays at most 1 % of what was left when it opened.
        assert available - int(task.availableRewards()) <= available // 100

    assert int(task.availableRewards()) >= pool * 99**3 // 100**3


@pytest.mark.parametrize(
    "parameter",
    [TaskParameter.TRAINER_SLASH_BPS, TaskParameter.OUTLIER_SLASH_BPS, TaskParameter.AGGREGATOR_SLASH_BPS],
)
def test_attack__majority_sets_a_slash_rate_to_everything__execution_reverts(
    governor: Any,
    task: Any,
    honest: list[Any],
    attacker: Callable[[int], Any],
    chain: Any,
    parameter: TaskParameter,
) -> None:
    mallory = attacker(ATTACKER_MAJORITY_STAKE)
    proposal = Proposal.of([(task, task.setParameter.encode_input(parameter, 10_000))], "slash it all")
    pass_as(governor, proposal, mallory, chain)
    wait_for_eta(chain, governor, proposal)
    before = int(task.parameter(parameter))

    with reverts(task.TaskInvalidParameter, parameter=parameter, value=10_000):
        proposal.execute(governor, mallory)

    assert task.parameter(parameter) == before


GOVERNANCE_SHORTCUTS = {
    "timelock delay 0": lambda c: (c.timelock, c.timelock.updateDelay.encode_input(0)),
    "voting delay 0": lambda c: (c.governor, c.governor.setVotingDelay.encode_input(0)),
    "voting period 1 s": lambda c: (c.governor, c.governor.setVotingPeriod.encode_input(1)),
    "quorum 1 %": lambda c: (c.governor, c.governor.updateQuorumNumerator.encode_input(1)),
}


class Contracts:
    def __init__(self, governor: Any, timelock: Any) -> None:
        self.governor, self.timelock = governor, timelock


@pytest.mark.parametrize("shortcut", sorted(GOVERNANCE_SHORTCUTS))
def test_attack__majority_makes_the_next_capture_faster__execution_reverts(
    governor: Any,
    timelock: Any,
    honest: list[Any],
    attacker: Callable[[int], Any],
    chain: Any,
    shortcut: str,
) -> None:
    mallory = attacker(ATTACKER_MAJORITY_STAKE)
    target, calldata = GOVERNANCE_SHORTCUTS[shortcut](Contracts(governor, timelock))
    proposal = Proposal.of([(target, bytes(calldata))], f"governance: {shortcut}")
    pass_as(governor, proposal, mallory, chain)
    wait_for_eta(chain, governor, proposal)
    settings = (
        governor.votingDelay(),
        governor.votingPeriod(),
        governor.quorumNumerator(),
        timelock.getMinDelay(),
    )
    error = timelock.TimelockDelayOutOfRange if target == timelock else governor.GovernorSettingOutOfRange

    with reverts(error):
        proposal.execute(governor, mallory)

    assert (
        governor.votingDelay(),
        governor.votingPeriod(),
        governor.quorumNumerator(),
        timelock.getMinDelay(),
    ) == (settings)


# ---------------------------------------------------------------- what is left to stakers


def test_attack__staker_who_sees_a_hostile_proposal_queued__withdraws_before_it_executes(
    governor: Any,
    registry: Any,
    timelock: Any,
    token: Any,
    task: Any,
    honest: list[Any],
    attacker: Callable[[int], Any],
    chain: Any,
) -> None:
    mallory = attacker(ATTACKER_MAJORITY_STAKE)
    staker = honest[4]  # an aggregator with 1,000 FED
    proposal = Proposal.of(
        [(task, task.setParameter.encode_input(TaskParameter.AGGREGATOR_SLASH_BPS, 5_000))],
        "half of every dissenting aggregator's stake",
    )
    queued = pass_as(governor, proposal, mallory, chain)
    eta = int(governor.proposalEta(proposal.id(governor)))

    # The staker only reacts once the proposal is certain to pass: when it is queued.
    unstaked = registry.requestUnstake(1_000 * TOKEN, sender=staker)
    unbonding_end = int(registry.participant(staker).unbondingEnd)
    assert unbonding_end < eta
    chain.mine(timestamp=unbonding_end)
    with reverts(timelock.TimelockUnexpectedOperationState):
        proposal.execute(governor, mallory)  # still too early
    registry.withdraw(sender=staker)

    assert token.balanceOf(staker) == 1_000 * TOKEN
    assert registry.slashableStake(staker) == 0
    assert int(unstaked.timestamp) >= int(queued.timestamp)


def test_attack__hostile_rates_executed_mid_round__the_open_round_keeps_its_own(
    task: Any,
    registry: Any,
    owner: Any,
    honest: list[Any],
    trainers: list[Any],
    aggregators: list[Any],
    timelock_signer: Any,
    chain: Any,
) -> None:
    """Front-running a round: the captor's change lands (here straight from the timelock) after
    the trainers committed and just before the aggregators finalize; the round still pays and
    slashes by the rules it opened with."""
    task.start(sender=owner)
    opened = task.roundConfig(0)
    updates = {trainer: make_update(f"front-run-{i}", 1_000) for i, trainer in enumerate(trainers)}
    commit_and_reveal(chain, task, updates)
    task.setParameter(TaskParameter.TRAINER_SLASH_BPS, 5_000, sender=timelock_signer)
    task.setParameter(TaskParameter.REWARD_PER_ROUND, UINT128_MAX, sender=timelock_signer)
    victim = trainers[0]
    rejections = [rejection(victim, RejectionReason.MALFORMED, updates[victim])]

    finalized = attest_until_finalized(chain, task, aggregators, make_model("front-run-model"), rejections)

    slashed = finalized.events.filter(registry.Slashed)
    assert [(log.account, log.amount) for log in slashed] == [
        (victim.address, 100 * TOKEN * int(opened.trainerSlashBps) // 10_000)
    ]
    assert finalized.events.filter(task.RoundFinalized)[0].trainerReward == opened.rewardPerRound
    # The next round opens with the new rules, the reward cut to 1 % of the pool.
    assert task.roundConfig(1).trainerSlashBps == 5_000
    assert task.roundConfig(1).rewardPerRound < UINT128_MAX
