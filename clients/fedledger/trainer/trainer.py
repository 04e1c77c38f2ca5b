"""The trainer loop.

Each round: wait for the Commit phase, fetch the global model and check it against the
on-chain root, train on the local shard, encode the update canonically (bound to this task,
round, trainer and sample count) and commit a seal of it: keccak256 of (trainer, sha256 of the
file, sample count, a random salt). The file stays private until the commit window closes;
in the Reveal phase the trainer pins it to IPFS and reveals digest, CID, samples and salt, so
no other trainer can copy it into a commitment of its own. After rounds finalize, claim their
rewards. Restarted mid-round it asks the chain whether it already committed, so it never
commits twice (the contract would refuse a second commit anyway); the opening of a seal lives
in memory only, so a trainer restarted between commit and reveal forfeits that round.

An optional `Attack` (fedledger.attacks) turns the trainer into a simulated adversary: it may
poison the data before training, the weights after training, and what is pinned and committed.
Without one, every step is the honest one.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount

from fedledger.aggregator.verification import update_binding, verify
from fedledger.app.api import App, Context
from fedledger.app.errors import AppWeightsError
from fedledger.app.mods import Mod, TrainCall, app_step, attack_mod, chain, client_dp_mod, dp_sgd_step
from fedledger.app.torch_app import TorchApp
from fedledger.arrays import Array
from fedledger.attacks.base import Attack, AttackContext, Submission
from fedledger.chain.contracts import FedLedger
from fedledger.chain.errors import ContractRevertError, RpcUnavailableError, TransactionFailedError
from fedledger.chain.head import IDLE_WAIT, ChainHead, LogBloom, seconds_until
from fedledger.chain.params import Phase
from fedledger.chain.rounds import COMMIT_EVENTS, ROUND_END_EVENTS, Opening, Rounds, seal_of
from fedledger.learning.dp_sgd import DpSgdConfig, DpSgdLedger
from fedledger.learning.privacy import PrivacyBudgetExceededError, PrivacyRule, check_budget
from fedledger.retry import service_outage
from fedledger.storage.codec import Binding, InvalidUpdateError, encode
from fedledger.storage.digests import sha256, to_hex
from fedledger.storage.ipfs import IpfsClient, IpfsError
from fedledger.storage.models import fetch_model, global_model_binding
from fedledger.storage.schema import ModelSpec

log = logging.getLogger("fedledger.trainer")

# A claim refused for these reasons is final: the round pays this trainer nothing (rejected,
# closed as stale, or paid already by an earlier run).
UNPAID_REVERTS = ("TaskNoReward", "TaskUnexpectedPhase", "TaskRewardAlreadyClaimed")
# How long it waits for one peer file (a peer may have committed a CID nobody serves).
COPY_FETCH_TIMEOUT_SECONDS = 5.0


@dataclass(kw_only=True)
class TrainerStats:
    committed_rounds: list[int] = field(default_factory=list)
    revealed_rounds: list[int] = field(default_factory=list)
    claimed: dict[int, int] = field(default_factory=dict)  # round -> reward


@dataclass(frozen=True, kw_only=True)
class SealedUpdate:
    """A committed update waiting for the reveal phase: what it takes to publish and open it."""

    submission: Submission
    num_samples: int
    salt: bytes


class Trainer:
    """One trainer: an account, an app with the operator's private data, and the task it trains for."""

    def __init__(
        self,
        *,
        ledger: FedLedger,
        ipfs: IpfsClient,
        account: LocalAccount,
        app: App[Any],
        data: Any,
        context: Context,
        spec: ModelSpec,
        poll_interval: float = 0.2,
        attack: Attack | None = None,
        head: ChainHead | None = None,
        privacy_budget: float | None = None,
        dp_sgd: DpSgdConfig | None = None,
        dp_sgd_ledger: DpSgdLedger | None = None,
    ) -> None:
        """`data` is what `app.load_data(context)` returned; `context.seed` is this trainer's base
        seed (each round trains with a seed derived from it and the round). `spec` is the
        deployed model spec the app's weights must match.

        `privacy_budget`: the epsilon this trainer's operator allows; it stops before taking
        part in a round that would spend more (None: no limit). It bounds the sample-level
        epsilon when the trainer runs DP-SGD (`dp_sgd`, its steps kept in `dp_sgd_ledger`), the
        client-level one otherwise."""
        self.ledger = ledger
        self.rounds = Rounds(ledger)
        self.ipfs = ipfs
        self.account = account
        self.app = app
        self.data = data
        self.context = context
        self.spec = spec
        self.poll_interval = poll_interval  # polling for blocks without WebSocket; retry backoff
        self.head = head  # default: a subscription to this ledger's node, opened by `run`
        self.privacy_budget = privacy_budget
        self.privacy_exhausted: str | None = None  # why it stopped taking part, once the budget is spent
        self.dp_sgd = dp_sgd
        # Its DP-SGD steps so far, for the sample-level epsilon.
        self.dp_sgd_ledger = dp_sgd_ledger if dp_sgd_ledger is not None else DpSgdLedger()
        self._privacy_rules: dict[int, PrivacyRule] = {}  # round -> its DP rule (fixed at opening)
        self.stats = TrainerStats()
        self._warned_inactive = False
        self.deactivated = False
        self._stop = threading.Event()
        self._sealed: dict[int, SealedUpdate] = {}
        self._claims_checked_at: int | None = None  # the current round at the last claim pass
        self._first_round: int | None = None  # the first round this run considered committing in
        self._sent: set[int] = set()  # rounds whose commit this run tried to send
        self._until_reveal: LogBloom | None = None  # what wakes it, set by `run`
        self._until_next_round: LogBloom | None = None
        self.attack = (
            attack.bind(AttackContext(trainer=self.address, peer_update=self._peer_update))
            if attack is not None
            else None
        )

    @property
    def address(self) -> str:
        return str(self.account.address)

    def run(self, *, max_rounds: int | None = None, stop: threading.Event | None = None) -> TrainerStats:
        """Trains and commits in every round until `max_rounds` commits (or `stop`), then claims.

        Between actions it sleeps until the next block (or the current phase's deadline):
        every phase change but a deadline comes in a block, so it reacts within milliseconds
        and reads nothing while nothing happens.
        """
        stop = stop or threading.Event()
        self._stop = stop
        outage = service_outage(log, self.poll_interval)
        head = self.head or ChainHead(self.ledger.w3, poll_interval=self.poll_interval)
        head.start()
        self._until_reveal = self.rounds.log_bloom((*COMMIT_EVENTS, *ROUND_END_EVENTS))
        self._until_next_round = self.rounds.log_bloom(ROUND_END_EVENTS)
        round_: int | None = None  # the current round at the previous look
        try:
            while not stop.is_set():
                done = max_rounds is not None and len(self.stats.committed_rounds) >= max_rounds
                done = done or self.privacy_exhausted is not None
                try:
                    round_, now = self.rounds.follow(round_)
                    acted = False
                    if not done and now.phase == Phase.COMMIT and self._may_commit(round_):
                        try:
                            acted = self.train_and_commit(round_)
                        except PrivacyBudgetExceededError as exc:
                            # No more rounds; what it sealed is still revealed and its rewards claimed.
                            log.error("round %d: not taking part: %s", round_, exc)
                            self.privacy_exhausted = str(exc)
                            continue
                    elif now.phase == Phase.REVEAL and round_ in self._sealed:
                        acted = self.reveal(round_)
                    elif round_ not in self._sealed:  # never between a commit and its reveal
                        acted = self._claim_due(round_)
                    finished = (done or self.deactivated) and self._all_settled()
                except (TransactionFailedError, RpcUnavailableError, IpfsError) as exc:
                    # Nothing was recorded on chain: the next pass tries again (with backoff).
                    stop.wait(outage.failed(exc))
                    continue
                outage.succeeded()
                if finished:
                    if self.deactivated:
                        log.warning(
                            "no longer an active trainer (stake below the minimum after a slash); stopping"
                        )
                    break
                if acted:
                    continue  # its own transaction may have moved the round on: look again now
                wait = seconds_until(now.deadline, idle=IDLE_WAIT, overdue=self.poll_interval)
                head.wait(wait, stop, interest=self._interest(round_, now.phase))
        finally:
            head.close()
        return self.stats

    def train_and_commit(self, round_: int) -> bool:
        """One round's training and sealed commit; returns whether a commit was sent."""
        started = time.monotonic()
        privacy = self._privacy_rule(round_)
        context = self.context.for_round(round_, self.context.seed * 1_000_003 + round_)
        if self.privacy_budget is not None:
            self._check_budget(round_, privacy, context)
        weights = self._global_weights()
        training_started = time.monotonic()
        result = self._train_step(round_, privacy)(
            TrainCall(weights=weights, data=self.data, context=context)
        )
        # One parseable line per round: the demo measures protocol overhead against it.
        log.info("round %d: trained train_seconds=%.3f", round_, time.monotonic() - training_started)
        if self.dp_sgd is not None:
            log.info(
                "round %d: DP-SGD, sample-level epsilon so far %.3f at delta %g",
                round_,
                self.dp_sgd_ledger.epsilon(self.dp_sgd.delta),
                self.dp_sgd.delta,
            )
        update = result.weights
        binding = Binding(
            kind="update",
            chain_id=self.ledger.chain_id,
            task=str(self.ledger.task.address),
            round=round_,
            model_spec=to_hex(self.spec.hash()),
            trainer=self.address,
            num_samples=result.num_samples,
        )
        try:
            encoded = encode(update, binding, self.spec)
        except InvalidUpdateError as exc:
            raise AppWeightsError(
                f"app {self.app.name!r} returned weights that do not match the deployed model spec "
                f"{self.spec.name!r}: {exc.detail}"
            ) from None
        submission = (
            self.attack.tamper_submission(encoded, binding, sha256(encoded))
            if self.attack
            else Submission(data=encoded, digest=sha256(encoded))
        )
        sealed = SealedUpdate(
            submission=submission, num_samples=result.num_samples, salt=secrets.token_bytes(32)
        )
        seal = seal_of(self.address, submission.digest, sealed.num_samples, sealed.salt)
        self._sent.add(round_)
        try:
            tx = self.rounds.commit_update(self.account, round_, seal)
        except ContractRevertError as exc:
            # Whatever changed while it trained (another run of this key committed, the window
            # closed, a slash deactivated it) the contract says at the estimate: nothing is sent.
            if exc.name in ("TaskAlreadyCommitted", "TaskUnexpectedPhase", "TaskNotEligibleTrainer"):
                log.warning("round %d: commit refused (%s)", round_, exc)
                return False
            raise
        self._sealed[round_] = sealed
        self.stats.committed_rounds.append(round_)
        log.info(
            "round %d: committed sealed update %s (%d samples, loss %.3f, %d gas, %.1f s)%s",
            round_,
            submission.digest.hex()[:16],
            result.num_samples,
            result.metrics.get("loss", float("nan")),
            tx.gas_used,
            time.monotonic() - started,
            f" under attack {self.attack.name}" if self.attack else "",
        )
        return True

    def _train_step(self, round_: int, privacy: PrivacyRule) -> Callable[[TrainCall], Any]:
        """The round's training call: the app's (or DP-SGD's) step inside the mods."""
        mods: list[Mod] = []
        if self.attack:
            mods.append(attack_mod(self.attack, round_))
        if privacy.enabled:
            mods.append(client_dp_mod(privacy))  # clipped and noised before anyone sees it
        if self.dp_sgd is not None:
            return chain(dp_sgd_step(self.app, self.dp_sgd, self.dp_sgd_ledger), mods)
        return chain(app_step(self.app), mods)

    def _check_budget(self, round_: int, privacy: PrivacyRule, context: Context) -> None:
        """Raises `PrivacyBudgetExceededError` if this round would spend more than the budget."""
        assert self.privacy_budget is not None
        if self.dp_sgd is not None:
            if not isinstance(self.app, TorchApp):
                dp_sgd_step(self.app, self.dp_sgd, self.dp_sgd_ledger)  # raises: DP-SGD needs a TorchApp
            assert isinstance(self.app, TorchApp)
            delta = self.dp_sgd.delta
            steps = self.app.dp_sgd_steps(self.data, context)
            after = self.dp_sgd_ledger.epsilon(delta, (self.dp_sgd.noise_multiplier, *steps))
            if after > self.privacy_budget:
                raise PrivacyBudgetExceededError(
                    f"this round's DP-SGD would bring the sample-level epsilon to {after:.3f} at delta "
                    f"{delta:g}, over its budget of {self.privacy_budget:g} (spent so far "
                    f"{self.dp_sgd_ledger.epsilon(delta):.3f})"
                )
        else:
            spent = [self._privacy_rule(r) for r in self._released_rounds()]
            after = check_budget(spent, privacy, self.privacy_budget, privacy.delta)
        log.info(
            "round %d: privacy %s; epsilon after it %.3f (budget %g)",
            round_,
            privacy,
            after,
            self.privacy_budget,
        )

    def _privacy_rule(self, round_: int) -> PrivacyRule:
        if round_ not in self._privacy_rules:
            self._privacy_rules[round_] = PrivacyRule.of_round(self.rounds.config(round_))
        return self._privacy_rules[round_]

    def _released_rounds(self) -> set[int]:
        """Rounds whose update this trainer released: revealed on chain (by this or an earlier
        run of its key) or committed by this run (its file may be pinned already)."""
        return set(self.rounds.revealed_by(self.address)) | set(self.stats.committed_rounds)

    def reveal(self, round_: int) -> bool:
        """Publishes the update sealed in `round_` and opens the seal; returns whether it was revealed."""
        sealed = self._sealed[round_]
        submission = sealed.submission
        cid = submission.cid
        if submission.data is not None:
            pinned = self.ipfs.add(submission.data, name=f"update-r{round_}-{self.address}.safetensors")
            cid = cid or pinned.cid
        if cid is None:
            raise ValueError("a submission must carry bytes to pin or a CID to reveal")
        opening = Opening(
            trainer=self.address,
            digest=submission.digest,
            cid=cid,
            num_samples=sealed.num_samples,
            salt=sealed.salt,
        )
        try:
            tx = self.rounds.reveal_update(self.account, round_, opening)
        except ContractRevertError as exc:
            if exc.name not in ("TaskAlreadyRevealed", "TaskUnexpectedPhase"):
                raise
            log.warning("round %d: reveal refused (%s)", round_, exc)
            del self._sealed[round_]
            return False
        del self._sealed[round_]
        self.stats.revealed_rounds.append(round_)
        log.info("round %d: revealed %s (%d gas)", round_, cid, tx.gas_used)
        return True

    def claim_rewards(self, *, limit: int | None = None, current_round: int | None = None) -> bool:
        """Claims the reward of every settled round where this trainer's update was accepted,
        sending at most `limit` claims; returns whether a round is left to claim.

        Rounds before the current one are settled for good (finalized, or closed as stale), so
        nothing is asked first: the contract refuses a closed, rejected or already paid round
        at the gas estimate, before anything is signed, and such a round counts as paid 0.
        """
        current = self.rounds.current_round() if current_round is None else current_round
        sent = 0
        for round_, commit in sorted(self.rounds.revealed_by(self.address).items()):
            if round_ >= current or round_ in self.stats.claimed:
                continue
            if limit is not None and sent >= limit:
                return True
            try:
                tx = self.rounds.claim_reward(self.account, round_, commit.digest, commit.num_samples)
            except ContractRevertError as exc:
                if exc.name not in UNPAID_REVERTS:
                    raise
                self.stats.claimed[round_] = 0
                continue
            amount = self.rounds.claimed_amount(tx)
            self.stats.claimed[round_] = amount
            sent += 1
            log.info("round %d: claimed %d", round_, amount)
        return False

    def _claim_due(self, round_: int) -> bool:
        """One claim per pass, so a phase change waits for one claim at most; whether a round
        was settled. Rewards become claimable when a round ends: once none is left, look again
        in the next round."""
        if self._claims_checked_at == round_:
            return False
        settled = len(self.stats.claimed)
        if not self.claim_rewards(limit=1, current_round=round_):
            self._claims_checked_at = round_
        return len(self.stats.claimed) > settled

    def _interest(self, round_: int, phase: Phase) -> LogBloom | None:
        """The blocks worth waking for: while its sealed update waits for the reveal phase,
        commits (the last one closes the window); once the round needs nothing more from this
        trainer, the round's end; otherwise every block."""
        if round_ in self._sealed and phase == Phase.COMMIT:
            return self._until_reveal
        if round_ not in self._sealed and phase in (Phase.REVEAL, Phase.AGGREGATION, Phase.STALE):
            return self._until_next_round
        return None

    def _may_commit(self, round_: int) -> bool:
        if round_ in self._sealed or round_ in self.stats.committed_rounds:
            return False  # committed in this run
        if self._first_round is None:
            self._first_round = round_
        # Only a round open before this run started, or one whose commit failed on the way
        # (the transaction may still have landed), can hold a commit this run does not know of.
        unsure = round_ == self._first_round or round_ in self._sent
        if unsure and self.rounds.last_committed_round(self.address) == round_:
            if round_ not in self._sealed and round_ not in self.stats.committed_rounds:
                log.warning("round %d: committed before a restart; the seal's opening is lost", round_)
                self.stats.committed_rounds.append(round_)
            return False
        since = self.rounds.trainer_active_since(self.address)
        if since == 0:
            if self.stats.committed_rounds:
                # It was active and no longer is: slashed below the minimum stake (or unstaked).
                self.deactivated = True
            elif not self._warned_inactive:
                log.warning("not an active trainer (not registered, or stake below the minimum); waiting")
                self._warned_inactive = True
            return False
        self._warned_inactive = False
        return since <= self.rounds.opened_state(round_).opened_at

    def _all_settled(self) -> bool:
        """Every committed round is finalized (and claimed) or closed."""
        for round_ in self.stats.committed_rounds:
            if round_ in self.stats.claimed:
                continue  # settled: paid, or refused for good
            phase = self.rounds.phase(round_)
            if phase == Phase.FINALIZED and round_ not in self.stats.claimed:
                return False
            if phase in (Phase.COMMIT, Phase.REVEAL, Phase.AGGREGATION):
                return False
        return True

    def _global_weights(self) -> dict[str, Array]:
        model = self.rounds.global_model()
        binding = global_model_binding(
            chain_id=self.ledger.chain_id,
            task=str(self.ledger.task.address),
            version=model.version,
            spec=self.spec,
        )
        return fetch_model(self.ipfs, model.cid, model.digest, self.spec, binding)

    def _peer_update(self, round_: int, victim: str | None) -> dict[str, Array] | None:
        """Another trainer's valid update of `round_` (for a copying free rider), or None.

        Under commit-reveal nothing of the round is revealed while its commit window is open,
        so polling would only waste the window: one look, which finds nothing in an honest
        federation. This is the attack the protocol defeats.
        """
        return self._first_valid_peer_update(round_, victim)

    def _first_valid_peer_update(self, round_: int, victim: str | None) -> dict[str, Array] | None:
        def fetch(cid: str, max_bytes: int) -> bytes:
            return self.ipfs.cat(cid, max_bytes, timeout=COPY_FETCH_TIMEOUT_SECONDS)

        peers = sorted(
            (
                c
                for c in self.rounds.revealed(round_)
                if c.trainer.lower() != self.address.lower()
                and (victim is None or c.trainer.lower() == victim.lower())
            ),
            key=lambda c: c.trainer.lower(),
        )
        for peer in peers:
            binding = update_binding(
                peer,
                chain_id=self.ledger.chain_id,
                task=str(self.ledger.task.address),
                round_number=round_,
                spec=self.spec,
            )
            verdict = verify(peer, fetch, self.spec, binding)
            if verdict.tensors is not None:
                log.info("round %d: copying the update of %s", round_, peer.trainer)
                return verdict.tensors
        return None
