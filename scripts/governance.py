"""Governance from ape: propose parameter changes, vote, queue, execute, and show status.

    ape run governance propose --set task.AGGREGATION_RULE=MEDIAN --description "Use the median" \\
        --network ethereum:local:foundry --account TEST::1
    ape run governance vote PROPOSAL_ID --support for --account TEST::1
    ape run governance queue PROPOSAL_ID --account TEST::0
    ape run governance execute PROPOSAL_ID --account TEST::0
    ape run governance status [PROPOSAL_ID]

Proposals are read back from the governor's ProposalCreated events, so queue and execute need
only the id. Changes are TARGET.PARAMETER=VALUE with TARGET `task` or `registry`; the same
parsing as `fedledger gov propose` (fedledger/chain/proposals.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from fedledger.chain.abi import load_abis
from fedledger.chain.click_types import ChangeParam, ProposalId
from fedledger.chain.deployments import (
    DEFAULT_DIRECTORY,
    Deployment,
    DeploymentNotFoundError,
    load_deployment,
)
from fedledger.chain.errors import ErrorDecoder
from fedledger.chain.governance import simulate_execution
from fedledger.chain.params import ProposalState, VoteType
from fedledger.chain.proposals import (
    ParameterChange,
    Proposal,
    ProposalError,
    ProposalTimes,
    format_time,
    state_name,
    state_problem,
)
from fedledger.chain.values import format_token

SUPPORT = {"for": VoteType.FOR, "against": VoteType.AGAINST, "abstain": VoteType.ABSTAIN}


deployments_dir_option = click.option(
    "--deployments-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIRECTORY,
    show_default=True,
    help="where <chain_id>.json is",
)


@click.group(short_help="Propose, vote, queue, execute parameter changes")
def cli() -> None:
    """Stake-weighted governance of a fedledger deployment (OpenZeppelin Governor + timelock)."""


@cli.command(cls=ConnectedProviderCommand, short_help="Propose parameter changes")
@network_option()
@account_option(prompt=False)
@click.option(
    "--set",
    "changes",
    type=ChangeParam(),
    multiple=True,
    required=True,
    help="a change, e.g. task.AGGREGATION_RULE=MEDIAN or registry.MIN_TRAINER_STAKE=200FED (repeatable)",
)
@click.option("--description", required=True, help="what the proposal does and why")
@click.option("--skip-simulation", is_flag=True, help="propose even if executing a change now would revert")
@deployments_dir_option
def propose(
    provider: Any,
    account: Any,
    changes: tuple[ParameterChange, ...],
    description: str,
    skip_simulation: bool,
    deployments_dir: Path,
) -> None:
    """Proposes the changes; prints the proposal id and when voting opens."""
    _require_account(account)
    deployment, governor = _governor(provider, deployments_dir)
    try:
        proposal = Proposal.from_changes(changes, deployment.addresses, description)
    except ProposalError as exc:
        raise click.UsageError(str(exc)) from None
    if not skip_simulation:
        problems = simulate_execution(
            provider.web3,
            deployment.address("FedTimelock"),
            proposal,
            ErrorDecoder(load_abis().values()),
            deployment.addresses,
        )
        if problems:
            raise click.ClickException(
                "the proposal would fail when executed: "
                + "; ".join(problems)
                + " (--skip-simulation to propose anyway)"
            )
    _sync_clock(provider)
    receipt = _transact("propose", governor.propose, *proposal.as_args(), sender=account)
    created = next(log for log in receipt.events if log.event_name == "ProposalCreated")
    args = created.event_arguments
    click.echo(f"proposal {args['proposalId']}")
    for line in proposal.describe(deployment.addresses):
        click.echo(f"  {line}")
    click.echo(
        f"voting from {format_time(int(args['voteStart']) + 1)} to {format_time(int(args['voteEnd']))}"
    )


@cli.command(cls=ConnectedProviderCommand, short_help="Vote on an active proposal")
@network_option()
@account_option(prompt=False)
@click.argument("proposal_id", type=ProposalId())
@click.option("--support", type=click.Choice(sorted(SUPPORT)), required=True)
@click.option("--reason", default="", help="recorded with the vote")
@deployments_dir_option
def vote(
    provider: Any, account: Any, proposal_id: int, support: str, reason: str, deployments_dir: Path
) -> None:
    """Casts the account's stake-weighted vote."""
    _require_account(account)
    _, governor = _governor(provider, deployments_dir)
    _require_state(provider, governor, "vote", proposal_id)
    if governor.hasVoted(proposal_id, account.address):
        raise click.ClickException(f"{account.address} has already voted on proposal {proposal_id}")
    choice = int(SUPPORT[support])
    if reason:
        receipt = _transact("vote", governor.castVoteWithReason, proposal_id, choice, reason, sender=account)
    else:
        receipt = _transact("vote", governor.castVote, proposal_id, choice, sender=account)
    weight = next(log for log in receipt.events if log.event_name == "VoteCast").event_arguments["weight"]
    click.echo(f"voted {support} on {proposal_id} with {format_token(int(weight))}")


