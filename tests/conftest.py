"""Shared fixtures: ape accounts named by role and a complete deployment."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from fedledger.chain.ape_deploy import DeployedContracts, deploy_all
from fedledger.chain.params import DEVNET_GOVERNANCE, TOKEN, DeployParameters, Role, TaskParameters

INITIAL_MODEL = b"fedledger test initial model"
INITIAL_DIGEST = hashlib.sha256(INITIAL_MODEL).digest()
INITIAL_CID = "bafkreitestinitialmodel"
MODEL_SPEC_HASH = hashlib.sha256(b"fedledger test model spec").digest()


@pytest.fixture(scope="session")
def owner(accounts: Any) -> Any:
    """The sponsor: deploys, holds the token supply, funds rewards."""
    return accounts[0]


@pytest.fixture(scope="session")
def trainers(accounts: Any) -> list[Any]:
    return [accounts[i] for i in range(1, 5)]


@pytest.fixture(scope="session")
def aggregators(accounts: Any) -> list[Any]:
    return [accounts[i] for i in range(5, 8)]


@pytest.fixture(scope="session")
def outsider(accounts: Any) -> Any:
    """Holds no role and no stake."""
    return accounts[9]


@pytest.fixture(scope="session")
def deploy_params() -> DeployParameters:
    # Governance in seconds, as on a local devnet; the network profile has its own tests.
    return DeployParameters(
        initial_model_digest=INITIAL_DIGEST,
        initial_model_cid=INITIAL_CID,
        model_spec_hash=MODEL_SPEC_HASH,
        model_spec_cid="bafkreimodelspec",
        # A quorum all three equal aggregators must meet, so tests decide which attestation
        # finalizes; the default (6,666 bps: two of three) is tested on its own.
        task=TaskParameters(quorum_bps=6_667),
    ).with_governance(DEVNET_GOVERNANCE)


@pytest.fixture
def deployed(project: Any, owner: Any, deploy_params: DeployParameters) -> DeployedContracts:
    return deploy_all(project, owner, deploy_params)


@pytest.fixture
def token(deployed: DeployedContracts) -> Any:
    return deployed.token


@pytest.fixture
def registry(deployed: DeployedContracts) -> Any:
    return deployed.registry


@pytest.fixture
def task(deployed: DeployedContracts) -> Any:
    return deployed.task


@pytest.fixture
def governor(deployed: DeployedContracts) -> Any:
    return deployed.governor


@pytest.fixture
def timelock(deployed: DeployedContracts) -> Any:
    return deployed.timelock


@pytest.fixture
def register(token: Any, registry: Any, owner: Any) -> Callable[..., Any]:
    """Factory: funds `account` from the owner and registers it in `role` with `stake`."""

    def _register(account: Any, role: Role, stake: int | None = None) -> Any:
        amount = stake if stake is not None else (100 if role == Role.TRAINER else 1_000) * TOKEN
        token.transfer(account, amount, sender=owner)
        token.approve(registry, amount, sender=account)
        return registry.register(int(role), amount, sender=account)

    return _register
