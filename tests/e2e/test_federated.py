"""Federated training for real: Anvil, the IPFS daemon, the ape deploy script, trainers and
aggregators on the chain client. 3 trainers (one commits a digest that does not match its
file), 2 aggregators, 2 rounds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from fedledger.app.api import Context as AppContext
from fedledger.app.evaluation import Evaluator, app_evaluator
from fedledger.app.loader import load_app
from fedledger.attacks import DigestMismatch
from fedledger.audit.status import federation_status
from fedledger.audit.verify import verify_round
from fedledger.chain.params import TOKEN, Phase, RejectionReason
from fedledger.chain.rounds import Rounds
from fedledger.dashboard.accuracy import AccuracyBook
from fedledger.dashboard.snapshot import FederationView
from fedledger.learning.model import build_model, model_spec, set_weights
from fedledger.learning.shards import held_out
from fedledger.learning.train import evaluate
from fedledger.storage.digests import sha256
from fedledger.storage.ipfs import IpfsClient
from fedledger.storage.models import fetch_model, global_model_binding
from tests.e2e.federation import (
    Federation,
    aggregator_loop,
    run_all,
    running_federation,
    trainer_loop,
    wait_until,
)

ROUNDS = 2
TRAINERS = 3
AGGREGATORS = 2


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    torch.set_num_threads(1)
    stakes = [1_000 * TOKEN] * AGGREGATORS
    with running_federation(
        tmp_path_factory.mktemp("federation"), trainers=TRAINERS, aggregator_stakes=stakes
    ) as fed:
        # The last trainer pins its real update but commits the digest of other bytes; it is
        # slashed below the minimum stake in round 0, so it only ever commits once.
        liar = TRAINERS - 1
        run_all(
            [
                *(trainer_loop(fed, i, rounds=ROUNDS, epochs=2) for i in range(liar)),
                trainer_loop(fed, liar, rounds=1, epochs=2, attack=DigestMismatch()),
                *(aggregator_loop(fed, i, rounds=ROUNDS) for i in range(AGGREGATORS)),
            ]
        )
        yield fed


@pytest.fixture(scope="module")
def rounds(federation: Federation) -> Rounds:
    return Rounds(federation.ledger())


def test_rounds_finalize_with_pinned_models_matching_the_onchain_root(
    federation: Federation, rounds: Rounds
) -> None:
    finals = rounds.finalizations()
    assert [f.round for f in finals] == list(range(ROUNDS))
    ipfs = IpfsClient(federation.ipfs_url)
    for final in finals:
        assert rounds.phase(final.round) == Phase.FINALIZED
        assert rounds.result(final.round).model_digest == final.model_digest
        assert sha256(ipfs.cat(final.model_cid, 1 << 20)) == final.model_digest
        assert ipfs.is_pinned(final.model_cid)
    assert rounds.global_model().digest == finals[-1].model_digest
    # Aggregators pin every update they fetched, so the rounds stay reproducible.
    for round_ in range(ROUNDS):
        assert all(ipfs.is_pinned(commit.cid) for commit in rounds.revealed(round_))


def test_verify__an_outsider_recomputes_every_round(federation: Federation, rounds: Rounds) -> None:
    for round_ in range(ROUNDS):
        report = verify_round(rounds.ledger, IpfsClient(federation.ipfs_url), round_, model_spec())
        assert report.matches, report.problems
        assert report.recomputed_digest == report.onchain_digest


def test_accuracy_rises(federation: Federation, rounds: Rounds) -> None:
    spec, model, ipfs = model_spec(), build_model(), IpfsClient(federation.ipfs_url)
    accuracies = [federation.initial_accuracy]
    for version, final in enumerate(rounds.finalizations(), start=1):
        binding = global_model_binding(
            chain_id=31337, task=str(rounds.ledger.task.address), version=version, spec=spec
        )
        set_weights(model, fetch_model(ipfs, final.model_cid, final.model_digest, spec, binding))
        accuracies.append(evaluate(model, held_out(0)))
    assert accuracies == sorted(accuracies), accuracies
    assert accuracies[-1] > 0.85


def test_digest_mismatch__rejected_with_reason_slashed_and_deactivated(
    federation: Federation, rounds: Rounds
) -> None:
    liar = federation.trainers[-1].address
    assert rounds.rejection(0, liar) == RejectionReason.DIGEST_MISMATCH
    assert rounds.result(0).rejected_count == 1
    assert not rounds.reward_claimed(0, liar)
    # Slashed 10% of its 100 FED: below the 100 FED minimum, so it may not commit any more.
    participant = rounds.ledger.participant(liar)
    assert participant.stake == 90 * 10**18 and not participant.active
    assert 1 not in rounds.committed_rounds(liar)
    assert rounds.result(1).rejected_count == 0 and rounds.state(1).commits == TRAINERS - 1


def test_honest_trainers_claimed_their_rewards(federation: Federation, rounds: Rounds) -> None:
    honest = [a.address for a in federation.trainers[:-1]]
    for round_ in range(ROUNDS):
        for trainer in honest:
            assert rounds.reward_claimed(round_, trainer)
    # Two honest trainers with equal shards split each round's 100 FED reward.
    assert rounds.ledger.balance_of(honest[0]) == ROUNDS * 50 * 10**18


def mnist_cnn_evaluator() -> Evaluator:
    """What the dashboard and `status --accuracy` score with by default: mnist-cnn's evaluate()
    on the held-out digits of data seed 0."""
    return app_evaluator(load_app("mnist-cnn"), AppContext(config={"data-seed": 0}))


def test_dashboard_view__agrees_with_the_audit_and_evaluates_every_model(
    federation: Federation, rounds: Rounds, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fedledger.dashboard.events.BLOCKS_PER_REQUEST", 7)  # many log requests
    ledger, ipfs, spec = federation.ledger(), IpfsClient(federation.ipfs_url), model_spec()
    book = AccuracyBook(
        ipfs,
        chain_id=31337,
        task=str(ledger.task.address),
        spec=spec,
        load_evaluator=mnist_cnn_evaluator,
        cache_file=None,
    )
    view = FederationView(ledger, book)
    try:
        view.refresh()
        snapshot = wait_until(
            lambda: (
                (s := view.refresh())
                and s.initial_accuracy is not None
                and all(r.accuracy is not None for r in s.rounds[:ROUNDS])
                and s
            ),
            timeout=120,
            what="the dashboard's accuracy of every model",
        )
    finally:
        book.close()
    audit = federation_status(ledger, evaluate_accuracy=mnist_cnn_evaluator(), ipfs=ipfs, spec=spec)

    finalized = [r for r in snapshot.rounds if r.outcome == "finalized"]
    assert [(r.round, r.accepted, r.rejected, r.accuracy, r.model_digest) for r in finalized] == [
        (s.round, s.accepted, s.rejected, s.accuracy, s.model_digest) for s in audit.rounds
    ]
    assert snapshot.initial_accuracy == pytest.approx(federation.initial_accuracy)
    liar = federation.trainers[-1].address
    assert finalized[0].rejections == {liar: "DIGEST_MISMATCH"}
    assert (
        snapshot.totals.finalized == ROUNDS and snapshot.totals.rejected == 1 and snapshot.totals.stale == 0
    )
    assert snapshot.current_round.number == audit.current_round.number
    assert snapshot.current_round.phase == audit.current_round.phase

    assert [
        (p.address, p.role, p.active, int(p.stake.raw), int(p.slashed.raw)) for p in snapshot.participants
    ] == [(p.address, p.role, p.active, p.stake, p.slashed) for p in audit.participants]
    rewards = {p.address: p.rewards_claimed or p.fees_credited for p in audit.participants}
    assert {p.address: int(p.rewards.raw) for p in snapshot.participants} == rewards
    by_address = {p.address: p for p in snapshot.participants}
    assert by_address[liar].slashes == 1 and by_address[liar].rejected == 1 and by_address[liar].updates == 1
    parameters = {p.name: int(p.value) for p in snapshot.parameters}
    assert parameters == {**audit.task_parameters, **audit.registry_parameters}

    # Read again with nothing new: no event is counted twice.
    again = view.refresh()
    assert [(r.round, r.commits, r.reveals) for r in again.rounds] == [
        (r.round, r.commits, r.reveals) for r in snapshot.rounds
    ]