@cli.command(cls=ConnectedProviderCommand, short_help="Queue a succeeded proposal in the timelock")
@network_option()
@account_option(prompt=False)
@click.argument("proposal_id", type=ProposalId())
@deployments_dir_option
def queue(provider: Any, account: Any, proposal_id: int, deployments_dir: Path) -> None:
    """Queues the proposal; it can be executed after the timelock delay."""
    _require_account(account)
    deployment, governor = _governor(provider, deployments_dir)
    _require_state(provider, governor, "queue", proposal_id)
    proposal = _find(governor, deployment, proposal_id)
    _transact("queue", governor.queue, *proposal.as_hashed_args(), sender=account)
    click.echo(f"queued {proposal_id}; executable at {format_time(int(governor.proposalEta(proposal_id)))}")


@cli.command(cls=ConnectedProviderCommand, short_help="Execute a queued proposal")
@network_option()
@account_option(prompt=False)
@click.argument("proposal_id", type=ProposalId())
@deployments_dir_option
def execute(provider: Any, account: Any, proposal_id: int, deployments_dir: Path) -> None:
    """Executes the proposal's changes through the timelock."""
    _require_account(account)
    deployment, governor = _governor(provider, deployments_dir)
    _require_state(provider, governor, "execute", proposal_id)
    proposal = _find(governor, deployment, proposal_id)
    _transact("execute", governor.execute, *proposal.as_hashed_args(), sender=account)
    click.echo(f"executed {proposal_id}:")
    for line in proposal.describe(deployment.addresses):
        click.echo(f"  {line}")


@cli.command(cls=ConnectedProviderCommand, short_help="State, votes and times of proposals")
@network_option()
@click.argument("proposal_id", type=ProposalId(), required=False)
@deployments_dir_option
def status(provider: Any, proposal_id: int | None, deployments_dir: Path) -> None:
    """Shows one proposal, or every proposal since the deployment."""
    deployment, governor = _governor(provider, deployments_dir)
    _sync_clock(provider)
    proposals = dict(_proposals(governor, deployment))
    if proposal_id is not None and proposal_id not in proposals:
        raise click.ClickException(f"no proposal {proposal_id} on chain {deployment.chain_id}")
    shown = [proposal_id] if proposal_id is not None else list(proposals)
    if not shown:
        click.echo("no proposals yet")
    now = int(provider.get_block("latest").timestamp)
    for pid in shown:
        state = ProposalState(int(governor.state(pid)))
        against, for_, abstain = governor.proposalVotes(pid)
        eta = int(governor.proposalEta(pid))
        click.echo(f"proposal {pid}: {state_name(state)}")
        for line in proposals[pid].describe(deployment.addresses):
            click.echo(f"  {line}")
        click.echo(f"  description: {proposals[pid].description}")
        click.echo(
            f"  votes: for {format_token(int(for_))}, against {format_token(int(against))}, "
            f"abstain {format_token(int(abstain))}"
        )
        click.echo(
            f"  voting: {format_time(int(governor.proposalSnapshot(pid)) + 1, now)} to "
            f"{format_time(int(governor.proposalDeadline(pid)), now)}"
        )
        click.echo(f"  eta: {format_time(eta, now) if eta else '-'}")


# ---------------------------------------------------------------- helpers


def _require_account(account: Any) -> None:
    if account is None:
        raise click.UsageError("--account is required (e.g. --account TEST::1 on a local network)")


def _transact(action: str, method: Any, *args: Any, sender: Any) -> Any:
    """Sends a transaction; a revert becomes a one-line error naming the custom error."""
    from ape.exceptions import ContractLogicError

    try:
        return method(*args, sender=sender)
    except ContractLogicError as exc:
        raise click.ClickException(f"{action} reverted: {type(exc).__name__}: {exc}") from None


def _governor(provider: Any, deployments_dir: Path) -> tuple[Deployment, Any]:
    from ape import project

    try:
        deployment = load_deployment(int(provider.chain_id), deployments_dir)
    except (DeploymentNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    return deployment, project.FedGovernor.at(deployment.address("FedGovernor"))


def _sync_clock(provider: Any) -> None:
    """On an automining Anvil the clock only moves with blocks: mine one so views see now."""
    if getattr(provider, "name", "") == "foundry" and getattr(provider, "auto_mine", False):
        provider.mine()


def _require_state(provider: Any, governor: Any, action: str, proposal_id: int) -> None:
    _sync_clock(provider)
    snapshot = int(governor.proposalSnapshot(proposal_id))
    if snapshot == 0:
        raise click.ClickException(f"no proposal {proposal_id}; `ape run governance status` lists them")
    times = ProposalTimes(
        proposal_id=proposal_id,
        state=ProposalState(int(governor.state(proposal_id))),
        snapshot=snapshot,
        deadline=int(governor.proposalDeadline(proposal_id)),
        eta=int(governor.proposalEta(proposal_id)),
        now=int(provider.get_block("latest").timestamp),
    )
    problem = state_problem(action, times)
    if problem:
        raise click.ClickException(problem)


def _proposals(governor: Any, deployment: Deployment) -> Iterator[tuple[int, Proposal]]:
    from ape import chain

    for log in governor.ProposalCreated.range(deployment.block_number, chain.blocks.height + 1):
        args = log.event_arguments
        yield int(args["proposalId"]), Proposal.from_event(args)


def _find(governor: Any, deployment: Deployment, proposal_id: int) -> Proposal:
    for pid, proposal in _proposals(governor, deployment):
        if pid == proposal_id:
            return proposal
    raise click.ClickException(
        f"no ProposalCreated event for {proposal_id} since block {deployment.block_number}"
    )
