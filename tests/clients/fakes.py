"""Test doubles shared by the client unit tests."""

from __future__ import annotations

import hashlib
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np

from fedledger.chain.cid import RAW_BLOCK_LIMIT, cid_v1_raw
from fedledger.learning.data import Dataset
from fedledger.learning.model import model_spec
from fedledger.learning.train import TrainConfig
from fedledger.storage.ipfs import ContentTooLargeError, ContentUnavailableError, Pinned
from fedledger.trainer.trainer import Trainer
from tests.mnist_app import mnist_app


class FakeIpfs:
    """Content by CID, with the daemon's bounded read; also serves as the trainer's client."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        cid = cid_v1_raw(data) if len(data) <= RAW_BLOCK_LIMIT else "dag-" + hashlib.sha256(data).hexdigest()
        self.files[cid] = data
        return cid

    def add(self, data: bytes, name: str = "file") -> Pinned:
        return Pinned(cid=self.put(data), size=len(data))

    def fetch(self, cid: str, max_bytes: int) -> bytes:
        if cid not in self.files:
            raise ContentUnavailableError(cid)
        if len(self.files[cid]) > max_bytes:
            raise ContentTooLargeError(f"{cid}: more than {max_bytes} bytes")
        return self.files[cid]

    def cat(self, cid: str, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.fetch(cid, max_bytes)


class FakeHead:
    """A chain head where a block is always due: waits return at once, and are recorded."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.closed = False

    def start(self) -> None:
        pass

    def wait(self, timeout: float, stop: threading.Event | None = None, *, interest: object = None) -> bool:
        self.waits.append(timeout)
        return True

    def close(self) -> None:
        self.closed = True


def offline_trainer(rounds: Any, account: Any) -> Trainer:
    """A trainer with an empty shard whose chain reads and writes go to `rounds` (a fake)."""
    ledger: Any = SimpleNamespace(
        chain_id=31337, task=SimpleNamespace(address="0x" + "11" * 20), sender=SimpleNamespace(call=None)
    )
    data = Dataset(np.zeros((8, 1, 28, 28), dtype=np.float32), np.zeros(8, dtype=np.int64))
    runner = Trainer(
        ledger=ledger,
        ipfs=None,  # type: ignore[arg-type]
        account=account,
        data=data,
        spec=model_spec(),
        **mnist_app(TrainConfig()),
    )
    runner.rounds = rounds
    return runner
