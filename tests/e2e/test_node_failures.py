"""The CLI against real Anvils that misbehave: secrets in error paths, a node that is not a devnet,
a node that is down, and an Anvil restarted without its state.

One Anvil and one `ape run deploy all` for the module; the other scenarios start their own
short-lived Anvils (no deployment needed, or the module's chain state copied over).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from eth_account import Account

from fedledger.chain.contracts import FedLedger
from fedledger.chain.errors import MissingContractError, RpcUnavailableError
from fedledger.chain.rpc import connect
from fedledger.cli import cli
from fedledger.devnet import Devnet, Profile, running_devnet
from fedledger.devnet import anvil as anvil_devnet
from tests.e2e.federation import deploy_placeholder

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "e2e keystore password 9"
KEY = Account.create().key.to_0x_hex()  # a fresh key, so any occurrence is a leak


def secrets_of(key: str, *passwords: str) -> list[str]:
    bare = key.removeprefix("0x")
    return [bare, bare.upper(), "0x" + bare, bare[:32], bare[32:], *passwords]


def assert_no_secret(texts: dict[str, str], secrets: list[str]) -> None:
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{where} shows a secret"


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    with running_devnet("local", run_dir=tmp_path_factory.mktemp("run")) as started:
        yield started


@pytest.fixture(scope="module")
def deployments_dir(devnet: Devnet) -> Path:
    return deploy_placeholder(devnet)


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=2)))
    return path


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDLEDGER_")}
    return {**env, **extra}


# ------------------------------------------------------------------ secrets


PROPOSE = ["gov", "propose", "--set", "task.AGGREGATION_RULE=MEDIAN", "--description", "leak test"]


def test_secrets__chain_error_paths__never_in_output_or_logs(
    devnet: Devnet,
    deployments_dir: Path,
    keystore: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("FEDLEDGER_KEYSTORE_PASSWORD", "FEDLEDGER_ACCOUNT", "FEDLEDGER_ALLOW_REMOTE"):
        monkeypatch.delenv(variable, raising=False)
    caplog.set_level(logging.DEBUG)
    runner = CliRunner(mix_stderr=False)
    base = ["--project-dir", str(ROOT), "--deployments-dir", str(deployments_dir)]
    rpc = ["--rpc-url", devnet.url]
    node = ["--ipfs-api", "http://127.0.0.1:1", "--wait-for-node", "0"]
    wrong = "not the password 3"

    def fedledger(*args: str, env: dict[str, str], stdin: str | None = None) -> Result:
        result = runner.invoke(cli, [*base, *args, *rpc], env=env, input=stdin)
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        return result

    revert_env = fedledger(*PROPOSE, "--account", "env:FED_E2E_KEY", env={"FED_E2E_KEY": KEY})
    assert "propose: GovernorInsufficientProposerVotes(proposer=" in revert_env.stderr
    revert_keystore = fedledger(
        *PROPOSE, "--account", f"keystore:{keystore}", env={"FEDLEDGER_KEYSTORE_PASSWORD": PASSWORD}
    )
    assert "GovernorInsufficientProposerVotes" in revert_keystore.stderr
    revert_prompted = fedledger(*PROPOSE, "--account", f"keystore:{keystore}", env={}, stdin=f"{PASSWORD}\n")
    assert "GovernorInsufficientProposerVotes" in revert_prompted.stderr
    wrong_password = fedledger(
        "gov",
        "vote",
        "1",
        "--support",
        "for",
        "--account",
        f"keystore:{keystore}",
        env={},
        stdin=f"{wrong}\n",
    )
    assert "wrong password" in wrong_password.stderr
    malformed = KEY[:-1] + "x"
    bad_key = fedledger(
        "aggregator", "run", "--account", "env:FED_E2E_KEY", *node, env={"FED_E2E_KEY": malformed}
    )
    assert "FED_E2E_KEY does not hold a valid private key" in bad_key.stderr
    trainer_wrong = fedledger(
        "trainer",
        "run",
        "--shard",
        "0/2",
        "--account",
        f"keystore:{keystore}",
        *node,
        env={"FEDLEDGER_KEYSTORE_PASSWORD": wrong},
    )
    assert "wrong password" in trainer_wrong.stderr

    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "eth_estimateGas" in logged  # the node's traffic was logged at DEBUG
    texts = {"logs": logged}
    for name, result in {
        "revert (env)": revert_env,
        "revert (keystore)": revert_keystore,
        "revert (prompted)": revert_prompted,
        "wrong password": wrong_password,
        "malformed key": bad_key,
        "trainer": trainer_wrong,
    }.items():
        texts[f"{name} stdout"], texts[f"{name} stderr"] = result.stdout, result.stderr
    assert_no_secret(texts, [*secrets_of(KEY, PASSWORD, wrong), malformed])


def test_secrets__subprocess_with_debug_logging(devnet: Devnet, deployments_dir: Path) -> None:
    script = (
        "import logging; logging.basicConfig(level=logging.DEBUG); from fedledger.cli import main; main()"
    )
    args = [*PROPOSE, "--account", "env:FED_E2E_KEY", "--rpc-url", devnet.url]
    done = subprocess.run(
        [sys.executable, "-c", script, "--deployments-dir", str(deployments_dir), *args],
        env=base_env(FED_E2E_KEY=KEY),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "DEBUG" in done.stderr and "eth_estimateGas" in done.stderr
    assert "Error: propose: GovernorInsufficientProposerVotes" in done.stderr
    assert "Traceback" not in done.stderr
    assert_no_secret({"stdout": done.stdout, "stderr": done.stderr}, secrets_of(KEY))


# ------------------------------------------------------------------ a node that is not a devnet


def test_guard__loopback_anvil_with_a_public_chain_id__refused(tmp_path: Path) -> None:
    """Anvil on 127.0.0.1 but with chain id 1 (as a fork of mainnet would): signed transactions
    would be valid on mainnet too, so it takes --allow-remote."""
    with running_devnet(Profile("mainnet-like", 1), run_dir=tmp_path) as node:
        runner = CliRunner(mix_stderr=False)
        base = ["--project-dir", str(ROOT), "--deployments-dir", str(tmp_path)]
        vote = ["gov", "vote", "1", "--support", "for", "--account", "dev:1", "--rpc-url", node.url]
        refused = runner.invoke(cli, [*base, *vote], env={"FEDLEDGER_ALLOW_REMOTE": ""})
        assert refused.exit_code == 1
        assert refused.stderr.strip() == (
            f"Error: refusing to send transactions to chain 1 at {node.url}: it is not a local devnet "
            "(chain id 1 is not a devnet's; a local devnet is Anvil on a loopback address with chain id "
            "31337 or 713715). If you mean this network, pass --allow-remote (or set FEDLEDGER_ALLOW_REMOTE=1)"
        )
        allowed = runner.invoke(cli, [*base, *vote, "--allow-remote"])
        assert "no fedledger deployment for chain 1" in allowed.stderr
        read_only = runner.invoke(cli, [*base, "gov", "list", "--rpc-url", node.url])
        assert "no fedledger deployment for chain 1" in read_only.stderr


# ------------------------------------------------------------------ a node that is down


def fedledger_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedledger", "--project-dir", str(ROOT), *args],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_node_down__calls_raise_project_error__cli_one_line(tmp_path: Path) -> None:
    with running_devnet("local", run_dir=tmp_path) as node:
        w3 = connect(node.url)
        assert w3.eth.block_number == 0
    with pytest.raises(RpcUnavailableError, match=f"no JSON-RPC node answers at {node.url}"):
        w3.eth.block_number  # noqa: B018 - a node gone mid-run: the project error, not requests'
    done = fedledger_process("status", "--rpc-url", node.url)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: no JSON-RPC node answers at {node.url} (ConnectionError); "
        "is the devnet running (`fedledger devnet status`) or the URL right?"
    ]
    assert done.stdout == ""


# ------------------------------------------------------------------ an Anvil restarted without state


def test_anvil_restarted_without_state__status_says_redeploy(
    devnet: Devnet, deployments_dir: Path, tmp_path: Path
) -> None:
    """A node holding the deployment (the module's chain state, copied) is stopped, and a fresh
    Anvil takes its port: the deployments file now names addresses without code."""
    state = connect(devnet.url).provider.make_request("anvil_dumpState", [])["result"]  # type: ignore[arg-type]
    status = ["--deployments-dir", str(deployments_dir), "status", "--rpc-url"]
    first = anvil_devnet.start("local", run_dir=tmp_path / "first")
    try:
        assert connect(first.url).provider.make_request("anvil_loadState", [state])["result"]  # type: ignore[arg-type]
        deployed = fedledger_process(*status, first.url)
        assert deployed.returncode == 0, deployed.stderr
        running = FedLedger.connect(first.url, deployments_dir=deployments_dir)  # a service's ledger
        assert running.current_round() == 0
    finally:
        first.stop()
    restarted = anvil_devnet.start("local", port=first.state.port, run_dir=tmp_path / "restarted")
    try:
        done = fedledger_process(*status, restarted.url)
        with pytest.raises(
            MissingContractError, match=r"currentRound: no contract at 0x\w{40} on chain 31337 any more"
        ):
            running.current_round()
    finally:
        restarted.stop()
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: no fedledger contracts at 0x")
    assert line.endswith(
        f"on chain 31337 ({restarted.url}): the node lost its state (an Anvil restarted without it?) or "
        "the deployments file is for another chain; redeploy with `fedledger deploy`"
    )
