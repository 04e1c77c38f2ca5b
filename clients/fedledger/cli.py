"""`fedledger`: devnet, deployment, governance and the demo, from one command.

    fedledger devnet up [--profile local|sei-like] [--port P]
    fedledger deploy                       # ape run deploy all, against the running devnet
    fedledger gov propose --set task.AGGREGATION_RULE=MEDIAN --description "..." --account dev:1
    fedledger gov vote ID --support for --account dev:1
    fedledger gov queue ID --account dev:0 ; fedledger gov execute ID --account dev:0
    fedledger gov list
    fedledger devnet down
    fedledger demo
    fedledger account new --keystore ~/.fedledger/trainer.json ; fedledger account show SPEC

Accounts (`--account`, or FEDLEDGER_ACCOUNT): `dev:N` is Anvil's public test key N (only on a
local Anvil); `env:VAR` reads a private key from environment variable VAR; `keystore:PATH`
decrypts a JSON keystore (password from FEDLEDGER_KEYSTORE_PASSWORD, or asked). Keys are
never printed.

Commands that send transactions refuse a node that is not a local devnet (Anvil on a loopback
address with a devnet chain id) unless given `--allow-remote` (or FEDLEDGER_ALLOW_REMOTE=1).
Read-only commands (status, verify, gov list) run against any node.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from fedledger.app.options import (
    app_arguments,
    app_choice_options,
    app_config,
    app_input_options,
    app_options,
    selected_app,
)
from fedledger.chain.click_types import ChangeParam, ProposalId
from fedledger.chain.errors import FedledgerError
from fedledger.chain.params import AggregationRule, VoteType
from fedledger.chain.proposals import parameter_names
from fedledger.devnet import anvil
from fedledger.devnet import ipfs as ipfs_daemon
from fedledger.storage.ipfs import IpfsError

F = TypeVar("F", bound=Callable[..., Any])
ATTACK_CHOICES = (
    "sign-flip",
    "scaling",
    "noise",
    "label-flip",
    "free-ride-global",
    "free-ride-zeros",
    "free-ride-copy",
    "digest-mismatch",
    "truncated",
    "malformed",
    "pickle",
    "nan",
    "wrong-shape",
    "wrong-dtype",
    "oversize",
    "unavailable",
    "wrong-binding",
)  # fedledger.attacks.ATTACK_NAMES, spelled out so `--help` needs no torch import
SUPPORT = {"for": VoteType.FOR, "against": VoteType.AGAINST, "abstain": VoteType.ABSTAIN}


class Context:
    """Where things are: the ape project, the devnet run directory, the deployments."""

    def __init__(self, project: Path | None, run_dir: Path | None, deployments_dir: Path | None) -> None:
        self._project = project
        self._run_dir = run_dir
        self._deployments_dir = deployments_dir

    @property
    def project(self) -> Path:
        if self._project is None:
            from fedledger.chain.ape_cli import project_root

            self._project = project_root()
        return self._project

    @property
    def run_dir(self) -> Path:
        return self._run_dir if self._run_dir is not None else self.project / ".run"

    @property
    def deployments_dir(self) -> Path:
        return self._deployments_dir if self._deployments_dir is not None else self.project / "deployments"

    def rpc_url(self, explicit: str | None) -> str:
        """`--rpc-url`/FEDLEDGER_RPC_URL, else the running devnet."""
        if explicit:
            return explicit
        devnet = anvil.find(self.run_dir)
        if devnet is None:
            raise click.UsageError(
                "no devnet is running: start one (`fedledger devnet up`) or pass --rpc-url"
            )
        return devnet.url


def ipfs_api(obj: Context, explicit: str | None) -> str:
    """`--ipfs-api`/FEDLEDGER_IPFS_API, else the running devnet's IPFS daemon."""
    if explicit:
        return explicit
    daemon = ipfs_daemon.find(obj.run_dir)
    if daemon is None:
        raise click.UsageError(
            "no IPFS daemon running: start the devnet (`fedledger devnet up`) or pass --ipfs-api"
        )
    return daemon.api_url


