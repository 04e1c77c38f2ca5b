"""The web3 client, the ape scripts and the `fedledger` CLI against a real Anvil deployment.

One Anvil and one `ape run deploy all` for the module, with short governance timings.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedledger.chain import ape_cli
from fedledger.chain.accounts import devnet_accounts
from fedledger.chain.contracts import FedLedger, StaleDeploymentError
from fedledger.chain.errors import ContractRevertError, MissingContractError
from fedledger.chain.governance import Governance, GovernanceError
from fedledger.chain.params import TOKEN, AggregationRule, ProposalState, Role, TaskParameter, VoteType
from fedledger.chain.proposals import parse_change
from fedledger.chain.rpc import connect, latest_timestamp, wait_for_timestamp
from fedledger.cli import cli
from fedledger.devnet import Devnet, running_devnet
from tests.e2e.federation import deploy_placeholder

ROOT = Path(__file__).resolve().parents[2]
VOTING_PERIOD = 4
TIMELOCK_DELAY = 1


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    with running_devnet("local", run_dir=tmp_path_factory.mktemp("run")) as started:
        yield started


@pytest.fixture(scope="module")
def deployments_dir(devnet: Devnet) -> Path:
    return deploy_placeholder(
        devnet, "--voting-period", str(VOTING_PERIOD), "--timelock-delay", str(TIMELOCK_DELAY)
    )


@pytest.fixture(scope="module")
def ledger(devnet: Devnet, deployments_dir: Path) -> FedLedger:
    return FedLedger.connect(devnet.url, deployments_dir=deployments_dir)


def test_deployment__matches_options(ledger: FedLedger) -> None:
    model = ledger.global_model()
    assert model.version == 0 and model.cid.startswith("bafkrei")
    assert int(ledger.sender.call(ledger.governor.functions.votingPeriod())) == VOTING_PERIOD
    assert ledger.task_parameter(TaskParameter.AGGREGATION_RULE) == AggregationRule.FEDAVG
    assert ledger.deployment.parameters["voting_period"] == VOTING_PERIOD


def test_revert__custom_error_named_with_arguments(ledger: FedLedger) -> None:
    deployer, trainer = devnet_accounts(2)
    with pytest.raises(ContractRevertError) as excinfo:
        ledger.start(deployer)
    assert excinfo.value.name == "TaskNotEnoughTrainers"
    assert "TaskNotEnoughTrainers(active=0, required=2)" in str(excinfo.value)

    ledger.transfer(deployer, trainer.address, 500 * TOKEN)
    with pytest.raises(
        ContractRevertError, match=r"RegistryStakeBelowMinimum\(stake=1, minimum=100000000000000000000\)"
    ):
        ledger.stake_and_register(trainer, Role.TRAINER, 1)
    ledger.stake_and_register(trainer, Role.TRAINER, 100 * TOKEN)
    with pytest.raises(ContractRevertError) as excinfo:
        ledger.register(trainer, Role.TRAINER, 100 * TOKEN)
    assert str(excinfo.value) == (
        f"register TRAINER: RegistryAlreadyRegistered(account={trainer.address}, role=Role.TRAINER)"
    )


def test_view__same_results_and_errors_as_call(ledger: FedLedger) -> None:
    """The lean path for the views services read at every block."""
    task, sender = ledger.task.functions, ledger.sender
    trainer = devnet_accounts(2)[1].address
    for function in (
        task.currentRound(),
        task.phase(0),
        task.roundState(0),
        task.roundConfig(0),
        task.globalModel(),
        task.trainerActiveSince(trainer),
        task.lastCommittedRound(trainer),
        task.attestation(0, trainer),
        ledger.registry.functions.participant(trainer),  # a struct with an address-free tuple
        ledger.governor.functions.timelock(),  # an address: checksummed like web3 does
    ):
        assert sender.view(function) == sender.call(function), function.fn_name
    with pytest.raises(ContractRevertError) as refused:
        sender.view(ledger.governor.functions.state(123))
    assert refused.value.name == "GovernorNonexistentProposal" and "state: " in str(refused.value)
    nowhere = ledger.w3.eth.contract(address="0x" + "12" * 20, abi=ledger.task.abi)
    with pytest.raises(MissingContractError, match="no contract at 0x1212"):
        sender.view(nowhere.functions.currentRound())


def test_stale_deployment__clear_error(ledger: FedLedger) -> None:
    moved = dict(ledger.deployment.addresses, FedToken="0x" + "12" * 20)
    with pytest.raises(
        StaleDeploymentError,
        match=r"no fedledger contracts at 0x1212121212121212121212121212121212121212 \(FedToken\) on chain 31337: ",
    ):
        FedLedger(ledger.w3, replace(ledger.deployment, addresses=moved))


def test_governance__client_and_cli_end_to_end(
    ledger: FedLedger, devnet: Devnet, deployments_dir: Path
) -> None:
    deployer, trainer, outsider, voter = devnet_accounts(4)
    ledger.transfer(deployer, voter.address, 1_000 * TOKEN)
    ledger.stake_and_register(voter, Role.AGGREGATOR, 1_000 * TOKEN)
    if ledger.participant(trainer.address).role != Role.TRAINER:
        ledger.transfer(deployer, trainer.address, 100 * TOKEN)
        ledger.stake_and_register(trainer, Role.TRAINER, 100 * TOKEN)
    governance = Governance(ledger)
    wait_for_timestamp(ledger.w3, latest_timestamp(ledger.w3) + 1, timeout=10)

    with pytest.raises(
        GovernanceError, match=r"TaskInvalidParameter\(parameter=TaskParameter.MIN_UPDATES, value=0\)"
    ):
        governance.propose(trainer, [parse_change("task.MIN_UPDATES=0")], "would revert on execution")
    with pytest.raises(ContractRevertError, match="GovernorInsufficientProposerVotes"):
        governance.propose(outsider, [parse_change("task.AGGREGATION_RULE=MEDIAN")], "not staked")

    record = governance.propose(
        trainer, [parse_change("task.AGGREGATION_RULE=TRIMMED_MEAN")], "use trimmed mean"
    )
    pid = record.proposal_id
    assert pid == int(
        ledger.sender.call(ledger.governor.functions.hashProposal(*record.proposal.as_hashed_args()))
    )
    with pytest.raises(GovernanceError, match=rf"proposal {pid} is Pending; voting opens at .*\(in \d s\)"):
        governance.vote(voter, pid, VoteType.FOR)

    runner = CliRunner()
    base = ["--project-dir", str(ROOT), "--deployments-dir", str(deployments_dir)]
    rpc = ["--rpc-url", devnet.url]

    def fedledger(*args: str) -> str:
        result = runner.invoke(cli, [*base, *args, *rpc], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    wait_for_timestamp(ledger.w3, record.vote_start + 1, timeout=10)
    fedledger("gov", "vote", str(pid), "--support", "for", "--account", "dev:3")
    again = runner.invoke(
        cli, [*base, "gov", "vote", str(pid), "--support", "for", "--account", "dev:3", *rpc]
    )
    assert again.exit_code == 1 and "has already voted" in again.output
    early = runner.invoke(cli, [*base, "gov", "queue", str(pid), "--account", "dev:0", *rpc])
    assert early.exit_code == 1 and re.search(
        rf"proposal {pid} is Active; voting is open until", early.output
    )

    time.sleep(max(0.0, record.vote_end + 1 - time.time()))
    fedledger("gov", "queue", str(pid), "--account", "dev:0")
    assert governance.state(pid) == ProposalState.QUEUED
    time.sleep(TIMELOCK_DELAY + 0.2)
    fedledger("gov", "execute", str(hex(pid)), "--account", "dev:0")
    assert ledger.task_parameter(TaskParameter.AGGREGATION_RULE) == AggregationRule.TRIMMED_MEAN

    listing = fedledger("gov", "list")
    assert f"proposal {pid}: Executed" in listing
    assert "task.AGGREGATION_RULE=TRIMMED_MEAN (2)" in listing
    assert "votes: for 1,000 FED" in listing


def test_ape_scripts__deploy_show_and_bad_input(devnet: Devnet, deployments_dir: Path) -> None:
    shown = ape_cli.run_ape_script(
        ["deploy", "show", "--deployments-dir", str(deployments_dir)],
        project=ROOT,
        network="ethereum:local:foundry",
        rpc_url=devnet.url,
    )
    assert '"chain_id": 31337' in shown.stdout and "FedGovernor" in shown.stdout
    with pytest.raises(ape_cli.ApeScriptError, match="must have 64 hex digits"):
        ape_cli.run_ape_script(
            [
                "deploy",
                "all",
                "--account",
                "TEST::0",
                "--initial-model-digest",
                "0x1234",
                "--initial-model-cid",
                "b",
            ],
            project=ROOT,
            network="ethereum:local:foundry",
            rpc_url=devnet.url,
        )
    deploy_all = ["deploy", "all", "--account", "TEST::0", "--deployments-dir", str(deployments_dir / "x")]
    for options, error in [
        (
            ["--app", "tabular", "--initial-model-file", __file__],
            "give an app or --initial-model-\\*, not both",
        ),
        (["--app", "tabular"], "pinned to IPFS: give --ipfs-api"),
        (["--app", "no_such_pkg.mod:app", "--ipfs-api", "http://127.0.0.1:9"], "no_such_pkg"),
    ]:
        with pytest.raises(ape_cli.ApeScriptError, match=error):
            ape_cli.run_ape_script(
                [*deploy_all, *options],
                project=ROOT,
                network="ethereum:local:foundry",
                rpc_url=devnet.url,
                extra_env={"FEDLEDGER_IPFS_API": ""},
            )
    assert not (deployments_dir / "x").exists()
    propose = ["governance", "propose", "--description", "x", "--account", "TEST::1"]
    with pytest.raises(
        ape_cli.ApeScriptError,
        match=r"would fail when executed: task.QUORUM_BPS=5000 reverts with TaskInvalidParameter",
    ):
        ape_cli.run_ape_script(
            [*propose, "--set", "task.QUORUM_BPS=5000", "--deployments-dir", str(deployments_dir)],
            project=ROOT,
            network="ethereum:local:foundry",
            rpc_url=devnet.url,
        )
    with pytest.raises(ape_cli.ApeScriptError, match="unknown parameter 'NOPE'"):
        ape_cli.run_ape_script(
            [*propose, "--set", "task.NOPE=1"],
            project=ROOT,
            network="ethereum:local:foundry",
            rpc_url=devnet.url,
        )


def test_connect__dead_endpoint() -> None:
    from fedledger.chain.errors import RpcUnavailableError
    from fedledger.devnet.process import free_port

    with pytest.raises(RpcUnavailableError, match="no JSON-RPC node answers"):
        connect(f"http://127.0.0.1:{free_port()}", timeout=2)
