"""Federated training for real: Anvil, the IPFS daemon, the ape deploy script, trainers and
aggregators on the chain client. 3 trainers (one commits a digest that does not match its
file), 2 aggregators, 2 rounds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from fedledger.attacks import DigestMismatch
from fedledger.audit.verify import verify_round
from fedledger.chain.params import TOKEN, Phase, RejectionReason
from fedledger.chain.rounds import Rounds
from fedledger.learning.model import build_model, model_spec, set_weights
from fedledger.learning.shards import held_out
from fedledger.learning.train import evaluate
from fedledger.storage.digests import sha256
from fedledger.storage.ipfs import IpfsClient
from fedledger.storage.models import fetch_model, global_model_binding
from tests.e2e.federation import Federation, aggregator_loop, run_all, running_federation, trainer_loop

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
