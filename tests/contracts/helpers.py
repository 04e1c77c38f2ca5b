"""Helpers shared by the contract tests: updates, models, rejections, the clock, whole rounds."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ape
from ape.exceptions import CustomError
from eth_abi import decode, encode
from eth_utils import keccak

from fedledger.chain.params import Phase, RejectionReason

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO_BYTES32 = b"\x00" * 32
BPS = 10_000
UINT64_MAX = 2**64 - 1
UINT128_MAX = 2**128 - 1

RejectionTuple = tuple[str, int, bytes, int]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class Update:
    """What a trainer commits (sealed) and then reveals: the sha256 of its update file, where
    the file is, its samples, and the secret salt of the seal."""

    digest: bytes
    cid: str
    samples: int
    salt: bytes = b"\x5a" * 32

    def seal(self, trainer: Any) -> bytes:
        """keccak256(abi.encode(trainer, digest, numSamples, salt)), as `sealOf` computes it."""
        return keccak(
            encode(
                ["address", "bytes32", "uint256", "bytes32"],
                [str(trainer), self.digest, self.samples, self.salt],
            )
        )


@dataclass(frozen=True)
class Model:
    """What aggregators attest: the aggregated model's digest and CID."""

    digest: bytes
    cid: str


def make_update(label: str, samples: int = 1_000) -> Update:
    digest = sha256(label.encode())
    return Update(
        digest=digest, cid=f"bafkrei{digest.hex()[:40]}", samples=samples, salt=sha256(b"salt" + digest)
    )


def make_model(label: str) -> Model:
    digest = sha256(label.encode())
    return Model(digest=digest, cid=f"bafkreimodel{digest.hex()[:32]}")


# ---------------------------------------------------------------- reverts


@contextmanager
def reverts(error: Any, **inputs: Any) -> Iterator[Any]:
    """`ape.reverts(error, **inputs)` that also fails when the revert is not `error` at all.

    Given a custom error class, `ape.reverts` accepts any revert that ape could not decode as a
    custom error (ape does not decode them for reverting constructors, for example). Here an
    undecoded revert must carry `error`'s selector and ABI-encoded `inputs`.
    """
    with ape.reverts(error, **inputs) as info:
        yield info
    if isinstance(info.value, CustomError):
        assert info.value.name == error.__name__, f"expected {error.__name__}, reverted with {info.value!r}"
        return
    abi = error.abi
    data = bytes.fromhex(str(info.value.revert_message).removeprefix("0x"))
    selector = keccak(text=abi.selector)[:4]
    assert data[:4] == selector, f"expected {abi.selector}, reverted with {info.value!r}"
    types = [ipt.canonical_type for ipt in abi.inputs]
    decoded = dict(zip([ipt.name for ipt in abi.inputs], decode(types, data[4:]), strict=True))
    for name, expected in inputs.items():
        assert _normalized(decoded[name]) == _normalized(expected), f"{abi.selector} input {name}"


