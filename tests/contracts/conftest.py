"""Fixtures for the contract tests: a deployment per module, participants by role, a started task.

Ape snapshots the chain around every test, so the module-scoped deployment below is restored
(contracts, balances and the clock) before each test; everything a test does on top of it is
undone afterwards. Only the deployment is module-scoped: state built by a module-scoped fixture
stays visible to every later test of the module, which is right for the deployment that all of
them need and wrong for anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from helpers import Model, Update, make_model, make_update

from fedledger.chain.ape_deploy import DeployedContracts, deploy_all
from fedledger.chain.params import TOKEN, DeployParameters, Role


@pytest.fixture(scope="module")
def deployed(project: Any, owner: Any, deploy_params: DeployParameters) -> DeployedContracts:
    """Overrides the function-scoped deployment of tests/conftest.py: one deployment per module."""
    return deploy_all(project, owner, deploy_params)


@pytest.fixture(scope="module", autouse=True)
def _module_setup(
    deployed: DeployedContracts, trainers: list[Any], aggregators: list[Any], outsider: Any
) -> None:
    """Resolves the session and module fixtures before ape's first per-test snapshot, so ape
    need not rebase its snapshots when a later test asks for one of them."""


# ---------------------------------------------------------------- participants by role


@pytest.fixture
def trainer_stake(deploy_params: DeployParameters) -> int:
    """The stake each trainer registers with: exactly the minimum."""
    return deploy_params.min_trainer_stake


@pytest.fixture
def aggregator_stakes(deploy_params: DeployParameters) -> list[int]:
    """One stake per aggregator; override in a module to change the quorum arithmetic."""
    return [deploy_params.min_aggregator_stake] * 3


@pytest.fixture
def active_trainers(register: Callable[..., Any], trainers: list[Any], trainer_stake: int) -> list[Any]:
    """All four trainers registered with `trainer_stake`."""
    for trainer in trainers:
        register(trainer, Role.TRAINER, trainer_stake)
    return trainers


@pytest.fixture
def active_aggregators(
    register: Callable[..., Any], aggregators: list[Any], aggregator_stakes: list[int]
) -> list[Any]:
    """All three aggregators registered with `aggregator_stakes`."""
    for aggregator, stake in zip(aggregators, aggregator_stakes, strict=True):
        register(aggregator, Role.AGGREGATOR, stake)
    return aggregators


@pytest.fixture
def started(task: Any, owner: Any, active_trainers: list[Any], active_aggregators: list[Any]) -> Any:
    """Round 0 open with every trainer and aggregator active; returns the `start` receipt."""
    return task.start(sender=owner)


@pytest.fixture
def timelock_signer(accounts: Any, timelock: Any) -> Any:
    """The timelock, impersonated (ape-foundry) and given ETH for gas."""
    signer = accounts[timelock.address]
    signer.balance += 10 * 10**18
    return signer


@pytest.fixture
def task_signer(accounts: Any, task: Any) -> Any:
    """The task, impersonated (ape-foundry) and given ETH for gas: the only address that slashes."""
    signer = accounts[task.address]
    signer.balance += 10 * 10**18
    return signer


@pytest.fixture
def updates(trainers: list[Any]) -> dict[Any, Update]:
    """One update per trainer, with distinct sample counts 1000, 2000, 3000, 4000."""
    return {trainer: make_update(f"update-{i}", 1_000 * (i + 1)) for i, trainer in enumerate(trainers)}


@pytest.fixture
def model() -> Model:
    """The aggregated model the aggregators agree on."""
    return make_model("aggregated-round-model")


@pytest.fixture
def funded(token: Any, owner: Any) -> Callable[[Any, int], Any]:
    """Factory: gives `account` `amount` tokens from the owner."""

    def _funded(account: Any, amount: int = 1_000 * TOKEN) -> Any:
        token.transfer(account, amount, sender=owner)
        return account

    return _funded
