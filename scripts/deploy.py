"""Deploys fedledger and records the addresses in deployments/<chain_id>.json.

    ape run deploy all --network ethereum:local:foundry --account TEST::0 \\
        --initial-model-digest 0x<64 hex> --initial-model-cid bafkrei... [--voting-period 20 ...]
    ape run deploy all ... --initial-model-file model.safetensors   # digest and CID computed
    ape run deploy all ... --app tabular --data mine.csv --ipfs-api http://127.0.0.1:5001
        # the app's initial model and spec pinned, and both recorded
    ape run deploy show --network ethereum:local:foundry

Every field of `DeployParameters` and `TaskParameters` is an option with the default of
fedledger/chain/params.py. Amounts are in the token's smallest unit; `100FED` means 100 tokens.
Governance clocks and quorum (unbonding period, voting delay and period, quorum, timelock delay)
come from a governance profile: `devnet` (seconds) on a local devnet, `network` (days) anywhere
else, or `--governance-profile NAME`; each option overrides its field. Devnet-speed governance
on a chain that is not a local devnet is refused unless `--unsafe-fast-governance` is given.
Against an Anvil started elsewhere: `APE_FOUNDRY_HOST=http://127.0.0.1:PORT ape run deploy all ...`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from fedledger.app.options import APP_HELP, app_choice_options, app_input_options, pin_app_model, selected_app
from fedledger.chain.cid import RAW_BLOCK_LIMIT, cid_v1_raw
from fedledger.chain.deployments import (
    DEFAULT_DIRECTORY,
    Deployment,
    DeploymentNotFoundError,
    load_deployment,
    write_deployment,
)
from fedledger.chain.network import (
    NodeFacts,
    UnsafeGovernanceError,
    default_governance,
    require_safe_governance,
)
from fedledger.chain.params import (
    GOVERNANCE_FIELDS,
    GOVERNANCE_PROFILES,
    AggregationRule,
    DeployParameters,
    GovernanceProfile,
    TaskParameters,
)
from fedledger.chain.values import format_token, parse_bytes32, parse_uint
from fedledger.storage.models import InitialModel

# Help for each parameter option: what it is and its unit.
HELP = {
    "token_supply": "FED minted to the deployer (smallest unit; 1000FED works)",
    "reward_pool": "FED moved from the deployer into the task's reward pool",
    "min_trainer_stake": "minimum stake of a trainer",
    "min_aggregator_stake": "minimum stake of an aggregator",
    "unbonding_period": "seconds before unstaked tokens can be withdrawn",
    "voting_delay": "seconds between a proposal and its vote snapshot",
    "voting_period": "seconds a vote stays open",
    "proposal_threshold": "stake needed to propose",
    "quorum_percent": "percent of total stake that must vote for or abstain",
    "timelock_delay": "seconds between queueing and executing a proposal",
    "commit_window": "seconds trainers have to commit a sealed update in a round",
    "reveal_window": "seconds after the commit deadline trainers have to reveal their updates",
    "aggregation_window": "seconds aggregators have to attest after the reveal window",
    "min_updates": "commits a round needs to be aggregated",
    "aggregation_rule": "fedavg, median, trimmed_mean or multi_krum (or 0-3)",
    "aggregation_param": "parameter of the rule (trim share, Krum f, ...)",
    "reward_per_round": "FED shared by the accepted trainers of a round",
    "aggregator_fee": "FED shared by the aggregators that attested the result",
    "sample_cap": "cap on the samples one trainer's reward counts",
    "trainer_slash_bps": "basis points of stake slashed for a provably invalid update",
    "outlier_slash_bps": "basis points of stake slashed for an outlier update",
    "aggregator_slash_bps": "basis points slashed from aggregators that attested another result",
    "quorum_bps": "basis points of aggregator stake that finalize a round",
    "clip_norm": "L2 bound on each update's change, in millionths (1000000 = 1.0); 0: no clipping",
    "dp_noise_multiplier": "differential privacy: noise std as a multiple of the DP clip norm, in millionths; 0: off",
    "dp_clip_norm": "differential privacy: L2 bound trainers clip their updates to, in millionths; 0: off",
    "dp_delta": "differential privacy: the delta budgets are accounted at, in units of 1e-12 (10000000 = 1e-5)",
}
MODEL_FIELDS = {"initial_model_digest", "initial_model_cid", "model_spec_hash", "model_spec_cid", "task"}


class UintParam(click.ParamType):
    """An unsigned integer, `100FED`, `1e18`, `0x..`, or an enum member name."""

    name = "uint"

    def __init__(self, enum: Any = None) -> None:
        self.enum = enum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_uint(str(value), enum=self.enum)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Bytes32Param(click.ParamType):
    """Exactly 32 bytes as 0x-prefixed hex."""

    name = "bytes32"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bytes:
        if isinstance(value, bytes):
            return value
        try:
            return parse_bytes32(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.name not in MODEL_FIELDS]


def parameter_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """One `--kebab-name` option per DeployParameters/TaskParameters field, defaults from params.py
    (the governance fields: from the governance profile, so their default is None here)."""
    defaults = {**_defaults(TaskParameters), **_defaults(DeployParameters)}
    for field in reversed(_fields(DeployParameters) + _fields(TaskParameters)):
        enum = AggregationRule if field.name == "aggregation_rule" else None
        default: int | None = defaults[field.name]
        if field.name in GOVERNANCE_FIELDS:
            default = None
            shown = ", ".join(f"{p.name} {getattr(p, field.name)}" for p in GOVERNANCE_PROFILES.values())
        elif enum:
            shown = AggregationRule(defaults[field.name]).name.lower()
        else:
            shown = _show_default(field.name, defaults[field.name])
        function = click.option(
            f"--{field.name.replace('_', '-')}",
            field.name,
            type=UintParam(enum),
            default=default,
            show_default=shown,
            help=HELP.get(field.name, field.name.replace("_", " ")),
        )(function)
    return function


def _defaults(cls: type) -> dict[str, int]:
    return {f.name: int(f.default) for f in _fields(cls) if f.default is not dataclasses.MISSING}


def _show_default(name: str, value: int) -> str:
    token_like = ("supply", "pool", "stake", "threshold", "reward", "fee")
    return format_token(value) if any(word in name for word in token_like) else str(value)


def build_parameters(
    options: dict[str, Any],
    digest: bytes,
    cid: str,
    spec_hash: bytes,
    spec_cid: str = "",
    *,
    governance: GovernanceProfile,
) -> DeployParameters:
    """The deployment's parameters: the options given, the governance fields left unset (None)
    from the `governance` profile."""
    task = TaskParameters(**{f.name: options[f.name] for f in _fields(TaskParameters)})
    deploy = {f.name: options[f.name] for f in _fields(DeployParameters)}
    for name, value in governance.fields().items():
        if deploy.get(name) is None:
            deploy[name] = value
    return DeployParameters(
        initial_model_digest=digest,
        initial_model_cid=cid,
        model_spec_hash=spec_hash,
        model_spec_cid=spec_cid,
        task=task,
        **deploy,
    )


def resolve_model(digest: bytes | None, cid: str | None, model_file: Path | None) -> tuple[bytes, str]:
    """The initial model's digest and CID, from the options or computed from the file."""
    if model_file is not None:
        if digest is not None:
            raise click.UsageError("give --initial-model-file or --initial-model-digest, not both")
        data = model_file.read_bytes()
        digest = hashlib.sha256(data).digest()
        if cid is None:
            if len(data) > RAW_BLOCK_LIMIT:
                raise click.UsageError(
                    f"{model_file} is larger than one IPFS block ({RAW_BLOCK_LIMIT} bytes): its CID cannot "
                    "be computed locally; pin it and pass --initial-model-cid"
                )
            cid = cid_v1_raw(data)
    if digest is None or cid is None:
        raise click.UsageError(
            "the initial model is required: --initial-model-file PATH, or --initial-model-digest 0x.. "
            "and --initial-model-cid CID"
        )
    if digest == bytes(32):
        raise click.BadParameter("the zero digest names no model", param_hint="--initial-model-digest")
    if not cid or len(cid) > 128:
        raise click.BadParameter("a CID has 1 to 128 characters", param_hint="--initial-model-cid")
    return digest, cid


