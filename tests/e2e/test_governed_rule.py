"""Governance in action: stakers vote the aggregation rule from FedAvg to median during round 0;
round 0 keeps FedAvg, round 1's aggregators use the median, and an outsider's recomputation
of round 1 with the median matches the chain. Real Anvil, IPFS daemon and training."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from fedledger.audit.verify import verify_round
from fedledger.chain.params import TOKEN, AggregationRule, ProposalState, TaskParameter
from fedledger.chain.proposals import ParameterChange
from fedledger.chain.rounds import Rounds
from fedledger.demo.run import DemoLog, govern
from fedledger.learning.model import model_spec
from fedledger.storage.ipfs import IpfsClient
from tests.e2e.federation import Federation, aggregator_loop, run_all, running_federation, trainer_loop

TRAINERS = 3
ROUNDS = 2


@pytest.fixture(scope="module")
def federation(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Federation, ProposalState, list[str]]]:
    torch.set_num_threads(1)
    fast_governance = ["--voting-delay", "1", "--voting-period", "3", "--timelock-delay", "1"]
    with running_federation(
        tmp_path_factory.mktemp("governed"),
        trainers=TRAINERS,
        aggregator_stakes=[1_000 * TOKEN] * 2,
        deploy_options=fast_governance,
    ) as fed:
        lines: list[str] = []
        change = ParameterChange("task", TaskParameter.AGGREGATION_RULE, int(AggregationRule.MEDIAN))
        outcome = govern(
            fed.ledger(),
            DemoLog(lines.append),
            change,
            "median: robust to a few bad updates",
            fed.trainers[0],
            [*fed.trainers, *fed.aggregators],
            fed.trainers[0],
        )

        run_all(
            [
                *(trainer_loop(fed, i, rounds=ROUNDS) for i in range(TRAINERS)),
                *(aggregator_loop(fed, i, rounds=ROUNDS) for i in range(2)),
            ]
        )
        yield fed, outcome.state, lines


def test_proposal_executed_by_the_timelock(federation: tuple[Federation, ProposalState, list[str]]) -> None:
    fed, state, lines = federation
    assert state == ProposalState.EXECUTED
    assert fed.ledger().task_parameter(TaskParameter.AGGREGATION_RULE) == AggregationRule.MEDIAN
    assert any("castVote" in line for line in lines)


def test_round_in_progress_keeps_its_rule_and_the_next_uses_the_new_one(
    federation: tuple[Federation, ProposalState, list[str]],
) -> None:
    fed, _, _ = federation
    rounds = Rounds(fed.ledger())
    assert rounds.config(0).aggregation_rule == AggregationRule.FEDAVG
    assert rounds.config(1).aggregation_rule == AggregationRule.MEDIAN
    for round_, rule in ((0, "FEDAVG"), (1, "MEDIAN")):
        # verify recomputes with the rule the chain recorded: a match means the aggregators used it.
        report = verify_round(rounds.ledger, IpfsClient(fed.ipfs_url), round_, model_spec())
        assert report.matches, report.problems
        assert report.rule == rule
