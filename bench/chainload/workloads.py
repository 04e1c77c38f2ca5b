"""The measured workloads: what `run_workload` sends, built for a `Federation`.

- `transfers`: 1 wei from each sender to the next one (the raw Anvil baseline).
- `commits`: `commitUpdate(round, seal)` from each trainer, once each, in the open round (each
  trainer's first commit in round 0, a later one in round 1).
- `batched`: the trainers' EIP-712 signed commitments, `COMMITMENTS_PER_BATCH` to a
  `commitBatch` transaction, sent by the federation's relayers (round robin, so each relayer
  has several transactions in flight). The trainers sign before the clock starts: signing is
  their off-chain work, not the relayer's.

A factory takes the federation and the trainers (or senders) it uses; it runs before the
clock starts, so it may read the chain (gas estimates).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from eth_account.signers.local import LocalAccount

from chainload.federation import Federation
from chainload.harness import TRANSFER_GAS, Call, Rpc, ThroughputError, Workload
from fedledger.chain.batching import SignedCommitment, sign_commitment
from fedledger.chain.rounds import seal_of

COMMITMENTS_PER_BATCH = 100


def transfer_workload(federation: Federation, senders: Sequence[LocalAccount]) -> Workload:
    """1 wei from each sender to the next one: the raw Anvil baseline."""
    calls = [
        Call(sender, senders[(i + 1) % len(senders)].address, value=1, gas=TRANSFER_GAS)
        for i, sender in enumerate(senders)
    ]
    return Workload("transfers", calls)


def commit_seal(trainer: str, index: int, round_: int = 0) -> bytes:
    """A distinct seal per trainer and round (no two commits share an update)."""
    digest = hashlib.sha256(b"update" + round_.to_bytes(4, "big") + index.to_bytes(4, "big")).digest()
    salt = hashlib.sha256(b"salt" + trainer.encode()).digest()
    return seal_of(trainer, digest, 1_000 + index, salt)


def commit_workload(federation: Federation, trainers: Sequence[LocalAccount]) -> Workload:
    """`commitUpdate(round, seal)` from each trainer in the federation's open round, with a
    distinct seal each; gas limit `federation.commit_gas` (set for that round)."""
    task, round_ = federation.ledger.task, federation.round
    calls = [
        Call(
            trainer,
            task.address,
            task.encode_abi("commitUpdate", args=[round_, commit_seal(trainer.address, i, round_)]),
            gas=federation.commit_gas,
        )
        for i, trainer in enumerate(trainers)
    ]
    return Workload("commits", calls, commits=len(calls), round=round_)


def signed_commitments(federation: Federation, trainers: Sequence[LocalAccount]) -> list[SignedCommitment]:
    """Each trainer's EIP-712 signature of its seal for the open round (what it hands a relayer)."""
    task, round_ = federation.ledger.task.address, federation.round
    return [
        sign_commitment(
            trainer,
            chain_id=federation.chain_id,
            task=task,
            round_=round_,
            seal=commit_seal(trainer.address, i, round_),
        )
        for i, trainer in enumerate(trainers)
    ]


def batched_workload(
    federation: Federation, trainers: Sequence[LocalAccount], per_batch: int = COMMITMENTS_PER_BATCH
) -> Workload:
    """`commitBatch(round, [signed commitments])`, `per_batch` trainers' commitments to a
    transaction, sent by the federation's relayers in turn, with the gas limit of
    `batch_gas_limit` (one estimate per batch size: a few, not one per batch, since each
    estimate runs the batch many times and keeps Anvil busy)."""
    if not federation.relayers:
        raise ThroughputError("a batched workload needs relayers (setup_federation(relayer_count=...))")
    task, round_ = federation.ledger.task, federation.round
    commitments = signed_commitments(federation, trainers)
    chunks = [commitments[i : i + per_batch] for i in range(0, len(commitments), per_batch)]
    relayers = [federation.relayers[i % len(federation.relayers)] for i in range(len(chunks))]
    data = [task.encode_abi("commitBatch", args=[round_, [c.as_tuple() for c in chunk]]) for chunk in chunks]
    limits: dict[int, int] = {}
    for relayer, payload, chunk in zip(relayers, data, chunks, strict=True):
        if len(chunk) not in limits:
            limits[len(chunk)] = batch_gas_limit(federation, relayer.address, payload)
    calls = [
        Call(relayer, task.address, payload, gas=limits[len(chunk)], items=len(chunk))
        for relayer, payload, chunk in zip(relayers, data, chunks, strict=True)
    ]
    return Workload("batched", calls, commits=len(commitments), round=round_)


def batch_gas_limit(federation: Federation, relayer: str, data: str) -> int:
    """`eth_estimateGas` of a batch, plus what its calldata's zero bytes would cost as nonzero
    bytes (12 gas each): a limit for any batch of its size, whose signatures and seals are
    random bytes. No other margin: Anvil packs blocks by gas limit, every batch of a size does
    the same work, and the estimate is made before any batch of the round, so it includes the
    first batch's creation of the round's root array (~17k gas more than later batches). The
    receipts confirm none ran out of gas."""
    task = federation.ledger.task.address
    estimate = int(Rpc(federation.url)("eth_estimateGas", [{"from": relayer, "to": task, "data": data}]), 16)
    return estimate + 12 * bytes.fromhex(data.removeprefix("0x")).count(0)


WorkloadFactory = Callable[[Federation, Sequence[LocalAccount]], Workload]
# The measured workloads, by name.
WORKLOADS: dict[str, WorkloadFactory] = {
    "transfers": transfer_workload,
    "commits": commit_workload,
    "batched": batched_workload,
}