def friendly_errors(function: F) -> F:
    """Project errors become one-line click errors (exit code 1), not tracebacks."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (
            FedledgerError,
            anvil.DevnetError,
            ipfs_daemon.IpfsDaemonError,
            IpfsError,
            FileNotFoundError,
        ) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


class AccountParam(click.ParamType):
    """dev:N, N, env:VAR or keystore:PATH (checked here, resolved when needed)."""

    name = "ACCOUNT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from fedledger.chain.accounts import AccountError, AccountSpec, parse_account_spec

        if isinstance(value, AccountSpec):
            return value
        try:
            return parse_account_spec(str(value))
        except AccountError as exc:
            self.fail(str(exc), param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="the fedledger ape project (default: found from the working directory)",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FEDLEDGER_RUN_DIR",
    help="devnet state and logs (default: <project>/.run)",
)
@click.option(
    "--deployments-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FEDLEDGER_DEPLOYMENTS_DIR",
    help="deployments files (default: <project>/deployments)",
)
@click.version_option(package_name="fedledger")
@click.pass_context
def cli(
    ctx: click.Context, project_dir: Path | None, run_dir: Path | None, deployments_dir: Path | None
) -> None:
    """fedledger: federated learning governed on chain."""
    ctx.obj = Context(project_dir, run_dir, deployments_dir)


# ---------------------------------------------------------------- devnet


@cli.group()
def devnet() -> None:
    """Start, stop and inspect a local Anvil devnet."""


@devnet.command("up")
@click.option(
    "--profile",
    type=click.Choice(sorted(anvil.PROFILES)),
    default="local",
    show_default=True,
    help="local: chain 31337, a block per transaction; sei-like: chain 713715, 0.4 s blocks, 10M gas",
)
@click.option("--port", type=click.IntRange(1, 65535), help="default: a free port")
@click.option(
    "--accounts", type=click.IntRange(1, 1000), default=10, show_default=True, help="funded test accounts"
)
@click.option("--ipfs/--no-ipfs", default=True, show_default=True, help="also start the local IPFS daemon")
@click.pass_obj
@friendly_errors
def devnet_up(obj: Context, profile: str, port: int | None, accounts: int, ipfs: bool) -> None:
    """Starts Anvil (and the IPFS daemon) in the background and waits until they answer."""
    started = anvil.start(profile, port=port, run_dir=obj.run_dir, accounts=accounts)
    click.echo(
        f"devnet up: {started.url} (profile {profile}, chain id {started.state.chain_id}, pid {started.pid})"
    )
    click.echo(f"log: {started.state.log_path}; stop with `fedledger devnet down`")
    if ipfs:
        try:
            daemon = ipfs_daemon.start(run_dir=obj.run_dir)
        except BaseException:
            started.stop()
            raise
        click.echo(f"ipfs up: {daemon.api_url} (pid {daemon.state.pid}, repo {daemon.state.repo})")


@devnet.command("down")
@click.pass_obj
@friendly_errors
def devnet_down(obj: Context) -> None:
    """Stops the devnet and the IPFS daemon and verifies the processes are gone."""
    stopped = anvil.stop(obj.run_dir)
    if stopped is None:
        click.echo("no devnet running")
    else:
        click.echo(f"devnet down: stopped pid {stopped.pid} ({stopped.url})")
    stopped_ipfs = ipfs_daemon.stop(obj.run_dir)
    if stopped_ipfs is not None:
        click.echo(f"ipfs down: stopped pid {stopped_ipfs.pid} ({stopped_ipfs.api_url})")


@devnet.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable")
@click.pass_obj
@friendly_errors
def devnet_status(obj: Context, as_json: bool) -> None:
    """Shows whether a devnet is running, and where. Exit code 1 when none is."""
    found = anvil.find(obj.run_dir)
    if found is None:
        click.echo(json.dumps({"running": False}) if as_json else "no devnet running")
        sys.exit(1)
    try:
        chain_id: int | None = anvil.rpc_chain_id(found.url)
    except OSError:
        chain_id = None
    if as_json:
        click.echo(
            json.dumps(
                {"running": True, "url": found.url, "answers": chain_id is not None, **asdict(found.state)}
            )
        )
        return
    uptime = time.time() - found.state.started_at
    answer = f"answers chain id {chain_id}" if chain_id is not None else "NOT answering RPC"
    where = f"{found.url} (profile {found.state.profile}, pid {found.pid}, up {uptime:.0f} s, {answer})"
    click.echo(f"devnet running: {where}")
    click.echo(f"log: {found.state.log_path}")
    daemon = ipfs_daemon.find(obj.run_dir)
    click.echo(f"ipfs: {daemon.api_url} (pid {daemon.state.pid})" if daemon else "ipfs: not running")


# ---------------------------------------------------------------- deploy


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--account", default="TEST::0", show_default=True, help="ape account that deploys")
@app_options
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the app's initial weights")
@click.option("--ipfs-api", envvar="FEDLEDGER_IPFS_API", help="default: the devnet's IPFS")
@click.option(
    "--placeholder-model",
    is_flag=True,
    help="deploy with the demo's placeholder initial model instead of an app's (no training possible)",
)
@click.argument("ape_options", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
@friendly_errors
def deploy(
    obj: Context,
    account: str,
    app_name: str,
    flower_app: str | None,
    flower_model: str | None,
    data_path: Path | None,
    config_items: tuple[str, ...],
    seed: int,
    ipfs_api: str | None,
    placeholder_model: bool,
    ape_options: tuple[str, ...],
) -> None:
    """Deploys with `ape run deploy all` against the running devnet.

    The app (`--app`, default mnist-cnn, or `--flower-app`) gives the initial model: its weights
    (from `--seed`, `--config` and, where the model's shape depends on it, `--data`) are pinned
    to IPFS with the model spec derived from them, and both are recorded. Further options go to
    the ape script, e.g. `fedledger deploy --app tabular --data mine.csv --voting-period 30`
    (see `ape run deploy all --help`). Governance gets the devnet profile (seconds, 4 % quorum):
    the devnet is local; `ape run deploy all` on any other chain defaults to days and refuses
    devnet-speed governance unless given `--unsafe-fast-governance`.
    """
    from fedledger.chain import ape_cli

    found = anvil.find(obj.run_dir)
    if found is None:
        raise click.UsageError("no devnet is running: `fedledger devnet up` first")
    options = list(ape_options)
    if any(o.startswith("--initial-model") for o in options):
        pass  # the initial model is given as it is (its spec is the caller's business)
    elif not placeholder_model:
        # The ape script loads the app and pins its initial model and spec: one implementation.
        # It runs in the project folder, hence the absolute data path.
        data = ["--data", str(data_path.resolve())] if data_path is not None else []
        options += [
            *app_arguments(app_name, flower_app, flower_model),
            *data,
            *[f"--config={item}" for item in config_items],
            "--seed",
            str(seed),
            "--ipfs-api",
            _ipfs_api_or_hint(obj, ipfs_api, "; or deploy with --placeholder-model"),
        ]
    else:
        from fedledger.demo.placeholder import write_placeholder

        model = write_placeholder(obj.run_dir)
        click.echo(f"initial model: PLACEHOLDER blob {model.path} (not a trained model)")
        options += [
            "--initial-model-file",
            str(model.path),
            "--model-spec-hash",
            "0x" + model.spec_hash.hex(),
        ]
    profile = anvil.PROFILES[found.state.profile]
    click.echo(f"ape run deploy all --network {profile.ape_network} --account {account} ({found.url})")
    _, output = ape_cli.deploy(
        project=obj.project,
        network=profile.ape_network,
        rpc_url=found.url,
        chain_id=found.state.chain_id,
        account=account,
        deployments_dir=obj.deployments_dir,
        options=options,
    )
    click.echo(output.rstrip())


# ---------------------------------------------------------------- gov


def _gov_options(function: F) -> F:
    function = click.option("--rpc-url", envvar="FEDLEDGER_RPC_URL", help="default: the running devnet")(
        function
    )
    return function


def _allow_remote_option(function: F) -> F:
    return click.option(
        "--allow-remote",
        is_flag=True,
        envvar="FEDLEDGER_ALLOW_REMOTE",
        help="send transactions even if the node is not a local Anvil devnet (a testnet, mainnet)",
    )(function)


def _ledger(obj: Context, rpc_url: str | None, *, sends: bool, allow_remote: bool = False) -> Any:
    """The deployment on the node at `rpc_url`; when the command `sends` transactions, only on a
    local devnet unless `allow_remote`."""
    from fedledger.chain.contracts import FedLedger
    from fedledger.chain.rpc import connect

    url = obj.rpc_url(rpc_url)
    w3 = connect(url)
    if sends:
        _require_local(w3, url, allow_remote)
    return FedLedger.on(w3, url=url, deployments_dir=obj.deployments_dir)


def _require_local(w3: Any, url: str, allow_remote: bool) -> None:
    from fedledger.chain.network import node_facts, require_local_devnet

    require_local_devnet(node_facts(w3, url), allow_remote=allow_remote)


def _account_option(function: F) -> F:
    return click.option(
        "--account",
        "account_spec",
        type=AccountParam(),
        envvar="FEDLEDGER_ACCOUNT",
        required=True,
        help="dev:N (Anvil test key, devnet only), env:VAR or keystore:PATH",
    )(function)


def _governance(obj: Context, rpc_url: str | None, *, sends: bool, allow_remote: bool = False) -> Any:
    from fedledger.chain.governance import Governance

    return Governance(_ledger(obj, rpc_url, sends=sends, allow_remote=allow_remote))


def _signer(governance: Any, spec: Any) -> Any:
    from fedledger.chain.accounts import resolve_account
    from fedledger.chain.rpc import is_anvil

    def ask() -> str:
        return str(click.prompt("keystore password", hide_input=True))

    return resolve_account(spec, allow_devnet=is_anvil(governance.ledger.w3), password=ask)


@cli.group()
def gov() -> None:
    """Governance: propose parameter changes, vote, queue, execute, list."""


@gov.command("propose", epilog=f"Parameters: {', '.join(parameter_names())}.")
@click.option(
    "--set",
    "changes",
    type=ChangeParam(),
    multiple=True,
    required=True,
    help="TARGET.PARAMETER=VALUE, e.g. task.AGGREGATION_RULE=MEDIAN (repeatable)",
)
@click.option("--description", required=True, help="what the proposal does and why")
@click.option(
    "--skip-simulation",
    is_flag=True,
    help="propose even if executing a change now would revert (checked by default)",
)
@_account_option
@_gov_options
@_allow_remote_option
@click.pass_obj
@friendly_errors
def gov_propose(
    obj: Context,
    changes: tuple[Any, ...],
    description: str,
    skip_simulation: bool,
    account_spec: Any,
    rpc_url: str | None,
    allow_remote: bool,
) -> None:
    """Proposes parameter changes (after checking each would execute)."""
    from fedledger.chain.proposals import format_time

    governance = _governance(obj, rpc_url, sends=True, allow_remote=allow_remote)
    signer = _signer(governance, account_spec)
    record = governance.propose(signer, list(changes), description, simulate=not skip_simulation)
    click.echo(f"proposal {record.proposal_id}")
    for line in record.proposal.describe(governance.ledger.deployment.addresses):
        click.echo(f"  {line}")
    click.echo(f"voting from {format_time(record.vote_start + 1)} to {format_time(record.vote_end)}")


@gov.command("vote")
@click.argument("proposal_id", type=ProposalId())
@click.option("--support", type=click.Choice(sorted(SUPPORT)), required=True)
@click.option("--reason", default="", help="recorded with the vote")
@_account_option
@_gov_options
@_allow_remote_option
@click.pass_obj
@friendly_errors
def gov_vote(
    obj: Context,
    proposal_id: int,
    support: str,
    reason: str,
    account_spec: Any,
    rpc_url: str | None,
    allow_remote: bool,
) -> None:
    """Votes on an active proposal with the account's stake."""
    governance = _governance(obj, rpc_url, sends=True, allow_remote=allow_remote)
    result = governance.vote(_signer(governance, account_spec), proposal_id, SUPPORT[support], reason)
    click.echo(f"voted {support} on {proposal_id} (gas {result.gas_used:,}, tx {result.tx_hash})")


@gov.command("queue")
@click.argument("proposal_id", type=ProposalId())
@_account_option
@_gov_options
@_allow_remote_option
@click.pass_obj
@friendly_errors
def gov_queue(
    obj: Context, proposal_id: int, account_spec: Any, rpc_url: str | None, allow_remote: bool
) -> None:
    """Queues a succeeded proposal in the timelock."""
    from fedledger.chain.proposals import format_time

    governance = _governance(obj, rpc_url, sends=True, allow_remote=allow_remote)
    result = governance.queue(_signer(governance, account_spec), proposal_id)
    eta = governance.times(proposal_id).eta
    click.echo(f"queued {proposal_id} (gas {result.gas_used:,}); executable at {format_time(eta)}")


@gov.command("execute")
@click.argument("proposal_id", type=ProposalId())
@_account_option
@_gov_options
@_allow_remote_option
@click.pass_obj
@friendly_errors
def gov_execute(
    obj: Context, proposal_id: int, account_spec: Any, rpc_url: str | None, allow_remote: bool
) -> None:
    """Executes a queued proposal once the timelock delay is over."""
    governance = _governance(obj, rpc_url, sends=True, allow_remote=allow_remote)
    result = governance.execute(_signer(governance, account_spec), proposal_id)
    click.echo(f"executed {proposal_id} (gas {result.gas_used:,}, tx {result.tx_hash})")


@gov.command("list")
@click.argument("proposal_id", type=ProposalId(), required=False)
@_gov_options
@click.pass_obj
@friendly_errors
def gov_list(obj: Context, proposal_id: int | None, rpc_url: str | None) -> None:
    """Lists proposals (or one) with state, votes and times."""
    from fedledger.chain.proposals import format_time, state_name
    from fedledger.chain.values import format_token

    governance = _governance(obj, rpc_url, sends=False)
    governance.sync_clock()
    records = governance.proposals() if proposal_id is None else [governance.find(proposal_id)]
    if not records:
        click.echo("no proposals yet")
    addresses = governance.ledger.deployment.addresses
    for record in records:
        status = governance.status(record.proposal_id)
        now = status.times.now
        click.echo(f"proposal {record.proposal_id}: {state_name(status.state)}")
        click.echo(f"  by {record.proposer}: {record.proposal.description}")
        for line in record.proposal.describe(addresses):
            click.echo(f"  {line}")
        click.echo(
            f"  votes: for {format_token(status.votes_for)}, against {format_token(status.votes_against)}, "
            f"abstain {format_token(status.votes_abstain)}; quorum {format_token(status.quorum)}"
        )
        click.echo(
            f"  voting {format_time(record.vote_start + 1, now)} to {format_time(record.vote_end, now)}"
        )
        if status.times.eta:
            click.echo(f"  eta {format_time(status.times.eta, now)}")


# ---------------------------------------------------------------- account


@cli.group()
def account() -> None:
    """Create a keystore account, or show an account's address. Keys are never printed."""


@account.command("new")
@click.option(
    "--keystore",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="where to write the encrypted JSON keystore (must not exist yet)",
)
@friendly_errors
def account_new(path: Path) -> None:
    """Creates a random account in an encrypted keystore and prints its address.

    The password comes from FEDLEDGER_KEYSTORE_PASSWORD, or is asked for twice. The file is
    readable by its owner only; use it as `--account keystore:PATH`.
    """
    import os

    from fedledger.chain.accounts import KEYSTORE_PASSWORD_ENV, AccountError, new_keystore

    path = path.expanduser()
    if path.exists() or path.is_symlink():
        raise AccountError(f"{path} already exists; not overwriting it")
    password = os.environ.get(KEYSTORE_PASSWORD_ENV)
    if password is None:
        password = str(click.prompt("new keystore password", hide_input=True, confirmation_prompt=True))
    address = new_keystore(path, password)
    click.echo(address)
    click.echo(f"keystore written to {path}; use --account keystore:{path}", err=True)


@account.command("show")
@click.argument("spec", type=AccountParam(), metavar="ACCOUNT")
@friendly_errors
def account_show(spec: Any) -> None:
    """Prints the address of ACCOUNT (dev:N, env:VAR or keystore:PATH), never its key."""
    from fedledger.chain.accounts import resolve_account

    click.echo(resolve_account(spec, allow_devnet=True, password=_ask_password).address)


# ---------------------------------------------------------------- trainer, aggregator


def _node_options(function: F) -> F:
    function = click.option("--ipfs-api", envvar="FEDLEDGER_IPFS_API", help="default: the devnet's IPFS")(
        function
    )
    return click.option("--rpc-url", envvar="FEDLEDGER_RPC_URL", help="default: the running devnet")(function)


def _service_options(function: F) -> F:
    function = _allow_remote_option(function)
    return click.option(
        "--wait-for-node",
        type=click.FloatRange(min=0),
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        help="at startup, wait this long for the JSON-RPC node to answer (0: fail at once)",
    )(function)


def _service_logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s.%(msecs)03d %(name)s %(message)s",
        datefmt="%H:%M:%S",
    )


