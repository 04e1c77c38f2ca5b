"""Three aggregators, one dishonest: the honest result finalizes and the dishonest one loses
stake and earns no fee. Real Anvil, real IPFS daemon, real training (2 trainers, 1 round)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from fedledger.aggregator.round_result import RoundOutcome
from fedledger.aggregator.service import Aggregator
from fedledger.chain.params import TOKEN, Phase
from fedledger.chain.rounds import Rounds
from fedledger.storage.digests import sha256
from fedledger.storage.ipfs import IpfsClient
from tests.e2e.federation import Federation, aggregator_loop, run_all, running_federation, trainer_loop

STAKE = 1_000 * TOKEN


class ForgingAggregator(Aggregator):
    """Attests a model of its own making: the honest tensors, nudged."""

    def compute(self, round_: int) -> RoundOutcome:
        honest = super().compute(round_)
        assert honest.model_bytes is not None
        forged = honest.model_bytes[:-4] + bytes(4)  # the last float of the last tensor zeroed
        return RoundOutcome(verdicts=honest.verdicts, model_bytes=forged)


class PatientAggregator(Aggregator):
    """Honest, but attests only after the forger did, so the forgery is on record first."""

    def __init__(self, *, forger: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.forger = forger

    def step(self, round_: int | None = None) -> None:
        round_ = self.rounds.current_round() if round_ is None else round_
        if (
            self.rounds.attestation(round_, self.forger) != bytes(32)
            or self.rounds.phase(round_) != Phase.AGGREGATION
        ):
            super().step(round_)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    torch.set_num_threads(1)
    with running_federation(
        tmp_path_factory.mktemp("dishonest"), trainers=2, aggregator_stakes=[STAKE] * 3
    ) as fed:
        forger = fed.aggregators[0].address

        run_all(
            [
                trainer_loop(fed, 0, rounds=1),
                trainer_loop(fed, 1, rounds=1),
                aggregator_loop(fed, 0, rounds=1, kind=ForgingAggregator),
                aggregator_loop(fed, 1, rounds=1, kind=PatientAggregator, forger=forger),
                aggregator_loop(fed, 2, rounds=1, kind=PatientAggregator, forger=forger),
            ]
        )
        yield fed


def test_honest_result_finalizes(federation: Federation) -> None:
    rounds = Rounds(federation.ledger())
    assert rounds.phase(0) == Phase.FINALIZED
    forger, honest = federation.aggregators[0].address, [a.address for a in federation.aggregators[1:]]
    result_key = rounds.result(0).result_key
    assert rounds.attestation(0, forger) not in (bytes(32), result_key)
    assert [rounds.attestation(0, a) for a in honest] == [result_key, result_key]
    model = IpfsClient(federation.ipfs_url).cat(rounds.result(0).model_cid, 1 << 20)
    assert sha256(model) == rounds.result(0).model_digest


def test_dishonest_aggregator_slashed_and_unpaid(federation: Federation) -> None:
    ledger = federation.ledger()
    rounds = Rounds(ledger)
    forger, honest = federation.aggregators[0].address, federation.aggregators[1].address
    # Default aggregator slash: 2,000 bps of its 1,000 FED stake.
    assert ledger.participant(forger).stake == STAKE - STAKE * 2_000 // 10_000
    assert ledger.participant(honest).stake == STAKE
    assert rounds.fees_of(forger) == 0
    assert rounds.fees_of(honest) == 10 * TOKEN // 2  # the fee split between the two winners