@click.group(short_help="Deploy fedledger, or show a deployment")
def cli() -> None:
    """Deploys the fedledger contracts and records them in deployments/<chain_id>.json."""


@cli.command("all", cls=ConnectedProviderCommand, short_help="Deploy and wire every contract")
@network_option()
@account_option(prompt=False)
@click.option(
    "--initial-model-digest", type=Bytes32Param(), help="sha256 of the initial model file (0x + 64 hex)"
)
@click.option("--initial-model-cid", help="IPFS CID of the initial model file")
@click.option(
    "--initial-model-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="compute digest (and CIDv1 raw, up to 256 KiB) from this file instead",
)
@click.option(
    "--model-spec-hash",
    type=Bytes32Param(),
    default="0x" + "00" * 32,
    show_default="zero: no spec yet",
    help="hash of the model specification updates must match",
)
@click.option(
    "--model-spec-cid",
    default="",
    help="IPFS CID of the model spec's canonical JSON (recorded, so clients need no model code)",
)
@click.option(
    "--deployments-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIRECTORY,
    show_default=True,
    help="where <chain_id>.json is written",
)
@app_choice_options(
    app_help=f"pin this app's initial model and spec and record both (instead of --initial-model-*): {APP_HELP}",
    default=None,
)
@app_input_options()
@click.option(
    "--seed", type=int, default=0, show_default=True, help="with an app: seed of its initial weights"
)
@click.option("--ipfs-api", envvar="FEDLEDGER_IPFS_API", help="with an app: the Kubo RPC API it is pinned to")
@click.option(
    "--governance-profile",
    type=click.Choice(sorted(GOVERNANCE_PROFILES)),
    show_default="devnet on a local devnet, network elsewhere",
    help="the clocks and quorum of governance (see fedledger/chain/params.py)",
)
@click.option(
    "--unsafe-fast-governance",
    is_flag=True,
    help="deploy devnet-speed governance to a chain that is not a local devnet anyway",
)
@parameter_options
def deploy_everything(
    provider: Any,
    account: Any,
    initial_model_digest: bytes | None,
    initial_model_cid: str | None,
    initial_model_file: Path | None,
    model_spec_hash: bytes,
    model_spec_cid: str,
    deployments_dir: Path,
    app_name: str | None,
    flower_app: str | None,
    flower_model: str | None,
    data_path: Path | None,
    config_items: tuple[str, ...],
    seed: int,
    ipfs_api: str | None,
    governance_profile: str | None,
    unsafe_fast_governance: bool,
    **options: Any,
) -> None:
    """Deploys token, timelock, registry, task and governor, wires them, funds the reward pool."""
    from ape import project

    from fedledger.chain.ape_deploy import deploy_all

    if account is None:
        raise click.UsageError("--account is required (e.g. --account TEST::0 on a local network)")
    if app_name is not None or flower_app is not None:
        if initial_model_digest or initial_model_cid or initial_model_file:
            raise click.UsageError("give an app or --initial-model-*, not both")
        initial = _pin_app(
            provider, app_name, flower_app, flower_model, data_path, config_items, seed, ipfs_api
        )
        initial_model_digest, initial_model_cid = initial.digest, initial.cid
        model_spec_hash, model_spec_cid = initial.spec.hash(), initial.spec_cid
    digest, cid = resolve_model(initial_model_digest, initial_model_cid, initial_model_file)
    if len(model_spec_cid) > 128:
        raise click.BadParameter("a CID has at most 128 characters", param_hint="--model-spec-cid")
    facts = node_facts_of(provider)
    governance = GOVERNANCE_PROFILES[governance_profile] if governance_profile else default_governance(facts)
    params = build_parameters(options, digest, cid, model_spec_hash, model_spec_cid, governance=governance)
    if params.reward_pool > params.token_supply:
        raise click.BadParameter("the reward pool exceeds the token supply", param_hint="--reward-pool")
    try:
        require_safe_governance(params, facts, force=unsafe_fast_governance)
    except UnsafeGovernanceError as exc:
        raise click.UsageError(str(exc)) from None

    chain_id = int(provider.chain_id)
    # Recorded as the deployment's block number: every event of this deployment is at or after it.
    start_block = int(provider.get_block("latest").number)
    click.echo(f"deploying fedledger to {provider.network_choice} (chain {chain_id}) from {account.address}")
    deployed = deploy_all(project, account, params)
    deployment = Deployment(
        chain_id=chain_id,
        network=provider.network_choice,
        deployer=str(account.address),
        block_number=start_block,
        addresses=deployed.addresses(),
        parameters=_jsonable(params),
    )
    path = write_deployment(deployment, deployments_dir)
    for name, address in deployment.addresses.items():
        click.echo(f"  {name:<16} {address}")
    click.echo(f"initial model {'0x' + digest.hex()} {cid}")
    click.echo(f"wrote {path}")


