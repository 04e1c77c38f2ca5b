"""Deployment parameters and the on-chain enums mirrored in Python."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import IntEnum

TOKEN = 10**18  # one token, in the smallest unit (18 decimals)


class Role(IntEnum):
    """`IStakingRegistry.Role`."""

    NONE = 0
    TRAINER = 1
    AGGREGATOR = 2


class RegistryParameter(IntEnum):
    """`IStakingRegistry.Parameter`."""

    MIN_TRAINER_STAKE = 0
    MIN_AGGREGATOR_STAKE = 1
    UNBONDING_PERIOD = 2


class Phase(IntEnum):
    """`IFederatedTask.Phase`."""

    INACTIVE = 0
    COMMIT = 1
    REVEAL = 2
    AGGREGATION = 3
    FINALIZED = 4
    STALE = 5
    CLOSED = 6


class RoundStatus(IntEnum):
    """`IFederatedTask.RoundStatus`."""

    NONE = 0
    OPEN = 1
    FINALIZED = 2
    CLOSED = 3


class RejectionReason(IntEnum):
    """`IFederatedTask.RejectionReason`: codes 1-5 are provable and slashed."""

    NONE = 0
    DIGEST_MISMATCH = 1
    MALFORMED = 2
    NON_FINITE = 3
    OVERSIZE = 4
    WRONG_BINDING = 5
    UNAVAILABLE = 6
    OUTLIER = 7
    DUPLICATE = 8


class AggregationRule(IntEnum):
    """`IFederatedTask.AggregationRule`."""

    FEDAVG = 0
    MEDIAN = 1
    TRIMMED_MEAN = 2
    MULTI_KRUM = 3


CLIP_NORM_UNIT = 1_000_000  # on-chain ClipNorm, DpClipNorm and DpNoiseMultiplier are in millionths
DP_DELTA_UNIT = 10**12  # on-chain DpDelta is in units of 1e-12


class TaskParameter(IntEnum):
    """`IFederatedTask.Parameter`."""

    COMMIT_WINDOW = 0
    AGGREGATION_WINDOW = 1
    MIN_UPDATES = 2
    AGGREGATION_RULE = 3
    AGGREGATION_PARAM = 4
    REWARD_PER_ROUND = 5
    AGGREGATOR_FEE = 6
    SAMPLE_CAP = 7
    TRAINER_SLASH_BPS = 8
    OUTLIER_SLASH_BPS = 9
    AGGREGATOR_SLASH_BPS = 10
    QUORUM_BPS = 11
    CLIP_NORM = 12
    REVEAL_WINDOW = 13
    DP_NOISE_MULTIPLIER = 14
    DP_CLIP_NORM = 15
    DP_DELTA = 16


class GovernorSetting(IntEnum):
    """`IFedGovernor.Setting`."""

    VOTING_DELAY = 0
    VOTING_PERIOD = 1
    QUORUM_NUMERATOR = 2


class ProposalState(IntEnum):
    """OpenZeppelin `IGovernor.ProposalState`."""

    PENDING = 0
    ACTIVE = 1
    CANCELED = 2
    DEFEATED = 3
    SUCCEEDED = 4
    QUEUED = 5
    EXPIRED = 6
    EXECUTED = 7


class VoteType(IntEnum):
    """OpenZeppelin `GovernorCountingSimple.VoteType`."""

    AGAINST = 0
    FOR = 1
    ABSTAIN = 2


@dataclass(frozen=True, kw_only=True)
class TaskParameters:
    """Initial values of `IFederatedTask.InitialParameters` (seconds, token units, basis points)."""

    commit_window: int = 120
    aggregation_window: int = 120
    min_updates: int = 2
    aggregation_rule: int = AggregationRule.FEDAVG
    aggregation_param: int = 0
    reward_per_round: int = 100 * TOKEN
    aggregator_fee: int = 10 * TOKEN
    sample_cap: int = 10_000
    trainer_slash_bps: int = 1_000
    outlier_slash_bps: int = 0
    aggregator_slash_bps: int = 2_000
    # Two of three equal aggregators: 2/3 is 6,666.7 bps, so 6,667 would need all three.
    quorum_bps: int = 6_666
    clip_norm: int = 0  # millionths of the L2 norm bound on each update's change; 0: no clipping
    reveal_window: int = 60
    # Differential privacy, applied by trainers; off while the noise or the clip norm is 0.
    dp_noise_multiplier: int = 0  # millionths: noise std as a multiple of dp_clip_norm
    dp_clip_norm: int = 0  # millionths of the L2 bound each trainer clips its update to
    dp_delta: int = 10_000_000  # units of 1e-12: 1e-5

    def as_tuple(self) -> tuple[int, ...]:
        """The struct in ABI order, for the task's constructor."""
        return tuple(int(v) for v in asdict(self).values())


MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# The deployment fields a governance profile sets.
GOVERNANCE_FIELDS = ("unbonding_period", "voting_delay", "voting_period", "quorum_percent", "timelock_delay")


@dataclass(frozen=True, kw_only=True)
class GovernanceProfile:
    """How fast governance acts and how long stake takes to leave: a deployment's clocks.

    A passed proposal takes effect `voting_delay + voting_period + timelock_delay` after it is
    made. On a real network that notice must let anyone who disagrees leave first: the timelock
    delay alone is longer than the unbonding period, so even a staker who waits until the vote
    has passed can withdraw before the proposal executes. The quorum is a share of the voting
    (bonded) stake at the vote's snapshot that must vote for or abstain.
    """

    name: str
    unbonding_period: int
    voting_delay: int
    voting_period: int
    quorum_percent: int
    timelock_delay: int

    def fields(self) -> dict[str, int]:
        """The profile as `DeployParameters` fields."""
        return {name: int(getattr(self, name)) for name in GOVERNANCE_FIELDS}


