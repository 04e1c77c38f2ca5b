"""Governance profiles and the deploy guard: real networks get governance measured in days,
local devnets keep seconds, and devnet-speed governance is refused off a local devnet unless
forced. The ape script's wiring of this decision runs for real in e2e/test_cli_devnet.py."""

from __future__ import annotations

import dataclasses

import pytest

from fedledger.chain.network import (
    UNSAFE_FAST_GOVERNANCE_FLAG,
    NodeFacts,
    UnsafeGovernanceError,
    default_governance,
    require_safe_governance,
)
from fedledger.chain.params import (
    DAY,
    DEVNET_GOVERNANCE,
    GOVERNANCE_FIELDS,
    GOVERNANCE_PROFILES,
    NETWORK_GOVERNANCE,
    SAFE_MIN_QUORUM_PERCENT,
    DeployParameters,
    TaskParameters,
    duration,
    unsafe_governance,
)

LOCAL = NodeFacts(url="http://127.0.0.1:8545", chain_id=31337, anvil=True)
SEI_LIKE = NodeFacts(url="http://localhost:8545", chain_id=713715, anvil=True)
TESTNET = NodeFacts(url="https://evm-rpc-testnet.sei-apis.com", chain_id=1328, anvil=False)
LOOPBACK_FORK = NodeFacts(url="http://127.0.0.1:8545", chain_id=1, anvil=True)  # a fork of mainnet


def params(**fields: int) -> DeployParameters:
    return DeployParameters(
        initial_model_digest=b"\x01" * 32, initial_model_cid="bafkrei", model_spec_hash=b"\x02" * 32, **fields
    )


def test_defaults__are_the_network_profile() -> None:
    defaults = params()

    assert {name: getattr(defaults, name) for name in GOVERNANCE_FIELDS} == NETWORK_GOVERNANCE.fields()
    assert unsafe_governance(defaults) == []


def test_network_profile__days_of_notice_longer_than_unbonding_and_a_real_quorum() -> None:
    network = NETWORK_GOVERNANCE

    notice = network.voting_delay + network.voting_period + network.timelock_delay
    assert notice >= 7 * DAY
    # Even a staker who waits until the vote has passed can withdraw before execution.
    assert network.timelock_delay > network.unbonding_period
    assert network.unbonding_period >= DAY
    assert network.quorum_percent >= 20
    # Unbonding must outlast a round (the registry refuses it otherwise).
    task = TaskParameters()
    assert network.unbonding_period > task.commit_window + task.reveal_window + task.aggregation_window


def test_devnet_profile__is_exactly_what_the_tests_and_the_demo_ran_with() -> None:
    assert DEVNET_GOVERNANCE.fields() == {
        "unbonding_period": 3_600,
        "voting_delay": 1,
        "voting_period": 20,
        "quorum_percent": 4,
        "timelock_delay": 5,
    }
    assert set(GOVERNANCE_PROFILES) == {"devnet", "network"}


def test_with_governance__replaces_only_the_governance_fields() -> None:
    base = params(reward_pool=7, proposal_threshold=9)

    devnet = base.with_governance(DEVNET_GOVERNANCE)

    assert {name: getattr(devnet, name) for name in GOVERNANCE_FIELDS} == DEVNET_GOVERNANCE.fields()
    assert (devnet.reward_pool, devnet.proposal_threshold) == (7, 9)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"voting_delay": 3_599}, "voting delay 3599 s is under 1 h"),
        ({"voting_period": DAY - 1}, "voting period 86399 s is under 1 d"),
        ({"timelock_delay": DAY - 1, "unbonding_period": 3_600}, "timelock delay 86399 s is under 1 d"),
        (
            {"timelock_delay": 3 * DAY},
            "timelock delay 3 d is not longer than the unbonding period 3 d: stakers could not withdraw",
        ),
        ({"quorum_percent": SAFE_MIN_QUORUM_PERCENT - 1}, "quorum 9 % is under 10 % of the voting stake"),
    ],
)
def test_unsafe_governance__each_devnet_speed_setting__named(change: dict[str, int], reason: str) -> None:
    reasons = unsafe_governance(dataclasses.replace(params(), **change))

    assert len(reasons) == 1
    assert reasons[0].startswith(reason)


def test_unsafe_governance__devnet_profile__every_reason() -> None:
    assert len(unsafe_governance(params().with_governance(DEVNET_GOVERNANCE))) == 5


@pytest.mark.parametrize("facts", [LOCAL, SEI_LIKE])
def test_require_safe_governance__local_devnet__devnet_speed_allowed(facts: NodeFacts) -> None:
    require_safe_governance(params().with_governance(DEVNET_GOVERNANCE), facts, force=False)
    assert default_governance(facts) is DEVNET_GOVERNANCE


@pytest.mark.parametrize("facts", [TESTNET, LOOPBACK_FORK], ids=["testnet", "loopback-fork-of-mainnet"])
def test_require_safe_governance__not_a_local_devnet__refused_naming_chain_reasons_and_flag(
    facts: NodeFacts,
) -> None:
    fast = dataclasses.replace(params(), voting_period=20)

    with pytest.raises(UnsafeGovernanceError) as refused:
        require_safe_governance(fast, facts, force=False)

    message = str(refused.value)
    assert f"refusing to deploy to chain {facts.chain_id}" in message
    assert "voting period 20 s is under 1 d" in message
    assert UNSAFE_FAST_GOVERNANCE_FLAG in message
    assert default_governance(facts) is NETWORK_GOVERNANCE


def test_require_safe_governance__not_a_local_devnet__forced_or_safe__allowed() -> None:
    require_safe_governance(params().with_governance(DEVNET_GOVERNANCE), TESTNET, force=True)
    require_safe_governance(params(), TESTNET, force=False)
    require_safe_governance(
        dataclasses.replace(params(), voting_period=7 * DAY, quorum_percent=33), TESTNET, force=False
    )


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (5, "5 s"), (90, "90 s"), (120, "2 min"), (3_600, "1 h"), (4 * DAY, "4 d")],
)
def test_duration__largest_whole_unit(seconds: int, shown: str) -> None:
    assert duration(seconds) == shown
