"""The task's round protocol over web3.py: round reads, commits and reveals, attestations,
claims and events.

Used by the trainer, the aggregator service, `fedledger status`/`verify` and the demo.
Events are read from the deployment's block onwards, filtered by their indexed arguments.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from fedledger.aggregator.verification import Commit
from fedledger.chain import rpc
from fedledger.chain.batching import SignedCommitment
from fedledger.chain.contracts import FedLedger, GlobalModel, RoundState
from fedledger.chain.head import LogBloom
from fedledger.chain.params import AggregationRule, Phase, RejectionReason
from fedledger.chain.transactions import TxResult

# Gas limit for an attestation that may finalize: measured ~330k with no rejection and a few
# aggregators; each rejection adds a slash (~35k). Unused gas is not charged.
FINALIZE_GAS_BASE = 1_000_000
FINALIZE_GAS_PER_REJECTION = 100_000

# Events that can move a round on: what a service waiting for the next phase wakes for. Claims,
# fee withdrawals, staking and governance are not among them.
COMMIT_EVENTS = ("UpdateCommitted", "BatchCommitted")
ROUND_END_EVENTS = ("RoundFinalized", "RoundClosed", "RoundOpened")
PHASE_EVENTS = (*COMMIT_EVENTS, "UpdateRevealed", "AttestationSubmitted", *ROUND_END_EVENTS)

# The deadline that ends each timed phase (a `RoundState` field).
_DEADLINES = {
    Phase.COMMIT: "commit_deadline",
    Phase.REVEAL: "reveal_deadline",
    Phase.AGGREGATION: "aggregation_deadline",
}


@dataclass(frozen=True)
class RoundConfig:
    """`IFederatedTask.RoundConfig`: the rules a round runs under."""

    reward_per_round: int
    aggregator_fee: int
    aggregation_param: int
    min_updates: int
    quorum_bps: int
    trainer_slash_bps: int
    outlier_slash_bps: int
    aggregator_slash_bps: int
    aggregation_rule: AggregationRule
    clip_norm: int  # millionths; 0: no clipping
    dp_noise_multiplier: int  # millionths; 0: no differential privacy
    dp_clip_norm: int  # millionths; 0: no differential privacy
    dp_delta: int  # units of 1e-12


@dataclass(frozen=True)
class PhaseNow:
    """A round's phase now, and the unix time at which it ends by time (None: only a
    transaction ends it)."""

    phase: Phase
    deadline: int | None


@dataclass(frozen=True)
class RoundResult:
    """`IFederatedTask.RoundResult` of a finalized round."""

    result_key: bytes
    model_digest: bytes
    trainer_reward: int
    accepted_samples: int
    rejected_count: int
    model_cid: str


@dataclass(frozen=True)
class Finalization:
    """One `RoundFinalized` event."""

    round: int
    model_digest: bytes
    model_cid: str
    accepted: int
    rejected: int
    trainer_reward: int
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class Attestation:
    """One `AttestationSubmitted` event."""

    round: int
    aggregator: str
    result_key: bytes
    model_digest: bytes
    model_cid: str
    rejected: int
    block_number: int
    tx_hash: str


@dataclass(frozen=True, kw_only=True)
class Opening:
    """What opens a sealed commitment: kept private by the trainer until the reveal phase."""

    trainer: str
    digest: bytes
    cid: str
    num_samples: int
    salt: bytes

    @property
    def seal(self) -> bytes:
        return seal_of(self.trainer, self.digest, self.num_samples, self.salt)


@dataclass(frozen=True)
class RejectionEntry:
    """One element of `attest`'s rejections (must match the trainer's commitment)."""

    trainer: str
    reason: RejectionReason
    digest: bytes
    num_samples: int

    def as_tuple(self) -> tuple[str, int, bytes, int]:
        return (Web3.to_checksum_address(self.trainer), int(self.reason), self.digest, self.num_samples)


class Rounds:
    """Round-level access to one deployment's task."""

    def __init__(self, ledger: FedLedger) -> None:
        self.ledger = ledger
        self.task = ledger.task
        self.call = ledger.sender.call
        self._opened: dict[int, RoundState] = {}  # round -> its state when first seen open
        self._automines: bool | None = None

    # ---------------------------------------------------------------- reads

    def current_round(self) -> int:
        return self.ledger.current_round()

    def phase(self, round_: int) -> Phase:
        return self.ledger.phase(round_)

    def state(self, round_: int) -> RoundState:
        return self.ledger.round_state(round_)

    def global_model(self) -> GlobalModel:
        return self.ledger.global_model()

    def config(self, round_: int) -> RoundConfig:
        values = self.call(self.task.functions.roundConfig(round_))
        (
            reward,
            fee,
            param,
            min_updates,
            quorum,
            trainer_bps,
            outlier_bps,
            aggregator_bps,
            rule,
            clip,
            dp_noise,
            dp_clip,
            dp_delta,
        ) = values

        return RoundConfig(
            reward_per_round=int(reward),
            aggregator_fee=int(fee),
            aggregation_param=int(param),
            min_updates=int(min_updates),
            quorum_bps=int(quorum),
            trainer_slash_bps=int(trainer_bps),
            outlier_slash_bps=int(outlier_bps),
            aggregator_slash_bps=int(aggregator_bps),
            aggregation_rule=AggregationRule(rule),
            clip_norm=int(clip),
            dp_noise_multiplier=int(dp_noise),
            dp_clip_norm=int(dp_clip),
            dp_delta=int(dp_delta),
        )

    def result(self, round_: int) -> RoundResult:
        key, digest, reward, samples, rejected, cid = self.call(self.task.functions.roundResult(round_))
        return RoundResult(bytes(key), bytes(digest), int(reward), int(samples), int(rejected), str(cid))

    def commitment(self, round_: int, trainer: str) -> bytes:
        """The revealed commitment keccak256(digest, samples); zero until revealed."""
        return bytes(self.call(self.task.functions.commitment(round_, _checksum(trainer))))

    def last_committed_round(self, trainer: str) -> int | None:
        """The round of `trainer`'s latest commitment (either path), None if it never committed."""
        committed, round_ = self.ledger.sender.view(
            self.task.functions.lastCommittedRound(_checksum(trainer))
        )
        return int(round_) if committed else None

    def attestation(self, round_: int, aggregator: str) -> bytes:
        return bytes(self.ledger.sender.view(self.task.functions.attestation(round_, _checksum(aggregator))))

    def rejection(self, round_: int, trainer: str) -> RejectionReason:
        return RejectionReason(self.call(self.task.functions.rejection(round_, _checksum(trainer))))

    def reward_claimed(self, round_: int, trainer: str) -> bool:
        return bool(self.call(self.task.functions.rewardClaimed(round_, _checksum(trainer))))

    def reward_of(self, round_: int, num_samples: int) -> int:
        return int(self.call(self.task.functions.rewardOf(round_, num_samples)))

    def trainer_active_since(self, trainer: str) -> int:
        return int(self.ledger.sender.view(self.task.functions.trainerActiveSince(_checksum(trainer))))

    def fees_of(self, aggregator: str) -> int:
        return int(self.call(self.task.functions.feesOf(_checksum(aggregator))))

    def synced_phase(self, round_: int) -> Phase:
        """The round's phase at the current wall-clock time (see `synced`)."""
        return self.synced(round_).phase

    def synced(self, round_: int) -> PhaseNow:
        """The round's phase at the current wall-clock time, and when it ends by time.

        Views see the time of the latest block; on an automining Anvil no block comes while
        everyone waits, so when a deadline has passed on the wall clock, mine an empty block first.
        Costs one call while no deadline has passed: the deadlines are read once per round.
        """
        phase = self.phase(round_)
        if phase not in _DEADLINES:
            return PhaseNow(phase, None)
        state = self.opened_state(round_)
        deadline = getattr(state, _DEADLINES[phase])
        w3 = self.ledger.w3
        if deadline <= _wall_clock() and self._automine() and rpc.latest_timestamp(w3) < deadline:
            rpc.mine(w3)
            phase = self.phase(round_)
        return PhaseNow(phase, getattr(state, _DEADLINES[phase]) if phase in _DEADLINES else None)

    def follow(self, known: int | None = None) -> tuple[int, PhaseNow]:
        """The current round and its phase now (`synced`).

        `known`: the current round at the previous look. A round only gives way to the next by
        being finalized or closed, so while it is in another phase it is still the current one
        and one call (its phase) does.
        """
        if known is not None:
            now = self.synced(known)
            if now.phase not in (Phase.FINALIZED, Phase.CLOSED):
                return known, now
        round_ = self.current_round()
        return round_, self.synced(round_)

    def opened_state(self, round_: int) -> RoundState:
        """The state of `round_` as first read once it was open: for what is fixed at opening
        (its opening time, deadlines and expected commits), without a call per look."""
        state = self._opened.get(round_)
        if state is None:
            state = self.state(round_)
            if state.opened_at:
                self._opened[round_] = state
        return state

    def _automine(self) -> bool:
        if self._automines is None:  # a node's mining mode does not change under a running service
            self._automines = rpc.automine(self.ledger.w3)
        return self._automines

    # ---------------------------------------------------------------- events

    def log_bloom(self, events: Sequence[str]) -> LogBloom:
        """Blocks that may hold one of the task's `events` (by name), for `ChainHead.wait`."""
        return LogBloom(str(self.task.address), [getattr(self.task.events, name).topic for name in events])

    def revealed(self, round_: int) -> list[Commit]:
        """Every revealed commitment (`UpdateRevealed`) of `round_`: what aggregators verify."""
        return [_commit(log) for log in self._logs("UpdateRevealed", {"round": round_})]

    def revealed_by(self, trainer: str) -> dict[int, Commit]:
        """The revealed commitments of `trainer`, by round."""
        logs = self._logs("UpdateRevealed", {"trainer": _checksum(trainer)})
        return {int(log["args"]["round"]): _commit(log) for log in logs}

    def committed_rounds(self, trainer: str) -> set[int]:
        """The rounds in which `trainer` committed a seal itself (revealed or not); batched
        commitments are in `BatchCommitted` events instead."""
        return {
            int(log["args"]["round"])
            for log in self._logs("UpdateCommitted", {"trainer": _checksum(trainer)})
        }

    def finalizations(self) -> list[Finalization]:
        """Every `RoundFinalized`, oldest first."""
        return [
            Finalization(
                round=int(log["args"]["round"]),
                model_digest=bytes(log["args"]["modelDigest"]),
                model_cid=str(log["args"]["modelCid"]),
                accepted=int(log["args"]["acceptedCount"]),
                rejected=int(log["args"]["rejectedCount"]),
                trainer_reward=int(log["args"]["trainerReward"]),
                block_number=int(log["blockNumber"]),
                tx_hash=log["transactionHash"].to_0x_hex(),
            )
            for log in self._logs("RoundFinalized", {})
        ]

    def attestations(self, round_: int, aggregator: str | None = None) -> list[Attestation]:
        """The attestations (`AttestationSubmitted`) of `round_`, of one `aggregator` if given."""
        filters: dict[str, Any] = {"round": round_}
        if aggregator is not None:
            filters["aggregator"] = _checksum(aggregator)
        return [
            Attestation(
                round=int(log["args"]["round"]),
                aggregator=str(log["args"]["aggregator"]),
                result_key=bytes(log["args"]["resultKey"]),
                model_digest=bytes(log["args"]["modelDigest"]),
                model_cid=str(log["args"]["modelCid"]),
                rejected=int(log["args"]["rejectedCount"]),
                block_number=int(log["blockNumber"]),
                tx_hash=log["transactionHash"].to_0x_hex(),
            )
            for log in self._logs("AttestationSubmitted", filters)
        ]

    def rejections(self, round_: int) -> dict[str, RejectionReason]:
        """The rejected trainers of a finalized round and why."""
        return {
            str(log["args"]["trainer"]): RejectionReason(log["args"]["reason"])
            for log in self._logs("UpdateRejected", {"round": round_})
        }

    def transaction_gas(self, event: str, filters: dict[str, Any]) -> list[int]:
        """Gas used by each transaction that emitted `event` with `filters`."""
        hashes = {log["transactionHash"] for log in self._logs(event, filters)}
        return [int(self.ledger.w3.eth.get_transaction_receipt(h)["gasUsed"]) for h in hashes]

    # ---------------------------------------------------------------- writes

    def commit_update(self, account: LocalAccount, round_: int, seal: bytes) -> TxResult:
        """Commits a sealed update (see `seal_of`)."""
        function = self.task.functions.commitUpdate(round_, seal)
        return self.ledger.sender.transact(account, function, label=f"commit round {round_}")

    def commit_batch(
        self, account: LocalAccount, round_: int, commitments: Sequence[SignedCommitment]
    ) -> TxResult:
        """Submits trainers' signed commitments in one transaction (`account` is the relayer)."""
        function = self.task.functions.commitBatch(round_, [c.as_tuple() for c in commitments])
        return self.ledger.sender.transact(account, function, label=f"commit batch round {round_}")

    def reveal_batch(
        self,
        account: LocalAccount,
        round_: int,
        batch_index: int,
        openings: Sequence[tuple[Opening, list[bytes]]],
    ) -> TxResult:
        """Reveals batched commitments, each `(opening, Merkle proof)` (`account` is the relayer)."""
        entries = [self.reveal_entry(opening, proof) for opening, proof in openings]
        function = self.task.functions.revealBatch(round_, batch_index, entries)
        return self.ledger.sender.transact(account, function, label=f"reveal batch round {round_}")

    @staticmethod
    def reveal_entry(opening: Opening, proof: Sequence[bytes]) -> tuple[Any, ...]:
        """`IFederatedTask.BatchReveal` for `opening` with its Merkle proof."""
        return (
            _checksum(opening.trainer),
            opening.digest,
            opening.cid,
            opening.num_samples,
            opening.salt,
            list(proof),
        )

    def batch_roots(self, round_: int) -> list[bytes]:
        return [bytes(root) for root in self.call(self.task.functions.batchRoots(round_))]

    def reveal_update(self, account: LocalAccount, round_: int, opening: Opening) -> TxResult:
        """Reveals a committed update (sent by `account`, for `opening.trainer`)."""
        function = self.task.functions.revealUpdate(
            round_, _checksum(opening.trainer), opening.digest, opening.cid, opening.num_samples, opening.salt
        )
        return self.ledger.sender.transact(account, function, label=f"reveal round {round_}")

    def attest(
        self,
        account: LocalAccount,
        round_: int,
        model_digest: bytes,
        model_cid: str,
        rejections: Sequence[RejectionEntry],
    ) -> TxResult:
        ordered = sorted(rejections, key=lambda r: int(r.trainer, 16))
        entries = [r.as_tuple() for r in ordered]
        function = self.task.functions.attest(round_, model_digest, model_cid, entries)
        # Whichever attestation reaches the quorum also finalizes (slashes, credits, opens the
        # next round); which one that is depends on the others, so never trust the estimate.
        budget = FINALIZE_GAS_BASE + FINALIZE_GAS_PER_REJECTION * len(entries)
        return self.ledger.sender.transact(account, function, label=f"attest round {round_}", min_gas=budget)

    def claim_reward(self, account: LocalAccount, round_: int, digest: bytes, num_samples: int) -> TxResult:
        function = self.task.functions.claimReward(round_, digest, num_samples)
        return self.ledger.sender.transact(account, function, label=f"claim reward round {round_}")

    def claimed_amount(self, tx: TxResult) -> int:
        """What a claim transaction paid, from its `RewardClaimed` event."""
        events = self.task.events.RewardClaimed().process_receipt(tx.receipt, errors=DISCARD)
        return sum(int(event["args"]["amount"]) for event in events)

    def withdraw_fees(self, account: LocalAccount) -> TxResult:
        return self.ledger.sender.transact(account, self.task.functions.withdrawFees(), label="withdraw fees")

    def close_stale_round(self, account: LocalAccount) -> TxResult:
        return self.ledger.sender.transact(
            account, self.task.functions.closeStaleRound(), label="close stale round"
        )

    def _logs(self, event: str, filters: dict[str, Any]) -> list[Any]:
        return list(
            getattr(self.task.events, event)().get_logs(
                from_block=self.ledger.deployment.block_number, argument_filters=filters or None
            )
        )


def seal_of(trainer: str, digest: bytes, num_samples: int, salt: bytes) -> bytes:
    """`FederatedTask.sealOf`: keccak256(abi.encode(trainer, digest, numSamples, salt))."""
    encoded = abi_encode(
        ["address", "bytes32", "uint256", "bytes32"], [_checksum(trainer), digest, num_samples, salt]
    )
    return bytes(Web3.keccak(encoded))


def _commit(log: Any) -> Commit:
    """An `UpdateRevealed` log as a `Commit`, with its place in chain order."""
    return Commit(
        trainer=str(log["args"]["trainer"]),
        digest=bytes(log["args"]["digest"]),
        cid=str(log["args"]["cid"]),
        num_samples=int(log["args"]["numSamples"]),
        position=(int(log["blockNumber"]) << 32) | int(log["logIndex"]),
    )


def _checksum(address: str) -> Any:
    return Web3.to_checksum_address(address)


def _wall_clock() -> int:
    return int(time.time())
