"""Running the project's ape scripts (`ape run deploy ...`) in a subprocess.

Services and the CLI never import ape (it takes seconds); they shell out to the ape scripts
instead, with the environment ape needs: the compiler wrapper (SOLCX_BINARY_PATH), ape's data
folder, the project's .bin/ and venv on PATH, and the node to use (APE_FOUNDRY_HOST for the
`ethereum:local:foundry` network, FEDLEDGER_SEILIKE_RPC_URL for `sei:seilike:node`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from fedledger.chain.deployments import Deployment, load_deployment
from fedledger.chain.errors import FedledgerError

PROJECT_MARKER = "ape-config.yaml"
# The env var that points each ape network of ape-config.yaml at a node.
NETWORK_URL_ENV = {
    "ethereum:local:foundry": "APE_FOUNDRY_HOST",
    "sei:seilike:node": "FEDLEDGER_SEILIKE_RPC_URL",
    "sei:testnet:node": "SEI_TESTNET_RPC_URL",
    "sei:mainnet:node": "SEI_MAINNET_RPC_URL",
}


class ApeScriptError(FedledgerError):
    """An ape script exited with an error."""


def project_root(start: Path | None = None) -> Path:
    """The fedledger ape project: the nearest directory holding ape-config.yaml, from `start`
    (default: the working directory) upwards, else the checkout this package was installed from."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / PROJECT_MARKER).is_file():
            return directory
    checkout = Path(__file__).resolve().parents[3]  # clients/fedledger/chain/ape_cli.py
    if (checkout / PROJECT_MARKER).is_file():
        return checkout
    raise FedledgerError(f"no {PROJECT_MARKER} in {here} or above: run from the fedledger checkout")


def ape_environment(project: Path, *, network: str, rpc_url: str | None) -> dict[str, str]:
    """The environment for an ape subprocess on `network`, pointed at `rpc_url` if given."""
    env = dict(os.environ)
    env.setdefault("SOLCX_BINARY_PATH", str(project / ".solcx"))
    env.setdefault("APE_DATA_FOLDER", str(project / ".ape-data"))
    path = [str(project / ".bin"), str(Path(sys.executable).parent), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join(p for p in path if p)
    if rpc_url is not None:
        variable = NETWORK_URL_ENV.get(network)
        if variable is None:
            raise FedledgerError(f"do not know how to point ape network {network} at {rpc_url}")
        env[variable] = rpc_url
    return env


def ape_command() -> list[str]:
    """`ape` run by this very interpreter (what its console script does), so the script sees
    every package this process sees: a user's app installed in another environment layered
    over this one included."""
    return [
        sys.executable,
        "-c",
        "import sys; from ape._cli import cli; sys.argv[0] = 'ape'; sys.exit(cli())",
    ]


def run_ape_script(
    args: Sequence[str],
    *,
    project: Path,
    network: str,
    rpc_url: str | None,
    timeout: float = 300.0,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs `ape run <args> --network <network>` in `project`; raises `ApeScriptError` on failure."""
    env = ape_environment(project, network=network, rpc_url=rpc_url)
    env.update(extra_env or {})
    command = [*ape_command(), "run", *args, "--network", network]
    # Its own process group: on timeout or interrupt, ape and anything it started go together.
    process = subprocess.Popen(
        command,
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise ApeScriptError(f"`{' '.join(command)}` did not finish within {timeout:.0f} s") from None
    except BaseException:
        _kill_group(process)
        raise
    if process.returncode != 0:
        output = (stdout + stderr).strip().splitlines()
        tail = "\n".join(output[-25:])
        raise ApeScriptError(f"`{' '.join(command)}` failed with exit code {process.returncode}:\n{tail}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def deploy(
    *,
    project: Path,
    network: str,
    rpc_url: str,
    chain_id: int,
    account: str,
    deployments_dir: Path,
    options: Sequence[str] = (),
    timeout: float = 300.0,
) -> tuple[Deployment, str]:
    """`ape run deploy all` against `rpc_url`; returns the written deployment and ape's output.

    `options` are passed on to the script (`--initial-model-file F`, `--voting-period 10`, ...).
    """
    args = [
        "deploy",
        "all",
        "--account",
        account,
        "--deployments-dir",
        str(deployments_dir.resolve()),
        *options,
    ]
    completed = run_ape_script(args, project=project, network=network, rpc_url=rpc_url, timeout=timeout)
    return load_deployment(chain_id, deployments_dir), completed.stdout
