"""Access control of every contract, driven by one table built against the compiled ABIs.

`ACCESS` classifies every state-changing function (and `receive`) of every deployed contract as
public by design (with the reason) or restricted: who may call it, the custom error anyone else
gets, and the tests that show both. The table tests below fail when

- a contract's ABI has a state-changing function the table does not classify, so a new
  privileged function cannot slip in untested;
- a restricted entry names a function or error the contract no longer has;
- a restricted entry's tests are missing, or the unauthorized test does not expect its error.

Tests elsewhere that already cover an entry are referenced, not repeated; the cases missing
elsewhere (the timelock's own administration, the governor's `onlyGovernance` functions) are
below.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from ape.exceptions import VirtualMachineError
from helpers import ZERO_ADDRESS, ZERO_BYTES32, Proposal, advance, reverts

from fedledger.chain.params import TOKEN, ProposalState, VoteType

TESTS = Path(__file__).resolve().parent
THIS_FILE = Path(__file__).name
UNAUTHORIZED_CASES_TEST = "test_restricted__unauthorized_caller__reverts_with_its_error"


@dataclass(frozen=True)
class Public:
    """Anyone may call: `why` says what guards it instead (phase, stake, signature, nothing)."""

    why: str


@dataclass(frozen=True)
class Restricted:
    """Only `who` may call; anyone else gets `error`.

    `unauthorized` and `authorized` reference tests as "file.py::test_name". An empty
    `unauthorized` means the case is in `UNAUTHORIZED_CASES` below; an empty `authorized` means
    nobody is authorized (`who` says why)."""

    who: str
    error: str
    unauthorized: str = ""
    authorized: tuple[str, ...] = ()


ROLE_CHECKED_INSIDE = "role and phase checks inside; tested in test_task.py"

ACCESS: dict[str, dict[str, Public | Restricted]] = {
    "FedToken": {
        "approve": Public("ERC-20: acts on the caller's own allowance"),
        "transfer": Public("ERC-20: moves the caller's own balance"),
        "transferFrom": Public("ERC-20: limited by the allowance the owner gave the caller"),
        "permit": Public("EIP-2612: authorized by the owner's signature (test_token.py)"),
    },
    "StakingRegistry": {
        "register": Public("stakes the caller's own tokens"),
        "addStake": Public("stakes the caller's own tokens"),
        "requestUnstake": Public("acts on the caller's own stake"),
        "withdraw": Public("pays the caller's own matured unbonding stake"),
        "delegate": Public("OpenZeppelin Votes: moves the caller's own voting power"),
        "delegateBySig": Public("OpenZeppelin Votes: authorized by the delegator's signature"),
        "bindTask": Restricted(
            who="the deployer, once",
            error="RegistryOnlyDeployer",
            unauthorized="test_registry.py::test_bind_task__not_deployer__reverts",
            authorized=("test_registry.py::test_bind_task__by_deployer__emits_task_bound",),
        ),
        "slash": Restricted(
            who="the bound task (not the timelock: governance cannot slash)",
            error="RegistryUnauthorizedSlasher",
            unauthorized="test_registry.py::test_slash__not_task__reverts",
            authorized=(
                "test_registry.py::test_slash__by_task__sends_stake_to_task",
                "test_task.py::test_finalize__provable_rejection__slashes_trainer_and_withholds_reward",
            ),
        ),
        "setParameter": Restricted(
            who="the timelock",
            error="RegistryOnlyGovernance",
            unauthorized="test_registry.py::test_set_parameter__not_timelock__reverts",
            authorized=(
                "test_registry.py::test_set_parameter__by_timelock__changes_value",
                "test_governance.py::test_proposal__full_cycle__changes_task_and_registry_parameters",
            ),
        ),
    },
    "FederatedTask": {
        # Public entry points whose role checks happen inside (eligible trainer, active
        # aggregator, accepted update, credited fees).
        "start": Public("once, when enough participants are active"),
        "commitUpdate": Public(ROLE_CHECKED_INSIDE),
        "revealUpdate": Public(ROLE_CHECKED_INSIDE),
        "commitBatch": Public("any relayer; each entry's trainer signature is checked (test_batch.py)"),
        "revealBatch": Public("any relayer; each opening is proved against the batch root (test_batch.py)"),
        "attest": Public(ROLE_CHECKED_INSIDE),
        "closeStaleRound": Public("only a stale round; anyone keeps the task moving"),
        "claimReward": Public(ROLE_CHECKED_INSIDE),
        "withdrawFees": Public("pays the caller's own credited fees"),
        "fundRewards": Public("donates the caller's own tokens to the pool"),
        "setParameter": Restricted(
            who="the timelock",
            error="TaskOnlyGovernance",
            unauthorized="test_task.py::test_set_parameter__not_timelock__reverts",
            authorized=(
                "test_task.py::test_set_parameter__in_range__changes_value",
                "test_governance.py::test_proposal__full_cycle__changes_task_and_registry_parameters",
            ),
        ),
        "syncTrainer": Restricted(
            who="the registry",
            error="TaskOnlyRegistry",
            unauthorized="test_task.py::test_sync_trainer__not_registry__reverts",
            authorized=("test_registry.py::test_register__trainer__stakes_and_syncs_task",),
        ),
    },
    "FedTimelock": {
        "execute": Public("EXECUTOR_ROLE is open (held by the zero address); only ready operations run"),
        "executeBatch": Public("EXECUTOR_ROLE is open (held by the zero address); only ready operations run"),
        "onERC721Received": Public("token receiver hook; returns its selector, changes nothing"),
        "onERC1155Received": Public("token receiver hook; returns its selector, changes nothing"),
        "onERC1155BatchReceived": Public("token receiver hook; returns its selector, changes nothing"),
        "receive": Public("accepts ETH for proposals that send value"),
        "schedule": Restricted(
            who="PROPOSER_ROLE (the governor)",
            error="AccessControlUnauthorizedAccount",
            unauthorized="test_governance.py::test_timelock__deployer_cannot_schedule_or_grant",
            authorized=(f"{THIS_FILE}::test_timelock_schedule__by_governor__operation_pending",),
        ),
        "scheduleBatch": Restricted(
            who="PROPOSER_ROLE (the governor)",
            error="AccessControlUnauthorizedAccount",
            authorized=(
                "test_governance.py::test_proposal__full_cycle__changes_task_and_registry_parameters",
            ),
        ),
        "cancel": Restricted(
            who="CANCELLER_ROLE (the governor)",
            error="AccessControlUnauthorizedAccount",
            authorized=(f"{THIS_FILE}::test_timelock_cancel__by_governor__operation_removed",),
        ),
        "updateDelay": Restricted(
            who="the timelock itself (an executed operation)",
            error="TimelockUnauthorizedCaller",
            authorized=(f"{THIS_FILE}::test_timelock_update_delay__by_timelock_itself__changes_delay",),
        ),
        "grantRole": Restricted(
            who="DEFAULT_ADMIN_ROLE (the timelock itself; the deployer renounced it)",
            error="AccessControlUnauthorizedAccount",
            unauthorized="test_governance.py::test_timelock__deployer_cannot_schedule_or_grant",
            authorized=(f"{THIS_FILE}::test_timelock_grant_role__by_timelock_itself__role_granted",),
        ),
        "revokeRole": Restricted(
            who="DEFAULT_ADMIN_ROLE (the timelock itself)",
            error="AccessControlUnauthorizedAccount",
            authorized=(f"{THIS_FILE}::test_timelock_revoke_role__by_timelock_itself__role_revoked",),
        ),
        "renounceRole": Restricted(
            who="the role holder, for itself",
            error="AccessControlBadConfirmation",
            authorized=(f"{THIS_FILE}::test_timelock_renounce_role__by_holder__role_dropped",),
        ),
    },
    "FedGovernor": {
        "castVote": Public("weight is the caller's stake at the snapshot"),
        "castVoteWithReason": Public("weight is the caller's stake at the snapshot"),
        "castVoteWithReasonAndParams": Public("weight is the caller's stake at the snapshot"),
        "castVoteBySig": Public("authorized by the voter's signature"),
        "castVoteWithReasonAndParamsBySig": Public("authorized by the voter's signature"),
        "queue": Public("only a succeeded proposal; the timelock then enforces the delay"),
        "execute": Public("only a queued proposal whose timelock delay has passed"),
        "onERC721Received": Public("token receiver hook; reverts unless the governor executes"),
        "onERC1155Received": Public("token receiver hook; reverts unless the governor executes"),
        "onERC1155BatchReceived": Public("token receiver hook; reverts unless the governor executes"),
        "propose": Restricted(
            who="an account with proposalThreshold votes",
            error="GovernorInsufficientProposerVotes",
            unauthorized="test_governance.py::test_propose__below_threshold__reverts",
            authorized=(
                "test_governance.py::test_proposal__full_cycle__changes_task_and_registry_parameters",
            ),
        ),
        "cancel": Restricted(
            who="the proposer, while the proposal is pending",
            error="GovernorUnableToCancel",
            unauthorized=f"{THIS_FILE}::test_governor_cancel__not_proposer__reverts",
            authorized=(f"{THIS_FILE}::test_governor_cancel__by_proposer_while_pending__canceled",),
        ),
        "receive": Restricted(
            who="nobody: deposits are disabled while the timelock executes",
            error="GovernorDisabledDeposit",
        ),
        **{
            name: Restricted(
                who="governance: an executed proposal, through the timelock",
                error="GovernorOnlyExecutor",
                authorized=(f"{THIS_FILE}::test_governor_only_governance__executed_proposal__applies",),
            )
            for name in (
                "relay",
                "setVotingDelay",
                "setVotingPeriod",
                "setProposalThreshold",
                "updateQuorumNumerator",
                "updateTimelock",
            )
        },
    },
}


# ---------------------------------------------------------------- the table against the ABIs


def state_changing(contract_type: Any) -> set[str]:
    """Names of the non-view, non-pure functions, plus `receive`/`fallback` when present."""
    names = set()
    for abi in contract_type.abi:
        if abi.type == "function" and abi.stateMutability not in ("view", "pure"):
            names.add(abi.name)
        elif abi.type in ("receive", "fallback"):
            names.add(abi.type)
    return names


def error_names(contract_type: Any) -> set[str]:
    return {abi.name for abi in contract_type.abi if abi.type == "error"}


@cache
def sources_of_tests(file_name: str) -> dict[str, str]:
    """Test function name to its source, for one file in tests/contracts/."""
    source = (TESTS / file_name).read_text()
    tree = ast.parse(source)
    return {
        node.name: ast.get_source_segment(source, node) or ""
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def referenced_test(reference: str) -> str:
    """The source of the test a "file.py::test_name" reference names ("" if there is none)."""
    file_name, _, test_name = reference.partition("::")
    return sources_of_tests(file_name).get(test_name, "")


@pytest.mark.parametrize("contract_name", sorted(ACCESS))
def test_table__classifies_every_state_changing_function(project: Any, contract_name: str) -> None:
    abi_names = state_changing(getattr(project, contract_name).contract_type)

    unclassified = abi_names - set(ACCESS[contract_name])

    assert not unclassified, f"classify {sorted(unclassified)} in ACCESS[{contract_name!r}]"


@pytest.mark.parametrize("contract_name", sorted(ACCESS))
def test_table__restricted_entries_match_the_abi(project: Any, contract_name: str) -> None:
    contract_type = getattr(project, contract_name).contract_type
    restricted = {
        name: entry for name, entry in ACCESS[contract_name].items() if isinstance(entry, Restricted)
    }

    assert set(restricted) <= state_changing(contract_type)
    assert {entry.error for entry in restricted.values()} <= error_names(contract_type)


def restricted_entries() -> list[tuple[str, str, Restricted]]:
    return [
        (contract, name, entry)
        for contract, table in ACCESS.items()
        for name, entry in table.items()
        if isinstance(entry, Restricted)
    ]


@pytest.mark.parametrize(
    ("contract_name", "function", "entry"),
    restricted_entries(),
    ids=[f"{c}.{f}" for c, f, _ in restricted_entries()],
)
def test_table__restricted_entry_has_tests_for_both_paths(
    contract_name: str, function: str, entry: Restricted
) -> None:
    key = f"{contract_name}.{function}"
    if entry.unauthorized:
        assert entry.error in referenced_test(entry.unauthorized), (
            f"{entry.unauthorized} must expect {entry.error}"
        )
    else:
        assert key in UNAUTHORIZED_CASES, f"add {key} to UNAUTHORIZED_CASES"
        assert UNAUTHORIZED_CASES[key].error == entry.error
    for reference in entry.authorized:
        assert referenced_test(reference), f"{reference} does not exist"
    assert entry.authorized or entry.who.startswith("nobody")


# ---------------------------------------------------------------- unauthorized callers


def test_table__every_unauthorized_case_belongs_to_a_restricted_entry() -> None:
    restricted = {
        f"{contract}.{name}" for contract, name, entry in restricted_entries() if not entry.unauthorized
    }

    assert set(UNAUTHORIZED_CASES) == restricted


@dataclass(frozen=True)
class Deployment:
    """What an unauthorized-call case needs: the contracts and the callers."""

    timelock: Any
    governor: Any
    outsider: Any


@dataclass(frozen=True)
class Case:
    """An unauthorized call (made by `outsider`) and the custom error it must revert with; `inputs`
    gives the error's expected arguments from the deployment."""

    error: str
    call: Callable[[Deployment], Any]
    inputs: Callable[[Deployment], dict[str, Any]] = lambda d: {}


