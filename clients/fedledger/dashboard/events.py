"""The deployment's events, read once and then block by block as the chain grows.

The dashboard redraws every few seconds; reading every event since the deployment each time
would cost more with every round. `EventLog` asks the node only for blocks it has not seen,
in one `eth_getLogs` per chunk for all three contracts, filtered to the events it shows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

# Public nodes refuse wide log ranges (often beyond 2,000-10,000 blocks): ask in chunks.
BLOCKS_PER_REQUEST = 2_000

# contract name (as in the deployments file) -> the events the dashboard reads from it
WATCHED_EVENTS: Mapping[str, tuple[str, ...]] = {
    "StakingRegistry": (
        "Registered",
        "StakeAdded",
        "UnstakeRequested",
        "Deregistered",
        "Withdrawn",
        "Slashed",
        "ActiveChanged",
        "DelegateVotesChanged",
        "ParameterChanged",
    ),
    "FederatedTask": (
        "RoundOpened",
        "UpdateCommitted",
        "BatchCommitted",
        "UpdateRevealed",
        "AttestationSubmitted",
        "RoundFinalized",
        "UpdateRejected",
        "RoundClosed",
        "RewardClaimed",
        "FeeCredited",
        "FeesWithdrawn",
        "ParameterChanged",
    ),
    "FedGovernor": (
        "ProposalCreated",
        "VoteCast",
        "VoteCastWithParams",
        "ProposalQueued",
        "ProposalExecuted",
        "ProposalCanceled",
    ),
}


class EventLog:
    """Decoded events of the watched contracts from `from_block` on, oldest first."""

    def __init__(self, w3: Web3, contracts: Mapping[str, Contract], from_block: int) -> None:
        self.w3 = w3
        self.next_block = from_block
        self._events: defaultdict[tuple[str, str], list[Any]] = defaultdict(list)
        # (address, topic0) -> (contract name, event): the registry's and the task's
        # ParameterChanged share a signature, so the address tells them apart.
        self._decoders: dict[tuple[str, HexBytes], tuple[str, Any]] = {}
        for name, events in WATCHED_EVENTS.items():
            contract = contracts[name]
            for event in events:
                event_type = getattr(contract.events, event)
                self._decoders[(str(contract.address).lower(), HexBytes(event_type.topic))] = (
                    name,
                    event_type,
                )
        self._addresses = sorted({Web3.to_checksum_address(c.address) for c in contracts.values()})
        self._topics = sorted({topic.to_0x_hex() for _, topic in self._decoders})

    def refresh(self, latest: int) -> list[tuple[str, str, Any]]:
        """Reads blocks up to `latest`; returns the new events as (contract, event, log)."""
        new: list[tuple[str, str, Any]] = []
        while self.next_block <= latest:
            last = min(latest, self.next_block + BLOCKS_PER_REQUEST - 1)
            logs = self.w3.eth.get_logs(
                {
                    "fromBlock": self.next_block,
                    "toBlock": last,
                    "address": self._addresses,
                    "topics": [self._topics],
                }
            )
            new.extend(self._decode(logs))
            self.next_block = last + 1
        for contract, event, log in new:
            self._events[(contract, event)].append(log)
        return new

    def of(self, contract: str, event: str) -> list[Any]:
        """Every `event` of `contract` read so far, in chain order."""
        return self._events.get((contract, event), [])

    def _decode(self, logs: Iterable[Any]) -> list[tuple[str, str, Any]]:
        decoded = []
        for log in sorted(logs, key=lambda entry: (int(entry["blockNumber"]), int(entry["logIndex"]))):
            if not log["topics"]:
                continue
            key = (str(log["address"]).lower(), HexBytes(log["topics"][0]))
            found = self._decoders.get(key)
            if found is None:
                continue
            contract, event_type = found
            decoded.append((contract, event_type.event_name, event_type.process_log(log)))
        return decoded
