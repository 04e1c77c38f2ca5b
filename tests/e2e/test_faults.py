"""Faults, end to end: aggregator processes killed (SIGKILL) mid-round and restarted, the IPFS
daemon restarted mid-round, trainers that drop out.

Aggregators are real `fedledger aggregator run` processes, started as the demo starts them;
trainers run in-process on the chain client (threads): on their side what matters is how the
Trainer loop reacts, not process startup. Real Anvil, real js-ipfs daemon, real training in the
smallest configuration (one epoch on a shard of the MNIST digits). Deadlines are short, and
every wait polls the chain or a log for its condition. Each scenario has its own federation,
stopped (with every process it started) when its class of tests is done.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from fedledger.chain.contracts import FedLedger
from fedledger.chain.errors import ContractRevertError
from fedledger.chain.params import TOKEN, Phase, RejectionReason
from fedledger.chain.rounds import Rounds
from fedledger.storage.digests import sha256
from fedledger.storage.ipfs import IpfsClient
from fedledger.trainer.trainer import Trainer
from tests.e2e.federation import (
    Federation,
    Loop,
    ServiceProcess,
    aggregator_process,
    in_background,
    running_federation,
    service_processes,
    trainer_loop,
    wait_until,
)

STAKE = 1_000 * TOKEN
FEE_SHARE = 10 * TOKEN // 2  # the default aggregator fee, split between two winners
ROUND_TIMEOUT = 90.0  # generous: the machine is shared; every wait ends as soon as it can
STARTUP_TIMEOUT = 90.0  # a service process imports torch and web3 before its first poll


def windows(commit: int, reveal: int, aggregation: int) -> list[str]:
    return [
        "--commit-window",
        str(commit),
        "--reveal-window",
        str(reveal),
        "--aggregation-window",
        str(aggregation),
    ]


def following(process: ServiceProcess, round_: int, phase: Phase) -> bool:
    """Whether the process's current incarnation has seen `round_` in `phase` (it logs each change)."""
    return f"round {round_}: {phase.name.lower()} phase" in process.log()


def last_json(process: ServiceProcess) -> dict[str, Any]:
    """The JSON summary a service prints when it ends (its last line of output)."""
    line = process.log().strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(line)
    return result


def failed_transactions(ledger: FedLedger, sender: str) -> list[str]:
    """Every transaction from `sender` since the deployment that reverted on chain."""
    w3 = ledger.w3
    sent: list[Any] = [
        tx["hash"]
        for number in range(ledger.deployment.block_number, w3.eth.block_number + 1)
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]
        if tx["from"].lower() == sender.lower()
    ]
    assert sent, f"no transaction from {sender}"
    return [h.to_0x_hex() for h in sent if w3.eth.get_transaction_receipt(h)["status"] != 1]


def finalized(rounds: Rounds, round_: int) -> bool:
    return rounds.phase(round_) == Phase.FINALIZED


