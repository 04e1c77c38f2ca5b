"""Deployment parameters and the on-chain enums mirrored in Python."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True, kw_only=True)
class DeployParameters:
    """Everything `deploy_all` needs besides the deployer account."""

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
    unbonding_period: int = 3_600
    voting_delay: int = 1
    voting_period: int = 20
    proposal_threshold: int = 100 * TOKEN
    quorum_percent: int = 4
    timelock_delay: int = 5
    task: TaskParameters = field(default_factory=TaskParameters)