def _pin_app(
    provider: Any,
    app_name: str | None,
    flower_app: str | None,
    flower_model: str | None,
    data_path: Path | None,
    config_items: tuple[str, ...],
    seed: int,
    ipfs_api: str | None,
) -> InitialModel:
    """The app's initial model and spec, pinned to `ipfs_api`."""
    from fedledger.chain.errors import FedledgerError
    from fedledger.storage.ipfs import IpfsClient

    if ipfs_api is None:
        raise click.UsageError(
            "an app's initial model is pinned to IPFS: give --ipfs-api (or FEDLEDGER_IPFS_API)"
        )
    try:
        app = selected_app(app_name, flower_app, flower_model)
        initial = pin_app_model(
            IpfsClient(ipfs_api),
            app,
            config_items=config_items,
            data_path=data_path,
            seed=seed,
            chain_id=int(provider.chain_id),
        )
    except FedledgerError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"initial model: app {app.name!r}, {initial.spec.parameter_count:,} values, {initial.cid}")
    click.echo(f"model spec: {initial.spec_cid}")
    return initial


@cli.command(cls=ConnectedProviderCommand, short_help="Print the deployment of the connected chain")
@network_option()
@click.option(
    "--deployments-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIRECTORY,
    show_default=True,
)
def show(provider: Any, deployments_dir: Path) -> None:
    """Prints deployments/<chain_id>.json of the connected chain."""
    try:
        deployment = load_deployment(int(provider.chain_id), deployments_dir)
    except (DeploymentNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(dataclasses.asdict(deployment), indent=2, sort_keys=True))


def node_facts_of(provider: Any) -> NodeFacts:
    """Whether ape's connected `provider` is a local devnet: its URL, chain id and client."""
    from fedledger.chain.rpc import is_anvil

    url = str(getattr(provider, "http_uri", None) or getattr(provider, "uri", None) or "")
    w3 = getattr(provider, "web3", None)
    return NodeFacts(url=url, chain_id=int(provider.chain_id), anvil=w3 is not None and is_anvil(w3))


def _jsonable(params: DeployParameters) -> dict[str, Any]:
    """The parameters as JSON: bytes as 0x-hex, integers as they are."""

    def convert(value: Any) -> Any:
        if isinstance(value, bytes):
            return "0x" + value.hex()
        if isinstance(value, dict):
            return {key: convert(v) for key, v in value.items()}
        return int(value) if isinstance(value, int) else value

    return {key: convert(value) for key, value in dataclasses.asdict(params).items()}
