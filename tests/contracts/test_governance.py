"""FedGovernor and FedTimelock: stake-weighted proposals that change task and registry
parameters through the timelock, and nothing else can."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import ZERO_ADDRESS, Proposal, advance, next_block_at, pass_and_queue, reverts, wait_for_eta

from fedledger.chain.params import (
    TOKEN,
    AggregationRule,
    DeployParameters,
    GovernorSetting,
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
DAY = 86_400
MAX_SETTING = {GovernorSetting.VOTING_DELAY: 30 * DAY, GovernorSetting.VOTING_PERIOD: 30 * DAY}
MAX_QUORUM_PERCENT = 50
MAX_TIMELOCK_DELAY = 30 * DAY


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


# ---------------------------------------------------------------- bounds of governance's own settings


def test_deploy__setting_ranges__from_the_deployment_up_to_the_ceilings(
    governor: Any, timelock: Any, deploy_params: DeployParameters
) -> None:
    assert governor.settingRange(GovernorSetting.VOTING_DELAY) == (deploy_params.voting_delay, 30 * DAY)
    assert governor.settingRange(GovernorSetting.VOTING_PERIOD) == (deploy_params.voting_period, 30 * DAY)
    assert governor.settingRange(GovernorSetting.QUORUM_NUMERATOR) == (
        deploy_params.quorum_percent,
        MAX_QUORUM_PERCENT,
    )
    assert (governor.MAX_VOTING_DELAY(), governor.MAX_VOTING_PERIOD()) == (30 * DAY, 30 * DAY)
    assert (governor.MIN_QUORUM_PERCENT(), governor.MAX_QUORUM_PERCENT()) == (1, MAX_QUORUM_PERCENT)
    assert timelock.delayRange() == (deploy_params.timelock_delay, MAX_TIMELOCK_DELAY)
    assert timelock.MAX_DELAY() == MAX_TIMELOCK_DELAY


@pytest.mark.parametrize(
    ("delay", "period", "quorum", "setting", "value", "minimum", "maximum"),
    [
        (30 * DAY + 1, 20, 4, GovernorSetting.VOTING_DELAY, 30 * DAY + 1, 0, 30 * DAY),
        (1, 30 * DAY + 1, 4, GovernorSetting.VOTING_PERIOD, 30 * DAY + 1, 1, 30 * DAY),
        (1, 20, 0, GovernorSetting.QUORUM_NUMERATOR, 0, 1, MAX_QUORUM_PERCENT),
        (1, 20, 51, GovernorSetting.QUORUM_NUMERATOR, 51, 1, MAX_QUORUM_PERCENT),
    ],
    ids=["delay-above-ceiling", "period-above-ceiling", "quorum-zero", "quorum-above-ceiling"],
)
def test_governor_constructor__setting_out_of_range__reverts(
    project: Any,
    owner: Any,
    registry: Any,
    timelock: Any,
    delay: int,
    period: int,
    quorum: int,
    setting: GovernorSetting,
    value: int,
    minimum: int,
    maximum: int,
) -> None:
    with reverts(
        project.FedGovernor.GovernorSettingOutOfRange,
        setting=setting,
        value=value,
        minimum=minimum,
        maximum=maximum,
    ):
        owner.deploy(project.FedGovernor, registry, timelock, delay, period, 100 * TOKEN, quorum)


def test_governor_constructor__settings_at_the_ceilings__deploys(
    project: Any, owner: Any, registry: Any, timelock: Any
) -> None:
    governor = owner.deploy(
        project.FedGovernor, registry, timelock, 30 * DAY, 30 * DAY, 100 * TOKEN, MAX_QUORUM_PERCENT
    )

    assert governor.settingRange(GovernorSetting.VOTING_DELAY) == (30 * DAY, 30 * DAY)
    assert governor.quorumNumerator() == MAX_QUORUM_PERCENT


def test_timelock_constructor__delay_above_ceiling__reverts(project: Any, owner: Any) -> None:
    with reverts(
        project.FedTimelock.TimelockDelayOutOfRange, delay=30 * DAY + 1, minimum=0, maximum=MAX_TIMELOCK_DELAY
    ):
        owner.deploy(project.FedTimelock, 30 * DAY + 1, [], [ZERO_ADDRESS], owner)


@pytest.mark.parametrize("delay", [TIMELOCK_DELAY, MAX_TIMELOCK_DELAY], ids=["floor", "ceiling"])
def test_timelock_update_delay__within_range__changes_delay(
    timelock: Any, timelock_signer: Any, delay: int
) -> None:
    tx = timelock.updateDelay(60, sender=timelock_signer)
    tx = timelock.updateDelay(delay, sender=timelock_signer)

    assert tx.events == [timelock.MinDelayChange(60, delay)]
    assert timelock.getMinDelay() == delay


@pytest.mark.parametrize("delay", [0, TIMELOCK_DELAY - 1, MAX_TIMELOCK_DELAY + 1])
def test_timelock_update_delay__out_of_range__reverts(
    timelock: Any, timelock_signer: Any, delay: int
) -> None:
    with reverts(
        timelock.TimelockDelayOutOfRange, delay=delay, minimum=TIMELOCK_DELAY, maximum=MAX_TIMELOCK_DELAY
    ):
        timelock.updateDelay(delay, sender=timelock_signer)


def test_governor_settings__raised_then_lowered_back_to_the_floor__by_proposals(
    governor: Any, stakers: list[Any], chain: Any
) -> None:
    raise_them = Proposal.of(
        [
            (governor, governor.setVotingDelay.encode_input(30 * DAY)),
            (governor, governor.setVotingPeriod.encode_input(30 * DAY)),
            (governor, governor.updateQuorumNumerator.encode_input(MAX_QUORUM_PERCENT)),
        ],
        "slow governance down",
    )
    pass_and_queue(governor, raise_them, stakers[0], stakers, chain)
    wait_for_eta(chain, governor, raise_them)

    raised = raise_them.execute(governor, stakers[0])

    assert raised.events.filter(governor.VotingDelaySet) == [governor.VotingDelaySet(VOTING_DELAY, 30 * DAY)]
    assert raised.events.filter(governor.VotingPeriodSet) == [
        governor.VotingPeriodSet(VOTING_PERIOD, 30 * DAY)
    ]
    assert raised.events.filter(governor.QuorumNumeratorUpdated) == [
        governor.QuorumNumeratorUpdated(4, MAX_QUORUM_PERCENT)
    ]
    lower_them = Proposal.of(
        [
            (governor, governor.setVotingDelay.encode_input(VOTING_DELAY)),
            (governor, governor.setVotingPeriod.encode_input(VOTING_PERIOD)),
            (governor, governor.updateQuorumNumerator.encode_input(4)),
        ],
        "back to the deployment's governance",
    )
    pass_and_queue(governor, lower_them, stakers[0], stakers, chain)
    wait_for_eta(chain, governor, lower_them)

    lower_them.execute(governor, stakers[0])

    assert (governor.votingDelay(), governor.votingPeriod(), governor.quorumNumerator()) == (
        VOTING_DELAY,
        VOTING_PERIOD,
        4,
    )


@pytest.mark.parametrize(
    ("function", "setting", "value"),
    [
        ("setVotingDelay", GovernorSetting.VOTING_DELAY, VOTING_DELAY - 1),
        ("setVotingDelay", GovernorSetting.VOTING_DELAY, 30 * DAY + 1),
        ("setVotingPeriod", GovernorSetting.VOTING_PERIOD, VOTING_PERIOD - 1),
        ("setVotingPeriod", GovernorSetting.VOTING_PERIOD, 30 * DAY + 1),
        ("updateQuorumNumerator", GovernorSetting.QUORUM_NUMERATOR, 3),
        ("updateQuorumNumerator", GovernorSetting.QUORUM_NUMERATOR, MAX_QUORUM_PERCENT + 1),
    ],
)
def test_governor_settings__out_of_range__proposal_execution_reverts(
    governor: Any, stakers: list[Any], chain: Any, function: str, setting: GovernorSetting, value: int
) -> None:
    minimum, maximum = governor.settingRange(setting)
    proposal = Proposal.of(
        [(governor, getattr(governor, function).encode_input(value))], f"{function}({value})"
    )
    pass_and_queue(governor, proposal, stakers[0], stakers, chain)
    wait_for_eta(chain, governor, proposal)

    with reverts(
        governor.GovernorSettingOutOfRange, setting=setting, value=value, minimum=minimum, maximum=maximum
    ):
        proposal.execute(governor, stakers[0])
