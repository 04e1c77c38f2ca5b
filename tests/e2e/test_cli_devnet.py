"""`fedledger devnet up`, `deploy`, `gov list`, `devnet down` as a user runs them; the deploy
script's guard against devnet-speed governance on a chain that is not a local devnet."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fedledger.chain import ape_cli
from fedledger.chain.abi import load_abi
from fedledger.chain.ape_cli import ApeScriptError
from fedledger.chain.deployments import Deployment
from fedledger.chain.params import DEVNET_GOVERNANCE, GOVERNANCE_FIELDS, NETWORK_GOVERNANCE
from fedledger.chain.rpc import connect
from fedledger.cli import cli
from fedledger.demo.placeholder import write_placeholder
from fedledger.devnet import Profile, running_devnet
from fedledger.devnet.anvil import find, stop

ROOT = Path(__file__).resolve().parents[2]


def test_cli__devnet_deploy_down(tmp_path: Path) -> None:
    run_dir, deployments = tmp_path / "run", tmp_path / "deployments"
    runner = CliRunner()
    base = ["--project-dir", str(ROOT), "--run-dir", str(run_dir), "--deployments-dir", str(deployments)]

    def fedledger(*args: str) -> str:
        result = runner.invoke(cli, [*base, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    try:
        assert "devnet up: http://127.0.0.1:" in fedledger("devnet", "up", "--profile", "sei-like")
        assert "answers chain id 713715" in fedledger("devnet", "status")
        output = fedledger("deploy", "--placeholder-model", "--voting-period", "5")
        assert "--network sei:seilike:node" in output and "PLACEHOLDER" in output
        assert (deployments / "713715.json").exists()
        assert "no proposals yet" in fedledger("gov", "list")
        devnet = find(run_dir)
        assert devnet is not None
        assert "devnet down: stopped pid" in fedledger("devnet", "down")
        assert not devnet.is_running()
    finally:
        stop(run_dir)
    assert find(run_dir) is None


def test_ape_deploy__devnet_speed_governance_off_a_local_devnet__refused_unless_forced(
    tmp_path: Path,
) -> None:
    """`ape run deploy all` against an Anvil answering Sei testnet's chain id (1328): not a local
    devnet, so it deploys the network profile by default and refuses devnet-speed governance
    unless `--unsafe-fast-governance` is given."""
    profile = Profile("sei-testnet-like", 1328, ape_network="sei:testnet:node")
    with running_devnet(profile, run_dir=tmp_path / "run") as node:
        model = write_placeholder(tmp_path)

        def deploy(*options: str) -> Deployment:
            deployment, _ = ape_cli.deploy(
                project=ROOT,
                network=profile.ape_network,
                rpc_url=node.url,
                chain_id=profile.chain_id,
                account="TEST::0",
                deployments_dir=tmp_path / "deployments",
                options=["--initial-model-file", str(model.path), *options],
            )
            return deployment

        for fast in (["--governance-profile", "devnet"], ["--voting-period", "20"]):
            with pytest.raises(ApeScriptError) as refused:
                deploy(*fast)
            assert "refusing to deploy to chain 1328" in str(refused.value)
            assert "--unsafe-fast-governance" in str(refused.value)
        assert not (tmp_path / "deployments" / "1328.json").exists()

        default = deploy()
        assert {name: default.parameters[name] for name in GOVERNANCE_FIELDS} == NETWORK_GOVERNANCE.fields()
        forced = deploy("--governance-profile", "devnet", "--unsafe-fast-governance")
        assert {name: forced.parameters[name] for name in GOVERNANCE_FIELDS} == DEVNET_GOVERNANCE.fields()
        governor = connect(node.url).eth.contract(
            address=forced.addresses["FedGovernor"], abi=load_abi("FedGovernor")
        )
        assert governor.functions.votingPeriod().call() == DEVNET_GOVERNANCE.voting_period
