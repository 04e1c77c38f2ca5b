"""Global model files: their binding, and fetching one verified against the on-chain root."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fedledger.arrays import Array
from fedledger.chain.errors import FedledgerError
from fedledger.storage.codec import Binding, decode, encode, max_file_size
from fedledger.storage.digests import sha256, to_hex
from fedledger.storage.ipfs import IpfsError, Pinned
from fedledger.storage.schema import ModelSpec


class ContentSource(Protocol):
    """Where files are fetched by CID (`IpfsClient` is one)."""

    def cat(self, cid: str, max_bytes: int) -> bytes: ...


class ModelIntegrityError(RuntimeError):
    """The bytes behind a global model's CID do not match its on-chain digest or binding."""


class ModelSpecError(FedledgerError):
    """The deployment's model spec cannot be had: not recorded, not served, or not the on-chain one."""


MAX_SPEC_BYTES = 1 << 22  # a spec names every tensor once: 4 MiB is thousands of tensors


def pin_spec(ipfs: ModelStore, spec: ModelSpec) -> str:
    """Pins the spec's canonical JSON (what its on-chain hash is the sha256 of); returns the CID."""
    return ipfs.add(spec.canonical_json().encode(), name="model-spec.json").cid


def fetch_spec(ipfs: ContentSource, cid: str, expected_hash: bytes) -> ModelSpec:
    """The model spec pinned at `cid`, checked against the task's on-chain `modelSpecHash`.

    Aggregators, `verify`, status and the dashboard read the spec this way: from the deployment,
    never from model code, so they serve federations whose app they have never installed.
    """
    try:
        data = ipfs.cat(cid, MAX_SPEC_BYTES)
    except IpfsError as exc:
        raise ModelSpecError(f"cannot fetch the model spec {cid}: {exc}") from exc
    if sha256(data) != expected_hash:
        raise ModelSpecError(
            f"model spec {cid}: sha256 {to_hex(sha256(data))} is not the task's modelSpecHash {to_hex(expected_hash)}"
        )
    try:
        return ModelSpec.from_json(data)
    except ValueError as exc:
        raise ModelSpecError(f"model spec {cid} is not a valid spec: {exc}") from exc


def deployed_spec(ipfs: ContentSource, cid: str, on_chain_hash: bytes) -> ModelSpec:
    """The spec a task records on chain (`modelSpecCid`), checked against its `modelSpecHash`."""
    if not cid:
        raise ModelSpecError(
            "the task records no model spec (modelSpecCid is empty): it was deployed without an app; "
            "deploy with one (`fedledger deploy --app NAME`), which pins the spec"
        )
    return fetch_spec(ipfs, cid, on_chain_hash)


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
    spec_cid: str

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
            "--model-spec-cid",
            self.spec_cid,
        ]


def pin_initial_model(
    ipfs: ModelStore, weights: dict[str, Array], spec: ModelSpec, *, chain_id: int
) -> InitialModel:
    """Encodes `weights` as global model version 0 of a task on `chain_id` and pins it, with the spec."""
    data = encode(weights, global_model_binding(chain_id=chain_id, task="", version=0, spec=spec), spec)
    pinned = ipfs.add(data, name="model-v0.safetensors")
    return InitialModel(data=data, cid=pinned.cid, spec=spec, spec_cid=pin_spec(ipfs, spec))
