"""Revert data decoded into project errors named after the contracts' custom errors."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode

from fedledger.chain.abi import load_abis
from fedledger.chain.errors import ContractRevertError, ErrorDecoder, UnknownRevertError, selector
from fedledger.chain.params import Phase, ProposalState, Role

TRAINER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture(scope="module")
def decoder() -> ErrorDecoder:
    return ErrorDecoder(load_abis().values())


def revert(signature: str, types: list[str], values: list[object]) -> bytes:
    return selector(signature) + encode(types, values)


def test_decode__custom_error__names_error_and_arguments(decoder: ErrorDecoder) -> None:
    data = revert("TaskAlreadyCommitted(uint256,address)", ["uint256", "address"], [0, TRAINER.lower()])
    error = decoder.decode(data)
    assert isinstance(error, ContractRevertError) and not isinstance(error, UnknownRevertError)
    assert error.name == "TaskAlreadyCommitted"
    assert error.arguments == {"round": 0, "trainer": TRAINER}
    assert str(error) == f"TaskAlreadyCommitted(round=0, trainer={TRAINER})"


def test_decode__hex_string_input(decoder: ErrorDecoder) -> None:
    data = revert("TaskNotEnoughTrainers(uint256,uint256)", ["uint256", "uint256"], [1, 2])
    assert str(decoder.decode("0x" + data.hex())) == "TaskNotEnoughTrainers(active=1, required=2)"


def test_decode__enum_arguments__shown_by_name(decoder: ErrorDecoder) -> None:
    data = revert("TaskUnexpectedPhase(uint256,uint8,uint8)", ["uint256", "uint8", "uint8"], [3, 1, 3])
    error = decoder.decode(data)
    assert error.arguments["expected"] is Phase.COMMIT
    assert str(error) == "TaskUnexpectedPhase(round=3, expected=Phase.COMMIT, actual=Phase.AGGREGATION)"
    registered = decoder.decode(
        revert("RegistryAlreadyRegistered(address,uint8)", ["address", "uint8"], [TRAINER, 1])
    )
    assert registered.arguments["role"] is Role.TRAINER
    state = decoder.decode(
        revert(
            "GovernorUnexpectedProposalState(uint256,uint8,bytes32)",
            ["uint256", "uint8", "bytes32"],
            [7, 0, (1 << 1).to_bytes(32, "big")],
        )
    )
    assert state.arguments["current"] is ProposalState.PENDING
    assert "expectedStates=0x" + "00" * 31 + "02" in str(state)


def test_decode__knows_errors_of_every_contract(decoder: ErrorDecoder) -> None:
    known = set(decoder.known())
    assert {"TaskAlreadyCommitted", "RegistryStakeBelowMinimum", "GovernorNonexistentProposal"} <= known
    assert {"ERC20InsufficientBalance", "TimelockUnexpectedOperationState", "Error", "Panic"} <= known


def test_decode__error_string_and_panic(decoder: ErrorDecoder) -> None:
    assert str(decoder.decode(revert("Error(string)", ["string"], ["boom"]))) == "Error(message='boom')"
    panic = decoder.decode(revert("Panic(uint256)", ["uint256"], [0x11]))
    assert panic.name == "Panic" and "overflow" in str(panic)


def test_decode__unknown_selector_or_no_data(decoder: ErrorDecoder) -> None:
    unknown = decoder.decode("0xdeadbeef")
    assert isinstance(unknown, UnknownRevertError) and "selector=0xdeadbeef" in str(unknown)
    empty = decoder.decode(None)
    assert isinstance(empty, UnknownRevertError) and str(empty) == "UnknownRevert()"


def test_decode__truncated_arguments__does_not_raise(decoder: ErrorDecoder) -> None:
    data = selector("TaskAlreadyCommitted(uint256,address)") + b"\x00" * 10
    error = decoder.decode(data)
    assert isinstance(error, UnknownRevertError) and error.name == "TaskAlreadyCommitted"


def test_with_context__prefixes_message_and_keeps_type(decoder: ErrorDecoder) -> None:
    error = decoder.decode("0xdeadbeef").with_context("register TRAINER")
    assert isinstance(error, UnknownRevertError)
    assert str(error).startswith("register TRAINER: UnknownRevert(")
