"""Randomized stateful test: hypothesis drives registration, staking, unbonding, withdrawals,
direct slashes by the task (impersonated), parameter changes by strangers, time travel and task rounds (commit,
reveal, attest and finalize, close, claim) in random order, predicts each call's outcome, and
checks DESIGN.md's invariants after every step: the registry holds exactly the total stake, no
reward is paid twice, no slash exceeds the stake, only the timelock changes parameters, and a
finalized root never changes.

Every transaction of a step is pinned to the model's clock (`now`, also the head block's
timestamp), so views read before a call see the same `block.timestamp` as the call itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import Update, make_model, make_update, reverts
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fedledger.chain.contracts import Participant
from fedledger.chain.params import TOKEN, Phase, RejectionReason, Role, TaskParameter

MIN_STAKE = {Role.TRAINER: 100 * TOKEN, Role.AGGREGATOR: 1_000 * TOKEN}
UNBONDING = 3_600
FUNDING = 100_000 * TOKEN
SLASH_REASON = b"\x5a" * 32
SLASH_FRACTIONS = ["zero", "5%", "half", "all", "all+1", "150%"]
UNSTAKE_KINDS = ["all", "half", "one-token", "down-to-minimum", "all+1"]
REASONS = [None, RejectionReason.DIGEST_MISMATCH, RejectionReason.UNAVAILABLE]


@dataclass
class Context:
    """What the state machine works with; built once per test, restored between examples."""

    chain: Any
    token: Any
    registry: Any
    task: Any
    slasher: Any  # the task, impersonated: the only address that slashes
    participants: list[Any]
    parameters: list[int] = field(default_factory=list)
    web3_registry: Any = None
    web3_task: Any = None
    web3_token: Any = None

    def __post_init__(self) -> None:
        self.web3_registry = web3_contract(self.chain, self.registry)
        self.web3_task = web3_contract(self.chain, self.task)
        self.web3_token = web3_contract(self.chain, self.token)


@dataclass
class RoundBook:
    """What the model remembers of a round: its commits, which were revealed, and for finalized
    rounds the rejected and the root."""

    commits: dict[str, Update] = field(default_factory=dict)
    revealed: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    root: bytes = b""


class FedLedgerMachine(RuleBasedStateMachine):
    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.chain, self.token, self.registry, self.task = ctx.chain, ctx.token, ctx.registry, ctx.task
        self.accounts = ctx.participants
        self.snapshot = self.chain.snapshot()
        self.now = int(self.chain.blocks.head.timestamp)
        self.rounds: dict[int, RoundBook] = {}
        self.finalized: list[int] = []
        self.claimed: set[tuple[int, str]] = set()
        self.nonce = 0

    def teardown(self) -> None:
        self.chain.restore(self.snapshot)

    # ------------------------------------------------------------ helpers

    def pin(self) -> None:
        """The next transaction's block carries `now`."""
        self.chain.pending_timestamp = self.now

    def book(self, round_: int) -> RoundBook:
        return self.rounds.setdefault(round_, RoundBook())

    def current(self) -> tuple[int, Phase]:
        round_ = int(self.task.currentRound())
        return round_, Phase(self.task.phase(round_))

    # ------------------------------------------------------------ registry rules

    @rule(
        i=st.integers(0, 4),
        role=st.sampled_from([Role.TRAINER, Role.AGGREGATOR]),
        extra=st.integers(0, 3),
        below=st.booleans(),
        unregistered_first=st.booleans(),
    )
    def register(self, i: int, role: Role, extra: int, below: bool, unregistered_first: bool) -> None:
        """Registers account `i`, or first any account without a role."""
        account = self.accounts[i]
        if unregistered_first:
            account = next(
                (a for a in self.accounts if self.registry.participant(a).role == Role.NONE), account
            )
        p = self.registry.participant(account)
        amount = MIN_STAKE[role] - 1 if below else MIN_STAKE[role] + extra * 50 * TOKEN
        self.pin()
        if p.role != Role.NONE:
            with reverts(self.registry.RegistryAlreadyRegistered, account=account.address):
                self.registry.register(role, amount, sender=account)
        elif below:
            with reverts(self.registry.RegistryStakeBelowMinimum, stake=amount, minimum=MIN_STAKE[role]):
                self.registry.register(role, amount, sender=account)
        else:
            tx = self.registry.register(role, amount, sender=account)
            assert tx.events.filter(self.registry.Registered) == [
                self.registry.Registered(account, role, amount)
            ]

    @rule(i=st.integers(0, 4), amount=st.sampled_from([1, 10 * TOKEN, 100 * TOKEN, 1_000 * TOKEN]))
    def add_stake(self, i: int, amount: int) -> None:
        account = self.accounts[i]
        p = self.registry.participant(account)
        self.pin()
        if p.role == Role.NONE:
            with reverts(self.registry.RegistryNotRegistered, account=account.address):
                self.registry.addStake(amount, sender=account)
            return
        tx = self.registry.addStake(amount, sender=account)
        reactivates = not p.active and p.stake + amount >= MIN_STAKE[Role(p.role)]
        expected = [self.registry.ActiveChanged(account, True)] if reactivates else []
        assert tx.events.filter(self.registry.ActiveChanged) == expected

    @rule(i=st.integers(0, 4), kind=st.sampled_from(UNSTAKE_KINDS))
    def request_unstake(self, i: int, kind: str) -> None:
        account = self.accounts[i]
        p = self.registry.participant(account)
        stake = int(p.stake)
        minimum = MIN_STAKE.get(Role(p.role), 0)
        amount = {
            "all": stake,
            "half": stake // 2,
            "one-token": TOKEN,
            "down-to-minimum": max(stake - minimum, 0),
            "all+1": stake + 1,
        }[kind]
        self.pin()
        if amount == 0:
            with reverts(self.registry.RegistryZeroAmount):
                self.registry.requestUnstake(amount, sender=account)
        elif p.role == Role.NONE:
            with reverts(self.registry.RegistryNotRegistered, account=account.address):
                self.registry.requestUnstake(amount, sender=account)
        elif amount > stake:
            with reverts(self.registry.RegistryInsufficientStake, requested=amount, available=stake):
                self.registry.requestUnstake(amount, sender=account)
        elif 0 < stake - amount < minimum:
            with reverts(self.registry.RegistryStakeBelowMinimum, stake=stake - amount):
                self.registry.requestUnstake(amount, sender=account)
        else:
            tx = self.registry.requestUnstake(amount, sender=account)
            assert tx.events.filter(self.registry.UnstakeRequested) == [
                self.registry.UnstakeRequested(account, amount, self.now + UNBONDING)
            ]
            left = tx.events.filter(self.registry.Deregistered)
            assert left == ([self.registry.Deregistered(account, p.role)] if amount == stake else [])

    @rule(i=st.integers(0, 4), unbonding_first=st.booleans())
    def withdraw(self, i: int, unbonding_first: bool) -> None:
        """Withdraws as account `i`, or first as any account with stake unbonding."""
        account = self.accounts[i]
        if unbonding_first:
            account = next((a for a in self.accounts if self.registry.participant(a).unbonding), account)
        self._withdraw(account)

    @rule(offset=st.sampled_from([-1, 0]))
    def withdraw_at_unbonding_end(self, offset: int) -> None:
        """Moves the clock to the next unbonding end (or the second before it) and withdraws
        there: the boundary of "no withdrawal before the unbonding period ends"."""
        ends = {a: int(self.registry.participant(a).unbondingEnd) for a in self.accounts}
        ahead = {a: end for a, end in ends.items() if end + offset > self.now}
        if not ahead:
            return
        account = min(ahead, key=lambda a: ahead[a])
        self.time_travel(ahead[account] + offset - self.now)
        self._withdraw(account)

    def _withdraw(self, account: Any) -> None:
        p = self.registry.participant(account)
        self.pin()
        if p.unbonding == 0:
            with reverts(self.registry.RegistryNothingToWithdraw, account=account.address):
                self.registry.withdraw(sender=account)
        elif self.now < p.unbondingEnd:
            # No withdrawal before the unbonding period ends.
            with reverts(
                self.registry.RegistryUnbondingNotOver, unbondingEnd=p.unbondingEnd, nowTimestamp=self.now
            ):
                self.registry.withdraw(sender=account)
        else:
            balance = self.token.balanceOf(account)
            tx = self.registry.withdraw(sender=account)
            assert tx.timestamp >= p.unbondingEnd
            assert tx.events.filter(self.registry.Withdrawn) == [
                self.registry.Withdrawn(account, p.unbonding)
            ]
            assert self.token.balanceOf(account) == balance + p.unbonding

    @rule(i=st.integers(0, 4), fraction=st.sampled_from(SLASH_FRACTIONS))
    def slash_by_task(self, i: int, fraction: str) -> None:
        account = self.accounts[i]
        slashable = int(self.registry.slashableStake(account))
        amount = {
            "zero": 0,
            "5%": slashable // 20,
            "half": slashable // 2,
            "all": slashable,
            "all+1": slashable + 1,
            "150%": slashable * 3 // 2,
        }[fraction]
        self.pin()
        if amount == 0:
            with reverts(self.registry.RegistryZeroAmount):
                self.registry.slash(account, amount, SLASH_REASON, sender=self.ctx.slasher)
        elif amount > slashable:
            # No slash may exceed what is at stake.
            with reverts(self.registry.RegistrySlashExceedsStake, amount=amount, slashable=slashable):
                self.registry.slash(account, amount, SLASH_REASON, sender=self.ctx.slasher)
        else:
            task_balance = self.token.balanceOf(self.task)
            tx = self.registry.slash(account, amount, SLASH_REASON, sender=self.ctx.slasher)
            assert tx.events.filter(self.registry.Slashed) == [
                self.registry.Slashed(account, self.ctx.slasher, amount, SLASH_REASON)
            ]
            assert self.registry.slashableStake(account) == slashable - amount
            assert self.token.balanceOf(self.task) == task_balance + amount

    @rule(seconds=st.sampled_from([1, 1, 30, 60, 121, 240, 1_800, 3_600, 3_601]))
    def time_travel(self, seconds: int) -> None:
        self.now += seconds
        self.chain.mine(timestamp=self.now)

    # ------------------------------------------------------------ task rules

    @rule(i=st.integers(0, 4), samples=st.sampled_from([1, 500, 5_000, 20_000]))
    def commit(self, i: int, samples: int) -> None:
        account = self.accounts[i]
        round_, phase = self.current()
        self.nonce += 1
        update = make_update(f"update-{self.nonce}", samples)
        since = int(self.task.trainerActiveSince(account))
        opened = int(self.task.roundState(round_).openedAt)
        self.pin()
        call = (round_, update.seal(account))
        if phase != Phase.COMMIT:
            with reverts(self.task.TaskUnexpectedPhase, round=round_, actual=phase):
                self.task.commitUpdate(*call, sender=account)
        elif since == 0 or since > opened:
            with reverts(self.task.TaskNotEligibleTrainer, account=account.address):
                self.task.commitUpdate(*call, sender=account)
        elif account.address in self.book(round_).commits:
            with reverts(self.task.TaskAlreadyCommitted, round=round_, trainer=account.address):
                self.task.commitUpdate(*call, sender=account)
        else:
            self.task.commitUpdate(*call, sender=account)
            self.book(round_).commits[account.address] = update

    @rule(i=st.integers(0, 4), honest=st.booleans())
    def reveal(self, i: int, honest: bool) -> None:
        """Account `i` reveals its update of the current round (or, not `honest`, a wrong salt)."""
        account = self.accounts[i]
        round_, phase = self.current()
        book = self.book(round_)
        update = book.commits.get(account.address, make_update("never-committed"))
        salt = update.salt if honest else b"\x01" * 32
        call = (round_, account, update.digest, update.cid, update.samples, salt)
        self.pin()
        if phase != Phase.REVEAL:
            with reverts(self.task.TaskUnexpectedPhase, round=round_, actual=phase):
                self.task.revealUpdate(*call, sender=account)
        elif account.address in book.revealed:
            with reverts(self.task.TaskAlreadyRevealed, round=round_, trainer=account.address):
                self.task.revealUpdate(*call, sender=account)
        elif account.address not in book.commits or not honest:
            with reverts(self.task.TaskRevealMismatch, round=round_, trainer=account.address):
                self.task.revealUpdate(*call, sender=account)
        else:
            self.task.revealUpdate(*call, sender=account)
            book.revealed.add(account.address)

    @rule(reason=st.sampled_from(REASONS))
    def attest_all(self, reason: RejectionReason | None) -> None:
        """Every active aggregator attests one result (rejecting the lowest-address revealer
        with `reason`, if any) until the round finalizes."""
        round_, phase = self.current()
        model = make_model(f"model-{round_}")
        self.pin()
        if phase != Phase.AGGREGATION:
            with reverts(self.task.TaskUnexpectedPhase, round=round_, actual=phase):
                self.task.attest(round_, model.digest, model.cid, [], sender=self.accounts[3])
            return
        book = self.book(round_)
        rejections = []
        if reason is not None:
            trainer = min(book.revealed, key=lambda a: int(a, 16))
            update = book.commits[trainer]
            rejections = [(trainer, int(reason), update.digest, update.samples)]
        slashable_before = {a.address: int(self.registry.slashableStake(a)) for a in self.accounts}
        for aggregator in self.accounts:
            if not self.registry.activeRole(aggregator, Role.AGGREGATOR)[0]:
                continue
            if self.task.attestation(round_, aggregator) != b"\x00" * 32:
                continue
            self.pin()
            tx = self.task.attest(round_, model.digest, model.cid, rejections, sender=aggregator)
            for slashed in tx.events.filter(self.registry.Slashed):
                assert slashed.amount <= slashable_before[slashed.account]
            if Phase(self.task.phase(round_)) == Phase.FINALIZED:
                book.rejected = {r[0] for r in rejections}
                book.root = bytes(self.task.roundResult(round_).modelDigest)
                assert book.root == model.digest
                self.finalized.append(round_)
                break

    @rule(
        samples=st.sampled_from([1, 500, 5_000, 20_000]),
        reason=st.sampled_from(REASONS),
        claim=st.booleans(),
        withhold=st.booleans(),
    )
    def drive_round(self, samples: int, reason: RejectionReason | None, claim: bool, withhold: bool) -> None:
        """Every trainer that may commit in the current round does (closing the window early),
        reveals (all but the last, with `withhold`; the window then runs to its deadline), then
        the aggregators attest: a round finalizes in one step unless it cannot. With `claim`,
        every committer of a round finalized here then claims its reward."""
        for i, account in enumerate(self.accounts):
            round_, phase = self.current()
            if phase != Phase.COMMIT:
                break
            since = int(self.task.trainerActiveSince(account))
            eligible = 0 < since <= int(self.task.roundState(round_).openedAt)
            if eligible and account.address not in self.book(round_).commits:
                self.commit(i, samples)
        round_, phase = self.current()
        if phase == Phase.REVEAL:
            committers = sorted(self.book(round_).commits)
            for address in committers[:-1] if withhold else committers:
                if address not in self.book(round_).revealed:
                    self.reveal(next(i for i, a in enumerate(self.accounts) if a.address == address), True)
            if withhold:
                self.now = max(self.now, int(self.task.roundState(round_).revealDeadline))
                self.chain.mine(timestamp=self.now)
            round_, phase = self.current()
        if phase == Phase.AGGREGATION:
            self.attest_all(reason)
        if claim and round_ in self.finalized:
            for address in sorted(self.book(round_).commits):
                self._claim(next(a for a in self.accounts if a.address == address), round_)

    @rule()
    def close_stale_round(self) -> None:
        round_, phase = self.current()
        self.pin()
        if phase == Phase.STALE:
            tx = self.task.closeStaleRound(sender=self.accounts[0])
            assert tx.events.filter(self.task.RoundClosed) == [
                self.task.RoundClosed(round_, len(self.book(round_).commits))
            ]
        else:
            with reverts(self.task.TaskUnexpectedPhase, round=round_, expected=Phase.STALE, actual=phase):
                self.task.closeStaleRound(sender=self.accounts[0])

    @precondition(lambda self: bool(self.finalized))
    @rule(i=st.integers(0, 4), pick=st.integers(0, 1_000), committer=st.booleans())
    def claim_reward(self, i: int, pick: int, committer: bool) -> None:
        """Claims for a finalized round as one of its committers, or as account `i`."""
        round_ = self.finalized[pick % len(self.finalized)]
        book = self.rounds[round_]
        account = self.accounts[i]
        if committer:
            account = next(
                a for a in self.accounts if a.address == sorted(book.commits)[pick % len(book.commits)]
            )
        self._claim(account, round_)

    def _claim(self, account: Any, round_: int) -> None:
        book = self.rounds[round_]
        update = book.commits.get(account.address, Update(b"\x01" * 32, "none", 1))
        call = (round_, update.digest, update.samples)
        self.pin()
        if account.address not in book.revealed or account.address in book.rejected:
            with reverts(self.task.TaskNoReward, round=round_, trainer=account.address):
                self.task.claimReward(*call, sender=account)
            return
        if (round_, account.address) not in self.claimed:
            expected = int(self.task.rewardOf(round_, update.samples))
            tx = self.task.claimReward(*call, sender=account)
            assert tx.events.filter(self.task.RewardClaimed) == [
                self.task.RewardClaimed(round_, account, expected)
            ]
            self.claimed.add((round_, account.address))
            self.pin()
        # A reward is never paid twice.
        with reverts(self.task.TaskRewardAlreadyClaimed, round=round_, trainer=account.address):
            self.task.claimReward(*call, sender=account)

    @rule(i=st.integers(0, 4), parameter=st.sampled_from(list(TaskParameter)), value=st.integers(0, 10_000))
    def set_parameter_as_stranger(self, i: int, parameter: TaskParameter, value: int) -> None:
        """Anyone but the timelock trying to change a parameter is refused."""
        account = self.accounts[i]
        self.pin()
        with reverts(self.task.TaskOnlyGovernance, caller=account.address):
            self.task.setParameter(parameter, value, sender=account)
        self.pin()
        with reverts(self.registry.RegistryOnlyGovernance, caller=account.address):
            self.registry.setParameter(int(parameter) % 3, value, sender=account)

    # ------------------------------------------------------------ invariants

    @invariant()
    def parameters_unchanged_and_roots_final(self) -> None:
        """No rule runs as the timelock's setParameter, so the parameters never move; a
        finalized round's root never changes."""
        assert [int(self.task.parameter(p)) for p in TaskParameter] == self.ctx.parameters
        for round_ in self.finalized:
            assert bytes(self.task.roundResult(round_).modelDigest) == self.rounds[round_].root

    @invariant()
    def accounting_holds(self) -> None:
        state = read_state(self.ctx)
        assert state.registry_balance == state.total_staked
        active_stake = {Role.TRAINER: 0, Role.AGGREGATOR: 0}
        active_count = {Role.TRAINER: 0, Role.AGGREGATOR: 0}
        held = 0
        for p, votes, trainer_since in zip(state.participants, state.votes, state.trainer_since, strict=True):
            held += p.stake + p.unbonding
            if p.role == Role.NONE:
                assert p.stake == 0 and not p.active
            if p.active:
                active_stake[p.role] += p.stake
                active_count[p.role] += 1
                assert p.stake >= MIN_STAKE[p.role]
            # Voting power is the bonded stake, active or not.
            assert votes == p.stake
            # The task's copy of trainer eligibility is current.
            assert trainer_since == (p.active_since if p.active and p.role == Role.TRAINER else 0)
        assert held == state.total_staked
        assert state.total_active_stake == active_stake
        assert state.active_count == active_count
        assert state.task_balance >= state.reserved_rewards


