"""The aggregator service: reacts to the chain and attests each round's result.

It follows the task's events: when a round leaves its reveal window (every committed update
revealed, or the deadline passed), it reads the round's `UpdateRevealed` events, verifies
and aggregates them (`compute_round`, identical on every honest aggregator), pins the new
global model and attests it with the rejections and their reason codes. A round that went
stale is closed so the federation moves on. Restarted, it asks the chain whether it already
attested, so it never attests twice.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount

from fedledger.aggregation.rules import UnsupportedRuleError
from fedledger.aggregator.prefetch import PrefetchCache
from fedledger.aggregator.round_result import RoundContext, RoundOutcome, compute_round
from fedledger.chain.contracts import FedLedger
from fedledger.chain.errors import ContractRevertError, RpcUnavailableError, TransactionFailedError
from fedledger.chain.head import IDLE_WAIT, ChainHead, seconds_until
from fedledger.chain.params import CLIP_NORM_UNIT, Phase, RejectionReason
from fedledger.chain.rounds import PHASE_EVENTS, RejectionEntry, Rounds
from fedledger.retry import service_outage
from fedledger.storage.codec import max_file_size
from fedledger.storage.ipfs import IpfsClient, IpfsError
from fedledger.storage.models import fetch_model, global_model_binding
from fedledger.storage.schema import ModelSpec

log = logging.getLogger("fedledger.aggregator")

# A prefetch that does not answer quickly is left to the aggregation phase.
PREFETCH_TIMEOUT = 5.0
# Reverts that mean "someone else got there first", not a failure of this aggregator.
BENIGN_REVERTS = ("TaskAlreadyAttested", "TaskUnexpectedPhase")


@dataclass(kw_only=True)
class AggregatorStats:
    attested: dict[int, str] = field(default_factory=dict)  # round -> model digest hex
    closed: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # round -> why it was not attested


class Aggregator:
    """One aggregator: an account, an IPFS node, and the task it serves."""

    def __init__(
        self,
        *,
        ledger: FedLedger,
        ipfs: IpfsClient,
        account: LocalAccount,
        spec: ModelSpec,
        poll_interval: float = 0.2,
        fetch_workers: int = 8,
        head: ChainHead | None = None,
    ) -> None:
        self.ledger = ledger
        self.rounds = Rounds(ledger)
        self.ipfs = ipfs
        self.account = account
        self.spec = spec
        self.poll_interval = poll_interval  # polling for blocks without WebSocket; retry backoff
        self.head = head  # default: a subscription to this ledger's node, opened by `run`
        self._phase_deadline: int | None = None  # when the phase `step` saw ends by time
        self.fetch_workers = fetch_workers
        self.stats = AggregatorStats()
        self._following: tuple[int, Phase] | None = None  # the round and phase last seen
        self._prefetched = PrefetchCache()  # files fetched during the reveal phase

    @property
    def address(self) -> str:
        return str(self.account.address)

    def run(self, *, max_rounds: int | None = None, stop: threading.Event | None = None) -> AggregatorStats:
        """Serves rounds until the task has moved `max_rounds` rounds on (or `stop` is set).

        Counting rounds rather than own attestations matters: once the quorum is reached
        without this aggregator, it never attests that round at all.
        """
        stop = stop or threading.Event()
        outage = service_outage(log, self.poll_interval)
        first_round: int | None = None
        head = self.head or ChainHead(self.ledger.w3, poll_interval=self.poll_interval)
        head.start()
        interest = self.rounds.log_bloom(PHASE_EVENTS)  # not claims, staking or governance
        try:
            while not stop.is_set():
                # Each pass looks at the chain head: new events (commits closing the window early,
                # finalizations) come in blocks, passing deadlines end the wait by time; both
                # show up as a change of phase.
                self._phase_deadline = None
                seen = self._following
                try:
                    round_ = self._current_round()
                    first_round = round_ if first_round is None else first_round
                    if max_rounds is not None and round_ >= first_round + max_rounds:
                        break
                    self.step(round_)
                except (TransactionFailedError, RpcUnavailableError, IpfsError) as exc:
                    # Nothing was recorded on chain: the next pass tries again (with backoff).
                    stop.wait(outage.failed(exc))
                    continue
                outage.succeeded()
                if self._following != seen and self._round_over():
                    continue  # the round just ended: look at the next one now, not at the next block
                wait = seconds_until(self._phase_deadline, idle=IDLE_WAIT, overdue=self.poll_interval)
                head.wait(wait, stop, interest=interest)
        finally:
            head.close()
        return self.stats

    def _current_round(self) -> int:
        """The current round: the one `step` follows while it is open (a round only gives way
        to the next by being finalized or closed), else asked of the task."""
        if self._following is not None and not self._round_over():
            return self._following[0]
        return self.rounds.current_round()

    def _round_over(self) -> bool:
        return self._following is not None and self._following[1] in (Phase.FINALIZED, Phase.CLOSED)

    def step(self, round_: int | None = None) -> None:
        """Acts on the current round (`round_`, if just read) if it needs this aggregator."""
        round_ = self.rounds.current_round() if round_ is None else round_
        now = self.rounds.synced(round_)
        phase, self._phase_deadline = now.phase, now.deadline
        if (round_, phase) != self._following:
            # One line per change: shows where a (re)started service picked the task up.
            self._following = (round_, phase)
            log.info("round %d: %s phase", round_, phase.name.lower())
        if round_ in self.stats.skipped:
            return
        if phase == Phase.AGGREGATION:
            if self.rounds.attestation(round_, self.address) == bytes(32):
                try:
                    self.aggregate_and_attest(round_)
                except UnsupportedRuleError as exc:
                    # Every honest aggregator refuses alike, so the round goes stale and is closed
                    # without a model change; attesting a guess would only get this one slashed.
                    log.error("round %d: not attesting: %s", round_, exc)
                    self.stats.skipped[round_] = str(exc)
            elif round_ not in self.stats.attested:
                self._attested_before_restart(round_)
        elif phase == Phase.REVEAL:
            self._prefetch(round_)
        elif phase == Phase.STALE:
            self._close_stale(round_)

    def _prefetch(self, round_: int) -> None:
        """Fetches the updates revealed so far while the reveal window is still open, so the
        aggregation phase starts with the bytes at hand. Bytes are only a cache: they are
        verified against the revealed digest when the round is computed, and anything not
        fetched here (an error, a late reveal) is fetched then, the usual way."""
        self._prefetched.start(round_)
        limit = max_file_size(self.spec)
        missing = [c.cid for c in self.rounds.revealed(round_) if c.cid not in self._prefetched]

        def prefetch(cid: str) -> None:
            try:
                self._prefetched.put(cid, self.ipfs.cat(cid, limit, timeout=PREFETCH_TIMEOUT))
            except IpfsError as exc:
                log.debug(
                    "round %d: prefetch of %s failed (%s); fetched again when aggregating", round_, cid, exc
                )

        # As many at once as the aggregation phase fetches: reveals can arrive a batch at a time.
        with ThreadPoolExecutor(max_workers=max(1, self.fetch_workers)) as pool:
            list(pool.map(prefetch, missing))

    def _fetch(self, cid: str, max_bytes: int) -> bytes:
        """IPFS `cat`, served from what the reveal phase prefetched when possible."""
        data = self._prefetched.take(cid)
        if data is not None and len(data) <= max_bytes:
            return data
        return self.ipfs.cat(cid, max_bytes)

    def compute(self, round_: int) -> RoundOutcome:
        """The round's result as this aggregator computes it (no transaction)."""
        state = self.rounds.state(round_)
        config = self.rounds.config(round_)
        current = self.rounds.global_model()
        context = RoundContext(
            chain_id=self.ledger.chain_id,
            task=str(self.ledger.task.address),
            round_number=round_,
            model_version=current.version + 1,
            sample_cap=state.sample_cap,
            rule=config.aggregation_rule,
            rule_param=config.aggregation_param,
            clip_norm=config.clip_norm / CLIP_NORM_UNIT,
        )
        binding = global_model_binding(
            chain_id=self.ledger.chain_id, task=context.task, version=current.version, spec=self.spec
        )
        if self._prefetched.round != round_:
            self._prefetched.clear()
        # Verified updates go to disk as they are checked: memory stays with the model's size.
        with tempfile.TemporaryDirectory(prefix="fedledger-round-") as spool:
            return compute_round(
                self.rounds.revealed(round_),
                self._fetch,
                self.spec,
                context,
                self.fetch_workers,
                previous_model=lambda: fetch_model(
                    self.ipfs, current.cid, current.digest, self.spec, binding
                ),
                spool=Path(spool),
            )

    def aggregate_and_attest(self, round_: int) -> None:
        started = time.monotonic()
        outcome = self.compute(round_)
        computed = time.monotonic()
        if outcome.model_bytes is None or outcome.model_digest is None:
            raise RuntimeError(f"round {round_}: no model computed")  # compute passes previous_model
        cid = self.ipfs.add(outcome.model_bytes, name=f"model-r{round_}.safetensors").cid
        digest = outcome.model_digest
        published = time.monotonic()
        rejections = [
            RejectionEntry(v.commit.trainer, v.reason, v.commit.digest, v.commit.num_samples)
            for v in outcome.rejected
        ]
        for verdict in outcome.rejected:
            log.info("round %d: rejected %s: %s", round_, verdict.commit.trainer, verdict.detail)
        try:
            tx = self.rounds.attest(self.account, round_, digest, cid, rejections)
        except ContractRevertError as exc:
            if exc.name in BENIGN_REVERTS:
                log.info("round %d: attestation not needed (%s)", round_, exc.name)
                self.stats.attested[round_] = digest.hex()
                self._pin_updates(outcome)
                return
            raise
        self.stats.attested[round_] = digest.hex()
        log.info(
            "round %d: attested %s (%d accepted, %d rejected, %d gas, %.2f s: compute %.2f, publish %.2f)",
            round_,
            digest.hex()[:16],
            len(outcome.accepted),
            len(rejections),
            tx.gas_used,
            time.monotonic() - started,
            computed - started,
            published - computed,
        )
        self._pin_updates(outcome)

    def _pin_updates(self, outcome: RoundOutcome) -> None:
        """Keeps what anyone needs to recompute the round later (`fedledger verify`). After the
        attestation, off the round's critical path: the bytes are in the local node already."""
        cids = [v.commit.cid for v in outcome.verdicts if v.reason != RejectionReason.UNAVAILABLE]
        try:
            with ThreadPoolExecutor(max_workers=max(1, self.fetch_workers)) as pool:
                list(pool.map(self.ipfs.pin, cids))
        except IpfsError as exc:
            # The attestation stands; the trainers pin their own files too.
            log.warning("could not pin the round's updates: %s", exc)

    def _attested_before_restart(self, round_: int) -> None:
        """The chain holds an attestation of `round_` this process did not send: a previous run
        of this account sent it before stopping. Record it and wait for the quorum."""
        own = self.rounds.attestations(round_, self.address)
        self.stats.attested[round_] = own[-1].model_digest.hex() if own else ""
        log.info("round %d: attested before a restart; waiting for the quorum", round_)

    def _close_stale(self, round_: int) -> None:
        try:
            self.rounds.close_stale_round(self.account)
        except ContractRevertError as exc:
            if exc.name not in BENIGN_REVERTS:
                raise
            return
        self.stats.closed.append(round_)
        log.info("round %d: closed as stale", round_)