def _connect_service(
    obj: Context,
    rpc_url: str | None,
    ipfs: str | None,
    account_spec: Any,
    *,
    allow_remote: bool,
    wait_for_node: float,
) -> Any:
    import logging

    from fedledger.chain.accounts import resolve_account
    from fedledger.chain.contracts import FedLedger
    from fedledger.chain.rpc import connect_waiting, is_anvil
    from fedledger.storage.ipfs import IpfsClient

    url = obj.rpc_url(rpc_url)
    w3 = connect_waiting(url, wait=wait_for_node, log=logging.getLogger("fedledger.node"))
    _require_local(w3, url, allow_remote)
    ledger = FedLedger.on(w3, url=url, deployments_dir=obj.deployments_dir)
    account = resolve_account(account_spec, allow_devnet=is_anvil(ledger.w3), password=_ask_password)
    return ledger, IpfsClient(ipfs_api(obj, ipfs)), account


def _ask_password() -> str:
    return str(click.prompt("keystore password", hide_input=True))


class ShardParam(click.ParamType):
    """INDEX/COUNT, e.g. 0/8."""

    name = "INDEX/COUNT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            index, count = (int(part) for part in str(value).split("/"))
        except ValueError:
            self.fail(f"{value!r} is not INDEX/COUNT (e.g. 0/8)", param, ctx)
        if not 0 <= index < count:
            self.fail(f"shard index {index} must be in 0..{count - 1}", param, ctx)
        return (index, count)


