"""The aggregator fetches revealed updates during the reveal phase and serves them from that
cache when it computes the round, falling back to IPFS for anything it does not hold."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from fakes import FakeIpfs

from fedledger.aggregator.prefetch import PrefetchCache
from fedledger.aggregator.service import Aggregator
from fedledger.aggregator.verification import Commit
from fedledger.chain.params import Phase
from fedledger.chain.rounds import PhaseNow
from fedledger.learning.model import model_spec
from fedledger.storage.ipfs import ContentTooLargeError

ACCOUNT = Account.from_key("0x" + "42" * 32)


class CountingIpfs(FakeIpfs):
    def __init__(self) -> None:
        super().__init__()
        self.cats: list[str] = []

    def cat(self, cid: str, max_bytes: int, timeout: float | None = None) -> bytes:
        self.cats.append(cid)
        return super().cat(cid, max_bytes, timeout)


class RevealRounds:
    """Round 3 in its reveal phase with the given reveals."""

    def __init__(self, revealed: list[Commit]) -> None:
        self.reveals = revealed

    def current_round(self) -> int:
        return 3

    def synced(self, round_: int) -> PhaseNow:
        return PhaseNow(Phase.REVEAL, None)

    def revealed(self, round_: int) -> list[Commit]:
        return self.reveals


def service(ipfs: FakeIpfs, revealed: list[Commit]) -> Aggregator:
    ledger: Any = SimpleNamespace(
        chain_id=31337, task=SimpleNamespace(address="0x" + "11" * 20), sender=SimpleNamespace(call=None)
    )
    aggregator = Aggregator(ledger=ledger, ipfs=ipfs, account=ACCOUNT, spec=model_spec())  # type: ignore[arg-type]
    aggregator.rounds = RevealRounds(revealed)  # type: ignore[assignment]
    return aggregator


def commit(ipfs: FakeIpfs, data: bytes, trainer: str) -> Commit:
    return Commit(trainer=trainer, digest=b"\0" * 32, cid=ipfs.put(data), num_samples=1)


def test_reveal_phase__revealed_updates_prefetched_once_then_served_from_the_cache() -> None:
    ipfs = CountingIpfs()
    first, second = commit(ipfs, b"first", "0x" + "01" * 20), commit(ipfs, b"second", "0x" + "02" * 20)
    aggregator = service(ipfs, [first])

    aggregator.step()
    aggregator.rounds.reveals.append(second)  # type: ignore[attr-defined]
    aggregator.step()

    assert ipfs.cats == [first.cid, second.cid]  # each fetched once, as it was revealed
    assert aggregator._fetch(first.cid, 100) == b"first"
    assert aggregator._fetch(second.cid, 100) == b"second"
    assert ipfs.cats == [first.cid, second.cid]


def test_prefetch__missing_content_or_too_big__left_to_the_aggregation_phase() -> None:
    ipfs = CountingIpfs()
    missing = Commit(trainer="0x" + "03" * 20, digest=b"\0" * 32, cid="bafkreimissing", num_samples=1)
    present = commit(ipfs, b"x" * 50, "0x" + "04" * 20)
    aggregator = service(ipfs, [missing, present])

    aggregator.step()  # the missing file does not stop the prefetch of the others

    assert aggregator._prefetched.cids() == {present.cid}
    # A cached file over the caller's limit is fetched again, so the limit decides as usual.
    with pytest.raises(ContentTooLargeError, match="more than 10 bytes"):
        aggregator._fetch(present.cid, 10)


def test_prefetch_cache__files_on_disk_taken_once_and_cleared_with_the_round() -> None:
    cache = PrefetchCache()
    cache.start(3)
    cache.put("cid-a", b"alpha")
    cache.put("cid-b", b"beta")
    directory = cache._dir
    assert directory is not None and sorted(p.read_bytes() for p in directory.iterdir()) == [
        b"alpha",
        b"beta",
    ]
    assert cache.take("cid-a") == b"alpha" and cache.take("cid-a") is None  # taken once, file gone
    assert cache.cids() == {"cid-b"} and len(list(directory.iterdir())) == 1
    cache.start(3)  # the same round keeps its files
    assert "cid-b" in cache
    cache.start(4)  # a new round starts empty, and the old files are deleted
    assert cache.cids() == set() and not directory.exists() and cache.round == 4
