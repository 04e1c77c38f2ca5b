"""What the dashboard shows, read from the chain: one `Snapshot` per refresh.

`FederationView` keeps what cannot change once read (events, each round's rules, a proposal's
quorum) and re-reads only what may have: the current round, participants named in new events,
parameters after a `ParameterChanged`, proposals not yet in a final state. Amounts travel as
decimal strings (token amounts exceed what a JavaScript number holds exactly) beside a
formatted `… FED` string; proposal ids (uint256) are strings too.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from fedledger.audit.status import CurrentRound as RoundNow
from fedledger.audit.status import current_round, registered_roles, show_parameter, sum_by
from fedledger.chain import rpc
from fedledger.chain.contracts import FedLedger
from fedledger.chain.governance import proposal_record
from fedledger.chain.params import (
    Phase,
    ProposalState,
    RegistryParameter,
    RejectionReason,
    Role,
    TaskParameter,
    VoteType,
)
from fedledger.chain.proposals import state_name
from fedledger.chain.rounds import RoundConfig, Rounds
from fedledger.chain.values import format_token_rounded
from fedledger.dashboard.accuracy import AccuracyBook, ModelRef
from fedledger.dashboard.events import EventLog
from fedledger.learning.privacy import PrivacyRule, running_epsilon
from fedledger.storage.digests import to_hex

FINAL_PROPOSAL_STATES = {
    ProposalState.CANCELED,
    ProposalState.DEFEATED,
    ProposalState.EXPIRED,
    ProposalState.EXECUTED,
}
_PHASE_DEADLINE = {
    Phase.COMMIT: "commit_deadline",
    Phase.REVEAL: "reveal_deadline",
    Phase.AGGREGATION: "aggregation_deadline",
}


class ChainWentBackError(RuntimeError):
    """The node is at an earlier block than already read: the chain was reset or replaced."""


@dataclass(frozen=True, kw_only=True)
class Amount:
    raw: str  # smallest unit, decimal: exact
    shown: str  # "1,500.5 FED", rounded to 4 decimals

    @classmethod
    def of(cls, value: int) -> Amount:
        return cls(raw=str(value), shown=format_token_rounded(value))


@dataclass(frozen=True, kw_only=True)
class CurrentRound(RoundNow):
    phase_deadline: int | None  # unix time the current phase ends by time; None: a transaction ends it
    rule: str
    privacy: str  # its differential privacy rule, or "off"


@dataclass(frozen=True, kw_only=True)
class RoundRow:
    round: int
    outcome: str  # "open", "finalized" or "stale" (closed without a model)
    rule: str
    opened_block: int
    commits: int
    reveals: int
    attestations: int
    accepted: int
    rejected: int
    rejections: dict[str, str]  # trainer -> reason
    trainer_reward: Amount
    model_version: int | None  # the global model version it produced
    model_digest: str | None
    model_cid: str | None
    accuracy: float | None
    accuracy_problem: str | None
    privacy: str  # the round's differential privacy rule, or "off"
    # Epsilon of a trainer that took part in every round that released updates so far (None: a
    # round released updates without noise, or none did).
    epsilon: float | None


@dataclass(frozen=True, kw_only=True)
class ParticipantRow:
    address: str
    role: str
    registered: bool
    active: bool
    stake: Amount
    unbonding: Amount
    votes: Amount
    rewards: Amount  # trainers: claimed rewards; aggregators: fees credited
    fees_unwithdrawn: Amount
    slashed: Amount
    slashes: int
    updates: int  # trainers: revealed updates
    rejected: int  # trainers: updates rejected


@dataclass(frozen=True, kw_only=True)
class Vote:
    voter: str
    support: str
    weight: Amount
    reason: str


@dataclass(frozen=True, kw_only=True)
class ProposalRow:
    id: str
    proposer: str
    description: str
    changes: list[str]
    state: str
    votes_for: Amount
    votes_against: Amount
    votes_abstain: Amount
    quorum: Amount | None  # None until the vote's snapshot is in the past
    vote_start: int
    vote_end: int
    eta: int | None
    votes: list[Vote]


@dataclass(frozen=True, kw_only=True)
class Parameter:
    contract: str  # "task" or "registry"
    name: str
    value: str
    shown: str


@dataclass(frozen=True, kw_only=True)
class Totals:
    rounds: int
    finalized: int
    stale: int
    accepted: int
    rejected: int


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    chain_id: int
    task: str
    addresses: dict[str, str]
    block: int
    chain_time: int  # timestamp of the latest block: the time the contracts see
    server_time: float  # the dashboard's wall clock when read, for countdowns
    current_round: CurrentRound
    global_model_version: int
    initial_accuracy: float | None
    rounds: list[RoundRow]
    totals: Totals
    participants: list[ParticipantRow]
    proposals: list[ProposalRow]
    parameters: list[Parameter]
    accuracy_pending: int
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FederationView:
    """Reads a deployment incrementally; `refresh` returns the current `Snapshot`."""

    def __init__(self, ledger: FedLedger, accuracy: AccuracyBook | None = None) -> None:
        self.ledger = ledger
        self.rounds = Rounds(ledger)
        self.accuracy = accuracy
        self.events = EventLog(ledger.w3, ledger.contracts, ledger.deployment.block_number)
        self._configs: dict[int, RoundConfig] = {}  # round -> its rules (fixed at opening)
        self._participants: dict[str, Any] = {}  # address -> `Participant` as last read
        self._votes: dict[str, int] = {}
        self._fees: dict[str, int] = {}
        self._parameters: dict[str, list[Parameter]] = {}
        self._proposal_states: dict[int, ProposalState] = {}
        self._quorums: dict[int, int] = {}
        self._chain_time = 0

    def refresh(self) -> Snapshot:
        latest = int(self.ledger.w3.eth.block_number)
        if latest < self.events.next_block - 1:
            raise ChainWentBackError(
                f"the node is at block {latest}, behind block {self.events.next_block - 1} already read: "
                "was the chain reset? Reading it again from the deployment block"
            )
        new = self.events.refresh(latest)
        self._chain_time = rpc.latest_timestamp(self.ledger.w3)
        self._reread_parameters(new, first=not self._parameters)
        self._reread_participants(new)
        current = self._current_round()
        rounds = self._rounds()
        return Snapshot(
            chain_id=self.ledger.chain_id,
            task=str(self.ledger.task.address),
            addresses=dict(self.ledger.deployment.addresses),
            block=latest,
            chain_time=self._chain_time,
            server_time=time.time(),
            current_round=current,
            global_model_version=sum(1 for r in rounds if r.outcome == "finalized"),
            initial_accuracy=self._initial_accuracy(),
            rounds=rounds,
            totals=Totals(
                rounds=len(rounds),
                finalized=sum(1 for r in rounds if r.outcome == "finalized"),
                stale=sum(1 for r in rounds if r.outcome == "stale"),
                accepted=sum(r.accepted for r in rounds),
                rejected=sum(r.rejected for r in rounds),
            ),
            participants=self._participant_rows(),
            proposals=self._proposal_rows(),
            parameters=[p for group in self._parameters.values() for p in group],
            accuracy_pending=self.accuracy.pending if self.accuracy else 0,
        )

    # ---------------------------------------------------------------- the current round

    def _current_round(self) -> CurrentRound:
        now = current_round(self.rounds)
        phase = Phase[now.phase]
        return CurrentRound(
            **asdict(now),
            phase_deadline=getattr(now, _PHASE_DEADLINE[phase]) if phase in _PHASE_DEADLINE else None,
            rule=self._rule(now.number) if now.opened_at else "",
            privacy=str(self._privacy(now.number)) if now.opened_at else "",
        )

    def _config(self, round_: int) -> RoundConfig:
        if round_ not in self._configs:
            self._configs[round_] = self.rounds.config(round_)
        return self._configs[round_]

    def _rule(self, round_: int) -> str:
        return self._config(round_).aggregation_rule.name

    def _privacy(self, round_: int) -> PrivacyRule:
        return PrivacyRule.of_round(self._config(round_))

    # ---------------------------------------------------------------- rounds

    def _rounds(self) -> list[RoundRow]:
        """One row per opened round, oldest first; counts from the events."""
        task = "FederatedTask"
        commits: defaultdict[int, int] = defaultdict(int)
        for log in self.events.of(task, "UpdateCommitted"):
            commits[int(log["args"]["round"])] += 1
        for log in self.events.of(task, "BatchCommitted"):
            commits[int(log["args"]["round"])] += int(log["args"]["count"])
        reveals = _count_by_round(self.events.of(task, "UpdateRevealed"))
        attestations = _count_by_round(self.events.of(task, "AttestationSubmitted"))
        rejections: defaultdict[int, dict[str, str]] = defaultdict(dict)
        for log in self.events.of(task, "UpdateRejected"):
            reason = RejectionReason(int(log["args"]["reason"])).name
            rejections[int(log["args"]["round"])][str(log["args"]["trainer"])] = reason
        finals = {int(log["args"]["round"]): log for log in self.events.of(task, "RoundFinalized")}
        closed = {int(log["args"]["round"]) for log in self.events.of(task, "RoundClosed")}
        released = [r for r in sorted(reveals) if reveals[r] and (r in finals or r in closed)]
        spent = dict(zip(released, running_epsilon([self._privacy(r) for r in released]), strict=True))
        rows = []
        version = 0
        for opened in self.events.of(task, "RoundOpened"):
            number = int(opened["args"]["round"])
            final = finals.get(number)
            if final is not None:
                version += 1
            outcome = "finalized" if final is not None else "stale" if number in closed else "open"
            rows.append(
                self._round_row(
                    number,
                    outcome,
                    opened_block=int(opened["blockNumber"]),
                    commits=commits[number],
                    reveals=reveals[number],
                    attestations=attestations[number],
                    rejections=rejections[number],
                    final=final,
                    version=version if final is not None else None,
                    epsilon=spent.get(number),
                )
            )
        return rows

    def _round_row(
        self,
        number: int,
        outcome: str,
        *,
        opened_block: int,
        commits: int,
        reveals: int,
        attestations: int,
        rejections: dict[str, str],
        final: Any,
        version: int | None,
        epsilon: float | None,
    ) -> RoundRow:
        accuracy, problem, digest, cid = None, None, None, None
        if final is not None and version is not None:
            digest, cid = bytes(final["args"]["modelDigest"]), str(final["args"]["modelCid"])
            if self.accuracy is not None:
                score = self.accuracy.score(ModelRef(version, digest, cid))
                accuracy, problem = score.accuracy, score.problem
        args = final["args"] if final is not None else {}
        return RoundRow(
            round=number,
            outcome=outcome,
            rule=self._rule(number),
            opened_block=opened_block,
            commits=commits,
            reveals=reveals,
            attestations=attestations,
            accepted=int(args.get("acceptedCount", 0)),
            rejected=int(args.get("rejectedCount", 0)),
            rejections=rejections,
            trainer_reward=Amount.of(int(args.get("trainerReward", 0))),
            model_version=version,
            model_digest=to_hex(digest) if digest is not None else None,
            model_cid=cid,
            accuracy=accuracy,
            accuracy_problem=problem,
            privacy=str(self._privacy(number)),
            epsilon=epsilon,
        )

    def _initial_accuracy(self) -> float | None:
        parameters = self.ledger.deployment.parameters
        if self.accuracy is None or "initial_model_digest" not in parameters:
            return None
        digest = bytes.fromhex(str(parameters["initial_model_digest"]).removeprefix("0x"))
        return self.accuracy.score(ModelRef(0, digest, str(parameters["initial_model_cid"]))).accuracy

    # ---------------------------------------------------------------- participants

    def _reread_participants(self, new: list[tuple[str, str, Any]]) -> None:
        """Re-reads the accounts that new events touched (stake, role and fees change only by events)."""
        touched: set[str] = set()
        for contract, event, log in new:
            args = log["args"]
            if contract == "StakingRegistry" and event == "DelegateVotesChanged":
                self._votes[str(args["delegate"])] = int(args["newVotes"])
            elif contract == "StakingRegistry" and "account" in args:
                touched.add(str(args["account"]))
            elif event in ("FeeCredited", "FeesWithdrawn"):
                touched.add(str(args["aggregator"]))
        for address in touched:
            self._participants[address] = self.ledger.participant(address)
        roles = self._registered_roles()
        for address in touched:
            if roles.get(address) == Role.AGGREGATOR:
                self._fees[address] = self.rounds.fees_of(address)

    def _registered_roles(self) -> dict[str, Role]:
        return registered_roles(self.events.of("StakingRegistry", "Registered"))

    def _participant_rows(self) -> list[ParticipantRow]:
        """Everyone who ever registered: trainers first, each group in registration order."""
        registry, task = "StakingRegistry", "FederatedTask"
        roles = self._registered_roles()
        rewards = sum_by(self.events.of(task, "RewardClaimed"), "trainer")
        fees = sum_by(self.events.of(task, "FeeCredited"), "aggregator")
        slashed = sum_by(self.events.of(registry, "Slashed"), "account")
        slashes = _count_by(self.events.of(registry, "Slashed"), "account")
        updates = _count_by(self.events.of(task, "UpdateRevealed"), "trainer")
        rejected = _count_by(self.events.of(task, "UpdateRejected"), "trainer")
        rows = []
        for address, role in sorted(roles.items(), key=lambda item: 0 if item[1] == Role.TRAINER else 1):
            now = self._participants[address]
            rows.append(
                ParticipantRow(
                    address=address,
                    role=role.name,
                    registered=now.role != Role.NONE,
                    active=now.active,
                    stake=Amount.of(now.stake),
                    unbonding=Amount.of(now.unbonding),
                    votes=Amount.of(self._votes.get(address, 0)),
                    rewards=Amount.of(rewards[address] if role == Role.TRAINER else fees[address]),
                    fees_unwithdrawn=Amount.of(self._fees.get(address, 0)),
                    slashed=Amount.of(slashed[address]),
                    slashes=slashes[address],
                    updates=updates[address],
                    rejected=rejected[address],
                )
            )
        return rows

    # ---------------------------------------------------------------- governance

    def _proposal_rows(self) -> list[ProposalRow]:
        governor = self.ledger.governor
        call = self.ledger.sender.call
        queued = {
            int(log["args"]["proposalId"]): int(log["args"]["etaSeconds"])
            for log in self.events.of("FedGovernor", "ProposalQueued")
        }
        ballots: defaultdict[int, list[Vote]] = defaultdict(list)
        for log in [
            *self.events.of("FedGovernor", "VoteCast"),
            *self.events.of("FedGovernor", "VoteCastWithParams"),
        ]:
            args = log["args"]
            ballots[int(args["proposalId"])].append(
                Vote(
                    voter=str(args["voter"]),
                    support=VoteType(int(args["support"])).name,
                    weight=Amount.of(int(args["weight"])),
                    reason=str(args["reason"]),
                )
            )
        rows = []
        for log in self.events.of("FedGovernor", "ProposalCreated"):
            record = proposal_record(log)
            pid = record.proposal_id
            if self._proposal_states.get(pid) not in FINAL_PROPOSAL_STATES:
                self._proposal_states[pid] = ProposalState(call(governor.functions.state(pid)))
            # quorum(t) needs t in the past (the governor's clock is the registry's timestamps)
            if pid not in self._quorums and self._chain_time > record.vote_start:
                self._quorums[pid] = int(call(governor.functions.quorum(record.vote_start)))
            votes = ballots[pid]
            tally = {
                support: sum(int(v.weight.raw) for v in votes if v.support == support.name)
                for support in VoteType
            }
            rows.append(
                ProposalRow(
                    id=str(pid),
                    proposer=record.proposer,
                    description=record.proposal.description,
                    changes=record.proposal.describe(self.ledger.deployment.addresses),
                    state=state_name(self._proposal_states[pid]),
                    votes_for=Amount.of(tally[VoteType.FOR]),
                    votes_against=Amount.of(tally[VoteType.AGAINST]),
                    votes_abstain=Amount.of(tally[VoteType.ABSTAIN]),
                    quorum=Amount.of(self._quorums[pid]) if pid in self._quorums else None,
                    vote_start=record.vote_start,
                    vote_end=record.vote_end,
                    eta=queued.get(pid),
                    votes=votes,
                )
            )
        return rows

    # ---------------------------------------------------------------- parameters

    def _reread_parameters(self, new: list[tuple[str, str, Any]], *, first: bool) -> None:
        changed = {contract for contract, event, _ in new if event == "ParameterChanged"}
        if first or "FederatedTask" in changed:
            self._parameters["task"] = [
                _parameter("task", p.name, self.ledger.task_parameter(p)) for p in TaskParameter
            ]
        if first or "StakingRegistry" in changed:
            self._parameters["registry"] = [
                _parameter("registry", p.name, self.ledger.registry_parameter(p)) for p in RegistryParameter
            ]


def _parameter(contract: str, name: str, value: int) -> Parameter:
    return Parameter(contract=contract, name=name, value=str(value), shown=show_parameter(name, value))


def _count_by_round(logs: list[Any]) -> defaultdict[int, int]:
    counts: defaultdict[int, int] = defaultdict(int)
    for log in logs:
        counts[int(log["args"]["round"])] += 1
    return counts


def _count_by(logs: list[Any], who: str) -> defaultdict[str, int]:
    counts: defaultdict[str, int] = defaultdict(int)
    for log in logs:
        counts[str(log["args"][who])] += 1
    return counts