def _op(d: Deployment) -> tuple[str, int, bytes, bytes, bytes]:
    """A harmless timelock operation: call the timelock's own getMinDelay."""
    return d.timelock.address, 0, bytes(d.timelock.getMinDelay.encode_input()), ZERO_BYTES32, ZERO_BYTES32


def _governance_case(call: Callable[[Deployment], Any]) -> Case:
    return Case("GovernorOnlyExecutor", call, lambda d: {"account": d.outsider.address})


UNAUTHORIZED_CASES: dict[str, Case] = {
    "FedTimelock.scheduleBatch": Case(
        "AccessControlUnauthorizedAccount",
        lambda d: d.timelock.scheduleBatch(
            [_op(d)[0]], [0], [_op(d)[2]], ZERO_BYTES32, ZERO_BYTES32, 5, sender=d.outsider
        ),
        lambda d: {"account": d.outsider.address, "neededRole": d.timelock.PROPOSER_ROLE()},
    ),
    "FedTimelock.cancel": Case(
        "AccessControlUnauthorizedAccount",
        lambda d: d.timelock.cancel(ZERO_BYTES32, sender=d.outsider),
        lambda d: {"account": d.outsider.address, "neededRole": d.timelock.CANCELLER_ROLE()},
    ),
    "FedTimelock.updateDelay": Case(
        "TimelockUnauthorizedCaller",
        lambda d: d.timelock.updateDelay(0, sender=d.outsider),
        lambda d: {"caller": d.outsider.address},
    ),
    "FedTimelock.revokeRole": Case(
        "AccessControlUnauthorizedAccount",
        lambda d: d.timelock.revokeRole(d.timelock.PROPOSER_ROLE(), d.governor, sender=d.outsider),
        lambda d: {"account": d.outsider.address, "neededRole": d.timelock.DEFAULT_ADMIN_ROLE()},
    ),
    "FedTimelock.renounceRole": Case(
        "AccessControlBadConfirmation",
        lambda d: d.timelock.renounceRole(d.timelock.PROPOSER_ROLE(), d.governor, sender=d.outsider),
    ),
    "FedGovernor.receive": Case(
        "GovernorDisabledDeposit",
        lambda d: d.outsider.transfer(d.governor, 1),
    ),
    "FedGovernor.relay": _governance_case(lambda d: d.governor.relay(d.outsider, 0, b"", sender=d.outsider)),
    "FedGovernor.setVotingDelay": _governance_case(lambda d: d.governor.setVotingDelay(2, sender=d.outsider)),
    "FedGovernor.setVotingPeriod": _governance_case(
        lambda d: d.governor.setVotingPeriod(30, sender=d.outsider)
    ),
    "FedGovernor.setProposalThreshold": _governance_case(
        lambda d: d.governor.setProposalThreshold(0, sender=d.outsider)
    ),
    "FedGovernor.updateQuorumNumerator": _governance_case(
        lambda d: d.governor.updateQuorumNumerator(50, sender=d.outsider)
    ),
    "FedGovernor.updateTimelock": _governance_case(
        lambda d: d.governor.updateTimelock(d.outsider, sender=d.outsider)
    ),
}


