"""Backoff, and the trainer and aggregator loops riding out a node outage without a crash loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from eth_account import Account
from fakes import FakeHead, FakeIpfs

from fedledger.aggregator.service import Aggregator
from fedledger.chain.errors import RpcUnavailableError, TransactionFailedError
from fedledger.chain.head import IDLE_WAIT
from fedledger.chain.params import Phase
from fedledger.chain.rounds import PhaseNow
from fedledger.learning.data import Dataset
from fedledger.learning.model import model_spec
from fedledger.learning.train import TrainConfig
from fedledger.retry import SERVICE_MAX_DELAY, Backoff, Outage, service_outage
from fedledger.trainer.trainer import Trainer
from tests.mnist_app import mnist_app

ACCOUNT = Account.from_key("0x" + "02" * 32)
DOWN = "no JSON-RPC node answers at http://127.0.0.1:8545 (ConnectionError)"


def test_backoff__doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=5.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.failures == 6
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay() == 0.5
    tripling = Backoff(1.0, 10.0, factor=3.0)
    assert [tripling.next_delay() for _ in range(4)] == [1.0, 3.0, 9.0, 10.0]
    for bad in ((0.0, 1.0, 2.0), (2.0, 1.0, 2.0), (1.0, 2.0, 0.5)):
        with pytest.raises(ValueError, match="bad backoff"):
            Backoff(*bad)


def test_outage__one_warning_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("fedledger.test-outage")
    outage = Outage(log, Backoff(initial=1.0, maximum=4.0))
    caplog.set_level(logging.DEBUG, logger=log.name)
    delays = [outage.failed(RpcUnavailableError(DOWN)) for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0] and outage.failing
    delays.append(outage.failed(TransactionFailedError("commit: the node rejected the transaction")))
    outage.succeeded()
    outage.succeeded()  # no second "recovered"
    assert not outage.failing and outage.failed(RpcUnavailableError(DOWN)) == 1.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{DOWN}; retrying in 1.0 s, backing off up to 4 s",
        "commit: the node rejected the transaction; retrying in 4.0 s, backing off up to 4 s",
        "recovered after 6 failed attempts",
        f"{DOWN}; retrying in 1.0 s, backing off up to 4 s",
    ]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4


def test_service_outage__policy() -> None:
    assert service_outage(logging.getLogger("x"), 0.2).backoff.initial == 2.0
    assert service_outage(logging.getLogger("x"), 1.0).backoff.initial == 5.0
    assert service_outage(logging.getLogger("x"), 0.0).backoff.initial == 0.01
    assert service_outage(logging.getLogger("x"), 0.2).backoff.maximum == SERVICE_MAX_DELAY


class RecordingStop(threading.Event):
    """A stop event whose waits return at once and are recorded (the loops' sleeps)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def flaky(outcomes: list[bool], stop: threading.Event, result: Any = None) -> Callable[..., Any]:
    """A call that fails (node down) or succeeds per `outcomes`, then sets `stop`."""
    remaining = list(outcomes)

    def call(*args: Any) -> Any:
        ok = remaining.pop(0)
        if not remaining:
            stop.set()
        if not ok:
            raise RpcUnavailableError(DOWN)
        return result

    return call


# Six failures (backing off to the cap), a success, two failures (from the start again), a success.
OUTCOMES = [False] * 6 + [True] + [False] * 2 + [True]
EXPECTED_BACKOFF = [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 2.0, 4.0]


def check_loop(stop: RecordingStop, head: FakeHead, caplog: pytest.LogCaptureFixture) -> None:
    # Failures back off on the stop event; each success waits for the next block instead.
    assert stop.waits == EXPECTED_BACKOFF
    assert head.waits == [IDLE_WAIT] * OUTCOMES.count(True) and head.closed
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert messages == [
        f"{DOWN}; retrying in 2.0 s, backing off up to 30 s",
        "recovered after 6 failed attempts",
        f"{DOWN}; retrying in 2.0 s, backing off up to 30 s",
        "recovered after 2 failed attempts",
    ]


def fake_ledger() -> Any:
    return SimpleNamespace(
        chain_id=31337, task=SimpleNamespace(address="0x" + "11" * 20), sender=SimpleNamespace(call=None)
    )


def test_aggregator_loop__survives_node_outages_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    head = FakeHead()
    service = Aggregator(ledger=fake_ledger(), ipfs=FakeIpfs(), account=ACCOUNT, spec=model_spec(), head=head)  # type: ignore[arg-type]
    stop = RecordingStop()
    service.rounds = SimpleNamespace(current_round=lambda: 0, log_bloom=lambda events: None)  # type: ignore[assignment]
    service.step = flaky(OUTCOMES, stop)  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG, logger="fedledger.aggregator")
    service.run(stop=stop)
    check_loop(stop, head, caplog)


class QuietRounds:
    """Rounds where nothing needs the trainer: current round 0, no phase to act in."""

    def __init__(self, current_round: Callable[[], int]) -> None:
        self.current_round = current_round

    def follow(self, known: int | None = None) -> tuple[int, PhaseNow]:
        return self.current_round(), PhaseNow(Phase.INACTIVE, None)

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: None


def test_trainer_loop__survives_node_outages_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    data = Dataset(np.zeros((8, 1, 28, 28), dtype=np.float32), np.zeros(8, dtype=np.int64))
    head = FakeHead()
    trainer = Trainer(
        ledger=fake_ledger(),
        ipfs=FakeIpfs(),  # type: ignore[arg-type]
        account=ACCOUNT,
        data=data,
        spec=model_spec(),
        **mnist_app(TrainConfig(epochs=1, batch_size=8, seed=0)),
        head=head,  # type: ignore[arg-type]
    )
    stop = RecordingStop()
    trainer.rounds = QuietRounds(flaky(OUTCOMES, stop, result=0))  # type: ignore[assignment]
    trainer.claim_rewards = lambda **_: False  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG, logger="fedledger.trainer")
    stats = trainer.run(stop=stop)
    assert stats.committed_rounds == []
    check_loop(stop, head, caplog)
