"""One deployment's contracts over web3.py: typed reads, and the token/registry/task writes.

`FedLedger.connect(url)` gives the whole deployment of the chain at `url`: addresses from the
deployments file, ABIs from the package, a `TransactionSender` and an `ErrorDecoder` that
knows every custom error of every contract (a call into one contract can bubble another's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract

from fedledger.chain.abi import load_abis
from fedledger.chain.deployments import DEFAULT_DIRECTORY, Deployment, load_deployment
from fedledger.chain.errors import ErrorDecoder, MissingContractError
from fedledger.chain.params import Phase, RegistryParameter, Role, RoundStatus, TaskParameter
from fedledger.chain.rpc import connect, display_url
from fedledger.chain.transactions import TransactionSender, TxResult


class StaleDeploymentError(MissingContractError):
    """The deployments file names addresses that hold no code: the node lost its state (an
    Anvil restarted without it), or the file was written for another chain."""


@dataclass(frozen=True)
class GlobalModel:
    """`IFederatedTask.GlobalModel`."""

    digest: bytes
    version: int
    cid: str


@dataclass(frozen=True)
class RoundState:
    """`IFederatedTask.RoundState`."""

    opened_at: int
    commit_deadline: int
    reveal_deadline: int
    aggregation_deadline: int
    commits: int
    expected_commits: int
    status: RoundStatus
    reveals: int
    sample_cap: int
    total_samples: int


@dataclass(frozen=True)
class Participant:
    """`IStakingRegistry.Participant`."""

    role: Role
    active: bool
    active_since: int
    stake: int
    unbonding: int
    unbonding_end: int


class FedLedger:
    """The contracts of one fedledger deployment, bound to a node and a transaction sender."""

    def __init__(
        self, w3: Web3, deployment: Deployment, *, check_code: bool = True, url: str | None = None
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.url = url
        abis = load_abis()
        self.decoder = ErrorDecoder(abis.values())
        self.sender = TransactionSender(w3, self.decoder)
        self.contracts: dict[str, Contract] = {
            name: w3.eth.contract(address=_checksum(deployment.address(name)), abi=abi)
            for name, abi in abis.items()
        }
        if check_code:
            self._check_code()

    @classmethod
    def connect(cls, url: str, *, deployments_dir: Path = DEFAULT_DIRECTORY) -> FedLedger:
        """The deployment on the chain at `url`, as recorded in `deployments_dir`."""
        return cls.on(connect(url), url=url, deployments_dir=deployments_dir)

    @classmethod
    def on(cls, w3: Web3, *, url: str, deployments_dir: Path = DEFAULT_DIRECTORY) -> FedLedger:
        """The deployment on the chain `w3` is connected to (at `url`, for messages)."""
        return cls(w3, load_deployment(int(w3.eth.chain_id), deployments_dir), url=url)

    # ---------------------------------------------------------------- contracts

    @property
    def token(self) -> Contract:
        return self.contracts["FedToken"]

    @property
    def registry(self) -> Contract:
        return self.contracts["StakingRegistry"]

    @property
    def task(self) -> Contract:
        return self.contracts["FederatedTask"]

    @property
    def governor(self) -> Contract:
        return self.contracts["FedGovernor"]

    @property
    def timelock(self) -> Contract:
        return self.contracts["FedTimelock"]

    @property
    def chain_id(self) -> int:
        return self.sender.chain_id

    # ---------------------------------------------------------------- reads

    def balance_of(self, account: str) -> int:
        return int(self.sender.call(self.token.functions.balanceOf(_checksum(account))))

    def task_parameter(self, parameter: TaskParameter) -> int:
        return int(self.sender.call(self.task.functions.parameter(int(parameter))))

    def registry_parameter(self, parameter: RegistryParameter) -> int:
        return int(self.sender.call(self.registry.functions.parameter(int(parameter))))

    def model_spec_hash(self) -> bytes:
        """The task's `modelSpecHash`: sha256 of the canonical JSON of the spec updates must match."""
        return bytes(self.sender.view(self.task.functions.modelSpecHash()))

    def model_spec_cid(self) -> str:
        """Where the task's model spec is pinned (empty if it was deployed without one)."""
        return str(self.sender.view(self.task.functions.modelSpecCid()))

    def global_model(self) -> GlobalModel:
        digest, version, cid = self.sender.view(self.task.functions.globalModel())
        return GlobalModel(digest=bytes(digest), version=int(version), cid=str(cid))

    def current_round(self) -> int:
        return int(self.sender.view(self.task.functions.currentRound()))

    def phase(self, round_: int) -> Phase:
        return Phase(self.sender.view(self.task.functions.phase(round_)))

    def round_state(self, round_: int) -> RoundState:
        (
            opened,
            commit_end,
            reveal_end,
            aggregation_end,
            commits,
            expected,
            status,
            reveals,
            cap,
            samples,
        ) = self.sender.view(self.task.functions.roundState(round_))
        return RoundState(
            opened_at=int(opened),
            commit_deadline=int(commit_end),
            reveal_deadline=int(reveal_end),
            aggregation_deadline=int(aggregation_end),
            commits=int(commits),
            expected_commits=int(expected),
            status=RoundStatus(status),
            reveals=int(reveals),
            sample_cap=int(cap),
            total_samples=int(samples),
        )

    def participant(self, account: str) -> Participant:
        role, active, since, stake, unbonding, end = self.sender.call(
            self.registry.functions.participant(_checksum(account))
        )
        return Participant(Role(role), bool(active), int(since), int(stake), int(unbonding), int(end))

    def active_count(self, role: Role) -> int:
        return int(self.sender.call(self.registry.functions.activeCount(int(role))))

    def votes(self, account: str) -> int:
        return int(self.sender.call(self.registry.functions.getVotes(_checksum(account))))

    # ---------------------------------------------------------------- writes

    def transfer(self, account: LocalAccount, to: str, amount: int) -> TxResult:
        return self.sender.transact(
            account, self.token.functions.transfer(_checksum(to), amount), label=f"transfer to {to}"
        )

    def approve(self, account: LocalAccount, spender: str, amount: int) -> TxResult:
        return self.sender.transact(
            account, self.token.functions.approve(_checksum(spender), amount), label="approve"
        )

    def register(self, account: LocalAccount, role: Role, amount: int) -> TxResult:
        """Registers `account` in `role` staking `amount` (approve the registry first)."""
        return self.sender.transact(
            account, self.registry.functions.register(int(role), amount), label=f"register {role.name}"
        )

    def stake_and_register(self, account: LocalAccount, role: Role, amount: int) -> tuple[TxResult, TxResult]:
        """Approves the registry for `amount` and registers: the two transactions."""
        approved = self.approve(account, self.registry.address, amount)
        return approved, self.register(account, role, amount)

    def delegate(self, account: LocalAccount, delegatee: str) -> TxResult:
        """Delegates `account`'s voting power (its bonded stake) to `delegatee`."""
        return self.sender.transact(
            account, self.registry.functions.delegate(_checksum(delegatee)), label=f"delegate to {delegatee}"
        )

    def start(self, account: LocalAccount) -> TxResult:
        """Opens round 0."""
        return self.sender.transact(account, self.task.functions.start(), label="start round 0")

    def fund_rewards(self, account: LocalAccount, amount: int) -> TxResult:
        return self.sender.transact(account, self.task.functions.fundRewards(amount), label="fund rewards")

    def _check_code(self) -> None:
        for name, contract in self.contracts.items():
            if not self.w3.eth.get_code(contract.address):
                where = f"chain {self.chain_id}" + (f" ({display_url(self.url)})" if self.url else "")
                raise StaleDeploymentError(
                    f"no fedledger contracts at {contract.address} ({name}) on {where}: the node lost "
                    "its state (an Anvil restarted without it?) or the deployments file is for another "
                    "chain; redeploy with `fedledger deploy`"
                )


def _checksum(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)
