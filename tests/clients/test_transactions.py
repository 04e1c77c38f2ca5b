"""`TransactionSender`'s fee quote: asked once for a burst of transactions, asked again once
it is two seconds old or after the node rejected a transaction."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from web3.exceptions import Web3RPCError

from fedledger.chain import transactions
from fedledger.chain.errors import ErrorDecoder, TransactionFailedError
from fedledger.chain.transactions import TransactionSender

ACCOUNT = Account.from_key("0x" + "07" * 32)


class FeeNode:
    """The `w3.eth` of a node whose base fee rises by 1 gwei at every quote."""

    def __init__(self) -> None:
        self.quotes = 0
        self.chain_id = 31337
        self.max_priority_fee = 10**9
        self.rejecting = False

    def get_block(self, block: str) -> dict[str, int]:
        self.quotes += 1
        return {"baseFeePerGas": self.quotes * 10**9}

    def get_transaction_count(self, address: str, block: str) -> int:
        return 0

    def send_raw_transaction(self, raw: bytes) -> bytes:
        raise Web3RPCError("max fee per gas less than block base fee")


class Function:
    """A contract function whose transaction goes nowhere."""

    fn_name = "commitUpdate"

    def estimate_gas(self, params: Any) -> int:
        return 21_000

    def build_transaction(self, params: Any) -> dict[str, Any]:
        return {**params, "to": "0x" + "11" * 20, "data": "0x", "value": 0}


@pytest.fixture
def node() -> FeeNode:
    return FeeNode()


@pytest.fixture
def sender(node: FeeNode) -> TransactionSender:
    return TransactionSender(SimpleNamespace(eth=node), ErrorDecoder([]))  # type: ignore[arg-type]


def test_fees__one_quote_for_a_burst(node: FeeNode, sender: TransactionSender) -> None:
    first = sender._fees()
    assert [sender._fees() for _ in range(3)] == [first] * 3
    assert node.quotes == 1
    assert first == {"maxFeePerGas": 2 * 10**9 + 10**9, "maxPriorityFeePerGas": 10**9}


def test_fees__quoted_again_when_two_seconds_old(
    node: FeeNode, sender: TransactionSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(transactions.time, "monotonic", lambda: now[0])
    sender._fees()
    now[0] += transactions.FEE_QUOTE_SECONDS - 0.01
    sender._fees()
    assert node.quotes == 1
    now[0] += 0.02
    assert sender._fees()["maxFeePerGas"] == 2 * 2 * 10**9 + 10**9  # type: ignore[typeddict-item]
    assert node.quotes == 2


def test_fees__quoted_again_after_the_node_rejected_a_transaction(
    node: FeeNode, sender: TransactionSender
) -> None:
    with pytest.raises(TransactionFailedError, match="rejected the transaction"):
        sender.transact(ACCOUNT, Function())  # type: ignore[arg-type]
    assert node.quotes == 1
    sender._fees()
    assert node.quotes == 2