# For any chain other people use (testnets, mainnets): ten days from proposal to effect, a
# quarter of the voting stake to pass anything, unbonding one day shorter than the timelock.
NETWORK_GOVERNANCE = GovernanceProfile(
    name="network",
    unbonding_period=3 * DAY,
    voting_delay=DAY,
    voting_period=5 * DAY,
    quorum_percent=25,
    timelock_delay=4 * DAY,
)
# Seconds instead of days, for the demo and the tests on a local devnet only: a single small
# holder can pass a proposal in half a minute. `ape run deploy` refuses it on other chains
# unless forced (see `unsafe_governance`).
DEVNET_GOVERNANCE = GovernanceProfile(
    name="devnet",
    unbonding_period=HOUR,
    voting_delay=1,
    voting_period=20,
    quorum_percent=4,
    timelock_delay=5,
)
GOVERNANCE_PROFILES: dict[str, GovernanceProfile] = {
    profile.name: profile for profile in (NETWORK_GOVERNANCE, DEVNET_GOVERNANCE)
}

# What a deployment on a chain that is not a local devnet must at least have (the network
# profile has more): anything faster or lower is "devnet-speed" governance.
SAFE_MIN_VOTING_DELAY = HOUR
SAFE_MIN_VOTING_PERIOD = DAY
SAFE_MIN_TIMELOCK_DELAY = DAY
SAFE_MIN_QUORUM_PERCENT = 10


@dataclass(frozen=True, kw_only=True)
class DeployParameters:
    """Everything `deploy_all` needs besides the deployer account.

    The governance fields default to `NETWORK_GOVERNANCE`; local devnets use
    `DEVNET_GOVERNANCE` (`params.with_governance(DEVNET_GOVERNANCE)`)."""

    initial_model_digest: bytes
    initial_model_cid: str
    model_spec_hash: bytes
    # Where the spec's canonical JSON is pinned (its sha256 is `model_spec_hash`): recorded in the
    # deployments file, so clients read the spec without the app's code. Empty: not pinned.
    model_spec_cid: str = ""
    token_supply: int = 1_000_000_000 * TOKEN
    reward_pool: int = 100_000 * TOKEN
    min_trainer_stake: int = 100 * TOKEN
    min_aggregator_stake: int = 1_000 * TOKEN
    unbonding_period: int = NETWORK_GOVERNANCE.unbonding_period
    voting_delay: int = NETWORK_GOVERNANCE.voting_delay
    voting_period: int = NETWORK_GOVERNANCE.voting_period
    proposal_threshold: int = 100 * TOKEN
    quorum_percent: int = NETWORK_GOVERNANCE.quorum_percent
    timelock_delay: int = NETWORK_GOVERNANCE.timelock_delay
    task: TaskParameters = field(default_factory=TaskParameters)

    def with_governance(self, profile: GovernanceProfile) -> DeployParameters:
        """These parameters with `profile`'s clocks and quorum."""
        return replace(
            self,
            unbonding_period=profile.unbonding_period,
            voting_delay=profile.voting_delay,
            voting_period=profile.voting_period,
            quorum_percent=profile.quorum_percent,
            timelock_delay=profile.timelock_delay,
        )


def unsafe_governance(params: DeployParameters) -> list[str]:
    """Why `params` give governance that only suits a local devnet; empty if they do not.

    Too short a voting delay or period lets a proposal pass before stakers notice it; too short
    a timelock delay, or one not longer than the unbonding period, executes it before a staker
    who disagrees can withdraw; too low a quorum lets one small holder pass it alone."""
    reasons = []
    if params.voting_delay < SAFE_MIN_VOTING_DELAY:
        reasons.append(
            f"voting delay {duration(params.voting_delay)} is under {duration(SAFE_MIN_VOTING_DELAY)}"
        )
    if params.voting_period < SAFE_MIN_VOTING_PERIOD:
        reasons.append(
            f"voting period {duration(params.voting_period)} is under {duration(SAFE_MIN_VOTING_PERIOD)}"
        )
    if params.timelock_delay < SAFE_MIN_TIMELOCK_DELAY:
        reasons.append(
            f"timelock delay {duration(params.timelock_delay)} is under {duration(SAFE_MIN_TIMELOCK_DELAY)}"
        )
    if params.timelock_delay <= params.unbonding_period:
        reasons.append(
            f"timelock delay {duration(params.timelock_delay)} is not longer than the unbonding period "
            f"{duration(params.unbonding_period)}: stakers could not withdraw before a proposal executes"
        )
    if params.quorum_percent < SAFE_MIN_QUORUM_PERCENT:
        reasons.append(
            f"quorum {params.quorum_percent} % is under {SAFE_MIN_QUORUM_PERCENT} % of the voting stake"
        )
    return reasons


def duration(seconds: int) -> str:
    """`seconds` in the largest whole unit: `5 s`, `90 min`, `1 h`, `4 d`."""
    for unit, name in ((DAY, "d"), (HOUR, "h"), (MINUTE, "min")):
        if seconds >= unit and seconds % unit == 0:
            return f"{seconds // unit} {name}"
    return f"{seconds} s"
