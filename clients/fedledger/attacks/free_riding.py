"""Free riding: collecting a reward for an update that took no training (or not one's own).

- `ResubmitGlobal`: submits the global model it received, unchanged (a zero update).
- `Zeros`: submits all-zero weights.
- `CopyOther`: submits another trainer's update of the same round, re-encoded under its own
  binding (so the file is valid for it: a new digest, its own address and sample count).
  The trainer wiring supplies `source` (see `AttackContext.peer_update`): it reads the
  round's revealed updates from the chain, fetches their files from IPFS and verifies them.
  Under commit-reveal nothing is revealed while the commit window is open, so it finds
  nothing and falls back to the global model (a Duplicate of the starting model).

All of them still train locally (the trainer loop does), then discard the result. Their files
pass verification; catching them is the aggregation rule's job (or a duplicate check).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from fedledger.arrays import Array
from fedledger.attacks.base import Attack, AttackContext, PeerUpdate, clipped, wire_dtype

log = logging.getLogger("fedledger.attacks")


@dataclass(frozen=True, kw_only=True)
class ResubmitGlobal(Attack):
    """Submits the global model unchanged."""

    name: ClassVar[str] = "free-ride-global"

    def poison_weights(
        self, trained: dict[str, Array], global_weights: dict[str, Array], round_: int
    ) -> dict[str, Array]:
        return {name: np.array(global_weights[name]) for name in trained}


@dataclass(frozen=True, kw_only=True)
class Zeros(Attack):
    """Submits all-zero weights."""

    name: ClassVar[str] = "free-ride-zeros"

    def poison_weights(
        self, trained: dict[str, Array], global_weights: dict[str, Array], round_: int
    ) -> dict[str, Array]:
        return {name: np.zeros(np.shape(value), wire_dtype(value)) for name, value in trained.items()}


@dataclass(frozen=True, kw_only=True)
class CopyOther(Attack):
    """Submits another trainer's update of the round (`victim`, or the first other one found)."""

    name: ClassVar[str] = "free-ride-copy"
    victim: str | None = None
    source: PeerUpdate | None = field(default=None, repr=False, compare=False)

    def bind(self, context: AttackContext) -> CopyOther:
        return self if self.source is not None else replace(self, source=context.peer_update)

    def poison_weights(
        self, trained: dict[str, Array], global_weights: dict[str, Array], round_: int
    ) -> dict[str, Array]:
        if self.source is None:
            raise RuntimeError("CopyOther has no source of other trainers' updates (bind it to a trainer)")
        copied = self.source(round_, self.victim)
        if copied is None:
            log.warning("round %d: no other update to copy; submitting the global model", round_)
            copied = global_weights
        if set(copied) != set(trained):
            raise ValueError(f"copied tensors {sorted(copied)} differ from the model's {sorted(trained)}")
        return clipped(copied, trained)
