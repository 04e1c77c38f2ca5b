"""Global model files: their binding, and fetching one verified against the on-chain root."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fedledger.arrays import Array
from fedledger.storage.codec import Binding, decode, encode, max_file_size
from fedledger.storage.digests import sha256, to_hex
from fedledger.storage.ipfs import Pinned
from fedledger.storage.schema import ModelSpec


class ContentSource(Protocol):
    """Where files are fetched by CID (`IpfsClient` is one)."""

    def cat(self, cid: str, max_bytes: int) -> bytes: ...


class ModelIntegrityError(RuntimeError):
    """The bytes behind a global model's CID do not match its on-chain digest or binding."""


def global_model_binding(*, chain_id: int, task: str, version: int, spec: ModelSpec) -> Binding:
    """The binding of global model `version` of a task.

    Version 0, the initial model, is created before the task contract exists (its digest is a
    constructor argument), so it names no task; every later version names its task.
    """
    return Binding(
        kind="model",
        chain_id=chain_id,
        task=task if version else "",
        round=version,
        model_spec=to_hex(spec.hash()),
    )


def fetch_model(
    ipfs: ContentSource, cid: str, digest: bytes, spec: ModelSpec, binding: Binding
) -> dict[str, Array]:
    """Fetches a global model by CID and checks sha256 and binding before trusting a byte of it."""
    data = ipfs.cat(cid, max_file_size(spec))
    if sha256(data) != digest:
        raise ModelIntegrityError(
            f"global model {cid}: sha256 {sha256(data).hex()} != on-chain {digest.hex()}"
        )
    return decode(data, spec, binding)


class ModelStore(Protocol):
    """Where files are pinned (`IpfsClient` is one)."""

    def add(self, data: bytes, name: str = ...) -> Pinned: ...


@dataclass(frozen=True)
class InitialModel:
    """Global model version 0 as pinned before deployment: its file and where it lives."""

    data: bytes
    cid: str
    spec: ModelSpec

    @property
    def digest(self) -> bytes:
        return sha256(self.data)

    def deploy_options(self) -> list[str]:
        """The `ape run deploy all` options that name it (digest, CID and the model spec's hash)."""
        return [
            "--initial-model-digest",
            to_hex(self.digest),
            "--initial-model-cid",
            self.cid,
            "--model-spec-hash",
            to_hex(self.spec.hash()),
        ]


def pin_initial_model(
    ipfs: ModelStore, weights: dict[str, Array], spec: ModelSpec, *, chain_id: int
) -> InitialModel:
    """Encodes `weights` as global model version 0 of a task on `chain_id` and pins it."""
    data = encode(weights, global_model_binding(chain_id=chain_id, task="", version=0, spec=spec), spec)
    pinned = ipfs.add(data, name="model-v0.safetensors")
    return InitialModel(data=data, cid=pinned.cid, spec=spec)
