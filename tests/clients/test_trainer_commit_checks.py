"""What the trainer asks the chain before it trains: whether it may commit (active since the
round opened) every round, and whether it committed already only where an unknown commit can
exist: the first round of this run (a restart) and a round whose commit failed on the way."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from eth_account import Account
from fakes import offline_trainer

from fedledger.chain.params import Phase
from fedledger.trainer.trainer import Trainer

ACCOUNT = Account.from_key("0x" + "06" * 32)


class CommitRounds:
    def __init__(self, committed: int | None = None, active_since: int = 10) -> None:
        self.committed, self.active_since = committed, active_since
        self.asked: list[str] = []

    def last_committed_round(self, trainer: str) -> int | None:
        self.asked.append("lastCommittedRound")
        return self.committed

    def trainer_active_since(self, trainer: str) -> int:
        self.asked.append("trainerActiveSince")
        return self.active_since

    def opened_state(self, round_: int) -> Any:
        return SimpleNamespace(opened_at=100 + round_)


def trainer(rounds: CommitRounds) -> Trainer:
    return offline_trainer(rounds, ACCOUNT)


def test_may_commit__commit_asked_in_the_first_round_only() -> None:
    rounds = CommitRounds()
    runner = trainer(rounds)
    assert runner._may_commit(5)
    assert rounds.asked == ["lastCommittedRound", "trainerActiveSince"]
    rounds.asked.clear()
    assert runner._may_commit(6)
    assert rounds.asked == ["trainerActiveSince"]


def test_may_commit__committed_before_a_restart__not_again() -> None:
    rounds = CommitRounds(committed=5)
    runner = trainer(rounds)
    assert not runner._may_commit(5)
    assert runner.stats.committed_rounds == [5]
    rounds.asked.clear()
    assert not runner._may_commit(5)  # known now: nothing asked
    assert rounds.asked == []


def test_may_commit__a_failed_send__the_chain_is_asked_again() -> None:
    rounds = CommitRounds()
    runner = trainer(rounds)
    assert runner._may_commit(5)
    runner._sent.add(6)  # its commit transaction failed: it may have landed all the same
    rounds.committed = 6
    assert not runner._may_commit(6)
    assert "lastCommittedRound" in rounds.asked and runner.stats.committed_rounds == [6]


def test_may_commit__inactive_or_activated_after_the_opening__no() -> None:
    runner = trainer(CommitRounds(active_since=0))
    assert not runner._may_commit(5) and not runner.deactivated
    assert not trainer(CommitRounds(active_since=200))._may_commit(5)  # the round opened at 105


def test_interest__commits_while_sealed_then_the_rounds_end_then_anything() -> None:
    runner = trainer(CommitRounds())
    until_reveal, until_next = object(), object()
    runner._until_reveal, runner._until_next_round = until_reveal, until_next  # type: ignore[assignment]
    runner._sealed[5] = object()  # type: ignore[assignment]
    assert runner._interest(5, Phase.COMMIT) is until_reveal
    assert runner._interest(5, Phase.REVEAL) is None  # it reveals: nothing to wait for
    del runner._sealed[5]
    for phase in (Phase.REVEAL, Phase.AGGREGATION, Phase.STALE):
        assert runner._interest(5, phase) is until_next
    assert runner._interest(6, Phase.COMMIT) is None and runner._interest(0, Phase.INACTIVE) is None