@cli.group()
def trainer() -> None:
    """Train on private data and commit an update every round."""


@trainer.command("run")
@_account_option
@app_options
@click.option(
    "--shard",
    type=ShardParam(),
    help="in a simulation: keep partition INDEX of COUNT of a common data set (the app's partition-id)",
)
@click.option(
    "--partition",
    type=click.Choice(["iid", "dirichlet"]),
    help="mnist apps: how the digits are partitioned (--config partitioning=..)  [default: iid]",
)
@click.option("--alpha", type=click.FloatRange(min=0.001), help="mnist apps: Dirichlet alpha  [default: 0.5]")
@click.option(
    "--data-seed", type=int, default=0, show_default=True, help="seed of the data split and of training"
)
@click.option("--epochs", type=click.IntRange(1, 100), help="local epochs (--config epochs=N)")
@click.option("--batch-size", type=click.IntRange(1, 4096), help="batch size (--config batch-size=N)")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="learning rate (--config lr=X)")
@click.option(
    "--rounds", type=click.IntRange(1), help="stop after committing this many rounds (default: run on)"
)
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True, help="torch CPU threads")
@click.option(
    "--attack", type=click.Choice(ATTACK_CHOICES), help="simulate a dishonest trainer (for experiments)"
)
@click.option(
    "--attack-param", multiple=True, metavar="NAME=VALUE", help="parameter of --attack (repeatable)"
)
@click.option(
    "--privacy-budget",
    type=click.FloatRange(min=0, min_open=True),
    metavar="EPSILON",
    help="stop before taking part in a round that would bring this trainer's epsilon above this "
    "(sample-level with --dp-sgd-noise, else client-level)",
)
@click.option(
    "--dp-sgd-noise",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SIGMA",
    help="train with DP-SGD (Opacus): per-example gradients clipped to --dp-sgd-clip, noise SIGMA x that",
)
@click.option(
    "--dp-sgd-clip",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="with --dp-sgd-noise: the L2 bound of each example's gradient",
)
@click.option(
    "--dp-sgd-delta",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=1e-5,
    show_default=True,
    help="with --dp-sgd-noise: the delta its epsilon is accounted at",
)
@click.option("-v", "--verbose", is_flag=True, help="log each round")
@_node_options
@_service_options
@click.pass_obj
@friendly_errors
def trainer_run(
    obj: Context,
    account_spec: Any,
    app_name: str,
    flower_app: str | None,
    flower_model: str | None,
    data_path: Path | None,
    config_items: tuple[str, ...],
    shard: tuple[int, int] | None,
    partition: str | None,
    alpha: float | None,
    data_seed: int,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    rounds: int | None,
    threads: int,
    attack: str | None,
    attack_param: tuple[str, ...],
    privacy_budget: float | None,
    dp_sgd_noise: float | None,
    dp_sgd_clip: float,
    dp_sgd_delta: float,
    verbose: bool,
    rpc_url: str | None,
    ipfs_api: str | None,
    allow_remote: bool,
    wait_for_node: float,
) -> None:
    """Runs a trainer: each round, train the app on this operator's data, commit a seal of the
    update, then pin it and reveal it.

    When the round's rules ask for differential privacy, the update is clipped and noised
    before it is sealed."""
    import torch

    from fedledger.app.api import Context as AppContext
    from fedledger.app.spec import check_app_matches
    from fedledger.attacks import attack_from_name
    from fedledger.learning.dp_sgd import DpSgdConfig, DpSgdLedger
    from fedledger.storage.models import deployed_spec
    from fedledger.trainer.trainer import Trainer

    _service_logging(verbose)
    torch.set_num_threads(threads)
    config = app_config(config_items)
    shortcuts = {
        "partitioning": partition,
        "alpha": alpha,
        "epochs": epochs,
        "batch-size": batch_size,
        "lr": lr,
    }
    config = {"data-seed": data_seed, **{k: v for k, v in shortcuts.items() if v is not None}, **config}
    app = selected_app(app_name, flower_app, flower_model)
    context = AppContext(
        config=config,
        data_path=data_path,
        partition_id=shard[0] if shard else None,
        num_partitions=shard[1] if shard else None,
        seed=data_seed * 1000 + (shard[0] if shard else 0),
    )
    ledger, ipfs, account = _connect_service(
        obj, rpc_url, ipfs_api, account_spec, allow_remote=allow_remote, wait_for_node=wait_for_node
    )
    spec = deployed_spec(ipfs, ledger.model_spec_cid(), ledger.model_spec_hash())
    check_app_matches(app, replace(context, seed=0), spec)
    runner = Trainer(
        ledger=ledger,
        ipfs=ipfs,
        account=account,
        app=app,
        data=app.load_data(context),
        context=context,
        spec=spec,
        attack=_attack(attack, attack_param, attack_from_name),
        privacy_budget=privacy_budget,
        dp_sgd=DpSgdConfig(dp_sgd_noise, dp_sgd_clip, dp_sgd_delta) if dp_sgd_noise else None,
        # What DP-SGD spent survives restarts: one ledger per account in the run directory.
        dp_sgd_ledger=DpSgdLedger.open(obj.run_dir / "privacy" / f"dp-sgd-{account.address}.json"),
    )
    stats = runner.run(max_rounds=rounds)
    if runner.privacy_exhausted:
        click.echo(f"stopped taking part: {runner.privacy_exhausted}", err=True)
    click.echo(
        json.dumps(
            {
                "trainer": runner.address,
                "committed": stats.committed_rounds,
                "claimed": stats.claimed,
                "privacy_budget_spent": runner.privacy_exhausted is not None,
            }
        )
    )


