"""Simulated trainers for the scale benchmark: many per process, each doing a real trainer's work.

Each simulated trainer holds its IID shard of the MNIST training digits, trains the round's
global model on it (PyTorch, one thread), encodes the update canonically with its binding,
seals it (`seal_of`, a random salt) and signs the EIP-712 commitment a relayer submits. The
file is written to disk, not published: like a real trainer, it is pinned to IPFS only in the
Reveal phase.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedledger.arrays import Array
from fedledger.chain.batching import SignedCommitment, sign_commitment
from fedledger.chain.rounds import Opening, seal_of
from fedledger.learning.model import build_model, get_weights, model_spec, set_weights
from fedledger.learning.shards import ShardSpec, shard
from fedledger.learning.train import TrainConfig, train_local
from fedledger.storage.codec import Binding, encode
from fedledger.storage.digests import sha256, to_hex


@dataclass(frozen=True, kw_only=True)
class RoundInputs:
    """What every simulated trainer of the round needs to know (sent to each worker once)."""

    chain_id: int
    task: str
    round: int
    trainers: int  # shards are index/trainers
    weights: dict[str, Array]  # the round's global model, already verified against the chain
    updates_dir: str
    epochs: int = 1
    data_seed: int = 0


@dataclass(frozen=True, kw_only=True)
class SealedUpdate:
    """One trainer's round: the signed commitment for the relayer, the opening kept for the
    reveal, where the file is, and how long its local training took."""

    index: int
    signed: SignedCommitment
    opening: Opening  # its CID is filled in when the file is published
    path: str
    train_seconds: float


def train_and_seal(inputs: RoundInputs, trainers: list[tuple[int, bytes]]) -> list[SealedUpdate]:
    """Trains, encodes, seals and signs for each `(shard index, private key)` in `trainers`
    (run in a worker process)."""
    torch.set_num_threads(1)  # one core per worker process: the benchmark runs one per core
    spec = model_spec()
    model = build_model()
    out = []
    for index, key in trainers:
        account: LocalAccount = Account.from_key(key)
        data = shard(ShardSpec(index=index, count=inputs.trainers, seed=inputs.data_seed))
        set_weights(model, inputs.weights)
        started = time.perf_counter()
        result = train_local(
            model, data, TrainConfig(epochs=inputs.epochs, seed=index * 1_000_003 + inputs.round)
        )
        train_seconds = time.perf_counter() - started
        binding = Binding(
            kind="update",
            chain_id=inputs.chain_id,
            task=inputs.task,
            round=inputs.round,
            model_spec=to_hex(spec.hash()),
            trainer=account.address,
            num_samples=result.num_samples,
        )
        data_bytes = encode(get_weights(model), binding, spec)
        digest, salt = sha256(data_bytes), secrets.token_bytes(32)
        seal = seal_of(account.address, digest, result.num_samples, salt)
        path = Path(inputs.updates_dir) / f"update-{index:05d}.safetensors"
        path.write_bytes(data_bytes)
        out.append(
            SealedUpdate(
                index=index,
                signed=sign_commitment(
                    account, chain_id=inputs.chain_id, task=inputs.task, round_=inputs.round, seal=seal
                ),
                opening=Opening(
                    trainer=account.address, digest=digest, cid="", num_samples=result.num_samples, salt=salt
                ),
                path=str(path),
                train_seconds=train_seconds,
            )
        )
    return out