@pytest.mark.parametrize("key", sorted(UNAUTHORIZED_CASES))
def test_restricted__unauthorized_caller__reverts_with_its_error(
    timelock: Any, governor: Any, outsider: Any, key: str
) -> None:
    case = UNAUTHORIZED_CASES[key]
    deployment = Deployment(timelock=timelock, governor=governor, outsider=outsider)
    contract = timelock if key.startswith("FedTimelock.") else governor

    with reverts(getattr(contract, case.error), **case.inputs(deployment)):
        case.call(deployment)


# ---------------------------------------------------------------- FedTimelock: authorized paths


@pytest.fixture
def governor_signer(accounts: Any, governor: Any) -> Any:
    """The governor, impersonated: the timelock's only proposer and canceller."""
    signer = accounts[governor.address]
    signer.balance += 10 * 10**18
    return signer


def schedule_harmless(timelock: Any, sender: Any) -> bytes:
    """Schedules a call of the timelock's own getMinDelay; returns the operation id."""
    target, value, data, predecessor, salt = (
        timelock.address,
        0,
        bytes(timelock.getMinDelay.encode_input()),
        ZERO_BYTES32,
        ZERO_BYTES32,
    )
    timelock.schedule(target, value, data, predecessor, salt, timelock.getMinDelay(), sender=sender)
    return bytes(timelock.hashOperation(target, value, data, predecessor, salt))


