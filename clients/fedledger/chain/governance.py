"""The governor over web3.py: propose, vote, queue, execute, and the status of proposals.

Proposals are read back from the governor's `ProposalCreated` events (from the deployment
block on), so queue and execute need only the proposal id. Every action first checks the
proposal's state and fails with a message that says what to wait for, instead of a revert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.types import TxParams, Wei

from fedledger.chain.contracts import FedLedger
from fedledger.chain.errors import ContractRevertError, ErrorDecoder, FedledgerError
from fedledger.chain.params import ProposalState, VoteType
from fedledger.chain.proposals import ParameterChange, Proposal, ProposalTimes, state_problem
from fedledger.chain.rpc import automine, latest_timestamp, mine
from fedledger.chain.transactions import TxResult


class GovernanceError(FedledgerError):
    """A governance action that cannot happen (unknown proposal, wrong state)."""


@dataclass(frozen=True, kw_only=True)
class ProposalRecord:
    """A proposal as created on chain."""

    proposal_id: int
    proposer: str
    proposal: Proposal
    vote_start: int
    vote_end: int
    block_number: int


@dataclass(frozen=True, kw_only=True)
class ProposalStatus:
    """State, tally and times of a proposal."""

    times: ProposalTimes
    votes_against: int
    votes_for: int
    votes_abstain: int
    quorum: int

    @property
    def state(self) -> ProposalState:
        return self.times.state


class Governance:
    """Governor actions for one deployment."""

    def __init__(self, ledger: FedLedger, *, sync_clock: bool | None = None) -> None:
        """`sync_clock`: mine an empty block before time-dependent actions, so calls see the
        current time (default: on an automining Anvil, where blocks appear only with transactions).
        """
        self.ledger = ledger
        self.governor = ledger.governor
        self._sync_clock = automine(ledger.w3) if sync_clock is None else sync_clock

    def sync_clock(self) -> None:
        """Brings the chain clock to now on an automining Anvil (no-op elsewhere)."""
        if self._sync_clock:
            mine(self.ledger.w3)

    # ---------------------------------------------------------------- actions

    def propose(
        self,
        account: LocalAccount,
        changes: Sequence[ParameterChange],
        description: str,
        *,
        simulate: bool = True,
    ) -> ProposalRecord:
        """Proposes `changes`; returns the created proposal.

        `simulate`: first run each change as the timelock would (an `eth_call` from the timelock
        on the current state) and refuse a proposal that would revert when executed.
        """
        proposal = Proposal.from_changes(changes, self.ledger.deployment.addresses, description)
        if simulate:
            problems = simulate_execution(
                self.ledger.w3,
                self.ledger.timelock.address,
                proposal,
                self.ledger.decoder,
                self.ledger.deployment.addresses,
            )
            if problems:
                raise GovernanceError(
                    "the proposal would fail when executed: "
                    + "; ".join(problems)
                    + " (simulated one by one on the current state; skip the check to propose anyway)"
                )
        self.sync_clock()
        try:
            result = self.ledger.sender.transact(
                account, self.governor.functions.propose(*proposal.as_args()), label="propose"
            )
        except ContractRevertError as exc:
            if exc.name == "GovernorInsufficientProposerVotes" and self.ledger.votes(account.address) >= int(
                exc.arguments.get("threshold", 0)
            ):
                raise GovernanceError(
                    f"{exc}: the proposer's stake counts from the second after it was staked; retry shortly"
                ) from exc
            raise
        for event in self.governor.events.ProposalCreated().process_receipt(result.receipt):
            return proposal_record(event)
        raise GovernanceError(f"propose {result.tx_hash} emitted no ProposalCreated event")

    def vote(self, account: LocalAccount, proposal_id: int, support: VoteType, reason: str = "") -> TxResult:
        self._require("vote", proposal_id)
        if self.ledger.sender.call(self.governor.functions.hasVoted(proposal_id, account.address)):
            raise GovernanceError(f"{account.address} has already voted on proposal {proposal_id}")
        function = (
            self.governor.functions.castVoteWithReason(proposal_id, int(support), reason)
            if reason
            else self.governor.functions.castVote(proposal_id, int(support))
        )
        return self.ledger.sender.transact(account, function, label=f"vote {support.name}")

    def queue(self, account: LocalAccount, proposal_id: int) -> TxResult:
        self._require("queue", proposal_id)
        proposal = self.find(proposal_id).proposal
        return self.ledger.sender.transact(
            account, self.governor.functions.queue(*proposal.as_hashed_args()), label="queue"
        )

    def execute(self, account: LocalAccount, proposal_id: int) -> TxResult:
        self._require("execute", proposal_id)
        proposal = self.find(proposal_id).proposal
        return self.ledger.sender.transact(
            account, self.governor.functions.execute(*proposal.as_hashed_args()), label="execute"
        )

    # ---------------------------------------------------------------- reads

    def state(self, proposal_id: int) -> ProposalState:
        return ProposalState(
            self.ledger.sender.call(self.governor.functions.state(proposal_id), label="state")
        )

    def times(self, proposal_id: int) -> ProposalTimes:
        call = self.ledger.sender.call
        functions = self.governor.functions
        return ProposalTimes(
            proposal_id=proposal_id,
            state=self.state(proposal_id),
            snapshot=int(call(functions.proposalSnapshot(proposal_id))),
            deadline=int(call(functions.proposalDeadline(proposal_id))),
            eta=int(call(functions.proposalEta(proposal_id))),
            now=latest_timestamp(self.ledger.w3),
        )

    def status(self, proposal_id: int) -> ProposalStatus:
        times = self.times(proposal_id)
        against, for_, abstain = self.ledger.sender.call(self.governor.functions.proposalVotes(proposal_id))
        quorum = (
            int(self.ledger.sender.call(self.governor.functions.quorum(times.snapshot)))
            if (times.now > times.snapshot)
            else 0
        )
        return ProposalStatus(
            times=times,
            votes_against=int(against),
            votes_for=int(for_),
            votes_abstain=int(abstain),
            quorum=quorum,
        )

    def proposals(self) -> list[ProposalRecord]:
        """Every proposal created since the deployment, oldest first."""
        logs = self.governor.events.ProposalCreated().get_logs(from_block=self.ledger.deployment.block_number)
        return [proposal_record(log) for log in logs]

    def find(self, proposal_id: int) -> ProposalRecord:
        for record in self.proposals():
            if record.proposal_id == proposal_id:
                return record
        raise GovernanceError(
            f"no proposal {proposal_id} on chain {self.ledger.chain_id} "
            f"(governor {self.governor.address}); `fedledger gov list` shows the known ones"
        )

    def _require(self, action: str, proposal_id: int) -> None:
        self.sync_clock()
        if int(self.ledger.sender.call(self.governor.functions.proposalSnapshot(proposal_id))) == 0:
            raise GovernanceError(f"no proposal {proposal_id} on chain {self.ledger.chain_id}")
        problem = state_problem(action, self.times(proposal_id))
        if problem:
            raise GovernanceError(problem)


def simulate_execution(
    w3: Web3, timelock: str, proposal: Proposal, decoder: ErrorDecoder, addresses: Mapping[str, str]
) -> list[str]:
    """Runs each action of `proposal` as an `eth_call` from the timelock; the ones that revert,
    described with their decoded error. Actions are simulated independently on the current state."""
    problems = []
    lines = proposal.describe(addresses)
    for target, value, calldata, line in zip(
        proposal.targets, proposal.values, proposal.calldatas, lines, strict=True
    ):
        call: TxParams = {
            "from": Web3.to_checksum_address(timelock),
            "to": Web3.to_checksum_address(target),
            "value": Wei(value),
            "data": HexStr("0x" + calldata.hex()),
        }
        try:
            w3.eth.call(call)
        except ContractLogicError as exc:
            data = exc.data if isinstance(exc.data, str) else None
            problems.append(f"{line} reverts with {decoder.decode(data)}")
    return problems


def proposal_record(event: Any) -> ProposalRecord:
    """A `ProposalCreated` event as a record."""
    args = event["args"]
    return ProposalRecord(
        proposal_id=int(args["proposalId"]),
        proposer=str(args["proposer"]),
        proposal=Proposal.from_event(args),
        vote_start=int(args["voteStart"]),
        vote_end=int(args["voteEnd"]),
        block_number=int(event["blockNumber"]),
    )