class Records(logging.Handler):
    """Keeps the messages of one logger (the in-process trainers' warnings)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def containing(self, text: str) -> list[str]:
        return [m for m in self.messages if text in m]


@contextlib.contextmanager
def recording(logger: str) -> Iterator[Records]:
    records = Records()
    logging.getLogger(logger).addHandler(records)
    try:
        yield records
    finally:
        logging.getLogger(logger).removeHandler(records)


# ================================================================ 1. an aggregator killed mid-round


@dataclass
class KilledAggregatorRun:
    fed: Federation
    victim: ServiceProcess  # aggregator 0: killed twice, three incarnations
    steady: ServiceProcess  # aggregator 1: paused once, never killed
    exit_codes: tuple[int, int]


KILLED_ROUNDS = 3


@pytest.fixture(scope="class")
def killed_aggregator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilledAggregatorRun]:
    """Two aggregators (each needed for the quorum: 6,666 bps of two equal stakes), two trainers.

    Round 0: the victim is frozen (SIGSTOP) in the commit phase and SIGKILLed during the
    aggregation phase, after the other aggregator attested and before it did; restarted, it
    catches up and attests. Round 1: the other aggregator is frozen, so the round cannot
    finalize; the victim is SIGKILLed as soon as its attestation is on chain and restarted
    while the round is still in its aggregation phase: it must see that it attested and wait.
    Round 2: everyone serves normally.
    """
    torch.set_num_threads(1)
    with (
        running_federation(
            tmp_path_factory.mktemp("killed"),
            trainers=2,
            aggregator_stakes=[STAKE, STAKE],
            deploy_options=windows(30, 30, 30),
            start=False,
        ) as fed,
        service_processes(
            aggregator_process(fed, 0, rounds=KILLED_ROUNDS), aggregator_process(fed, 1, rounds=KILLED_ROUNDS)
        ) as (victim, steady),
        in_background() as trainers,
    ):
        rounds = Rounds(fed.ledger())
        victim_address, steady_address = (a.address for a in fed.aggregators)

        def healthy() -> None:
            trainers.check()
            steady.check()

        victim.start()
        steady.start()
        fed.open_first_round()
        wait_until(
            lambda: following(victim, 0, Phase.COMMIT) and following(steady, 0, Phase.COMMIT),
            timeout=STARTUP_TIMEOUT,
            what="both aggregators to follow round 0",
            check=lambda: (healthy(), victim.check()),
        )
        trainers.start(*(trainer_loop(fed, i, rounds=KILLED_ROUNDS) for i in range(2)))

        # Round 0: frozen before the aggregation phase, killed during it, before attesting.
        assert rounds.phase(0) == Phase.COMMIT
        victim.pause()
        wait_until(
            lambda: rounds.attestations(0, steady_address),
            timeout=ROUND_TIMEOUT,
            what="the other aggregator's attestation of round 0",
            check=healthy,
        )
        assert rounds.phase(0) == Phase.AGGREGATION  # half the stake: no quorum yet
        assert not rounds.attestations(0, victim_address)
        victim.kill()
        victim.start()
        wait_until(lambda: finalized(rounds, 0), timeout=ROUND_TIMEOUT, what="round 0", check=healthy)

        # Round 1: killed right after its attestation reached the chain, restarted before the quorum.
        steady.pause()
        wait_until(
            lambda: rounds.attestations(1, victim_address),
            timeout=ROUND_TIMEOUT,
            what="the victim's attestation of round 1",
            check=lambda: (trainers.check(), victim.check()),
        )
        victim.kill()
        assert rounds.phase(1) == Phase.AGGREGATION
        victim.start("--rounds", str(KILLED_ROUNDS - 1))  # it now starts in round 1
        wait_until(
            lambda: "round 1: attested before a restart" in victim.log(),
            timeout=STARTUP_TIMEOUT,
            what="the restarted victim to find its attestation of round 1",
            check=lambda: (trainers.check(), victim.check()),
        )
        assert rounds.phase(1) == Phase.AGGREGATION
        steady.resume()
        wait_until(lambda: finalized(rounds, 1), timeout=ROUND_TIMEOUT, what="round 1", check=healthy)

        # Round 2: both serve; then both services and both trainers finish on their own.
        wait_until(lambda: finalized(rounds, 2), timeout=ROUND_TIMEOUT, what="round 2", check=healthy)
        exit_codes = (victim.wait(timeout=60), steady.wait(timeout=60))
        trainers.join(timeout=60)
        yield KilledAggregatorRun(fed, victim, steady, exit_codes)


class TestAggregatorKilledMidRound:
    def test_every_round_finalizes_with_both_updates(self, killed_aggregator: KilledAggregatorRun) -> None:
        rounds = Rounds(killed_aggregator.fed.ledger())
        finals = rounds.finalizations()
        assert [f.round for f in finals] == list(range(KILLED_ROUNDS))
        assert all((f.accepted, f.rejected) == (2, 0) for f in finals)

    def test_each_aggregator_attests_each_round_once_with_the_winning_result(
        self, killed_aggregator: KilledAggregatorRun
    ) -> None:
        rounds = Rounds(killed_aggregator.fed.ledger())
        for round_ in range(KILLED_ROUNDS):
            key = rounds.result(round_).result_key
            for aggregator in killed_aggregator.fed.aggregators:
                assert [a.result_key for a in rounds.attestations(round_, aggregator.address)] == [key]

    def test_no_reverted_transaction_and_no_second_attempt(
        self, killed_aggregator: KilledAggregatorRun
    ) -> None:
        ledger = killed_aggregator.fed.ledger()
        for aggregator in killed_aggregator.fed.aggregators:
            assert failed_transactions(ledger, aggregator.address) == []
        # A second attestation would be refused at gas estimation (nothing sent): it would show
        # in the log as a benign revert, so the logs must not mention one either.
        for process in (killed_aggregator.victim, killed_aggregator.steady):
            logs = process.logs_all()
            for symptom in ("TaskAlreadyAttested", "attestation not needed", "Traceback"):
                assert symptom not in logs, f"{process.name}: {symptom}"

    def test_restarted_aggregator_resumes_and_keeps_serving(
        self, killed_aggregator: KilledAggregatorRun
    ) -> None:
        victim = killed_aggregator.victim
        assert victim.incarnation == 3
        assert "round 0: attested" in victim.log(2)  # the first restart caught up with round 0
        third = victim.log(3)
        assert "round 1: attested before a restart; waiting for the quorum" in third
        assert "round 2: attested" in third
        summary = last_json(victim)
        digests = Rounds(killed_aggregator.fed.ledger()).finalizations()
        assert summary["attested"] == {str(f.round): f.model_digest.hex() for f in digests[1:]}
        assert killed_aggregator.exit_codes == (0, 0)

    def test_victim_earned_every_fee_and_kept_its_stake(self, killed_aggregator: KilledAggregatorRun) -> None:
        ledger = killed_aggregator.fed.ledger()
        rounds = Rounds(ledger)
        for aggregator in killed_aggregator.fed.aggregators:
            assert rounds.fees_of(aggregator.address) == KILLED_ROUNDS * FEE_SHARE
            assert ledger.participant(aggregator.address).stake == STAKE


# ================================================================ 2. the IPFS daemon restarted mid-round


class WatchedIpfs(IpfsClient):
    """Counts the files it fetched, to time a fault; otherwise the plain client."""

    def __init__(self, api: str) -> None:
        super().__init__(api)
        self.fetched = 0

    def cat(self, cid: str, max_bytes: int, timeout: float | None = None) -> bytes:
        data = super().cat(cid, max_bytes, timeout)
        self.fetched += 1
        return data


@dataclass
class IpfsRestartRun:
    fed: Federation
    aggregator: ServiceProcess
    trainer_warnings: list[str]
    exit_code: int


@pytest.fixture(scope="class")
def ipfs_restarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsRestartRun]:
    """Two trainers, one aggregator process, two rounds, one IPFS outage in each.

    Round 0: the daemon stops in the commit phase, once both trainers have fetched the global
    model (while they train), so both find it down when they reveal (pinning their update
    first); it starts again on the same repository and port once a reveal has failed.
    Round 1: the aggregator is frozen until every update is revealed, the daemon crashes
    (SIGKILL: its repository stays locked), the aggregator thaws and finds it down while
    fetching the updates; the daemon starts again once that fetch has failed.
    """
    torch.set_num_threads(1)
    with (
        running_federation(
            tmp_path_factory.mktemp("ipfs"),
            trainers=2,
            aggregator_stakes=[STAKE],
            deploy_options=windows(30, 30, 30),
            start=False,
        ) as fed,
        service_processes(aggregator_process(fed, 0, rounds=2)) as (aggregator,),
        in_background() as trainers,
        recording("fedledger.trainer") as trainer_log,
    ):
        rounds = Rounds(fed.ledger())

        def healthy() -> None:
            trainers.check()
            aggregator.check()

        aggregator.start()
        fed.open_first_round()
        wait_until(
            lambda: following(aggregator, 0, Phase.COMMIT),
            timeout=STARTUP_TIMEOUT,
            what="the aggregator to follow round 0",
            check=healthy,
        )
        watched = [WatchedIpfs(fed.ipfs_url) for _ in range(2)]
        trainers.start(*(trainer_loop(fed, i, rounds=2, ipfs=watched[i]) for i in range(2)))

        # Round 0: down from the commit phase into the reveal phase.
        wait_until(
            lambda: all(client.fetched for client in watched),
            timeout=ROUND_TIMEOUT,
            what="both trainers to fetch the global model",
            check=healthy,
        )
        assert rounds.phase(0) == Phase.COMMIT
        fed.stop_ipfs()
        wait_until(
            lambda: rounds.phase(0) == Phase.REVEAL and trainer_log.containing("not reachable"),
            timeout=ROUND_TIMEOUT,
            what="a reveal to fail on the stopped daemon",
            check=healthy,
        )
        assert rounds.ledger.round_state(0).reveals == 0
        fed.start_ipfs()
        wait_until(lambda: finalized(rounds, 0), timeout=ROUND_TIMEOUT, what="round 0", check=healthy)

        # Round 1: crashed while the aggregator fetches the updates.
        aggregator.pause()
        outages_seen = aggregator.log().count("not reachable")
        wait_until(
            lambda: rounds.synced_phase(1) == Phase.AGGREGATION,
            timeout=ROUND_TIMEOUT,
            what="round 1's updates revealed",
            check=trainers.check,
        )
        fed.stop_ipfs(crash=True)
        aggregator.resume()
        wait_until(
            lambda: aggregator.log().count("not reachable") > outages_seen,
            timeout=ROUND_TIMEOUT,
            what="the aggregator to find the daemon down",
            check=healthy,
        )
        assert rounds.phase(1) == Phase.AGGREGATION and not rounds.attestations(1)
        fed.start_ipfs()
        wait_until(lambda: finalized(rounds, 1), timeout=ROUND_TIMEOUT, what="round 1", check=healthy)
        exit_code = aggregator.wait(timeout=60)
        trainers.join(timeout=60)
        yield IpfsRestartRun(fed, aggregator, list(trainer_log.messages), exit_code)


class TestIpfsRestartedMidRound:
    def test_rounds_finalize_with_every_honest_update_accepted(self, ipfs_restarted: IpfsRestartRun) -> None:
        rounds = Rounds(ipfs_restarted.fed.ledger())
        assert [(f.round, f.accepted, f.rejected) for f in rounds.finalizations()] == [(0, 2, 0), (1, 2, 0)]
        for round_ in (0, 1):
            assert rounds.rejections(round_) == {}
            for trainer in ipfs_restarted.fed.trainers:
                assert rounds.rejection(round_, trainer.address) == RejectionReason.NONE
                assert rounds.reward_claimed(round_, trainer.address)

    def test_both_outages_were_hit_and_recovered_from(self, ipfs_restarted: IpfsRestartRun) -> None:
        assert any("not reachable" in m for m in ipfs_restarted.trainer_warnings)
        assert any("recovered" in m for m in ipfs_restarted.trainer_warnings)
        logs = ipfs_restarted.aggregator.log()
        assert "not reachable" in logs and "recovered" in logs
        assert ": rejected " not in logs and "Traceback" not in logs
        assert ipfs_restarted.exit_code == 0

    def test_restarted_daemon_serves_every_model_and_update(self, ipfs_restarted: IpfsRestartRun) -> None:
        rounds = Rounds(ipfs_restarted.fed.ledger())
        ipfs = IpfsClient(ipfs_restarted.fed.ipfs_url)
        for final in rounds.finalizations():
            assert sha256(ipfs.cat(final.model_cid, 1 << 20)) == final.model_digest
            for commit in rounds.revealed(final.round):
                assert ipfs.is_pinned(commit.cid)


# ================================================================ 3. trainers dropping out


class DroppedOutError(Exception):
    """Ends a trainer's thread the way a crash ends its process."""


