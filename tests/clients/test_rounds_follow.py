"""`Rounds.follow` and `Rounds.synced` against a scripted task: one call per look while the
round is open, the deadlines read once per round, and an empty block mined on an automining
Anvil once a deadline has passed on the wall clock."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from fedledger.chain.contracts import RoundState
from fedledger.chain.params import Phase, RoundStatus
from fedledger.chain.rounds import PhaseNow, Rounds


def state(opened_at: int, commit_deadline: int) -> RoundState:
    return RoundState(
        opened_at=opened_at,
        commit_deadline=commit_deadline,
        reveal_deadline=commit_deadline + 60,
        aggregation_deadline=commit_deadline + 120,
        commits=0,
        expected_commits=4,
        status=RoundStatus.OPEN if opened_at else RoundStatus.NONE,
        reveals=0,
        sample_cap=0,
        total_samples=0,
    )


class Node:
    """An automining Anvil: `evm_mine` makes the next block, whose time is the wall clock's."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.block_time = int(time.time()) - 100
        self.client_version = "anvil/v1.7.1"
        self.provider = self
        self.eth = self

    def make_request(self, method: str, params: Any) -> dict[str, Any]:
        self.calls[method] += 1
        if method == "evm_mine":
            self.block_time = int(time.time())
        return {"result": True}

    def get_block(self, block: str) -> dict[str, int]:
        self.calls["eth_getBlockByNumber"] += 1
        return {"timestamp": self.block_time}


class Ledger:
    """The task's views, scripted: `phases` per round; once a block past the commit deadline
    is mined, a COMMIT round reads as REVEAL."""

    def __init__(self, current: int, phases: dict[int, Phase], states: dict[int, RoundState]) -> None:
        self.current, self.phases, self.states = current, phases, states
        self.w3 = Node()
        self.calls: Counter[str] = Counter()
        self.task = self.sender = self
        self.call = None

    def current_round(self) -> int:
        self.calls["currentRound"] += 1
        return self.current

    def phase(self, round_: int) -> Phase:
        self.calls["phase"] += 1
        phase = self.phases[round_]
        if phase == Phase.COMMIT and self.w3.block_time >= self.states[round_].commit_deadline:
            return Phase.REVEAL
        return phase

    def round_state(self, round_: int) -> RoundState:
        self.calls["roundState"] += 1
        return self.states[round_]


FAR = int(time.time()) + 3600


def test_follow__open_round__one_call_per_look_and_deadlines_read_once() -> None:
    ledger = Ledger(2, {2: Phase.COMMIT}, {2: state(100, FAR)})
    rounds = Rounds(ledger)  # type: ignore[arg-type]
    assert rounds.follow() == (2, PhaseNow(Phase.COMMIT, FAR))
    for _ in range(3):
        assert rounds.follow(2) == (2, PhaseNow(Phase.COMMIT, FAR))
    assert ledger.calls == Counter(currentRound=1, phase=4, roundState=1)
    assert rounds.opened_state(2).opened_at == 100 and ledger.calls["roundState"] == 1


def test_follow__finalized_round__the_next_one_is_read() -> None:
    ledger = Ledger(3, {2: Phase.FINALIZED, 3: Phase.COMMIT}, {3: state(200, FAR)})
    rounds = Rounds(ledger)  # type: ignore[arg-type]
    assert rounds.follow(2) == (3, PhaseNow(Phase.COMMIT, FAR))
    assert ledger.calls == Counter(currentRound=1, phase=2, roundState=1)
    ledger.phases[3] = Phase.CLOSED  # closed as stale: the round after it opened
    ledger.phases[4], ledger.states[4], ledger.current = Phase.AGGREGATION, state(300, FAR), 4
    assert rounds.follow(3) == (4, PhaseNow(Phase.AGGREGATION, FAR + 120))


def test_opened_state__not_kept_before_the_round_opens() -> None:
    ledger = Ledger(0, {0: Phase.INACTIVE}, {0: state(0, 0)})
    rounds = Rounds(ledger)  # type: ignore[arg-type]
    assert rounds.follow() == (0, PhaseNow(Phase.INACTIVE, None))
    rounds.opened_state(0)
    ledger.states[0] = state(100, FAR)
    assert rounds.opened_state(0).opened_at == 100
    assert ledger.calls["roundState"] == 2


def test_synced__deadline_passed_on_the_wall_clock__mines_a_block_then_reads_again() -> None:
    passed = int(time.time()) - 1
    ledger = Ledger(0, {0: Phase.COMMIT}, {0: state(100, passed)})
    rounds = Rounds(ledger)  # type: ignore[arg-type]
    assert rounds.synced(0) == PhaseNow(Phase.REVEAL, passed + 60)
    assert ledger.w3.calls["evm_mine"] == 1
    assert rounds.synced(0) == PhaseNow(Phase.REVEAL, passed + 60)
    assert ledger.w3.calls["evm_mine"] == 1 and ledger.w3.calls["anvil_getAutomine"] == 1