def _attack(name: str | None, params: tuple[str, ...], build: Callable[..., Any]) -> Any:
    if name is None:
        if params:
            raise click.UsageError("--attack-param needs --attack")
        return None
    values: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--attack-param {item!r} is not NAME=VALUE")
        values[key.replace("-", "_")] = value
    try:
        return build(name, **values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


@cli.group()
def aggregator() -> None:
    """Verify committed updates, aggregate them and attest the result."""


@aggregator.command("run")
@_account_option
@click.option("--rounds", type=click.IntRange(1), help="stop after this many rounds (default: run on)")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=8, show_default=True, help="concurrent fetches"
)
@click.option("-v", "--verbose", is_flag=True, help="log each round")
@_node_options
@_service_options
@click.pass_obj
@friendly_errors
def aggregator_run(
    obj: Context,
    account_spec: Any,
    rounds: int | None,
    workers: int,
    verbose: bool,
    rpc_url: str | None,
    ipfs_api: str | None,
    allow_remote: bool,
    wait_for_node: float,
) -> None:
    """Runs an aggregator service until stopped (or for --rounds rounds)."""
    from fedledger.aggregator.service import Aggregator
    from fedledger.storage.models import deployed_spec

    _service_logging(verbose)
    ledger, ipfs, account = _connect_service(
        obj, rpc_url, ipfs_api, account_spec, allow_remote=allow_remote, wait_for_node=wait_for_node
    )
    # The spec comes from the deployment (checked against the chain): no model code is needed.
    spec = deployed_spec(ipfs, ledger.model_spec_cid(), ledger.model_spec_hash())
    service = Aggregator(ledger=ledger, ipfs=ipfs, account=account, spec=spec, fetch_workers=workers)
    stats = service.run(max_rounds=rounds)
    click.echo(
        json.dumps({"aggregator": service.address, "attested": stats.attested, "closed": stats.closed})
    )