def test_timelock_schedule__by_governor__operation_pending(timelock: Any, governor_signer: Any) -> None:
    operation = schedule_harmless(timelock, governor_signer)

    assert timelock.isOperationPending(operation)


def test_timelock_cancel__by_governor__operation_removed(timelock: Any, governor_signer: Any) -> None:
    operation = schedule_harmless(timelock, governor_signer)

    timelock.cancel(operation, sender=governor_signer)

    assert not timelock.isOperation(operation)


def test_timelock_update_delay__by_timelock_itself__changes_delay(
    timelock: Any, timelock_signer: Any
) -> None:
    timelock.updateDelay(60, sender=timelock_signer)

    assert timelock.getMinDelay() == 60


def test_timelock_grant_role__by_timelock_itself__role_granted(
    timelock: Any, timelock_signer: Any, outsider: Any
) -> None:
    timelock.grantRole(timelock.CANCELLER_ROLE(), outsider, sender=timelock_signer)

    assert timelock.hasRole(timelock.CANCELLER_ROLE(), outsider)


def test_timelock_revoke_role__by_timelock_itself__role_revoked(
    timelock: Any, timelock_signer: Any, governor: Any
) -> None:
    timelock.revokeRole(timelock.CANCELLER_ROLE(), governor, sender=timelock_signer)

    assert not timelock.hasRole(timelock.CANCELLER_ROLE(), governor)


