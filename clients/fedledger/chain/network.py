"""Which nodes the CLI sends transactions to without being told: local devnets only.

A local devnet is Anvil listening on a loopback address with the chain id of a devnet profile
(31337 `local`, 713715 `sei-like`). All three matter: a loopback URL can be a tunnel to a
public node, 713715 is also a public Sei devnet's chain id, and an Anvil fork of a public
chain signs transactions that the public chain would accept too. Anything else needs the
user's explicit `--allow-remote` (FEDLEDGER_ALLOW_REMOTE=1). Read-only commands need no check.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from web3 import Web3

from fedledger.chain.errors import FedledgerError
from fedledger.chain.params import (
    DEVNET_GOVERNANCE,
    NETWORK_GOVERNANCE,
    DeployParameters,
    GovernanceProfile,
    unsafe_governance,
)
from fedledger.chain.rpc import display_url, is_anvil
from fedledger.devnet.anvil import PROFILES

DEVNET_CHAIN_IDS = frozenset(profile.chain_id for profile in PROFILES.values())
ALLOW_REMOTE_FLAG = "--allow-remote"
ALLOW_REMOTE_ENV = "FEDLEDGER_ALLOW_REMOTE"
UNSAFE_FAST_GOVERNANCE_FLAG = "--unsafe-fast-governance"


class RemoteNetworkError(FedledgerError):
    """A transaction was about to go to a node that is not a local devnet, without opt-in."""


class UnsafeGovernanceError(FedledgerError):
    """A deployment with devnet-speed governance was about to go to a chain that is not a local devnet."""


@dataclass(frozen=True)
class NodeFacts:
    """What decides whether a node is a local devnet."""

    url: str
    chain_id: int
    anvil: bool

    @property
    def loopback(self) -> bool:
        return is_loopback(self.url)

    @property
    def local_devnet(self) -> bool:
        return self.loopback and self.anvil and self.chain_id in DEVNET_CHAIN_IDS

    def why_not_local(self) -> str:
        """Why this node is not a local devnet (empty when it is one)."""
        reasons = []
        if not self.loopback:
            reasons.append("not a loopback address")
        if not self.anvil:
            reasons.append("the node is not Anvil")
        if self.chain_id not in DEVNET_CHAIN_IDS:
            reasons.append(f"chain id {self.chain_id} is not a devnet's")
        return ", ".join(reasons)


def is_loopback(url: str) -> bool:
    """Whether `url`'s host is `localhost` or a loopback address (127.0.0.0/8, ::1)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def node_facts(w3: Web3, url: str) -> NodeFacts:
    """Chain id and client of the node `w3` talks to at `url`."""
    return NodeFacts(url=url, chain_id=int(w3.eth.chain_id), anvil=is_anvil(w3))


def require_local_devnet(facts: NodeFacts, *, allow_remote: bool) -> None:
    """Raises `RemoteNetworkError` unless the node is a local devnet or the user opted in."""
    if allow_remote or facts.local_devnet:
        return
    devnets = " or ".join(str(chain_id) for chain_id in sorted(DEVNET_CHAIN_IDS))
    raise RemoteNetworkError(
        f"refusing to send transactions to chain {facts.chain_id} at {display_url(facts.url)}: "
        f"it is not a local devnet ({facts.why_not_local()}; a local devnet is Anvil on a loopback "
        f"address with chain id {devnets}). If you mean this network, pass {ALLOW_REMOTE_FLAG} "
        f"(or set {ALLOW_REMOTE_ENV}=1)"
    )


def default_governance(facts: NodeFacts) -> GovernanceProfile:
    """The governance profile a deployment gets unless told otherwise: the devnet's fast clocks
    on a local devnet, the network's days everywhere else."""
    return DEVNET_GOVERNANCE if facts.local_devnet else NETWORK_GOVERNANCE


def require_safe_governance(params: DeployParameters, facts: NodeFacts, *, force: bool) -> None:
    """Raises `UnsafeGovernanceError` when `params` carry devnet-speed governance (see
    `unsafe_governance`) to a node that is not a local devnet, unless `force`."""
    reasons = unsafe_governance(params)
    if force or facts.local_devnet or not reasons:
        return
    raise UnsafeGovernanceError(
        f"refusing to deploy to chain {facts.chain_id} at {display_url(facts.url)} with devnet-speed "
        f"governance: {'; '.join(reasons)}. It is not a local devnet ({facts.why_not_local()}), so "
        "one small holder could pass a proposal before anyone can react. Use the network profile "
        f"(--governance-profile {NETWORK_GOVERNANCE.name}, the default there) or slower values; "
        f"to deploy these anyway, pass {UNSAFE_FAST_GOVERNANCE_FLAG}"
    )
