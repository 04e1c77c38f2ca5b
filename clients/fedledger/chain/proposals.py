"""Governance proposals as data: parameter changes, their calldata, ids, and state messages.

Pure functions, shared by the ape script (`ape run governance ...`) and the web3 client: a
proposal is `targets`, `values`, `calldatas` and a description, exactly what the governor hashes
into the proposal id and needs again to queue and execute. Both reconstruct it from the
governor's `ProposalCreated` event, so nothing has to be stored beside the chain.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from fedledger.chain.params import AggregationRule, ProposalState, RegistryParameter, TaskParameter
from fedledger.chain.values import format_token, parse_uint

SET_PARAMETER_SELECTOR = keccak(text="setParameter(uint8,uint256)")[:4]

# The short name used on command lines -> (contract name in the deployments file, parameter enum).
TARGETS: Mapping[str, tuple[str, type[IntEnum]]] = {
    "task": ("FederatedTask", TaskParameter),
    "registry": ("StakingRegistry", RegistryParameter),
}
# Parameters whose values are better typed as enum names.
VALUE_ENUMS: Mapping[IntEnum, type[IntEnum]] = {TaskParameter.AGGREGATION_RULE: AggregationRule}
# Parameters that are token amounts (shown in FED as well).
TOKEN_VALUED: frozenset[IntEnum] = frozenset(
    {
        TaskParameter.REWARD_PER_ROUND,
        TaskParameter.AGGREGATOR_FEE,
        RegistryParameter.MIN_TRAINER_STAKE,
        RegistryParameter.MIN_AGGREGATOR_STAKE,
    }
)


class ProposalError(ValueError):
    """A parameter change or proposal that cannot be built as written."""


@dataclass(frozen=True)
class ParameterChange:
    """`<target>.setParameter(parameter, value)` with target `task` or `registry`."""

    target: str
    parameter: IntEnum
    value: int

    def __str__(self) -> str:
        enum = VALUE_ENUMS.get(self.parameter)
        shown = str(self.value)
        if enum is not None and self.value in set(enum):
            shown = f"{enum(self.value).name} ({self.value})"
        elif self.parameter in TOKEN_VALUED:
            shown = f"{self.value} ({format_token(self.value)})"
        return f"{self.target}.{self.parameter.name}={shown}"

    @property
    def calldata(self) -> bytes:
        return SET_PARAMETER_SELECTOR + abi_encode(["uint8", "uint256"], [int(self.parameter), self.value])


def parameter_names() -> list[str]:
    """Every `target.PARAMETER` that `parse_change` accepts."""
    return [f"{target}.{name}" for target, (_, enum) in TARGETS.items() for name in enum.__members__]


def parse_change(text: str) -> ParameterChange:
    """Parses `task.AGGREGATION_RULE=MEDIAN`, `registry.min_trainer_stake=200FED`, `task.QuorumBps=7000`."""
    name, sep, raw_value = text.partition("=")
    target, dot, raw_parameter = name.strip().partition(".")
    if not sep or not dot:
        raise ProposalError(
            f"bad change {text!r}: write TARGET.PARAMETER=VALUE, e.g. task.AGGREGATION_RULE=MEDIAN"
        )
    if target.lower() not in TARGETS:
        raise ProposalError(f"unknown target {target!r} in {text!r}: use one of {', '.join(TARGETS)}")
    target = target.lower()
    enum = TARGETS[target][1]
    parameter = _lookup_parameter(enum, raw_parameter)
    if parameter is None:
        raise ProposalError(
            f"unknown parameter {raw_parameter!r} for {target}: one of {', '.join(enum.__members__)}"
        )
    try:
        value = parse_uint(raw_value, enum=VALUE_ENUMS.get(parameter))
    except ValueError as exc:
        raise ProposalError(f"bad value in {text!r}: {exc}") from None
    return ParameterChange(target, parameter, value)


def decode_change(
    target_address: str, calldata: bytes, addresses: Mapping[str, str]
) -> ParameterChange | None:
    """The parameter change a proposal action makes, or None if it is something else."""
    by_address = {
        addr.lower(): short for short, (name, _) in TARGETS.items() if (addr := addresses.get(name))
    }
    target = by_address.get(target_address.lower())
    if target is None or calldata[:4] != SET_PARAMETER_SELECTOR:
        return None
    raw_parameter, value = abi_decode(["uint8", "uint256"], calldata[4:])
    enum = TARGETS[target][1]
    if raw_parameter not in set(enum):
        return None
    return ParameterChange(target, enum(raw_parameter), int(value))


@dataclass(frozen=True)
class Proposal:
    """What the governor hashes into a proposal id and needs again to queue and execute."""

    targets: tuple[str, ...]
    values: tuple[int, ...]
    calldatas: tuple[bytes, ...]
    description: str

    @classmethod
    def from_changes(
        cls, changes: Sequence[ParameterChange], addresses: Mapping[str, str], description: str
    ) -> Proposal:
        """A proposal making `changes`, with contract addresses from a deployment."""
        if not changes:
            raise ProposalError("a proposal needs at least one change (--set TARGET.PARAMETER=VALUE)")
        if not description.strip():
            raise ProposalError("a proposal needs a description")
        targets = tuple(to_checksum_address(addresses[TARGETS[c.target][0]]) for c in changes)
        return cls(targets, tuple(0 for _ in changes), tuple(c.calldata for c in changes), description)

    @classmethod
    def from_event(cls, arguments: Mapping[str, Any]) -> Proposal:
        """The proposal in a `ProposalCreated` event's arguments."""
        return cls(
            tuple(to_checksum_address(t) for t in arguments["targets"]),
            tuple(int(v) for v in arguments["values"]),
            tuple(_as_bytes(c) for c in arguments["calldatas"]),
            str(arguments["description"]),
        )

    @property
    def description_hash(self) -> bytes:
        return keccak(text=self.description)

    @property
    def proposal_id(self) -> int:
        """OpenZeppelin's `hashProposal(targets, values, calldatas, descriptionHash)`."""
        encoded = abi_encode(
            ["address[]", "uint256[]", "bytes[]", "bytes32"],
            [list(self.targets), list(self.values), list(self.calldatas), self.description_hash],
        )
        return int.from_bytes(keccak(encoded), "big")

    def as_args(self) -> tuple[list[str], list[int], list[bytes], str]:
        """Arguments of `propose`."""
        return list(self.targets), list(self.values), list(self.calldatas), self.description

    def as_hashed_args(self) -> tuple[list[str], list[int], list[bytes], bytes]:
        """Arguments of `queue` and `execute`."""
        return list(self.targets), list(self.values), list(self.calldatas), self.description_hash

    def describe(self, addresses: Mapping[str, str]) -> list[str]:
        """One line per action: the parameter change, or the raw call."""
        lines = []
        for target, value, calldata in zip(self.targets, self.values, self.calldatas, strict=True):
            change = decode_change(target, calldata, addresses)
            lines.append(str(change) if change else f"call {target} value={value} data=0x{calldata.hex()}")
        return lines


