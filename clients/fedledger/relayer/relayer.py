"""A relayer: submits many trainers' signed commitments, and later their openings, in batches.

A trainer seals its update as usual (`seal_of`), signs `Commitment(round, seal)` (EIP-712,
`chain.batching.sign_commitment`) and hands the signature to a relayer instead of sending a
transaction. The relayer pays the gas of one `commitBatch` per `batch_size` commitments and
remembers each batch's leaves, so that in the Reveal phase it can prove every opening a
trainer hands it against its batch's root (`revealBatch`).

A relayer is trusted with nothing: the seal binds the trainer's update and the signature binds
the round, chain and contract, so it can neither forge nor alter a commitment; it can only
leave one out. The contract refuses a whole batch if any entry is invalid, so entries are
checked before they are sent (the signature locally; on a refused batch, each entry alone by
an `eth_call`) and a bad one is dropped and reported, never allowed to sink the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount

from fedledger.chain.batching import SignedCommitment, batch_leaf, merkle_proof, signer_of
from fedledger.chain.errors import ContractRevertError
from fedledger.chain.rounds import Opening, Rounds
from fedledger.chain.transactions import TxResult

log = logging.getLogger("fedledger.relayer")

T = TypeVar("T")
E = TypeVar("E")  # one entry of a batch

DEFAULT_BATCH_SIZE = 100  # the size the batched-commit gas target is set for
# Transactions in flight at once (consecutive nonces from one account): a batch is not held
# back until the previous one is mined.
DEFAULT_CONCURRENCY = 4
# Reverts that one entry causes on its own; anything else (the phase, say) concerns the whole
# batch, and is raised to the caller instead of dropping entries.
COMMIT_ENTRY_ERRORS = frozenset(
    {
        "TaskNotEligibleTrainer",
        "TaskAlreadyCommitted",
        "TaskZeroSeal",
        "ECDSAInvalidSignature",
        "ECDSAInvalidSignatureS",
    }
)
REVEAL_ENTRY_ERRORS = frozenset(
    {
        "TaskRevealMismatch",
        "TaskAlreadyRevealed",
        "TaskZeroDigest",
        "TaskInvalidCid",
        "TaskInvalidSampleCount",
    }
)


@dataclass(frozen=True)
class Dropped:
    """A commitment or opening the relayer did not submit, and why."""

    trainer: str
    reason: str


@dataclass(frozen=True)
class Batch:
    """One submitted `commitBatch`: its index on chain and its trainers in leaf order."""

    round: int
    index: int
    trainers: tuple[str, ...]
    leaves: tuple[bytes, ...]
    tx: TxResult


@dataclass
class RelayReport:
    """What one `commit` or `reveal` call sent and what it left out."""

    transactions: list[TxResult] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)

    @property
    def gas_used(self) -> int:
        return sum(tx.gas_used for tx in self.transactions)

    def in_chain_order(self) -> RelayReport:
        self.transactions.sort(key=lambda tx: (tx.block_number, int(tx.receipt["transactionIndex"])))
        return self


class Relayer:
    """Batches signed commitments and their openings for one task, from one relayer account."""

    def __init__(
        self,
        rounds: Rounds,
        account: LocalAccount,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.rounds = rounds
        self.account = account
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._batch_of: dict[tuple[int, str], Batch] = {}  # (round, trainer) -> its batch

    @property
    def chain_id(self) -> int:
        return self.rounds.ledger.chain_id

    @property
    def task(self) -> str:
        return str(self.rounds.task.address)

    def batches(self, round_: int) -> list[Batch]:
        """This relayer's batches of `round_`, in submission order."""
        unique = {id(b): b for (r, _), b in self._batch_of.items() if r == round_}
        return sorted(unique.values(), key=lambda b: b.index)

    def commit(self, round_: int, commitments: Sequence[SignedCommitment]) -> RelayReport:
        """Submits `commitments` for `round_` in batches of `batch_size`.

        Entries whose signature does not recover, repeats of a trainer, and (when a batch is
        refused) entries the contract refuses on their own are dropped and reported."""
        report = RelayReport()
        signed: list[tuple[str, SignedCommitment]] = []
        seen: set[str] = set()
        for commitment in commitments:
            trainer = self._signer(commitment, round_)
            if trainer is None:
                report.dropped.append(Dropped("?", "the signature does not recover"))
            elif trainer.lower() in seen or (round_, trainer.lower()) in self._batch_of:
                report.dropped.append(Dropped(trainer, "already relayed in this round"))
            else:
                seen.add(trainer.lower())
                signed.append((trainer, commitment))
        self._each(_chunks(signed, self.batch_size), lambda chunk: self._commit_chunk(round_, chunk, report))
        return report.in_chain_order()

    def reveal(self, round_: int, openings: Sequence[Opening]) -> RelayReport:
        """Opens commitments this relayer batched in `round_`: one `revealBatch` per batch (and
        per `batch_size` openings). Openings of commitments it never relayed are dropped."""
        report = RelayReport()
        by_batch: dict[int, list[tuple[Opening, list[bytes]]]] = {}
        for opening in openings:
            batch = self._batch_of.get((round_, opening.trainer.lower()))
            if batch is None:
                report.dropped.append(Dropped(opening.trainer, "not committed through this relayer"))
                continue
            leaf = batch_leaf(opening.trainer, opening.seal)
            if leaf not in batch.leaves:
                report.dropped.append(Dropped(opening.trainer, "the opening does not match the seal"))
                continue
            proof = merkle_proof(list(batch.leaves), batch.leaves.index(leaf))
            by_batch.setdefault(batch.index, []).append((opening, proof))
        work = [
            (index, chunk)
            for index, entries in sorted(by_batch.items())
            for chunk in _chunks(entries, self.batch_size)
        ]
        self._each(work, lambda item: self._reveal_chunk(round_, item[0], item[1], report))
        return report.in_chain_order()

    # ---------------------------------------------------------------- internals

    def _each(self, items: Iterable[T], send: Callable[[T], None]) -> None:
        """`send` for every item, up to `concurrency` at once; the first error is raised."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for future in [pool.submit(send, item) for item in items]:
                future.result()

    def _signer(self, commitment: SignedCommitment, round_: int) -> str | None:
        try:
            return signer_of(commitment, chain_id=self.chain_id, task=self.task, round_=round_)
        except (ValueError, TypeError):  # a malformed signature
            return None

    def _commit_chunk(
        self, round_: int, chunk: list[tuple[str, SignedCommitment]], report: RelayReport
    ) -> None:
        def refused(entry: tuple[str, SignedCommitment]) -> bool:
            function = self.rounds.task.functions.commitBatch(round_, [entry[1].as_tuple()])
            return self._refused(function, entry[0], COMMIT_ENTRY_ERRORS, report)

        sent = self._send_without_refused(
            round_,
            "batch",
            chunk,
            lambda c: self.rounds.commit_batch(self.account, round_, [s for _, s in c]),
            refused,
        )
        if sent is None:
            return
        chunk, tx = sent
        index = self._batch_index(tx)
        batch = Batch(
            round=round_,
            index=index,
            trainers=tuple(t for t, _ in chunk),
            leaves=tuple(batch_leaf(t, c.seal) for t, c in chunk),
            tx=tx,
        )
        for trainer, _ in chunk:
            self._batch_of[(round_, trainer.lower())] = batch
        report.transactions.append(tx)
        log.info("round %d: batch %d of %d commitments (%d gas)", round_, index, len(chunk), tx.gas_used)

    def _reveal_chunk(
        self, round_: int, index: int, chunk: list[tuple[Opening, list[bytes]]], report: RelayReport
    ) -> None:
        def refused(entry: tuple[Opening, list[bytes]]) -> bool:
            reveal = self.rounds.reveal_entry(*entry)
            function = self.rounds.task.functions.revealBatch(round_, index, [reveal])
            return self._refused(function, entry[0].trainer, REVEAL_ENTRY_ERRORS, report)

        sent = self._send_without_refused(
            round_,
            "reveal",
            chunk,
            lambda c: self.rounds.reveal_batch(self.account, round_, index, c),
            refused,
        )
        if sent is not None:
            report.transactions.append(sent[1])
            log.info(
                "round %d: revealed %d of batch %d (%d gas)", round_, len(sent[0]), index, sent[1].gas_used
            )

    @staticmethod
    def _send_without_refused(
        round_: int,
        what: str,
        chunk: list[E],
        send: Callable[[list[E]], TxResult],
        refused: Callable[[E], bool],
    ) -> tuple[list[E], TxResult] | None:
        """Sends `chunk`; if the contract refuses it, sends it again without the entries it
        refuses on their own. Returns what was sent and the transaction, or None if no entry
        was left. Raised if every entry passes alone: the refusal was not theirs."""
        while True:
            try:
                return chunk, send(chunk)
            except ContractRevertError as exc:
                kept = [entry for entry in chunk if not refused(entry)]
                if len(kept) == len(chunk):
                    raise  # e.g. the phase, or a race with another relayer: the caller decides
                log.warning(
                    "round %d: %s refused (%s); resending without %d entries",
                    round_,
                    what,
                    exc.name,
                    len(chunk) - len(kept),
                )
                if not kept:
                    return None
                chunk = kept

    def _refused(
        self, function: Any, trainer: str, entry_errors: frozenset[str], report: RelayReport
    ) -> bool:
        """Whether the contract refuses one entry on its own (`function` sends just it); if so,
        it is recorded as dropped with the contract's reason."""
        try:
            self.rounds.call(function, sender=self.account.address, label="check an entry")
        except ContractRevertError as exc:
            if exc.name not in entry_errors:
                raise
            report.dropped.append(Dropped(trainer, str(exc)))
            return True
        return False

    def _batch_index(self, tx: TxResult) -> int:
        """The batch's index, from its `BatchCommitted` event (other relayers may have batches
        in the same round, so it cannot be counted locally)."""
        events = self.rounds.task.events.BatchCommitted().process_receipt(tx.receipt)
        if len(events) != 1:
            raise RuntimeError(f"{tx.label}: expected one BatchCommitted event, found {len(events)}")
        return int(events[0]["args"]["batchIndex"])


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
