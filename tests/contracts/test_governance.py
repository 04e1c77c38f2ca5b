"""FedGovernor and FedTimelock: stake-weighted proposals that change task and registry
parameters through the timelock, and nothing else can."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import ZERO_ADDRESS, Proposal, advance, next_block_at, reverts

from fedledger.chain.params import (
    TOKEN,
    AggregationRule,
    DeployParameters,
    ProposalState,
    RegistryParameter,
    Role,
    TaskParameter,
    VoteType,
)

VOTING_DELAY = 1
VOTING_PERIOD = 20
TIMELOCK_DELAY = 5
NEW_UNBONDING = 7_200


@pytest.fixture
def stakers(active_trainers: list[Any], active_aggregators: list[Any], chain: Any) -> list[Any]:
    """Four trainers (100 each) and three aggregators (1000 each); total voting power 3400.

    The clock moves one second on, so that the stake is in the past votes `propose` checks."""
    advance(chain, 1)
    return active_trainers + active_aggregators


@pytest.fixture
def proposal(task: Any, registry: Any) -> Proposal:
    return Proposal.of(
        [
            (task, task.setParameter.encode_input(TaskParameter.AGGREGATION_RULE, AggregationRule.MEDIAN)),
            (registry, registry.setParameter.encode_input(RegistryParameter.UNBONDING_PERIOD, NEW_UNBONDING)),
        ],
        "Use the coordinate-wise median; unbond over two hours",
    )


def vote_and_wait(governor: Any, proposal_id: int, votes: dict[Any, VoteType], chain: Any) -> list[Any]:
    """Waits for the vote to open, casts `votes`, waits for it to close; returns the receipts."""
    advance(chain, VOTING_DELAY + 1)
    assert governor.state(proposal_id) == ProposalState.ACTIVE
    receipts = [
        governor.castVote(proposal_id, int(support), sender=voter) for voter, support in votes.items()
    ]
    advance(chain, VOTING_PERIOD + 1)
    return receipts


def test_deploy__governor_settings(
    governor: Any, registry: Any, timelock: Any, deploy_params: DeployParameters
) -> None:
    assert governor.name() == "fedledger Governor"
    assert governor.token() == registry
    assert governor.timelock() == timelock
    assert governor.votingDelay() == deploy_params.voting_delay
    assert governor.votingPeriod() == deploy_params.voting_period
    assert governor.proposalThreshold() == deploy_params.proposal_threshold
    assert governor.quorumNumerator() == deploy_params.quorum_percent
    assert governor.CLOCK_MODE() == "mode=timestamp"
    assert timelock.getMinDelay() == deploy_params.timelock_delay


def test_deploy__timelock_roles(timelock: Any, governor: Any, owner: Any) -> None:
    admin, proposer = timelock.DEFAULT_ADMIN_ROLE(), timelock.PROPOSER_ROLE()
    canceller, executor = timelock.CANCELLER_ROLE(), timelock.EXECUTOR_ROLE()

    assert not timelock.hasRole(admin, owner)  # the deployer renounced it
    assert not timelock.hasRole(proposer, owner)
    assert not timelock.hasRole(canceller, owner)
    assert timelock.hasRole(proposer, governor)
    assert timelock.hasRole(canceller, governor)
    assert timelock.hasRole(executor, ZERO_ADDRESS)  # anyone executes
    assert not timelock.hasRole(admin, governor)


def test_timelock__deployer_cannot_schedule_or_grant(timelock: Any, task: Any, owner: Any) -> None:
    data = task.setParameter.encode_input(TaskParameter.AGGREGATION_RULE, 1)
    proposer_role = timelock.PROPOSER_ROLE()

    with reverts(timelock.AccessControlUnauthorizedAccount, account=owner.address, neededRole=proposer_role):
        timelock.schedule(task, 0, data, b"\x00" * 32, b"\x00" * 32, TIMELOCK_DELAY, sender=owner)
    with reverts(timelock.AccessControlUnauthorizedAccount, account=owner.address):
        timelock.grantRole(proposer_role, owner, sender=owner)


def test_proposal__full_cycle__changes_task_and_registry_parameters(
    governor: Any,
    timelock: Any,
    task: Any,
    registry: Any,
    stakers: list[Any],
    proposal: Proposal,
    outsider: Any,
    chain: Any,
) -> None:
    proposer = stakers[0]  # a trainer with exactly the 100-token threshold
    assert registry.getVotes(proposer) == governor.proposalThreshold()

    proposed = proposal.propose(governor, proposer)

    proposal_id = proposal.id(governor)
    created = proposed.events.filter(governor.ProposalCreated)
    assert len(created) == 1
    assert (created[0].proposalId, created[0].proposer) == (proposal_id, proposer)
    snapshot = int(governor.proposalSnapshot(proposal_id))
    assert snapshot == proposed.timestamp + VOTING_DELAY
    assert governor.proposalDeadline(proposal_id) == snapshot + VOTING_PERIOD
    assert governor.state(proposal_id) == ProposalState.PENDING

    votes = {stakers[0]: VoteType.AGAINST} | {s: VoteType.FOR for s in stakers[1:]}
    receipts = vote_and_wait(governor, proposal_id, votes, chain)

    aggregator_vote = receipts[-1].events.filter(governor.VoteCast)
    assert aggregator_vote == [governor.VoteCast(stakers[-1], proposal_id, VoteType.FOR, 1_000 * TOKEN, "")]
    assert governor.proposalVotes(proposal_id) == (100 * TOKEN, 3_300 * TOKEN, 0)  # against, for, abstain
    assert governor.quorum(snapshot) == 3_400 * TOKEN * 4 // 100
    assert governor.state(proposal_id) == ProposalState.SUCCEEDED

    queued = proposal.queue(governor, outsider)

    eta = queued.timestamp + TIMELOCK_DELAY
    assert queued.events.filter(governor.ProposalQueued) == [governor.ProposalQueued(proposal_id, eta)]
    assert len(queued.events.filter(timelock.CallScheduled)) == 2
    assert governor.state(proposal_id) == ProposalState.QUEUED
    with reverts(timelock.TimelockUnexpectedOperationState):
        proposal.execute(governor, outsider)
    chain.mine(timestamp=eta)

    executed = proposal.execute(governor, outsider)

    assert executed.events.filter(governor.ProposalExecuted) == [governor.ProposalExecuted(proposal_id)]
    assert executed.events.filter(task.ParameterChanged) == [
        task.ParameterChanged(TaskParameter.AGGREGATION_RULE, AggregationRule.FEDAVG, AggregationRule.MEDIAN)
    ]
    assert executed.events.filter(registry.ParameterChanged) == [
        registry.ParameterChanged(RegistryParameter.UNBONDING_PERIOD, 3_600, NEW_UNBONDING)
    ]
    assert task.parameter(TaskParameter.AGGREGATION_RULE) == AggregationRule.MEDIAN
    assert registry.parameter(RegistryParameter.UNBONDING_PERIOD) == NEW_UNBONDING
    assert governor.state(proposal_id) == ProposalState.EXECUTED


@pytest.mark.parametrize("caller", ["owner", "trainer", "governor"])
def test_set_parameter__direct_call_not_through_timelock__reverts(
    task: Any, registry: Any, governor: Any, owner: Any, trainers: list[Any], accounts: Any, caller: str
) -> None:
    if caller == "governor":
        sender = accounts[governor.address]
        sender.balance += 10**18
    else:
        sender = owner if caller == "owner" else trainers[0]

    with reverts(task.TaskOnlyGovernance, caller=sender.address):
        task.setParameter(TaskParameter.AGGREGATION_RULE, AggregationRule.MEDIAN, sender=sender)
    with reverts(registry.RegistryOnlyGovernance, caller=sender.address):
        registry.setParameter(RegistryParameter.UNBONDING_PERIOD, NEW_UNBONDING, sender=sender)


def test_propose__below_threshold__reverts(
    governor: Any, stakers: list[Any], proposal: Proposal, outsider: Any
) -> None:
    threshold = governor.proposalThreshold()
    with reverts(
        governor.GovernorInsufficientProposerVotes, proposer=outsider.address, votes=0, threshold=threshold
    ):
        proposal.propose(governor, outsider)


def test_propose__stake_from_this_second__not_counted_yet(
    governor: Any, register: Any, outsider: Any, proposal: Proposal, chain: Any
) -> None:
    registered = register(outsider, Role.TRAINER, 500 * TOKEN)
    next_block_at(chain, registered.timestamp)  # however slow the machine, the same second

    # Proposing checks the votes of the previous second.
    with reverts(governor.GovernorInsufficientProposerVotes, proposer=outsider.address, votes=0):
        proposal.propose(governor, outsider)


def test_proposal__quorum_not_met__defeated(
    governor: Any, stakers: list[Any], proposal: Proposal, outsider: Any, chain: Any
) -> None:
    proposal.propose(governor, stakers[0])
    proposal_id = proposal.id(governor)

    # 100 of 3400 votes is under the 4 % quorum (136).
    vote_and_wait(governor, proposal_id, {stakers[0]: VoteType.FOR}, chain)

    assert governor.proposalVotes(proposal_id) == (0, 100 * TOKEN, 0)
    assert governor.state(proposal_id) == ProposalState.DEFEATED
    with reverts(
        governor.GovernorUnexpectedProposalState, proposalId=proposal_id, current=ProposalState.DEFEATED
    ):
        proposal.queue(governor, outsider)


def test_proposal__majority_against__defeated(
    governor: Any, stakers: list[Any], proposal: Proposal, chain: Any
) -> None:
    proposal.propose(governor, stakers[0])
    proposal_id = proposal.id(governor)
    votes = {s: VoteType.FOR for s in stakers[:4]} | {s: VoteType.AGAINST for s in stakers[4:]}

    vote_and_wait(governor, proposal_id, votes, chain)

    assert governor.state(proposal_id) == ProposalState.DEFEATED


def test_cast_vote__stake_added_after_snapshot__has_no_weight(
    governor: Any, stakers: list[Any], proposal: Proposal, register: Any, outsider: Any, chain: Any
) -> None:
    proposal.propose(governor, stakers[0])
    proposal_id = proposal.id(governor)
    advance(chain, VOTING_DELAY + 1)
    register(outsider, Role.AGGREGATOR, 5_000 * TOKEN)

    tx = governor.castVote(proposal_id, VoteType.FOR, sender=outsider)

    assert tx.events == [governor.VoteCast(outsider, proposal_id, VoteType.FOR, 0, "")]
    with reverts(governor.GovernorAlreadyCastVote, voter=outsider.address):
        governor.castVote(proposal_id, VoteType.FOR, sender=outsider)