@dataclass(frozen=True, kw_only=True)
class ProposalTimes:
    """Where a proposal stands: its state and the chain times that decide the next one."""

    proposal_id: int
    state: ProposalState
    snapshot: int
    deadline: int
    eta: int
    now: int


# The states an action needs, and what to tell the user otherwise.
_REQUIRED = {
    "vote": ProposalState.ACTIVE,
    "queue": ProposalState.SUCCEEDED,
    "execute": ProposalState.QUEUED,
}


def state_problem(action: str, times: ProposalTimes) -> str | None:
    """Why `action` (vote, queue, execute) cannot happen now, or None if it can."""
    required = _REQUIRED[action]
    if times.state == required and not (action == "execute" and times.now < times.eta):
        return None
    name = f"proposal {times.proposal_id} is {state_name(times.state)}"
    hint = _hint(action, times)
    return f"{name}; {hint}" if hint else f"{name}; {action} needs {state_name(required)}"


def state_name(state: ProposalState) -> str:
    """`Pending`, `Active`, ... as OpenZeppelin spells them."""
    return state.name.capitalize()


def format_time(timestamp: int, now: int | None = None) -> str:
    """`2025-11-23 20:31:05 UTC (in 12 s)` for a chain timestamp."""
    shown = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
    if now is None:
        return shown
    delta = timestamp - now
    relative = f"in {delta} s" if delta > 0 else ("now" if delta == 0 else f"{-delta} s ago")
    return f"{shown} ({relative})"


def _hint(action: str, t: ProposalTimes) -> str:
    if t.state == ProposalState.PENDING:
        # Votes are counted at the snapshot; voting opens in the first block after it.
        return f"voting opens at {format_time(t.snapshot + 1, t.now)}"
    if t.state == ProposalState.ACTIVE:
        return (
            f"voting is open until {format_time(t.deadline, t.now)}; {action} needs it closed and succeeded"
        )
    if t.state == ProposalState.SUCCEEDED and action == "vote":
        return "voting is over and it passed; queue it next"
    if t.state == ProposalState.SUCCEEDED and action == "execute":
        return "it passed but is not queued; queue it first"
    if t.state == ProposalState.QUEUED and action == "execute":
        return f"the timelock delay ends at {format_time(t.eta, t.now)}"
    if t.state == ProposalState.QUEUED:
        return f"already queued; executable at {format_time(t.eta, t.now)}"
    if t.state == ProposalState.DEFEATED:
        return "it did not reach quorum or more votes for than against; nothing more can happen"
    if t.state == ProposalState.EXECUTED:
        return "it has already been executed"
    if t.state in (ProposalState.CANCELED, ProposalState.EXPIRED):
        return "nothing more can happen to it"
    return ""


def _lookup_parameter(enum: type[IntEnum], raw: str) -> IntEnum | None:
    """Accepts UPPER_SNAKE, lower_snake and CamelCase spellings of a member name."""
    wanted = raw.strip().replace("-", "_").replace("_", "").lower()
    for name, member in enum.__members__.items():
        if name.replace("_", "").lower() == wanted:
            return member
    return None


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)
    return bytes(value)