@dataclass(frozen=True)
class State:
    """Everything the invariants look at, read in one JSON-RPC batch."""

    participants: list[Participant]
    votes: list[int]
    trainer_since: list[int]
    total_staked: int
    registry_balance: int
    total_active_stake: dict[Role, int]
    active_count: dict[Role, int]
    task_balance: int
    reserved_rewards: int


def web3_contract(chain: Any, contract: Any) -> Any:
    abi = [item.model_dump(mode="json", by_alias=True) for item in contract.contract_type.abi]
    return chain.provider.web3.eth.contract(address=contract.address, abi=abi)


def read_state(ctx: Context) -> State:
    """Reads the state with one batched request: each ape call is its own HTTP round trip, and
    the ~20 reads of every step would dominate the test's run time."""
    registry, task, token = ctx.web3_registry, ctx.web3_task, ctx.web3_token
    roles = (Role.TRAINER, Role.AGGREGATOR)
    addresses = [str(account.address) for account in ctx.participants]
    with ctx.chain.provider.web3.batch_requests() as batch:
        for address in addresses:
            batch.add(registry.functions.participant(address))
            batch.add(registry.functions.getVotes(address))
            batch.add(task.functions.trainerActiveSince(address))
        batch.add(registry.functions.totalStaked())
        batch.add(token.functions.balanceOf(str(registry.address)))
        for role in roles:
            batch.add(registry.functions.totalActiveStake(int(role)))
            batch.add(registry.functions.activeCount(int(role)))
        batch.add(token.functions.balanceOf(str(task.address)))
        batch.add(task.functions.reservedRewards())
        out = list(batch.execute())
    per_account, rest = out[: 3 * len(addresses)], out[3 * len(addresses) :]
    participants = [Participant(Role(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in per_account[0::3]]
    return State(
        participants=participants,
        votes=per_account[1::3],
        trainer_since=per_account[2::3],
        total_staked=rest[0],
        registry_balance=rest[1],
        total_active_stake={Role.TRAINER: rest[2], Role.AGGREGATOR: rest[4]},
        active_count={Role.TRAINER: rest[3], Role.AGGREGATOR: rest[5]},
        task_balance=rest[6],
        reserved_rewards=rest[7],
    )


@pytest.fixture
def context(
    chain: Any,
    token: Any,
    registry: Any,
    task: Any,
    task_signer: Any,
    owner: Any,
    trainers: list[Any],
    aggregators: list[Any],
) -> Context:
    """Five funded participants; two trainers and an aggregator registered with twice the
    minimum stake; round 0 open."""
    participants = trainers[:3] + aggregators[:2]
    for account in participants:
        token.transfer(account, FUNDING, sender=owner)
        token.approve(registry, 2**256 - 1, sender=account)
    for account, role in [
        (participants[0], Role.TRAINER),
        (participants[1], Role.TRAINER),
        (participants[3], Role.AGGREGATOR),
    ]:
        registry.register(role, 2 * MIN_STAKE[role], sender=account)
    task.start(sender=owner)
    parameters = [int(task.parameter(p)) for p in TaskParameter]
    return Context(chain, token, registry, task, task_signer, participants, parameters)


def test_staking_and_rounds__random_actions__invariants_hold(context: Context) -> None:
    run_state_machine_as_test(
        lambda: FedLedgerMachine(context),
        settings=settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