# ---------------------------------------------------------------- demo


@cli.command()
@click.option("--trainers", type=click.IntRange(2, 50), default=8, show_default=True)
@click.option("--aggregators", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--rounds", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--partition", type=click.Choice(["iid", "dirichlet"]), default="iid", show_default=True)
@click.option(
    "--alpha", type=click.FloatRange(min=0.001), default=0.5, show_default=True, help="Dirichlet alpha"
)
@click.option("--epochs", type=click.IntRange(1, 50), help="local epochs per round  [default: the app's]")
@click.option("--data-seed", type=int, default=0, show_default=True)
@app_options
@click.option(
    "--test-data",
    type=click.Path(exists=True, path_type=Path),
    help="held-out data the app scores global models on (with --data)",
)
@click.option(
    "--governance/--no-governance", default=True, show_default=True, help="pass a proposal before round 0"
)
@click.option(
    "--attackers", type=click.IntRange(0, 49), default=0, show_default=True, help="dishonest trainers"
)
@click.option(
    "--attack",
    "attacks",
    type=click.Choice(ATTACK_CHOICES),
    multiple=True,
    help="attack of the attackers; repeat to give them different ones in turn  [default: sign-flip]",
)
@click.option(
    "--switch-rule",
    type=click.Choice([r.name.lower() for r in AggregationRule]),
    help="mid-run governance vote switching the aggregation rule to this one",
)
@click.option(
    "--switch-at",
    type=click.IntRange(0),
    default=2,
    show_default=True,
    help="start that vote after this round",
)
@click.option(
    "--voting-period",
    type=click.IntRange(1, 3600),
    default=8,
    show_default=True,
    help="seconds a vote stays open",
)
@click.option(
    "--governance-only",
    is_flag=True,
    help="only the contracts and a governance vote (switch the aggregation rule), no training",
)
@click.option(
    "--rule",
    type=click.Choice([r.name.lower() for r in AggregationRule if r != AggregationRule.FEDAVG]),
    default="median",
    show_default=True,
    help="with --governance-only: the aggregation rule the proposal switches to",
)
@click.option(
    "--dp-noise",
    type=click.FloatRange(min=0, max=4_000),
    default=0.0,
    show_default=True,
    metavar="SIGMA",
    help="differential privacy: trainers add Gaussian noise of SIGMA x --dp-clip to their clipped updates (0: off)",
)
@click.option(
    "--dp-clip",
    type=click.FloatRange(min=0, max=1e6),
    default=1.0,
    show_default=True,
    metavar="C",
    help="differential privacy: the L2 bound trainers clip their updates' change to",
)
@click.option(
    "--dp-delta",
    type=click.FloatRange(min=1e-12, max=1, max_open=True),
    default=1e-5,
    show_default=True,
    help="differential privacy: the delta epsilon is accounted at",
)
@click.option("--dashboard", is_flag=True, help="serve the live dashboard during the demo and print its URL")
@click.option(
    "--dashboard-port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0: a free port"
)
@click.option(
    "--dashboard-hold",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="with --dashboard: keep the devnet and the page up this long after the last round",
)
@click.pass_obj
@friendly_errors
def demo(
    obj: Context,
    trainers: int,
    aggregators: int,
    rounds: int,
    partition: str,
    alpha: float,
    epochs: int | None,
    data_seed: int,
    app_name: str,
    flower_app: str | None,
    flower_model: str | None,
    data_path: Path | None,
    config_items: tuple[str, ...],
    test_data: Path | None,
    governance: bool,
    attackers: int,
    attacks: tuple[str, ...],
    switch_rule: str | None,
    switch_at: int,
    voting_period: int,
    governance_only: bool,
    rule: str,
    dp_noise: float,
    dp_clip: float,
    dp_delta: float,
    dashboard: bool,
    dashboard_port: int,
    dashboard_hold: float,
) -> None:
    """Federated training end to end on a private Anvil and IPFS daemon, then stops them.

    Deploys with the ape script, registers trainers and aggregators, passes a governance
    proposal, then trainers (separate processes) train the app (`--app`, default the MNIST CNN;
    `--data FILE` gives trainer i of N partition i of FILE) on their private data and commit,
    aggregators verify, aggregate and attest, and a row is printed per finalized round. The
    last line is a JSON summary.
    """
    if governance_only:
        from fedledger.demo import DemoOptions, run_demo

        if dashboard:
            raise click.UsageError("--dashboard runs with the training demo, not --governance-only")

        options = DemoOptions(
            project=obj.project,
            run_dir=obj.run_dir / "demo",
            trainers=min(trainers, 4),
            aggregators=min(aggregators, 2),
            new_rule=AggregationRule[rule.upper()],
        )
        if not run_demo(options, echo=click.echo).ok:
            raise click.ClickException("the demo finished, but its checks failed (see the summary)")
        return
    from fedledger.demo.federated import FederatedOptions, run_federated_demo

    federated = FederatedOptions(
        project=obj.project,
        run_dir=obj.run_dir / "demo",
        trainers=trainers,
        aggregators=aggregators,
        rounds=rounds,
        partition=partition,
        alpha=alpha,
        epochs=epochs,
        data_seed=data_seed,
        app=app_name,
        flower_app=flower_app,
        flower_model=flower_model,
        data=data_path,
        test_data=test_data,
        app_config=app_config(config_items),
        governance=governance,
        attackers=attackers,
        attacks=attacks or ("sign-flip",),
        switch_rule=AggregationRule[switch_rule.upper()] if switch_rule else None,
        switch_at=switch_at,
        voting_period=voting_period,
        dp_noise=dp_noise,
        dp_clip=dp_clip if dp_noise > 0 else 0.0,
        dp_delta=dp_delta,
        dashboard=dashboard,
        dashboard_port=dashboard_port,
        dashboard_hold=dashboard_hold,
    )
    if attackers >= trainers:
        raise click.UsageError(f"--attackers {attackers} leaves no honest trainer among {trainers}")
    if not run_federated_demo(federated, echo=click.echo).ok:
        raise click.ClickException("the demo finished, but its checks failed (see the summary)")


