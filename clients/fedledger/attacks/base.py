"""The attack protocol: three hooks into the trainer loop, each a no-op unless overridden.

A trainer with an attack runs the honest loop and lets the attack intervene at three places:

1. `poison_data` before local training (data poisoning),
2. `poison_weights` after training, before encoding (model poisoning, free riding),
3. `tamper_submission` after encoding, before pinning and committing (protocol-level bad
   submissions: what is pinned, which digest and which CID go on chain).

Attacks are frozen dataclasses of their parameters. Where one is random, its generator is
seeded from the attack's `seed`, the trainer's address and the round (`rng`), never from
global state, so a run with the same configuration produces the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Self

import numpy as np

from fedledger.aggregation.dtypes import to_wire
from fedledger.arrays import Array
from fedledger.learning.data import Dataset
from fedledger.storage.codec import MAX_ABS_VALUE, Binding
from fedledger.storage.schema import dtype_name, is_float, numpy_dtype

# (round, victim address or None for "any other trainer") -> that trainer's verified update
# tensors for the round, or None when there is none to copy.
PeerUpdate = Callable[[int, str | None], dict[str, Array] | None]


@dataclass(frozen=True, kw_only=True)
class Submission:
    """What the trainer pins and commits.

    `data` is pinned to IPFS (None: nothing is pinned); `digest` is the committed sha256;
    `cid` overrides the committed CID (None: the CID IPFS returned for `data`).
    """

    data: bytes | None
    digest: bytes
    cid: str | None = None

    def __post_init__(self) -> None:
        if self.data is None and self.cid is None:
            raise ValueError("a submission that pins nothing must name the CID to commit")
        if len(self.digest) != 32:
            raise ValueError(f"a digest has 32 bytes, got {len(self.digest)}")


@dataclass(frozen=True, kw_only=True)
class AttackContext:
    """What the trainer tells its attack about itself (see `Attack.bind`)."""

    trainer: str
    peer_update: PeerUpdate | None = None


class Attack:
    """The protocol every attack follows; the base class changes nothing."""

    name: ClassVar[str] = "none"

    def bind(self, context: AttackContext) -> Attack:
        """This attack as run by the trainer `context` describes (seeds, peer access)."""
        return self

    def poison_data(self, data: Dataset, round_: int) -> Dataset:
        """The data the trainer trains on in `round_`."""
        return data

    def poison_weights(
        self, trained: dict[str, Array], global_weights: dict[str, Array], round_: int
    ) -> dict[str, Array]:
        """The weights the trainer encodes, given the honestly trained ones and the global model."""
        return trained

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        """What to pin and commit, given the canonical update bytes, their binding and sha256."""
        return Submission(data=data, digest=digest)


@dataclass(frozen=True, kw_only=True)
class Seeded(Attack):
    """An attack drawing random numbers: reproducible per (seed, trainer, round)."""

    seed: int = 0
    trainer: str = field(default="", repr=False)

    def bind(self, context: AttackContext) -> Self:
        return replace(self, trainer=context.trainer.lower())

    def rng(self, round_: int, trainer: str | None = None) -> np.random.Generator:
        """The generator of `round_` (for `trainer`, default the bound one)."""
        return seeded_rng(self.name, self.seed, trainer if trainer is not None else self.trainer, round_)


def seeded_rng(name: str, seed: int, trainer: str, round_: int) -> np.random.Generator:
    """A generator that depends only on its arguments (not on Python's per-process hash)."""
    key = f"fedledger-attack|{name}|{seed}|{trainer.lower()}|{round_}".encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:16], "little"))


def clipped(tensors: Mapping[str, Array], like: Mapping[str, Array]) -> dict[str, Array]:
    """Copies of `tensors` in the dtypes of `like` (the trained model), so an attack stays a valid
    file: float tensors clipped to the codec's range and rounded to their dtype, integer and bool
    tensors converted as they are."""
    result = {}
    for name, value in tensors.items():
        dtype = wire_dtype(like[name])
        if is_float(dtype):
            bounded = np.clip(np.asarray(value, dtype=np.float64), -MAX_ABS_VALUE, MAX_ABS_VALUE)
            result[name] = to_wire(bounded.astype(np.float32), dtype)
        else:
            result[name] = np.array(value, dtype=dtype)
    return result


def poison_floats(trained: Mapping[str, Array], poison: Callable[[str], Array]) -> dict[str, Array]:
    """`poison(name)` for each float tensor of `trained` (in name order), clipped and rounded to the
    tensor's dtype (`clipped`); integer and bool buffers (BatchNorm's `num_batches_tracked`) are
    left as trained: the statistical attacks act on weights."""
    poisoned = {name: poison(name) for name in sorted(trained) if is_float(wire_dtype(trained[name]))}
    return {
        name: clipped({name: poisoned[name]}, trained)[name] if name in poisoned else np.array(value)
        for name, value in trained.items()
    }


def wire_dtype(values: Array) -> np.dtype[Any]:
    """The wire dtype of `values`; float32 for a dtype the wire does not carry (e.g. float64)."""
    try:
        return numpy_dtype(dtype_name(np.asarray(values).dtype))
    except ValueError:
        return np.dtype(np.float32)
