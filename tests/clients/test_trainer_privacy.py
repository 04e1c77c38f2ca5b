"""The trainer under differential privacy, on a fake chain: the governed client-level noise is
in the file it pins, its operator's budget stops it before a round that would exceed it, and
DP-SGD (Opacus) trains with per-example clipping and accounts every step."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_attacks as fixtures  # the fake chain and trainer of the attack tests
from safetensors.numpy import load as load_tensors

from fedledger.arrays import Array
from fedledger.chain.params import AggregationRule
from fedledger.chain.rounds import Commit, RoundConfig
from fedledger.learning.dp_sgd import DpSgdConfig, DpSgdLedger, DpSgdLedgerError, steps_of, train_local_dp
from fedledger.learning.model import build_model, get_weights
from fedledger.learning.privacy import PrivacyBudgetExceededError, PrivacyRule, epsilon
from tests.clients.fakes import FakeIpfs

SIGMA, CLIP = 0.8, 0.25


class PrivateRounds(fixtures.FakeRounds):
    """A round whose governed rule asks for client-level DP; nothing revealed before it."""

    def __init__(self, noise: float = SIGMA, clip: float = CLIP) -> None:
        super().__init__()
        self.noise, self.clip = noise, clip

    def config(self, round_: int) -> RoundConfig:
        return RoundConfig(
            0,
            0,
            0,
            1,
            6_667,
            0,
            0,
            0,
            AggregationRule.FEDAVG,
            0,
            int(self.noise * 1e6),
            int(self.clip * 1e6),
            10**7,
        )

    def revealed_by(self, trainer: str) -> dict[int, Commit]:
        return {}


@pytest.fixture(scope="module")
def global_weights() -> dict[str, Array]:
    return get_weights(build_model(seed=0))


def trainer(global_weights: dict[str, Array], ipfs: FakeIpfs, rounds: Any, **extra: Any) -> Any:
    made = fixtures.make_trainer(global_weights, ipfs, rounds)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_governed_round__the_pinned_update_carries_the_noise(global_weights: dict[str, Array]) -> None:
    ipfs, rounds = FakeIpfs(), PrivateRounds()
    assert fixtures.commit_and_reveal(trainer(global_weights, ipfs, rounds))
    [pinned] = ipfs.files.values()
    assert pinned != fixtures.honest_bytes(global_weights)
    update = load_tensors(pinned)
    change = np.concatenate(
        [(update[k].astype(np.float64) - global_weights[k]).ravel() for k in sorted(update)]
    )
    assert change.std() == pytest.approx(SIGMA * CLIP, rel=0.03)  # the clipped change is tiny beside it


def test_budget__refuses_the_round_that_would_exceed_it_and_sends_nothing(
    global_weights: dict[str, Array],
) -> None:
    one_round = epsilon([PrivacyRule(SIGMA, CLIP, 1e-5)], 1e-5)
    ipfs, rounds = FakeIpfs(), PrivateRounds()
    careful = trainer(global_weights, ipfs, rounds, privacy_budget=one_round * 0.99)
    with pytest.raises(
        PrivacyBudgetExceededError, match=r"over its budget of .* \(spent so far 0\.000 in 0 round"
    ):
        careful.train_and_commit(fixtures.ROUND)
    assert rounds.seals == [] and ipfs.files == {}

    allowed = trainer(global_weights, FakeIpfs(), PrivateRounds(), privacy_budget=one_round * 1.01)
    assert allowed.train_and_commit(fixtures.ROUND)


def test_budget__never_an_update_without_noise(global_weights: dict[str, Array]) -> None:
    careful = trainer(global_weights, FakeIpfs(), PrivateRounds(noise=0.0), privacy_budget=1_000.0)
    with pytest.raises(PrivacyBudgetExceededError, match="infinity"):
        careful.train_and_commit(fixtures.ROUND)


def test_dp_sgd__steps_accounted_as_opacus_counts_them() -> None:
    data, config = fixtures.DATA, fixtures.CONFIG
    model, ledger = build_model(seed=0), DpSgdLedger()
    before = get_weights(model)
    dp = DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0)
    predicted = ledger.epsilon(dp.delta, (dp.noise_multiplier, *steps_of(data, config)))

    train_local_dp(model, data, config, dp, ledger)

    sample_rate, steps = steps_of(data, config)
    assert ledger.history == [(1.0, sample_rate, steps)]
    assert ledger.epsilon(dp.delta) == pytest.approx(predicted) and 0 < predicted < math.inf
    assert any(not np.array_equal(before[k], v) for k, v in get_weights(model).items())
    # Opacus's hooks are gone: the model trains again, and the steps compose.
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    train_local_dp(model, data, config, dp, ledger)
    assert len(ledger.history) == 2 and ledger.epsilon(dp.delta) > predicted


def test_dp_sgd__config_checked() -> None:
    for bad in ((0.0, 1.0, 1e-5), (1.0, 0.0, 1e-5), (1.0, 1.0, 1.0)):
        with pytest.raises(ValueError, match="DP-SGD needs"):
            DpSgdConfig(*bad)


def test_dp_sgd_trainer__budget_bounds_the_sample_level_epsilon(global_weights: dict[str, Array]) -> None:
    dp = DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0)
    one_round = DpSgdLedger().epsilon(dp.delta, (1.0, *steps_of(fixtures.DATA, fixtures.CONFIG)))
    ipfs, rounds = FakeIpfs(), fixtures.FakeRounds()  # no client-level DP in this round
    runner = trainer(global_weights, ipfs, rounds, dp_sgd=dp, privacy_budget=one_round * 1.05)
    assert fixtures.commit_and_reveal(runner)
    assert runner.dp_sgd_ledger.epsilon(dp.delta) == pytest.approx(one_round)
    with pytest.raises(PrivacyBudgetExceededError, match="sample-level epsilon"):
        runner.train_and_commit(fixtures.ROUND + 1)  # two rounds spend more than 1.05 rounds


def test_dp_sgd_ledger__kept_on_disk_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "privacy" / "dp-sgd-0xabc.json"
    ledger = DpSgdLedger.open(path)
    assert ledger.history == [] and not path.exists()
    ledger.add([(1.0, 0.25, 4)])
    ledger.add([(1.2, 0.25, 4)])
    again = DpSgdLedger.open(path)
    assert again.history == [(1.0, 0.25, 4), (1.2, 0.25, 4)]
    assert again.epsilon(1e-5) == pytest.approx(ledger.epsilon(1e-5)) and again.epsilon(1e-5) > 0


def test_dp_sgd_ledger__unreadable_file__clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text('{"history": [[1.0, "x"]]}')
    with pytest.raises(DpSgdLedgerError, match=r"is not a DP-SGD ledger.*rather than delete it"):
        DpSgdLedger.open(path)
