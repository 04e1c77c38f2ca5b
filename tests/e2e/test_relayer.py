"""The relayer on a real Anvil: trainers' signed commitments go on chain in batches, bad entries
are dropped without sinking their batch, and the openings are proved against each batch's root."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedledger.chain.batching import SignedCommitment, sign_commitment
from fedledger.chain.contracts import FedLedger
from fedledger.chain.errors import ContractRevertError
from fedledger.chain.params import TOKEN, Phase
from fedledger.chain.rounds import Opening, Rounds
from fedledger.relayer.relayer import Relayer, RelayReport

from .federation import Federation, running_federation

TRAINERS = 5
BATCH_SIZE = 2


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    with running_federation(
        tmp_path_factory.mktemp("relayer"), trainers=TRAINERS, aggregator_stakes=[1_000 * TOKEN]
    ) as fed:
        yield fed


@pytest.fixture(scope="module")
def rounds(federation: Federation) -> Rounds:
    return Rounds(federation.ledger())


@pytest.fixture(scope="module")
def openings(federation: Federation) -> list[Opening]:
    return [
        Opening(
            trainer=t.address,
            digest=secrets.token_bytes(32),
            cid=f"bafkreiupdate{i}",
            num_samples=100 + i,
            salt=secrets.token_bytes(32),
        )
        for i, t in enumerate(federation.trainers)
    ]


def signed(ledger: FedLedger, account: LocalAccount, opening: Opening, round_: int = 0) -> SignedCommitment:
    return sign_commitment(
        account, chain_id=ledger.chain_id, task=str(ledger.task.address), round_=round_, seal=opening.seal
    )


@pytest.fixture(scope="module")
def outsider() -> LocalAccount:
    """Signs validly but is no trainer: the contract refuses its commitment."""
    account: LocalAccount = Account.create()
    return account


@pytest.fixture(scope="module")
def relayer(federation: Federation, rounds: Rounds) -> Relayer:
    return Relayer(rounds, federation.owner, batch_size=BATCH_SIZE)


@pytest.fixture(scope="module")
def committed(
    relayer: Relayer, rounds: Rounds, federation: Federation, openings: list[Opening], outsider: LocalAccount
) -> RelayReport:
    """Trainers 0-3 through the relayer, among bad entries; trainer 4 commits by itself."""
    ledger, trainers = rounds.ledger, federation.trainers
    stranger = dataclasses.replace(openings[0], trainer=outsider.address)
    return relayer.commit(
        0,
        [
            signed(ledger, trainers[0], openings[0]),
            signed(ledger, outsider, stranger),  # sinks the first batch, which is sent again
            signed(ledger, trainers[1], openings[1]),
            signed(ledger, trainers[1], openings[1]),  # the same trainer twice
            signed(ledger, trainers[4], openings[4], round_=1),  # another round: recovers to nobody
            signed(ledger, trainers[2], openings[2]),
            signed(ledger, trainers[3], openings[3]),
        ],
    )


def test_commit__batches_the_valid_entries(
    committed: RelayReport, relayer: Relayer, rounds: Rounds, federation: Federation
) -> None:
    batches = relayer.batches(0)
    # Batches are sent concurrently: which lands first (and gets index 0) is up to the node.
    assert sorted(b.trainers for b in batches) == sorted(
        [
            (federation.trainers[0].address,),
            (federation.trainers[1].address,),
            (federation.trainers[2].address, federation.trainers[3].address),
        ]
    )
    assert [b.index for b in batches] == [0, 1, 2]
    assert [b.tx for b in batches] == committed.transactions
    assert committed.gas_used == sum(tx.gas_used for tx in committed.transactions) > 0
    assert len(rounds.batch_roots(0)) == 3
    assert rounds.ledger.round_state(0).commits == 4
    for trainer in federation.trainers[:4]:
        assert rounds.last_committed_round(trainer.address) == 0


def test_commit__reports_each_dropped_entry(
    committed: RelayReport, federation: Federation, outsider: LocalAccount
) -> None:
    reasons = {d.trainer.lower(): d.reason for d in committed.dropped}
    assert len(committed.dropped) == 3
    assert "TaskNotEligibleTrainer" in reasons[outsider.address.lower()]
    assert reasons[federation.trainers[1].address.lower()] == "already relayed in this round"
    other = [
        r
        for t, r in reasons.items()
        if t not in (outsider.address.lower(), federation.trainers[1].address.lower())
    ]
    assert len(other) == 1 and "TaskNotEligibleTrainer" in other[0]


def test_commit__refuses_nothing_twice(
    committed: RelayReport, relayer: Relayer, federation: Federation, openings: list[Opening], rounds: Rounds
) -> None:
    again = relayer.commit(0, [signed(rounds.ledger, federation.trainers[0], openings[0])])
    assert again.transactions == []
    assert [d.reason for d in again.dropped] == ["already relayed in this round"]


def test_reveal__proves_each_opening_and_drops_the_rest(
    committed: RelayReport, relayer: Relayer, rounds: Rounds, federation: Federation, openings: list[Opening]
) -> None:
    rounds.commit_update(federation.trainers[4], 0, openings[4].seal)  # the last commit closes the window
    assert rounds.synced_phase(0) == Phase.REVEAL
    tampered = dataclasses.replace(openings[1], salt=secrets.token_bytes(32))
    bad_cid = dataclasses.replace(openings[3], cid="")

    report = relayer.reveal(0, [openings[0], tampered, openings[2], bad_cid, openings[4]])

    reasons = {d.trainer: d.reason for d in report.dropped}
    assert reasons[openings[1].trainer] == "the opening does not match the seal"
    assert "TaskInvalidCid" in reasons[openings[3].trainer]
    assert reasons[openings[4].trainer] == "not committed through this relayer"
    assert len(report.transactions) == 2  # batch 0 (trainer 0) and batch 2 (trainer 2 after a resend)
    revealed = {c.trainer: c for c in rounds.revealed(0)}
    assert set(revealed) == {openings[0].trainer, openings[2].trainer}
    for opening in (openings[0], openings[2]):
        assert (revealed[opening.trainer].digest, revealed[opening.trainer].cid) == (
            opening.digest,
            opening.cid,
        )

    # The remaining openings are still good: the relayer proves them now.
    rest = relayer.reveal(0, [openings[1], openings[3]])
    assert rest.dropped == [] and len(rest.transactions) == 2
    assert {c.trainer for c in rounds.revealed(0)} == {o.trainer for o in openings[:4]}


def test_commit__phase_errors_are_raised_not_dropped(
    committed: RelayReport, federation: Federation, rounds: Rounds, openings: list[Opening]
) -> None:
    late = Relayer(rounds, federation.owner, batch_size=BATCH_SIZE)
    with pytest.raises(ContractRevertError, match="TaskUnexpectedPhase"):
        late.commit(0, [signed(rounds.ledger, federation.trainers[4], openings[4])])


def test_relayer__rejects_a_batch_size_or_concurrency_below_one(
    rounds: Rounds, federation: Federation
) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Relayer(rounds, federation.owner, batch_size=0)
    with pytest.raises(ValueError, match="concurrency"):
        Relayer(rounds, federation.owner, concurrency=0)
