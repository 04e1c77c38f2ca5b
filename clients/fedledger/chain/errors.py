"""Project exceptions, and decoding of revert data into them.

A revert carries 4 selector bytes and ABI-encoded arguments. `ErrorDecoder` knows every custom
error of the fedledger ABIs (including the OpenZeppelin ones they inherit) plus Solidity's
`Error(string)` and `Panic(uint256)`, and turns revert data into a `ContractRevertError` whose
message names the error: `TaskAlreadyCommitted(round=0, trainer=0x70997970...)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from fedledger.chain.params import (
    AggregationRule,
    GovernorSetting,
    Phase,
    ProposalState,
    RegistryParameter,
    RejectionReason,
    Role,
    RoundStatus,
    TaskParameter,
)

# Solidity's internalType of an enum argument -> its Python mirror, to print names, not numbers.
ENUMS_BY_INTERNAL_TYPE: Mapping[str, type[IntEnum]] = {
    "enum IFederatedTask.Phase": Phase,
    "enum IFederatedTask.RoundStatus": RoundStatus,
    "enum IFederatedTask.RejectionReason": RejectionReason,
    "enum IFederatedTask.AggregationRule": AggregationRule,
    "enum IFederatedTask.Parameter": TaskParameter,
    "enum IStakingRegistry.Role": Role,
    "enum IStakingRegistry.Parameter": RegistryParameter,
    "enum IFedGovernor.Setting": GovernorSetting,
    "enum IGovernor.ProposalState": ProposalState,
}

_PANIC_CODES = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialized function",
}


class FedledgerError(Exception):
    """Base of every fedledger client error."""


class RpcUnavailableError(FedledgerError, ConnectionError):
    """No JSON-RPC endpoint answers at the URL (node down, wrong port, wrong URL)."""


class MissingContractError(FedledgerError):
    """A contract address holds no code: the node lost its state, or it is another chain."""


class ContractRevertError(FedledgerError):
    """A call or transaction reverted. `name` is the custom error (or `Error`/`Panic`)."""

    def __init__(self, name: str, arguments: Mapping[str, Any], data: bytes, *, context: str = "") -> None:
        self.name = name
        self.arguments = dict(arguments)
        self.data = data
        self.context = context
        super().__init__(self.signature if not context else f"{context}: {self.signature}")

    @property
    def signature(self) -> str:
        """`Name(arg=value, ...)` with addresses checksummed, bytes as hex and enums by name."""
        shown = ", ".join(f"{key}={_show(value)}" for key, value in self.arguments.items())
        return f"{self.name}({shown})"

    def with_context(self, context: str) -> ContractRevertError:
        """The same error, its message prefixed with what was being done."""
        return type(self)(self.name, self.arguments, self.data, context=context)


class UnknownRevertError(ContractRevertError):
    """A revert whose selector matches no known error (or carries no data at all)."""


class TransactionFailedError(FedledgerError):
    """A transaction was mined but failed, or was never mined in time."""


@dataclass(frozen=True)
class _ErrorSpec:
    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]
    enums: tuple[type[IntEnum] | None, ...]


class ErrorDecoder:
    """Maps 4-byte selectors to the custom errors declared in a set of ABIs."""

    def __init__(self, abis: Iterable[Sequence[Mapping[str, Any]]]) -> None:
        self._errors: dict[bytes, _ErrorSpec] = {
            selector("Error(string)"): _ErrorSpec("Error", ("message",), ("string",), (None,)),
            selector("Panic(uint256)"): _ErrorSpec("Panic", ("code",), ("uint256",), (None,)),
        }
        for abi in abis:
            for entry in abi:
                if entry.get("type") == "error":
                    spec = _spec(entry)
                    self._errors[selector(f"{spec.name}({','.join(spec.types)})")] = spec

    def known(self) -> list[str]:
        """Names of all errors this decoder recognizes, sorted."""
        return sorted({spec.name for spec in self._errors.values()})

    def decode(self, data: bytes | str | None) -> ContractRevertError:
        """The error that `data` (revert bytes or 0x-hex) encodes."""
        raw = _to_bytes(data)
        if len(raw) < 4:
            return UnknownRevertError("UnknownRevert", {"data": "0x" + raw.hex()} if raw else {}, raw)
        spec = self._errors.get(raw[:4])
        if spec is None:
            return UnknownRevertError("UnknownRevert", {"selector": "0x" + raw[:4].hex(), "data": raw}, raw)
        try:
            values = abi_decode(list(spec.types), raw[4:])
        except (DecodingError, ValueError, OverflowError):
            return UnknownRevertError(spec.name, {"undecodable": "0x" + raw[4:].hex()}, raw)
        arguments: dict[str, Any] = {}
        for index, (name, kind, value, enum) in enumerate(
            zip(spec.names, spec.types, values, spec.enums, strict=True)
        ):
            key = name or f"arg{index}"
            if kind == "address":
                value = to_checksum_address(value)
            elif enum is not None and value in {int(m) for m in enum}:
                value = enum(value)
            elif spec.name == "Panic":
                value = f"0x{value:02x} ({_PANIC_CODES.get(value, 'unknown panic')})"
            arguments[key] = value
        return ContractRevertError(spec.name, arguments, raw)


def selector(signature: str) -> bytes:
    """The 4-byte selector of a canonical signature such as `Panic(uint256)`."""
    return keccak(text=signature)[:4]


def canonical_type(entry: Mapping[str, Any]) -> str:
    """An ABI input's canonical type, expanding tuples: `(uint256,address)[]`."""
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        inner = ",".join(canonical_type(component) for component in entry.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _spec(entry: Mapping[str, Any]) -> _ErrorSpec:
    inputs = entry.get("inputs", [])
    return _ErrorSpec(
        name=str(entry["name"]),
        names=tuple(str(i.get("name", "")) for i in inputs),
        types=tuple(canonical_type(i) for i in inputs),
        enums=tuple(ENUMS_BY_INTERNAL_TYPE.get(str(i.get("internalType", ""))) for i in inputs),
    )


def _to_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    text = data[2:] if data.startswith(("0x", "0X")) else data
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def _show(value: Any) -> str:
    if isinstance(value, IntEnum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        try:
            return to_checksum_address(value)
        except ValueError:
            return value
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, str) and not value.startswith("0x"):
        return repr(value)
    return str(value)
