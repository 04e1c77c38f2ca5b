"""Deploys and wires every fedledger contract with ape. Shared by `ape run deploy` and the tests.

Order: token, timelock, registry, task (bound to the registry as its slasher), governor;
then the governor becomes the timelock's only proposer and canceller, anyone may execute,
and the deployer renounces the timelock admin role, so only votes change parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedledger.chain.params import DeployParameters

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class DeployedContracts:
    """The ape contract instances of one deployment."""

    token: Any
    timelock: Any
    registry: Any
    task: Any
    governor: Any

    def addresses(self) -> dict[str, str]:
        """Contract name to address, as the deployments file stores them."""
        return {
            "FedToken": str(self.token.address),
            "FedTimelock": str(self.timelock.address),
            "StakingRegistry": str(self.registry.address),
            "FederatedTask": str(self.task.address),
            "FedGovernor": str(self.governor.address),
        }


def deploy_all(
    project: Any, deployer: Any, params: DeployParameters, token: Any | None = None
) -> DeployedContracts:
    """Deploys, wires and funds a complete fedledger instance from `deployer`.

    `token` is an already deployed stake token whose supply the deployer holds (the tests pass
    hostile ERC-20s); by default a new FedToken with `params.token_supply`."""
    if token is None:
        token = deployer.deploy(project.FedToken, deployer.address, params.token_supply)
    timelock = deployer.deploy(
        project.FedTimelock, params.timelock_delay, [], [ZERO_ADDRESS], deployer.address
    )
    registry = deployer.deploy(
        project.StakingRegistry,
        token.address,
        timelock.address,
        params.min_trainer_stake,
        params.min_aggregator_stake,
        params.unbonding_period,
    )
    task = deployer.deploy(
        project.FederatedTask,
        registry.address,
        timelock.address,
        params.initial_model_digest,
        params.initial_model_cid,
        params.model_spec_hash,
        params.model_spec_cid,
        params.task.as_tuple(),
    )
    registry.bindTask(task.address, sender=deployer)
    governor = deployer.deploy(
        project.FedGovernor,
        registry.address,
        timelock.address,
        params.voting_delay,
        params.voting_period,
        params.proposal_threshold,
        params.quorum_percent,
    )
    timelock.grantRole(timelock.PROPOSER_ROLE(), governor.address, sender=deployer)
    timelock.grantRole(timelock.CANCELLER_ROLE(), governor.address, sender=deployer)
    timelock.renounceRole(timelock.DEFAULT_ADMIN_ROLE(), deployer.address, sender=deployer)
    if params.reward_pool:
        token.approve(task.address, params.reward_pool, sender=deployer)
        task.fundRewards(params.reward_pool, sender=deployer)
    return DeployedContracts(token=token, timelock=timelock, registry=registry, task=task, governor=governor)
