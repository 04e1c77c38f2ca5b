"""The trainer's claims: settled rounds only, oldest first, at most `limit` per call; a round the
contract refuses to pay (rejected, closed, paid already) counts as paid 0 and is not retried."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from fakes import offline_trainer

from fedledger.aggregator.verification import Commit
from fedledger.chain.errors import ContractRevertError
from fedledger.trainer.trainer import Trainer

ACCOUNT = Account.from_key("0x" + "05" * 32)
REWARD = 7


class ClaimRounds:
    """Rounds 0-3 revealed by the trainer, round 3 still open; `refusals`: round -> revert name."""

    def __init__(self, refusals: dict[int, str]) -> None:
        self.refusals = refusals
        self.claims: list[int] = []

    def current_round(self) -> int:
        return 3

    def revealed_by(self, trainer: str) -> dict[int, Commit]:
        return {
            r: Commit(trainer=trainer, digest=bytes([r]) * 32, cid=f"cid-{r}", num_samples=10)
            for r in (2, 0, 3, 1)
        }

    def claim_reward(self, account: Any, round_: int, digest: bytes, num_samples: int) -> Any:
        assert digest == bytes([round_]) * 32 and num_samples == 10
        self.claims.append(round_)
        if round_ in self.refusals:
            raise ContractRevertError(self.refusals[round_], {"round": round_}, b"")
        return SimpleNamespace(round=round_)

    def claimed_amount(self, tx: Any) -> int:
        return REWARD


def trainer(rounds: ClaimRounds) -> Trainer:
    return offline_trainer(rounds, ACCOUNT)


def test_claims__settled_rounds_oldest_first__one_per_call_with_a_limit() -> None:
    rounds = ClaimRounds({})
    runner = trainer(rounds)
    assert runner.claim_rewards(limit=1) is True  # rounds 1 and 2 are still due
    assert rounds.claims == [0]
    assert runner.claim_rewards(limit=1) is True
    assert runner.claim_rewards(limit=1) is False  # round 3 is the open round: not yet
    assert rounds.claims == [0, 1, 2]
    assert runner.stats.claimed == {0: REWARD, 1: REWARD, 2: REWARD}
    assert runner.claim_rewards() is False and rounds.claims == [0, 1, 2]


def test_claims__refused_rounds_count_as_paid_nothing_and_are_not_retried() -> None:
    rounds = ClaimRounds({0: "TaskNoReward", 1: "TaskUnexpectedPhase", 2: "TaskRewardAlreadyClaimed"})
    runner = trainer(rounds)
    assert runner.claim_rewards(limit=1) is False  # refusals send nothing: all three in one call
    assert runner.stats.claimed == {0: 0, 1: 0, 2: 0}
    runner.claim_rewards()
    assert rounds.claims == [0, 1, 2]


def test_claims__an_unexpected_revert_is_raised() -> None:
    runner = trainer(ClaimRounds({1: "TaskRevealMismatch"}))
    with pytest.raises(ContractRevertError, match="TaskRevealMismatch"):
        runner.claim_rewards()
    assert runner.stats.claimed == {0: REWARD}
