"""Batched commitments: what a trainer signs for a relayer, and the batch's Merkle tree.

A trainer signs `Commitment(uint256 round, bytes32 seal)` (EIP-712, in the task's domain:
name "fedledger", version "1", chain id, task address); any relayer submits many signed
commitments in one `commitBatch`, which stores a single Merkle root. The seal already binds
the trainer, the signature binds the round, chain and contract, so a relayer can neither forge
nor alter a commitment. Reveals prove each leaf against the root (`revealBatch`).

The tree mirrors `FederatedTask._merkleRoot`: leaves in batch order, OpenZeppelin's commutative
pair hash (the smaller word first), an odd last node moves up a level unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3

DOMAIN_NAME = "fedledger"
DOMAIN_VERSION = "1"
COMMITMENT_TYPES = {"Commitment": [{"name": "round", "type": "uint256"}, {"name": "seal", "type": "bytes32"}]}


@dataclass(frozen=True)
class SignedCommitment:
    """`IFederatedTask.SignedCommitment`: a seal with its trainer's compact signature."""

    seal: bytes
    r: bytes
    vs: bytes

    def as_tuple(self) -> tuple[bytes, bytes, bytes]:
        return (self.seal, self.r, self.vs)


def _typed_data(chain_id: int, task: str, round_: int, seal: bytes) -> Any:
    domain = {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": Web3.to_checksum_address(task),
    }
    return encode_typed_data(domain, COMMITMENT_TYPES, {"round": round_, "seal": seal})


def sign_commitment(
    account: LocalAccount, *, chain_id: int, task: str, round_: int, seal: bytes
) -> SignedCommitment:
    """The trainer's EIP-712 signature of `seal` for `round_`, in compact (EIP-2098) form."""
    signed = account.sign_message(_typed_data(chain_id, task, round_, seal))
    v, r, s = int(signed.v), int(signed.r), int(signed.s)
    vs = ((v - 27) << 255) | s
    return SignedCommitment(seal=seal, r=r.to_bytes(32, "big"), vs=vs.to_bytes(32, "big"))


def signer_of(signed: SignedCommitment, *, chain_id: int, task: str, round_: int) -> str:
    """The address that signed `signed` for `round_` (what the contract recovers)."""
    vs = int.from_bytes(signed.vs, "big")
    v, s = 27 + (vs >> 255), vs & ((1 << 255) - 1)
    address: str = Account.recover_message(
        _typed_data(chain_id, task, round_, signed.seal), vrs=(v, int.from_bytes(signed.r, "big"), s)
    )
    return address


def batch_leaf(trainer: str, seal: bytes) -> bytes:
    """`FederatedTask.batchLeaf`: keccak256(keccak256(abi.encode(trainer, seal)))."""
    inner = Web3.keccak(abi_encode(["address", "bytes32"], [Web3.to_checksum_address(trainer), seal]))
    return bytes(Web3.keccak(inner))


def _pair(a: bytes, b: bytes) -> bytes:
    return bytes(Web3.keccak(a + b if a < b else b + a))


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    if not leaves:
        raise ValueError("a batch has at least one leaf")
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        levels.append(
            [
                _pair(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                for i in range(0, len(level), 2)
            ]
        )
    return levels


def merkle_root(leaves: list[bytes]) -> bytes:
    """The root `commitBatch` stores for these leaves."""
    return _levels(leaves)[-1][0]


def merkle_proof(leaves: list[bytes], index: int) -> list[bytes]:
    """The sibling hashes that prove leaf `index` against `merkle_root(leaves)`."""
    proof = []
    for level in _levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return proof