class VanishesAfterCommit(Trainer):
    """Commits its sealed update, then is gone: the opening of the seal dies with it."""

    def train_and_commit(self, round_: int) -> bool:
        if super().train_and_commit(round_):
            raise DroppedOutError(f"round {round_}: committed, then dropped out")
        return False


def dropout_loop(fed: Federation, index: int) -> Loop:
    loop = trainer_loop(fed, index, rounds=1, kind=VanishesAfterCommit)

    def run(stop: threading.Event) -> None:
        with contextlib.suppress(DroppedOutError):
            loop(stop)

    return run


@dataclass
class DropoutRun:
    fed: Federation
    aggregator: ServiceProcess
    exit_code: int


DROPOUT_COMMIT_WINDOW = 15


@pytest.fixture(scope="class")
def dropouts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DropoutRun]:
    """Three trainers, at least two updates per round, one aggregator process.

    Round 0: the third trainer commits and vanishes; the two others reveal, and once the reveal
    window ends the round is aggregated without it. Round 1: only the first trainer shows up;
    at the commit deadline the round is stale and the aggregator closes it. Round 2: all three
    are back and the round finalizes.
    """
    torch.set_num_threads(1)
    with (
        running_federation(
            tmp_path_factory.mktemp("dropouts"),
            trainers=3,
            aggregator_stakes=[STAKE],
            deploy_options=windows(DROPOUT_COMMIT_WINDOW, 3, 30),
            start=False,
        ) as fed,
        service_processes(aggregator_process(fed, 0, rounds=3)) as (aggregator,),
        in_background() as trainers,
    ):
        rounds = Rounds(fed.ledger())

        def healthy() -> None:
            trainers.check()
            aggregator.check()

        aggregator.start()
        wait_until(
            lambda: following(aggregator, 0, Phase.INACTIVE),
            timeout=STARTUP_TIMEOUT,
            what="the aggregator to follow the task",
            check=healthy,
        )
        first = [trainer_loop(fed, 0, rounds=1), trainer_loop(fed, 1, rounds=1), dropout_loop(fed, 2)]
        alone = trainer_loop(fed, 0, rounds=1)
        back = [trainer_loop(fed, i, rounds=1) for i in range(3)]
        fed.open_first_round()
        trainers.start(*first)
        wait_until(lambda: finalized(rounds, 0), timeout=ROUND_TIMEOUT, what="round 0", check=healthy)

        trainers.join(timeout=60)  # round 0's trainers claimed and stopped: one process per key
        trainers.start(alone)
        wait_until(
            lambda: rounds.phase(1) == Phase.CLOSED,
            timeout=DROPOUT_COMMIT_WINDOW + ROUND_TIMEOUT,
            what="round 1 to be closed as stale",
            check=healthy,
        )

        trainers.join(timeout=60)
        trainers.start(*back)
        wait_until(lambda: finalized(rounds, 2), timeout=ROUND_TIMEOUT, what="round 2", check=healthy)
        exit_code = aggregator.wait(timeout=60)
        trainers.join(timeout=60)
        yield DropoutRun(fed, aggregator, exit_code)