def _normalized(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    if hasattr(value, "address"):
        return str(value.address).lower()
    return value


# ---------------------------------------------------------------- clock


def advance(chain: Any, seconds: int) -> int:
    """Mines a block `seconds` after the pending timestamp and returns its timestamp."""
    timestamp = int(chain.pending_timestamp) + seconds
    chain.mine(timestamp=timestamp)
    return timestamp


def next_block_at(chain: Any, timestamp: int) -> None:
    """Makes the next block (the next transaction) carry exactly `timestamp`."""
    chain.pending_timestamp = timestamp


def block_timestamp(receipt: Any) -> int:
    return int(receipt.timestamp)


# ---------------------------------------------------------------- task


def rejection(trainer: Any, reason: RejectionReason, update: Update) -> RejectionTuple:
    """A `Rejection` struct naming `trainer`'s committed `update`."""
    return (str(trainer.address), int(reason), update.digest, update.samples)


def sort_rejections(rejections: Iterable[RejectionTuple]) -> list[RejectionTuple]:
    """Rejections in the order `attest` requires: strictly increasing trainer address."""
    return sorted(rejections, key=lambda r: int(r[0], 16))


def result_key(round_: int, model_digest: bytes, rejections: Sequence[RejectionTuple]) -> bytes:
    """keccak256(abi.encode(round, modelDigest, rejections)), as `attest` computes it."""
    encoded = encode(
        ["uint256", "bytes32", "(address,uint8,bytes32,uint64)[]"],
        [round_, model_digest, [tuple(r) for r in rejections]],
    )
    return keccak(encoded)


def commit(task: Any, trainer: Any, update: Update, round_: int | None = None) -> Any:
    """Commits the seal of `update` from `trainer` in `round_` (default: the current round)."""
    round_ = int(task.currentRound()) if round_ is None else round_
    return task.commitUpdate(round_, update.seal(trainer), sender=trainer)


def reveal(task: Any, trainer: Any, update: Update, round_: int | None = None, sender: Any = None) -> Any:
    """Reveals `trainer`'s `update` in `round_` (default: the current round), sent by `sender`
    (default: the trainer itself)."""
    round_ = int(task.currentRound()) if round_ is None else round_
    return task.revealUpdate(
        round_, trainer, update.digest, update.cid, update.samples, update.salt, sender=sender or trainer
    )


def attest(
    task: Any,
    aggregator: Any,
    model: Model,
    rejections: Sequence[RejectionTuple] = (),
    round_: int | None = None,
) -> Any:
    round_ = int(task.currentRound()) if round_ is None else round_
    return task.attest(round_, model.digest, model.cid, list(rejections), sender=aggregator)


def end_commit_window(chain: Any, task: Any, round_: int) -> None:
    """Moves the clock to the round's commit deadline unless the window already closed."""
    if Phase(task.phase(round_)) == Phase.COMMIT:
        deadline = int(task.roundState(round_).commitDeadline)
        chain.mine(timestamp=max(deadline, int(chain.pending_timestamp)))


def end_reveal_window(chain: Any, task: Any, round_: int) -> None:
    """Moves the clock to the round's reveal deadline unless the window already closed."""
    if Phase(task.phase(round_)) == Phase.REVEAL:
        deadline = int(task.roundState(round_).revealDeadline)
        chain.mine(timestamp=max(deadline, int(chain.pending_timestamp)))


def commit_all(task: Any, updates: Mapping[Any, Update], round_: int | None = None) -> list[Any]:
    return [commit(task, trainer, update, round_) for trainer, update in updates.items()]


def reveal_all(task: Any, updates: Mapping[Any, Update], round_: int | None = None) -> list[Any]:
    return [reveal(task, trainer, update, round_) for trainer, update in updates.items()]


def commit_and_reveal(
    chain: Any, task: Any, updates: Mapping[Any, Update], round_: int | None = None
) -> list[Any]:
    """Every trainer in `updates` commits, the commit window ends, every one reveals.
    Returns the reveal receipts."""
    round_ = int(task.currentRound()) if round_ is None else round_
    commit_all(task, updates, round_)
    end_commit_window(chain, task, round_)
    return reveal_all(task, updates, round_)


def run_round(
    chain: Any,
    task: Any,
    updates: Mapping[Any, Update],
    aggregators: Sequence[Any],
    model: Model,
    rejections: Sequence[RejectionTuple] = (),
) -> Any:
    """Plays the current round to finalization: every trainer in `updates` commits, the commit
    window ends, every one reveals, then `aggregators` attest `model` with `rejections` in order
    until the round finalizes. Returns the finalizing receipt."""
    commit_and_reveal(chain, task, updates, int(task.currentRound()))
    return attest_until_finalized(chain, task, aggregators, model, rejections)


def attest_until_finalized(
    chain: Any, task: Any, aggregators: Sequence[Any], model: Model, rejections: Sequence[RejectionTuple] = ()
) -> Any:
    """Ends the current round's reveal window, then `aggregators` attest `model` with
    `rejections` in order until the round finalizes. Returns the finalizing receipt."""
    round_ = int(task.currentRound())
    end_reveal_window(chain, task, round_)
    for aggregator in aggregators:
        receipt = attest(task, aggregator, model, rejections, round_)
        if Phase(task.phase(round_)) == Phase.FINALIZED:
            return receipt
    raise AssertionError(f"round {round_} did not finalize")


# ---------------------------------------------------------------- governance


@dataclass(frozen=True)
class Proposal:
    """A governor proposal: the calls the timelock will make and the description."""

    targets: list[str]
    values: list[int]
    calldatas: list[bytes]
    description: str

    @classmethod
    def of(cls, calls: Sequence[tuple[Any, bytes]], description: str) -> Proposal:
        """`calls` are (contract, calldata) pairs, e.g. (task, task.setParameter.encode_input(3, 1))."""
        return cls(
            targets=[str(contract.address) for contract, _ in calls],
            values=[0] * len(calls),
            calldatas=[bytes(data) for _, data in calls],
            description=description,
        )

    @property
    def description_hash(self) -> bytes:
        return keccak(text=self.description)

    def args(self) -> tuple[list[str], list[int], list[bytes], bytes]:
        """The arguments `queue`, `execute` and `hashProposal` take."""
        return self.targets, self.values, self.calldatas, self.description_hash

    def id(self, governor: Any) -> int:
        return int(governor.hashProposal(*self.args()))

    def propose(self, governor: Any, proposer: Any) -> Any:
        return governor.propose(self.targets, self.values, self.calldatas, self.description, sender=proposer)

    def queue(self, governor: Any, sender: Any) -> Any:
        return governor.queue(*self.args(), sender=sender)

    def execute(self, governor: Any, sender: Any) -> Any:
        return governor.execute(*self.args(), sender=sender)


def pass_and_queue(
    governor: Any, proposal: Proposal, proposer: Any, voters: Sequence[Any], chain: Any
) -> Any:
    """Proposes `proposal` from `proposer`, has `voters` vote for it once the vote opens, waits
    for the vote to end and queues it; returns the queue receipt. Reads the delays from the
    governor, so it works under any governance profile. The voters must be enough to pass it."""
    proposal.propose(governor, proposer)
    proposal_id = proposal.id(governor)
    advance(chain, int(governor.votingDelay()) + 1)
    for voter in voters:
        governor.castVote(proposal_id, 1, sender=voter)  # VoteType.FOR
    advance(chain, int(governor.votingPeriod()) + 1)
    return proposal.queue(governor, proposer)


def wait_for_eta(chain: Any, governor: Any, proposal: Proposal) -> None:
    """Mines the block at which the queued `proposal` becomes executable."""
    chain.mine(timestamp=int(governor.proposalEta(proposal.id(governor))))
