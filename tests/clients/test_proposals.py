"""Proposals as data: parsing changes, calldata, ids, and state messages."""

from __future__ import annotations

import re

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from fedledger.chain.params import TOKEN, AggregationRule, ProposalState, RegistryParameter, TaskParameter
from fedledger.chain.proposals import (
    ParameterChange,
    Proposal,
    ProposalError,
    ProposalTimes,
    decode_change,
    parameter_names,
    parse_change,
    state_problem,
)

ADDRESSES = {
    "FederatedTask": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    "StakingRegistry": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task.AGGREGATION_RULE=MEDIAN", ParameterChange("task", TaskParameter.AGGREGATION_RULE, 1)),
        ("task.aggregationRule=trimmed_mean", ParameterChange("task", TaskParameter.AGGREGATION_RULE, 2)),
        ("Task.quorum_bps=7_000", ParameterChange("task", TaskParameter.QUORUM_BPS, 7000)),
        (
            "registry.MinTrainerStake=150FED",
            ParameterChange("registry", RegistryParameter.MIN_TRAINER_STAKE, 150 * TOKEN),
        ),
    ],
)
def test_parse_change__spellings(text: str, expected: ParameterChange) -> None:
    assert parse_change(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task.AGGREGATION_RULE", "TARGET.PARAMETER=VALUE"),
        ("AGGREGATION_RULE=1", "TARGET.PARAMETER=VALUE"),
        ("timelock.DELAY=1", "unknown target 'timelock'"),
        ("task.BOGUS=1", "unknown parameter 'BOGUS' for task: one of COMMIT_WINDOW"),
        ("task.AGGREGATION_RULE=mean", "bad value"),
        ("task.QUORUM_BPS=-5", "bad value"),
    ],
)
def test_parse_change__errors(text: str, message: str) -> None:
    with pytest.raises(ProposalError, match=message):
        parse_change(text)


def test_parameter_names__cover_both_contracts() -> None:
    names = parameter_names()
    assert "task.AGGREGATION_RULE" in names and "registry.UNBONDING_PERIOD" in names
    assert len(names) == len(TaskParameter) + len(RegistryParameter)


def test_change__calldata_is_set_parameter_and_decodes_back() -> None:
    change = parse_change("task.AGGREGATION_RULE=MEDIAN")
    assert change.calldata == keccak(text="setParameter(uint8,uint256)")[:4] + encode(
        ["uint8", "uint256"], [3, 1]
    )
    assert decode_change(ADDRESSES["FederatedTask"].lower(), change.calldata, ADDRESSES) == change
    assert decode_change(ADDRESSES["StakingRegistry"], b"\x12\x34\x56\x78", ADDRESSES) is None
    assert str(change) == "task.AGGREGATION_RULE=MEDIAN (1)"
    assert str(parse_change("registry.MIN_AGGREGATOR_STAKE=2000FED")).endswith("(2,000 FED)")


def test_proposal__id_matches_openzeppelin_hash() -> None:
    changes = [parse_change("task.AGGREGATION_RULE=MEDIAN"), parse_change("registry.UNBONDING_PERIOD=7200")]
    proposal = Proposal.from_changes(changes, ADDRESSES, "two changes")
    assert proposal.targets == (ADDRESSES["FederatedTask"], ADDRESSES["StakingRegistry"])
    assert proposal.values == (0, 0)
    expected = keccak(
        encode(
            ["address[]", "uint256[]", "bytes[]", "bytes32"],
            [list(proposal.targets), [0, 0], [c.calldata for c in changes], keccak(text="two changes")],
        )
    )
    assert proposal.proposal_id == int.from_bytes(expected, "big")
    assert proposal.describe(ADDRESSES) == [
        "task.AGGREGATION_RULE=MEDIAN (1)",
        "registry.UNBONDING_PERIOD=7200",
    ]


def test_proposal__from_event_round_trips() -> None:
    proposal = Proposal.from_changes([parse_change("task.MIN_UPDATES=3")], ADDRESSES, "more updates")
    event = {
        "targets": [t.lower() for t in proposal.targets],
        "values": [0],
        "calldatas": ["0x" + proposal.calldatas[0].hex()],
        "description": "more updates",
    }
    assert Proposal.from_event(event) == proposal


def test_proposal__needs_changes_and_description() -> None:
    with pytest.raises(ProposalError, match="at least one change"):
        Proposal.from_changes([], ADDRESSES, "nothing")
    with pytest.raises(ProposalError, match="description"):
        Proposal.from_changes([parse_change("task.MIN_UPDATES=3")], ADDRESSES, "  ")


def times(state: ProposalState, now: int = 1_000, eta: int = 0) -> ProposalTimes:
    return ProposalTimes(proposal_id=123, state=state, snapshot=1_010, deadline=1_030, eta=eta, now=now)


def test_state_problem__allowed_actions() -> None:
    assert state_problem("vote", times(ProposalState.ACTIVE)) is None
    assert state_problem("queue", times(ProposalState.SUCCEEDED)) is None
    assert state_problem("execute", times(ProposalState.QUEUED, now=1_050, eta=1_050)) is None


@pytest.mark.parametrize(
    ("action", "state", "now", "eta", "message"),
    [
        (
            "vote",
            ProposalState.PENDING,
            1_000,
            0,
            "proposal 123 is Pending; voting opens at .* \\(in 11 s\\)",
        ),
        ("queue", ProposalState.ACTIVE, 1_020, 0, "is Active; voting is open until .* \\(in 10 s\\)"),
        ("execute", ProposalState.QUEUED, 1_040, 1_045, "is Queued; the timelock delay ends at .*in 5 s"),
        ("execute", ProposalState.SUCCEEDED, 1_040, 0, "is Succeeded; it passed but is not queued"),
        ("vote", ProposalState.DEFEATED, 1_040, 0, "is Defeated; it did not reach quorum"),
        ("execute", ProposalState.EXECUTED, 1_040, 1_035, "is Executed; it has already been executed"),
    ],
)
def test_state_problem__explains_what_to_wait_for(
    action: str, state: ProposalState, now: int, eta: int, message: str
) -> None:
    problem = state_problem(action, times(state, now=now, eta=eta))
    assert problem is not None
    assert re.search(message, problem), problem


def test_aggregation_rule_enum_mirrors_contract() -> None:
    assert [r.name for r in AggregationRule] == ["FEDAVG", "MEDIAN", "TRIMMED_MEAN", "MULTI_KRUM"]
