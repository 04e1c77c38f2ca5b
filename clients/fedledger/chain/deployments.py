"""The deployments file: where a chain's fedledger contracts live, for every off-chain client.

One JSON file per chain id, `deployments/<chain_id>.json`, written by `ape run deploy`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONTRACT_NAMES = ("FedToken", "FedTimelock", "StakingRegistry", "FederatedTask", "FedGovernor")
DEFAULT_DIRECTORY = Path("deployments")


class DeploymentNotFoundError(FileNotFoundError):
    """No deployments file for the chain: nothing was deployed there, or the chain was reset."""


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """Addresses and facts of one deployment."""

    chain_id: int
    network: str
    deployer: str
    block_number: int
    addresses: dict[str, str]
    parameters: dict[str, Any] = field(default_factory=dict)

    def address(self, contract: str) -> str:
        """The address of `contract` (one of `CONTRACT_NAMES`)."""
        try:
            return self.addresses[contract]
        except KeyError:
            raise KeyError(f"deployment on chain {self.chain_id} has no {contract}") from None


def deployment_path(chain_id: int, directory: Path = DEFAULT_DIRECTORY) -> Path:
    """Where the deployment of `chain_id` is kept."""
    return directory / f"{chain_id}.json"


def write_deployment(deployment: Deployment, directory: Path = DEFAULT_DIRECTORY) -> Path:
    """Writes `deployment` to its file (atomically) and returns the path."""
    missing = [name for name in CONTRACT_NAMES if name not in deployment.addresses]
    if missing:
        raise ValueError(f"deployment is missing {', '.join(missing)}")
    path = deployment_path(deployment.chain_id, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(deployment), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_deployment(chain_id: int, directory: Path = DEFAULT_DIRECTORY) -> Deployment:
    """Reads the deployment of `chain_id`, or raises `DeploymentNotFoundError`."""
    path = deployment_path(chain_id, directory)
    if not path.exists():
        raise DeploymentNotFoundError(
            f"no fedledger deployment for chain {chain_id} ({path} is missing): run `ape run deploy` first"
        )
    return read_deployment(path)


def read_deployment(path: Path) -> Deployment:
    """Reads a deployments file at `path`, with a clear error if it is not one."""
    try:
        data = json.loads(path.read_text())
        return Deployment(**data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path} is not a fedledger deployments file: {exc}") from exc
