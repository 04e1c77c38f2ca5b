"""Checking one committed update: fetch by CID, compare sha256 with the commitment, decode.

Every failure becomes a `RejectionReason`, the code attested on chain. Nothing here trusts
the file: the fetch is bounded by the model's size limit and the decoder never runs code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fedledger.arrays import Array
from fedledger.chain.params import RejectionReason
from fedledger.storage.codec import Binding, InvalidUpdateError, decode, max_file_size
from fedledger.storage.digests import sha256
from fedledger.storage.ipfs import ContentTooLargeError, IpfsError, IpfsUnavailableError
from fedledger.storage.schema import ModelSpec

Fetch = Callable[[str, int], bytes]  # (cid, max_bytes) -> bytes


@dataclass(frozen=True, kw_only=True)
class Commit:
    """One revealed commitment (an `UpdateRevealed` event)."""

    trainer: str
    digest: bytes
    cid: str
    num_samples: int
    # Chain order (block number << 32 | log index): of two identical updates, the earlier
    # commit is the original and the later one the copy.
    position: int = 0


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The outcome for one commit: accepted with its tensors, or rejected with a reason."""

    commit: Commit
    reason: RejectionReason
    detail: str = ""
    tensors: dict[str, Array] | None = None

    @property
    def accepted(self) -> bool:
        return self.reason == RejectionReason.NONE


def update_binding(
    commit: Commit, *, chain_id: int, task: str, round_number: int, spec: ModelSpec
) -> Binding:
    """The binding a valid update file of `commit` must carry."""
    return Binding(
        kind="update",
        chain_id=chain_id,
        task=task,
        round=round_number,
        model_spec="0x" + spec.hash().hex(),
        trainer=commit.trainer,
        num_samples=commit.num_samples,
    )


def verify(commit: Commit, fetch: Fetch, spec: ModelSpec, binding: Binding) -> Verdict:
    """Fetches and validates one committed update.

    Raises `IpfsUnavailableError` when the local IPFS daemon itself is down: that is the
    aggregator's fault, not the trainer's, and must not turn into a rejection.
    """
    try:
        data = fetch(commit.cid, max_file_size(spec))
    except IpfsUnavailableError:
        raise
    except ContentTooLargeError as exc:
        return Verdict(commit=commit, reason=RejectionReason.OVERSIZE, detail=str(exc))
    except IpfsError as exc:
        return Verdict(commit=commit, reason=RejectionReason.UNAVAILABLE, detail=str(exc))
    if sha256(data) != commit.digest:
        detail = f"sha256 {sha256(data).hex()} != committed {commit.digest.hex()}"
        return Verdict(commit=commit, reason=RejectionReason.DIGEST_MISMATCH, detail=detail)
    try:
        tensors = decode(data, spec, binding)
    except InvalidUpdateError as exc:
        return Verdict(commit=commit, reason=exc.reason, detail=exc.detail)
    return Verdict(commit=commit, reason=RejectionReason.NONE, tensors=tensors)