class TestTrainersDropOut:
    def test_silent_committer__round_finalizes_without_it(self, dropouts: DropoutRun) -> None:
        rounds = Rounds(dropouts.fed.ledger())
        state = rounds.state(0)
        assert (state.commits, state.reveals) == (3, 2)
        final = rounds.finalizations()[0]
        assert (final.round, final.accepted, final.rejected) == (0, 2, 0)
        dropout = dropouts.fed.trainers[2].address
        assert 0 in rounds.committed_rounds(dropout) and rounds.commitment(0, dropout) == bytes(
            32
        )  # never opened
        assert 0 not in rounds.revealed_by(dropout)
        assert rounds.rejection(0, dropout) == RejectionReason.NONE  # absent, not rejected

    def test_silent_committer__earns_nothing_and_the_others_share_the_reward(
        self, dropouts: DropoutRun
    ) -> None:
        ledger = dropouts.fed.ledger()
        rounds = Rounds(ledger)
        dropout = dropouts.fed.trainers[2]
        assert not rounds.reward_claimed(0, dropout.address)
        with pytest.raises(ContractRevertError) as refused:
            rounds.claim_reward(dropout, 0, bytes(32), 1)
        assert refused.value.name == "TaskNoReward"
        claimed = ledger.task.events.RewardClaimed().get_logs(
            from_block=ledger.deployment.block_number, argument_filters={"round": 0}
        )
        assert {str(e["args"]["trainer"]) for e in claimed} == {t.address for t in dropouts.fed.trainers[:2]}
        total = sum(int(e["args"]["amount"]) for e in claimed)
        assert rounds.result(0).trainer_reward - 2 <= total <= rounds.result(0).trainer_reward

    def test_too_few_commits__round_closed_by_the_aggregator(self, dropouts: DropoutRun) -> None:
        ledger = dropouts.fed.ledger()
        rounds = Rounds(ledger)
        assert rounds.phase(1) == Phase.CLOSED
        closed = ledger.task.events.RoundClosed().get_logs(from_block=ledger.deployment.block_number)
        assert [(int(e["args"]["round"]), int(e["args"]["commits"])) for e in closed] == [(1, 1)]
        tx = ledger.w3.eth.get_transaction(closed[0]["transactionHash"])
        assert tx["from"] == dropouts.fed.aggregators[0].address
        # Nothing of round 1 counts: no finalization, no reward, the model moved on twice only.
        assert [f.round for f in rounds.finalizations()] == [0, 2]
        assert not rounds.reward_claimed(1, dropouts.fed.trainers[0].address)
        assert rounds.global_model().version == 2
        # The next round opened in the closing transaction.
        block = ledger.w3.eth.get_block(closed[0]["blockNumber"])
        assert rounds.state(2).opened_at == block["timestamp"]

    def test_trainers_back__later_round_finalizes(self, dropouts: DropoutRun) -> None:
        rounds = Rounds(dropouts.fed.ledger())
        final = rounds.finalizations()[-1]
        assert (final.round, final.accepted, final.rejected) == (2, 3, 0)
        for trainer in dropouts.fed.trainers:
            assert rounds.reward_claimed(2, trainer.address)
        summary = last_json(dropouts.aggregator)
        assert summary["closed"] == [1]
        assert sorted(summary["attested"]) == ["0", "2"]
        assert dropouts.exit_code == 0