def test_timelock_renounce_role__by_holder__role_dropped(timelock: Any, governor_signer: Any) -> None:
    timelock.renounceRole(timelock.CANCELLER_ROLE(), governor_signer, sender=governor_signer)

    assert not timelock.hasRole(timelock.CANCELLER_ROLE(), governor_signer)


# ---------------------------------------------------------------- FedGovernor: authorized paths


@pytest.fixture
def proposer(active_trainers: list[Any], active_aggregators: list[Any], chain: Any) -> Any:
    """A trainer with exactly the proposal threshold, once the stakes are a second in the past."""
    advance(chain, 1)
    return active_trainers[0]


def pass_proposal(
    proposal: Proposal, governor: Any, timelock: Any, proposer: Any, voters: list[Any], chain: Any
) -> Any:
    """Proposes `proposal`, passes it with `voters`' votes for, queues and executes it; returns
    the execution receipt."""
    proposal.propose(governor, proposer)
    proposal_id = proposal.id(governor)
    advance(chain, int(governor.votingDelay()) + 1)
    for voter in voters:
        governor.castVote(proposal_id, int(VoteType.FOR), sender=voter)
    advance(chain, int(governor.votingPeriod()) + 1)
    queued = proposal.queue(governor, proposer)
    chain.mine(timestamp=int(queued.timestamp) + int(timelock.getMinDelay()))
    executed = proposal.execute(governor, proposer)
    assert governor.state(proposal_id) == ProposalState.EXECUTED
    return executed


@dataclass(frozen=True)
class GovernanceContext:
    """What a governance-only call needs to be built and checked."""

    project: Any
    owner: Any
    governor: Any
    token: Any
    outsider: Any


# Each builder returns the calldata of a governance-only call on the governor, and a check that
# its effect is in place once the proposal has executed.
GovernanceCall = Callable[[GovernanceContext], tuple[bytes, Callable[[], bool]]]