# ---------------------------------------------------------------- status, verify (read-only audits)


def _audit_ipfs(obj: Context, explicit: str | None) -> Any:
    from fedledger.storage.ipfs import IpfsClient

    return IpfsClient(ipfs_api(obj, explicit))


def _accuracy_options(*, default: bool) -> Callable[[F], F]:
    """`--accuracy/--no-accuracy` and `--data-seed`, for the commands that score global models."""

    def decorate(function: F) -> F:
        function = click.option(
            "--data-seed", type=int, default=0, show_default=True, help="seed of the held-out split"
        )(function)
        return click.option(
            "--accuracy/--no-accuracy",
            default=default,
            show_default=True,
            help="score each finalized global model with the app's evaluate() (needs IPFS)",
        )(function)

    return decorate


@cli.command("status")
@_accuracy_options(default=False)
@app_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable")
@_node_options
@click.pass_obj
@friendly_errors
def audit_status(
    obj: Context,
    accuracy: bool,
    data_seed: int,
    app_name: str,
    flower_app: str | None,
    flower_model: str | None,
    data_path: Path | None,
    config_items: tuple[str, ...],
    as_json: bool,
    rpc_url: str | None,
    ipfs_api: str | None,
) -> None:
    """Shows the federation: current round, global model, finalized rounds, participants, parameters.

    With --accuracy, each global model is scored by the app's evaluate() on its held-out data
    (`--data`, or what the app reads by default)."""
    from fedledger.audit.status import federation_status, render_status, status_to_json

    ledger = _ledger(obj, rpc_url, sends=False)
    ipfs, evaluator, spec = None, None, None
    if accuracy:
        from fedledger.app.api import Context as AppContext
        from fedledger.app.evaluation import app_evaluator
        from fedledger.storage.models import deployed_spec

        app = selected_app(app_name, flower_app, flower_model)
        context = AppContext(config={"data-seed": data_seed, **app_config(config_items)}, data_path=data_path)
        ipfs = _audit_ipfs(obj, ipfs_api)
        spec = deployed_spec(ipfs, ledger.model_spec_cid(), ledger.model_spec_hash())
        evaluator = app_evaluator(app, context)
    report = federation_status(ledger, evaluate_accuracy=evaluator, ipfs=ipfs, spec=spec)
    click.echo(json.dumps(status_to_json(report), indent=2) if as_json else render_status(report))


