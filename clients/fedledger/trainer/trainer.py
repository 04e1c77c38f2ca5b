"""The trainer loop.

Each round: wait for the Commit phase, fetch the global model and check it against the
on-chain root, train on the local shard, encode the update canonically (bound to this task,
round, trainer and sample count), pin it, and commit its sha256 and CID. After rounds
finalize, claim their rewards. Restarted mid-round it asks the chain whether it already
committed, so it never commits twice (the contract would refuse a second commit anyway).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from fedledger.arrays import Array
from fedledger.chain.contracts import FedLedger
from fedledger.chain.errors import ContractRevertError, RpcUnavailableError, TransactionFailedError
from fedledger.chain.params import Phase, RejectionReason
from fedledger.chain.rounds import Rounds
from fedledger.learning.data import Dataset
from fedledger.learning.model import build_model, get_weights, set_weights
from fedledger.learning.train import TrainConfig, train_local
from fedledger.storage.codec import Binding, encode
from fedledger.storage.digests import sha256, to_hex
from fedledger.storage.ipfs import IpfsClient, IpfsError
from fedledger.storage.models import fetch_model, global_model_binding
from fedledger.storage.schema import ModelSpec

log = logging.getLogger("fedledger.trainer")


@dataclass(kw_only=True)
class TrainerStats:
    committed_rounds: list[int] = field(default_factory=list)
    claimed: dict[int, int] = field(default_factory=dict)  # round -> reward


class Trainer:
    """One trainer: an account, a private shard, and the task it trains for."""

    def __init__(
        self,
        *,
        ledger: FedLedger,
        ipfs: IpfsClient,
        account: LocalAccount,
        data: Dataset,
        spec: ModelSpec,
        train_config: TrainConfig,
        poll_interval: float = 0.2,
        progress: bool = False,
    ) -> None:
        self.ledger = ledger
        self.rounds = Rounds(ledger)
        self.ipfs = ipfs
        self.account = account
        self.data = data
        self.spec = spec
        self.train_config = train_config
        self.poll_interval = poll_interval
        self.progress = progress
        self.model = build_model()
        self.stats = TrainerStats()
        self._warned_inactive = False

    @property
    def address(self) -> str:
        return str(self.account.address)

    def run(self, *, max_rounds: int | None = None, stop: threading.Event | None = None) -> TrainerStats:
        """Trains and commits in every round until `max_rounds` commits (or `stop`), then claims."""
        stop = stop or threading.Event()
        while not stop.is_set():
            done = max_rounds is not None and len(self.stats.committed_rounds) >= max_rounds
            try:
                round_ = self.rounds.current_round()
                if not done and self.rounds.synced_phase(round_) == Phase.COMMIT and self._may_commit(round_):
                    self.train_and_commit(round_)
                self.claim_rewards()
            except (TransactionFailedError, RpcUnavailableError, IpfsError) as exc:
                # Nothing was recorded on chain: the next poll tries again (with backoff).
                log.warning("%s; retrying", exc)
                stop.wait(min(5.0, self.poll_interval * 10))
            if done and self._all_settled():
                break
            stop.wait(self.poll_interval)
        return self.stats

    def train_and_commit(self, round_: int) -> bool:
        """One round's work; returns whether a commit was sent."""
        started = time.monotonic()
        weights = self._global_weights()
        set_weights(self.model, weights)
        config = TrainConfig(
            **{**self.train_config.__dict__, "seed": self.train_config.seed * 1_000_003 + round_}
        )
        result = train_local(self.model, self.data, config, progress=self.progress)
        binding = Binding(
            kind="update",
            chain_id=self.ledger.chain_id,
            task=str(self.ledger.task.address),
            round=round_,
            model_spec=to_hex(self.spec.hash()),
            trainer=self.address,
            num_samples=result.num_samples,
        )
        data = encode(get_weights(self.model), binding, self.spec)
        pinned = self.ipfs.add(data, name=f"update-r{round_}-{self.address}.safetensors")
        # Re-check right before sending: a restarted trainer may have committed already.
        if not self._may_commit(round_):
            return False
        try:
            tx = self.rounds.commit_update(
                self.account, round_, self.committed_digest(data), pinned.cid, result.num_samples
            )
        except ContractRevertError as exc:
            if exc.name in ("TaskAlreadyCommitted", "TaskUnexpectedPhase"):
                log.warning("round %d: commit refused (%s)", round_, exc)
                return False
            raise
        self.stats.committed_rounds.append(round_)
        log.info(
            "round %d: committed %s (%d samples, loss %.3f, %d gas, %.1f s)",
            round_,
            pinned.cid,
            result.num_samples,
            result.mean_loss,
            tx.gas_used,
            time.monotonic() - started,
        )
        return True

    def committed_digest(self, data: bytes) -> bytes:
        """What goes on chain for the update bytes `data`: their sha256."""
        return sha256(data)

    def claim_rewards(self) -> None:
        """Claims the reward of every finalized round where this trainer's update was accepted."""
        for round_, commit in self.rounds.commits_by(self.address).items():
            if round_ in self.stats.claimed or self.rounds.phase(round_) != Phase.FINALIZED:
                continue
            if self.rounds.rejection(round_, self.address) != RejectionReason.NONE:
                self.stats.claimed[round_] = 0
                continue
            if self.rounds.reward_claimed(round_, self.address):
                self.stats.claimed[round_] = 0
                continue
            amount = self.rounds.reward_of(round_, commit.num_samples)
            self.rounds.claim_reward(self.account, round_, commit.digest, commit.num_samples)
            self.stats.claimed[round_] = amount
            log.info("round %d: claimed %d", round_, amount)

    def _may_commit(self, round_: int) -> bool:
        if self.rounds.commitment(round_, self.address) != bytes(32):
            return False
        since = self.rounds.trainer_active_since(self.address)
        if since == 0:
            if not self._warned_inactive:
                log.warning(
                    "not an active trainer (unregistered, or slashed below the minimum stake); waiting"
                )
                self._warned_inactive = True
            return False
        self._warned_inactive = False
        return since <= self.rounds.state(round_).opened_at

    def _all_settled(self) -> bool:
        """Every committed round is finalized (and claimed) or closed."""
        for round_ in self.stats.committed_rounds:
            phase = self.rounds.phase(round_)
            if phase == Phase.FINALIZED and round_ not in self.stats.claimed:
                return False
            if phase in (Phase.COMMIT, Phase.AGGREGATION):
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
