"""Open security findings in the contracts, kept as strict xfails.

Each test states the property the contracts should have and fails today. Once a contract change
fixes the finding, the test passes, strict xfail turns that into a failure, and the marker is
removed so the test guards the fix from then on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from helpers import attest, commit_all, end_commit_window, make_model

from fedledger.chain.params import TOKEN, Phase, Role


@pytest.mark.xfail(
    strict=True,
    reason="FederatedTask.attest adds each attester's stake to the result's support when it attests, "
    "but divides by the aggregator stake active now: attesters that unstake afterwards stay in "
    "the support and leave the total, so a minority can reach the quorum",
)
def test_attest__attesters_that_left__do_not_count_toward_quorum(
    task: Any,
    registry: Any,
    owner: Any,
    accounts: Any,
    outsider: Any,
    register: Callable[..., Any],
    active_trainers: list[Any],
    active_aggregators: list[Any],
    updates: dict[Any, Any],
    chain: Any,
) -> None:
    # Three honest aggregators and three colluding ones, 1,000 each: the colluders hold half the
    # stake, short of the 66.67 % quorum.
    colluders = [owner, accounts[8], outsider]
    for colluder in colluders:
        register(colluder, Role.AGGREGATOR, 1_000 * TOKEN)
    task.start(sender=owner)
    commit_all(task, updates)
    end_commit_window(chain, task, 0)
    forged = make_model("forged model")

    # Each colluder attests, then leaves at once, taking its stake out of the quorum's total.
    for colluder in colluders[:-1]:
        attest(task, colluder, forged)
        registry.requestUnstake(1_000 * TOKEN, sender=colluder)
    attest(task, colluders[-1], forged)

    assert Phase(task.phase(0)) == Phase.AGGREGATION
    assert task.globalModel().digest != forged.digest
