"""Sending contract transactions signed locally with eth-account.

`TransactionSender` estimates gas (a revert surfaces here, decoded into `ContractRevertError`
before anything is signed), keeps each account's next nonce itself so consecutive
transactions need no round trip for it, reuses a fee quote for two seconds, signs, sends the
raw transaction and polls for the receipt every 10 ms (web3's default 0.1 s would dominate on
Anvil, which mines in ~1 ms).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.abi import get_abi_input_types, get_abi_output_types
from hexbytes import HexBytes
from web3 import Web3
from web3._utils.abi import map_abi_data
from web3._utils.normalizers import BASE_RETURN_NORMALIZERS
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    TimeExhausted,
    Web3Exception,
    Web3RPCError,
)
from web3.types import Nonce, RPCEndpoint, TxParams, TxReceipt, Wei

from fedledger.chain.errors import (
    ContractRevertError,
    ErrorDecoder,
    MissingContractError,
    TransactionFailedError,
)

DEFAULT_POLL_LATENCY = 0.01
DEFAULT_RECEIPT_TIMEOUT = 120.0
GAS_MARGIN = 1.2
# A fee quote (latest base fee and tip) is reused this long: two requests fewer per transaction.
# The max fee is twice the base fee, which covers five full blocks of +12.5% each, and two
# seconds hold at most five blocks even at 0.4 s per block.
FEE_QUOTE_SECONDS = 2.0


@dataclass(frozen=True, kw_only=True)
class TxResult:
    """A mined, successful transaction."""

    label: str
    tx_hash: str
    sender: str
    block_number: int
    gas_used: int
    receipt: TxReceipt


class TransactionSender:
    """Builds, signs, sends and confirms transactions for any number of local accounts."""

    def __init__(
        self,
        w3: Web3,
        decoder: ErrorDecoder,
        *,
        poll_latency: float = DEFAULT_POLL_LATENCY,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
    ) -> None:
        self.w3 = w3
        self.decoder = decoder
        self.poll_latency = poll_latency
        self.receipt_timeout = receipt_timeout
        self.chain_id = int(w3.eth.chain_id)
        self._nonces: dict[str, int] = {}
        self._lock = threading.Lock()
        self._fee_quote: tuple[float, TxParams] | None = None  # (monotonic time, fee fields)

    def call(self, function: ContractFunction, *, sender: str | None = None, label: str = "") -> Any:
        """Runs a view (or simulates a transaction) and returns its result; reverts are decoded."""
        params: TxParams = {"from": cast(ChecksumAddress, sender)} if sender else {}
        try:
            return function.call(params)
        except ContractLogicError as exc:
            raise self.revert_error(exc, label or function.fn_name) from None
        except BadFunctionCallOutput:
            if self.w3.eth.get_code(function.address):
                raise
            raise self._missing_contract(function, label) from None

    def _missing_contract(self, function: ContractFunction, label: str) -> MissingContractError:
        return MissingContractError(
            f"{label or function.fn_name}: no contract at {function.address} on chain {self.chain_id} "
            "any more: the node lost its state (an Anvil restarted without it?); redeploy with "
            "`fedledger deploy`"
        )

    def view(self, function: ContractFunction, *, label: str = "") -> Any:
        """`call` for the views services read at every block, at half the client's CPU: the
        request goes straight to the provider, past web3's middleware and request manager
        (chain-id checks, ENS lookups and formatters a view call does not need). Same results
        (decoded and normalized as web3 does) and the same errors as `call`."""
        abi = function.abi
        data = function.selector + self.w3.codec.encode(get_abi_input_types(abi), function.args).hex()
        request = {"to": function.address, "data": data}
        response = self.w3.provider.make_request(cast(RPCEndpoint, "eth_call"), [request, "latest"])
        error = response.get("error")
        if error is not None:
            revert = error.get("data") if isinstance(error, dict) else None
            if isinstance(revert, str) and revert.startswith("0x"):
                raise self.decoder.decode(revert).with_context(label or function.fn_name)
            raise TransactionFailedError(f"{label or function.fn_name}: the node refused the call: {error}")
        output_types = get_abi_output_types(abi)
        try:
            decoded = self.w3.codec.decode(output_types, HexBytes(response["result"]))
        except DecodingError:
            if self.w3.eth.get_code(function.address):
                raise
            raise self._missing_contract(function, label) from None
        values = map_abi_data(BASE_RETURN_NORMALIZERS, output_types, decoded)
        return values[0] if len(values) == 1 else values

    def transact(
        self,
        account: LocalAccount,
        function: ContractFunction,
        *,
        value: int = 0,
        label: str = "",
        min_gas: int = 0,
    ) -> TxResult:
        """Sends `function` from `account` and waits for it to be mined successfully.

        `min_gas` raises the gas limit above the estimate for calls whose cost depends on what
        others do first (an attestation that turns out to finalize the round costs far more).
        """
        label = label or function.fn_name
        params: TxParams = {"from": account.address, "value": Wei(value), "chainId": self.chain_id}
        try:
            estimate = function.estimate_gas(params)
        except ContractLogicError as exc:
            raise self.revert_error(exc, label) from None
        except Web3RPCError as exc:
            raise TransactionFailedError(f"{label}: the node refused to estimate gas: {exc}") from None
        params.update(self._fees())
        params["gas"] = max(int(estimate * GAS_MARGIN), min_gas)
        with self._lock:
            nonce = self._next_nonce(account.address)
            params["nonce"] = Nonce(nonce)
            tx = function.build_transaction(params)
            signed = account.sign_transaction(cast(dict[str, Any], tx))
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (Web3Exception, ValueError) as exc:
                self._nonces.pop(account.address, None)  # resync from the node next time
                self._fee_quote = None  # and quote fees again, in case they were the reason
                raise TransactionFailedError(f"{label}: the node rejected the transaction: {exc}") from None
            self._nonces[account.address] = nonce + 1
        return self._confirm(tx_hash, account.address, params, function, label)

    def revert_error(self, exc: ContractLogicError, context: str) -> ContractRevertError:
        """The project error for a web3 revert exception, named by its selector when known."""
        data = exc.data if isinstance(exc.data, str) and exc.data.startswith("0x") else None
        error = self.decoder.decode(data)
        if data is None and exc.message:
            error.arguments["reason"] = exc.message
        return error.with_context(context)

    def reset_nonces(self) -> None:
        """Forgets the tracked nonces (after transactions were sent by someone else)."""
        with self._lock:
            self._nonces.clear()

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            checksum = cast(ChecksumAddress, address)
            self._nonces[address] = int(self.w3.eth.get_transaction_count(checksum, "pending"))
        return self._nonces[address]

    def _fees(self) -> TxParams:
        quote = self._fee_quote
        if quote is not None and time.monotonic() - quote[0] < FEE_QUOTE_SECONDS:
            return dict(quote[1])  # type: ignore[return-value]
        fees = self._quote_fees()
        self._fee_quote = (time.monotonic(), fees)
        return dict(fees)  # type: ignore[return-value]

    def _quote_fees(self) -> TxParams:
        base_fee = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base_fee is None:
            return {"gasPrice": self.w3.eth.gas_price}
        tip = int(self.w3.eth.max_priority_fee)
        return {"maxFeePerGas": Wei(2 * int(base_fee) + tip), "maxPriorityFeePerGas": Wei(tip)}

    def _confirm(
        self, tx_hash: HexBytes, sender: str, params: TxParams, function: ContractFunction, label: str
    ) -> TxResult:
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.receipt_timeout, poll_latency=self.poll_latency
            )
        except TimeExhausted:
            raise TransactionFailedError(
                f"{label}: transaction {tx_hash.to_0x_hex()} not mined within {self.receipt_timeout:.0f} s"
            ) from None
        if receipt["status"] != 1:
            # Replay it as a call on the state it ran against to learn why it failed.
            replay: TxParams = {"from": cast(ChecksumAddress, sender), "value": params.get("value", Wei(0))}
            try:
                function.call(replay, block_identifier=max(0, int(receipt["blockNumber"]) - 1))
            except ContractLogicError as exc:
                raise self.revert_error(exc, f"{label} (tx {tx_hash.to_0x_hex()})") from None
            raise TransactionFailedError(
                f"{label}: transaction {tx_hash.to_0x_hex()} failed in block {receipt['blockNumber']} "
                f"(gas used {receipt['gasUsed']} of {params.get('gas')})"
            )
        return TxResult(
            label=label,
            tx_hash=tx_hash.to_0x_hex(),
            sender=sender,
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            receipt=receipt,
        )
