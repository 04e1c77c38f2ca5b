"""Differential privacy switched on by a vote: during round 0 the stakers set the noise
multiplier and the clip norm; round 0 keeps running without noise, round 1's trainers clip
and noise their updates with exactly the voted scale, the aggregators still agree byte for
byte (an outsider's recomputation matches), `status` reports the epsilon, and a trainer whose
operator set a privacy budget refuses to release an update without noise. Real Anvil, IPFS
daemon and training."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from safetensors.numpy import load as load_tensors

from fedledger.audit.status import federation_status
from fedledger.audit.verify import verify_round
from fedledger.chain.params import CLIP_NORM_UNIT, TOKEN, ProposalState, TaskParameter
from fedledger.chain.proposals import ParameterChange
from fedledger.chain.rounds import Rounds
from fedledger.demo.run import DemoLog, govern
from fedledger.learning.model import model_spec
from fedledger.learning.privacy import PrivacyRule, epsilon
from fedledger.learning.shards import ShardSpec, shard
from fedledger.learning.train import TrainConfig
from fedledger.storage.ipfs import IpfsClient
from fedledger.trainer.trainer import Trainer
from tests.e2e.federation import Federation, aggregator_loop, run_all, running_federation, trainer_loop
from tests.mnist_app import mnist_app

TRAINERS = 3  # and a fourth whose operator set a privacy budget
ROUNDS = 2
SIGMA, CLIP = 0.5, 0.5


@dataclass
class Run:
    fed: Federation
    state: ProposalState
    careful: Trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    torch.set_num_threads(1)
    fast_governance = ["--voting-delay", "1", "--voting-period", "3", "--timelock-delay", "1"]
    # The careful trainer never commits, so each commit window runs to its deadline: keep it short.
    short_rounds = ["--commit-window", "30"]
    with running_federation(
        tmp_path_factory.mktemp("private"),
        trainers=TRAINERS + 1,
        aggregator_stakes=[1_000 * TOKEN] * 2,
        deploy_options=[*fast_governance, *short_rounds],
    ) as fed:
        outcome = govern(
            fed.ledger(),
            DemoLog(lambda _line: None),
            [
                ParameterChange("task", TaskParameter.DP_NOISE_MULTIPLIER, int(SIGMA * CLIP_NORM_UNIT)),
                ParameterChange("task", TaskParameter.DP_CLIP_NORM, int(CLIP * CLIP_NORM_UNIT)),
            ],
            "Differential privacy: clip updates to 0.5 and add noise of 0.5 x 0.5",
            fed.trainers[0],
            [*fed.trainers, *fed.aggregators],
            fed.trainers[0],
        )
        careful = Trainer(
            ledger=fed.ledger(),
            ipfs=IpfsClient(fed.ipfs_url),
            account=fed.trainers[TRAINERS],
            data=shard(ShardSpec(index=TRAINERS, count=TRAINERS + 1)),
            spec=model_spec(),
            **mnist_app(TrainConfig(epochs=1, seed=TRAINERS)),
            privacy_budget=50.0,
        )
        run_all(
            [
                *(trainer_loop(fed, i, rounds=ROUNDS) for i in range(TRAINERS)),
                lambda stop: careful.run(max_rounds=ROUNDS, stop=stop),
                *(aggregator_loop(fed, i, rounds=ROUNDS) for i in range(2)),
            ]
        )
        yield Run(fed, outcome.state, careful)


def noise_of(fed: Federation, rounds: Rounds, round_: int) -> list[float]:
    """Per revealed update of `round_`: the standard deviation of its change to the round's
    starting global model (the noise, when the change itself is clipped small)."""
    ipfs = IpfsClient(fed.ipfs_url)
    start = (
        rounds.finalizations()[round_ - 1].model_cid
        if round_
        else fed.deployment.parameters["initial_model_cid"]
    )
    reference = load_tensors(ipfs.cat(start, 1 << 22))  # safetensors: data only, never code
    stds = []
    for commit in rounds.revealed(round_):
        update = load_tensors(ipfs.cat(commit.cid, 1 << 22))
        change = np.concatenate(
            [(update[k].astype(np.float64) - reference[k]).ravel() for k in sorted(update)]
        )
        stds.append(float(change.std()))
    return stds


def test_the_vote_passed_and_only_later_rounds_use_it(run: Run) -> None:
    rounds = Rounds(run.fed.ledger())
    assert run.state == ProposalState.EXECUTED
    assert PrivacyRule.of_round(rounds.config(0)) == PrivacyRule(0.0, 0.0, 1e-5)
    assert PrivacyRule.of_round(rounds.config(1)) == PrivacyRule(SIGMA, CLIP, 1e-5)


def test_round_1_updates_carry_noise_of_the_voted_scale(run: Run) -> None:
    rounds = Rounds(run.fed.ledger())
    before, after = noise_of(run.fed, rounds, 0), noise_of(run.fed, rounds, 1)
    assert len(before) == len(after) == TRAINERS
    assert all(std < 0.05 for std in before)  # plain training moves each weight a little
    for std in after:  # the clipped change (norm <= 0.5 over 46,730 weights) is invisible beside it
        assert std == pytest.approx(SIGMA * CLIP, rel=0.03)


def test_noisy_rounds_stay_reproducible(run: Run) -> None:
    rounds = Rounds(run.fed.ledger())
    for round_ in range(ROUNDS):
        report = verify_round(rounds.ledger, IpfsClient(run.fed.ipfs_url), round_, model_spec())
        assert report.matches, report.problems


def test_status_reports_the_privacy_of_each_round_and_the_epsilon(run: Run) -> None:
    ledger = run.fed.ledger()
    report = federation_status(ledger, evaluate_accuracy=None)
    assert [r.privacy for r in report.rounds] == ["off", "noise multiplier 0.5, clip norm 0.5, delta 1e-05"]
    # A trainer that took part in round 0 released an update without noise: no guarantee.
    assert [r.epsilon for r in report.rounds] == [None, None]
    assert report.task_parameters["DP_NOISE_MULTIPLIER"] == 500_000
    one_round = epsilon([PrivacyRule(SIGMA, CLIP, 1e-5)], 1e-5)
    assert math.isfinite(one_round) and one_round > 10  # sigma 0.5 is little noise for one update


def test_a_trainer_with_a_budget_never_releases_an_update_without_noise(run: Run) -> None:
    careful = run.careful
    assert careful.stats.committed_rounds == []
    assert careful.privacy_exhausted is not None
    assert "infinity (a round without noise)" in careful.privacy_exhausted
    assert "over its budget of 50" in careful.privacy_exhausted