def _set_voting_delay(c: GovernanceContext) -> tuple[bytes, Callable[[], bool]]:
    return c.governor.setVotingDelay.encode_input(7), lambda: c.governor.votingDelay() == 7


def _set_voting_period(c: GovernanceContext) -> tuple[bytes, Callable[[], bool]]:
    return c.governor.setVotingPeriod.encode_input(45), lambda: c.governor.votingPeriod() == 45


def _set_proposal_threshold(c: GovernanceContext) -> tuple[bytes, Callable[[], bool]]:
    return (
        c.governor.setProposalThreshold.encode_input(250 * TOKEN),
        lambda: c.governor.proposalThreshold() == 250 * TOKEN,
    )


def _update_quorum_numerator(c: GovernanceContext) -> tuple[bytes, Callable[[], bool]]:
    return c.governor.updateQuorumNumerator.encode_input(10), lambda: c.governor.quorumNumerator() == 10


def _relay(c: GovernanceContext) -> tuple[bytes, Callable[[], bool]]:
    approve = bytes(c.token.approve.encode_input(c.outsider, 1))
    return (
        c.governor.relay.encode_input(c.token, 0, approve),
        lambda: c.token.allowance(c.governor, c.outsider) == 1,
    )


def _update_timelock(c: GovernanceContext) -> tuple[bytes, Callable[[], bool]]:
    successor = c.owner.deploy(c.project.FedTimelock, 5, [c.governor.address], [ZERO_ADDRESS], ZERO_ADDRESS)
    calldata = c.governor.updateTimelock.encode_input(successor)
    return calldata, lambda: c.governor.timelock() == successor.address


GOVERNANCE_CALLS: dict[str, GovernanceCall] = {
    "relay": _relay,
    "setVotingDelay": _set_voting_delay,
    "setVotingPeriod": _set_voting_period,
    "setProposalThreshold": _set_proposal_threshold,
    "updateQuorumNumerator": _update_quorum_numerator,
    "updateTimelock": _update_timelock,
}


def test_governance_calls__cover_every_only_governance_entry() -> None:
    only_governance = {
        name
        for name, entry in ACCESS["FedGovernor"].items()
        if isinstance(entry, Restricted) and entry.error == "GovernorOnlyExecutor"
    }

    assert set(GOVERNANCE_CALLS) == only_governance


@pytest.mark.parametrize("function", sorted(GOVERNANCE_CALLS))
def test_governor_only_governance__executed_proposal__applies(
    project: Any,
    owner: Any,
    governor: Any,
    timelock: Any,
    token: Any,
    outsider: Any,
    proposer: Any,
    aggregators: list[Any],
    chain: Any,
    function: str,
) -> None:
    context = GovernanceContext(
        project=project, owner=owner, governor=governor, token=token, outsider=outsider
    )
    calldata, applied = GOVERNANCE_CALLS[function](context)
    proposal = Proposal.of([(governor, bytes(calldata))], f"governance calls {function}")

    pass_proposal(proposal, governor, timelock, proposer, aggregators, chain)

    assert applied()


def test_governor_only_governance__timelock_outside_a_proposal__reverts(
    governor: Any, timelock_signer: Any
) -> None:
    # The executor alone is not enough: the call must be one the governor is executing, or
    # popping it from the governor's empty queue of governance calls panics.
    with pytest.raises(VirtualMachineError, match="0x31"):
        governor.setVotingDelay(7, sender=timelock_signer)


def test_governor_cancel__by_proposer_while_pending__canceled(
    governor: Any, task: Any, proposer: Any
) -> None:
    proposal = Proposal.of([(task, bytes(task.roundDuration.encode_input()))], "to be canceled")
    proposal.propose(governor, proposer)

    governor.cancel(*proposal.args(), sender=proposer)

    assert governor.state(proposal.id(governor)) == ProposalState.CANCELED


def test_governor_cancel__not_proposer__reverts(
    governor: Any, task: Any, proposer: Any, outsider: Any
) -> None:
    proposal = Proposal.of([(task, bytes(task.roundDuration.encode_input()))], "not yours to cancel")
    proposal.propose(governor, proposer)

    with reverts(governor.GovernorUnableToCancel, proposalId=proposal.id(governor), account=outsider.address):
        governor.cancel(*proposal.args(), sender=outsider)