@cli.command("verify")
@click.argument("round_", metavar="ROUND", type=click.IntRange(min=0))
@click.option(
    "--workers", type=click.IntRange(1, 64), default=8, show_default=True, help="concurrent fetches"
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable")
@_node_options
@click.pass_obj
@friendly_errors
def audit_verify(
    obj: Context, round_: int, workers: int, as_json: bool, rpc_url: str | None, ipfs_api: str | None
) -> None:
    """Recomputes a finalized round from the chain and IPFS alone. Exit code 1 if it does not match."""
    from fedledger.audit.verify import render_verify, verify_round, verify_to_json
    from fedledger.storage.models import deployed_spec

    ledger = _ledger(obj, rpc_url, sends=False)
    ipfs = _audit_ipfs(obj, ipfs_api)
    spec = deployed_spec(ipfs, ledger.model_spec_cid(), ledger.model_spec_hash())
    report = verify_round(ledger, ipfs, round_, spec, workers=workers)
    click.echo(json.dumps(verify_to_json(report), indent=2) if as_json else render_verify(report))
    if not report.matches:
        sys.exit(1)


# ---------------------------------------------------------------- dashboard


@cli.command("dashboard")
@click.option(
    "--deployment",
    "deployment_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="the deployments file (default: <deployments-dir>/<chain id>.json of the node's chain)",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="loopback address to listen on")
@click.option("--port", type=click.IntRange(0, 65535), default=8050, show_default=True, help="0: a free port")
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.2, max=3600),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="how often the chain is read (the page follows)",
)
@_accuracy_options(default=True)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where evaluated accuracies are kept (default: <run-dir>/dashboard)",
)
@app_choice_options(
    app_help="the app whose evaluate() scores each global model (built-in, entry point or MODULE:ATTR)"
)
@app_input_options(data_help="held-out data the app evaluates on (default: what the app reads by default)")
@click.option("-v", "--verbose", is_flag=True, help="log each model evaluated and each read that fails")
@_node_options
@click.pass_obj
@friendly_errors
def dashboard(
    obj: Context,
    deployment_file: Path | None,
    host: str,
    port: int,
    refresh: float,
    accuracy: bool,
    data_seed: int,
    cache_dir: Path | None,
    app_name: str,
    flower_app: str | None,
    flower_model: str | None,
    data_path: Path | None,
    config_items: tuple[str, ...],
    verbose: bool,
    rpc_url: str | None,
    ipfs_api: str | None,
) -> None:
    """Serves a live page of the federation on this machine: the round and its countdowns, the
    rounds so far, held-out accuracy per round, participants, proposals and votes, parameters.

    Reads any deployment: the running devnet's by default, or `--rpc-url` with `--deployment`.
    """
    from fedledger.chain.deployments import load_deployment, read_deployment
    from fedledger.chain.rpc import connect
    from fedledger.dashboard.service import DashboardOptions, run_dashboard

    _service_logging(verbose)
    url = obj.rpc_url(rpc_url)
    if deployment_file is not None:
        try:
            deployment = read_deployment(deployment_file)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--deployment") from exc
    else:
        deployment = load_deployment(int(connect(url).eth.chain_id), obj.deployments_dir)
    options = DashboardOptions(
        rpc_url=url,
        deployment=deployment,
        ipfs_api=_ipfs_api_or_hint(obj, ipfs_api, "; or run with --no-accuracy (no accuracy plot)")
        if accuracy
        else None,
        host=host,
        port=port,
        refresh_seconds=refresh,
        data_seed=data_seed,
        app=app_name,
        flower_app=flower_app,
        flower_model=flower_model,
        app_config=app_config(config_items),
        test_data=data_path,
        cache_dir=cache_dir if cache_dir is not None else obj.run_dir / "dashboard",
    )
    run_dashboard(options, echo=click.echo)


def _ipfs_api_or_hint(obj: Context, explicit: str | None, hint: str = "") -> str:
    """`ipfs_api`, with a hint of what to do without IPFS."""
    try:
        return ipfs_api(obj, explicit)
    except click.UsageError as exc:
        raise click.UsageError(f"{exc.message}{hint}") from exc


def _add_new_command() -> None:
    from fedledger.scaffold.command import new

    cli.add_command(new)


_add_new_command()


def main() -> None:
    """Console entry point (`fedledger`)."""
    cli(prog_name="fedledger")
