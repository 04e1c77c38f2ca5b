// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IFederatedTask
/// @notice One federated learning task: rounds of trainer commitments, aggregator
/// attestations, quorum finalization, rewards and slashing, governed by the timelock.
interface IFederatedTask {
    /// @notice Where a round is in its lifecycle, derived from its state and the clock.
    enum Phase {
        Inactive,
        Commit,
        Reveal,
        Aggregation,
        Finalized,
        Stale,
        Closed
    }

    /// @notice The stored status of a round; `Phase` adds the clock to it.
    enum RoundStatus {
        None,
        Open,
        Finalized,
        Closed
    }

    /// @notice Why aggregators rejected a trainer's update. Codes 1-5 are provable from the
    /// committed bytes and slashed at the trainer slash rate; Outlier is slashed at the outlier
    /// rate; Unavailable and Duplicate only lose the round's reward.
    enum RejectionReason {
        None,
        DigestMismatch,
        Malformed,
        NonFinite,
        Oversize,
        WrongBinding,
        Unavailable,
        Outlier,
        Duplicate
    }

    /// @notice Aggregation rules governance can select; aggregators apply the round's rule.
    enum AggregationRule {
        FedAvg,
        Median,
        TrimmedMean,
        MultiKrum
    }

    /// @notice Parameters that only governance (the timelock) may change. `ClipNorm` bounds
    /// the L2 norm of each update's change to the round's starting model, in millionths
    /// (1,000,000 = 1.0); 0 disables clipping. Aggregators clip before applying the rule.
    /// `RevealWindow` is how long after the commit deadline trainers have to reveal.
    /// Differential privacy (trainers apply it before sealing their updates): `DpClipNorm`
    /// bounds the L2 norm of each trainer's update, in millionths; `DpNoiseMultiplier` is the
    /// Gaussian noise's standard deviation as a multiple of that bound, in millionths; `DpDelta`
    /// is the delta the privacy budget is accounted at, in units of 1e-12 (10,000,000 = 1e-5).
    /// Privacy is off while `DpNoiseMultiplier` or `DpClipNorm` is 0.
    /// Bounds that protect stakers and the pool: the three slash rates are at most
    /// `MAX_SLASH_BPS`; `RewardPerRound` and `AggregatorFee` are cut, when a round opens, to
    /// `MAX_ROUND_PAYOUT_BPS` of the unpromised pool together; the windows stay shorter (in sum)
    /// than the unbonding period; `QuorumBps` is a strict majority.
    enum Parameter {
        CommitWindow,
        AggregationWindow,
        MinUpdates,
        AggregationRule,
        AggregationParam,
        RewardPerRound,
        AggregatorFee,
        SampleCap,
        TrainerSlashBps,
        OutlierSlashBps,
        AggregatorSlashBps,
        QuorumBps,
        ClipNorm,
        RevealWindow,
        DpNoiseMultiplier,
        DpClipNorm,
        DpDelta
    }

    /// @notice A round's moving state. The first slot (deadlines, commit counts, status) is all
    /// a commit reads and writes; reveals write the second (reveal count, samples).
    struct RoundState {
        uint40 openedAt;
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint40 aggregationDeadline;
        uint24 commits;
        uint24 expectedCommits;
        RoundStatus status;
        uint24 reveals;
        uint32 sampleCap;
        uint48 totalSamples;
    }

    /// @notice The rules a round runs under, copied from the parameters when it opens, so a
    /// vote executed mid-round only affects later rounds.
    struct RoundConfig {
        uint128 rewardPerRound;
        uint128 aggregatorFee;
        uint64 aggregationParam;
        uint32 minUpdates;
        uint16 quorumBps;
        uint16 trainerSlashBps;
        uint16 outlierSlashBps;
        uint16 aggregatorSlashBps;
        AggregationRule aggregationRule;
        uint64 clipNorm;
        uint32 dpNoiseMultiplier;
        uint64 dpClipNorm;
        uint64 dpDelta;
    }

    /// @notice What a finalized round produced.
    struct RoundResult {
        bytes32 resultKey;
        bytes32 modelDigest;
        uint128 trainerReward;
        uint48 acceptedSamples;
        uint24 rejectedCount;
        string modelCid;
    }

    /// @notice One rejected update inside an attestation. `updateDigest` and `numSamples` must
    /// match the trainer's commitment, so a rejection can only name what was committed.
    struct Rejection {
        address trainer;
        RejectionReason reason;
        bytes32 updateDigest;
        uint64 numSamples;
    }

    /// @notice A trainer's commitment signed for a relayer (EIP-712 `Commitment(uint256 round,
    /// bytes32 seal)` in this contract's domain), with the compact (EIP-2098) signature.
    struct SignedCommitment {
        bytes32 seal;
        bytes32 r;
        bytes32 vs;
    }

    /// @notice The opening of one batched commitment, with its Merkle proof in the batch.
    struct BatchReveal {
        address trainer;
        bytes32 digest;
        string cid;
        uint64 numSamples;
        bytes32 salt;
        bytes32[] proof;
    }

    /// @notice The current global model: round 0 starts from the initial model.
    struct GlobalModel {
        bytes32 digest;
        uint64 version;
        string cid;
    }

    /// @notice Initial parameter values, given at deployment.
    struct InitialParameters {
        uint256 commitWindow;
        uint256 aggregationWindow;
        uint256 minUpdates;
        uint256 aggregationRule;
        uint256 aggregationParam;
        uint256 rewardPerRound;
        uint256 aggregatorFee;
        uint256 sampleCap;
        uint256 trainerSlashBps;
        uint256 outlierSlashBps;
        uint256 aggregatorSlashBps;
        uint256 quorumBps;
        uint256 clipNorm;
        uint256 revealWindow;
        uint256 dpNoiseMultiplier;
        uint256 dpClipNorm;
        uint256 dpDelta;
    }

    // ---------------------------------------------------------------- errors

    /// @notice Thrown when a caller other than the timelock calls a governance function.
    error TaskOnlyGovernance(address caller);
    /// @notice Thrown when a caller other than the registry syncs a trainer.
    error TaskOnlyRegistry(address caller);
    /// @notice Thrown when a round is not in the phase an action needs.
    error TaskUnexpectedPhase(uint256 round, Phase expected, Phase actual);
    /// @notice Thrown when `start` is called twice.
    error TaskAlreadyStarted();
    /// @notice Thrown when starting with fewer active trainers than the minimum updates.
    error TaskNotEnoughTrainers(uint256 active, uint256 required);
    /// @notice Thrown when starting with no active aggregator.
    error TaskNoAggregators();
    /// @notice Thrown when a zero digest is given.
    error TaskZeroDigest();
    /// @notice Thrown when a CID is empty or longer than the limit.
    error TaskInvalidCid(uint256 length);
    /// @notice Thrown when a commit claims zero samples, or more than fit in 64 bits.
    error TaskInvalidSampleCount(uint256 numSamples);
    /// @notice Thrown when the caller is not an active trainer, or became one after the round opened.
    error TaskNotEligibleTrainer(address account);
    /// @notice Thrown on a second commit by the same trainer in a round.
    error TaskAlreadyCommitted(uint256 round, address trainer);
    /// @notice Thrown when a zero seal is committed.
    error TaskZeroSeal();
    /// @notice Thrown when a reveal does not open the trainer's sealed commitment (or there is none).
    error TaskRevealMismatch(uint256 round, address trainer);
    /// @notice Thrown on a second reveal of the same update.
    error TaskAlreadyRevealed(uint256 round, address trainer);
    /// @notice Thrown when a batch of commitments or reveals is empty.
    error TaskEmptyBatch();
    /// @notice Thrown when a reveal names a batch that does not exist.
    error TaskUnknownBatch(uint256 round, uint256 batchIndex);
    /// @notice Thrown when the caller is not an active aggregator.
    error TaskNotAggregator(address account);
    /// @notice Thrown on a second attestation by the same aggregator in a round.
    error TaskAlreadyAttested(uint256 round, address aggregator);
    /// @notice Thrown when rejections are not sorted by strictly increasing trainer address.
    error TaskRejectionsNotSorted();
    /// @notice Thrown when a rejection has reason None.
    error TaskInvalidRejectionReason(address trainer);
    /// @notice Thrown when a rejection does not match the trainer's commitment.
    error TaskRejectionMismatch(address trainer);
    /// @notice Thrown when a reward claim names a round the trainer did not earn in.
    error TaskNoReward(uint256 round, address trainer);
    /// @notice Thrown when a round's reward is claimed twice.
    error TaskRewardAlreadyClaimed(uint256 round, address trainer);
    /// @notice Thrown when there are no fees to withdraw.
    error TaskNoFees(address aggregator);
    /// @notice Thrown when an amount of zero is given.
    error TaskZeroAmount();
    /// @notice Thrown when a parameter value is out of its allowed range.
    error TaskInvalidParameter(Parameter parameter, uint256 value);

    // ---------------------------------------------------------------- events

    /// @notice Emitted when a round opens, with its deadlines.
    event RoundOpened(uint256 indexed round, uint256 commitDeadline, uint256 revealDeadline, uint256 aggregationDeadline, uint256 expectedCommits);
    /// @notice Emitted when a round opens with less than the governed reward and fee, because
    /// together they exceed the share of the unpromised pool one round may pay
    /// (`MAX_ROUND_PAYOUT_BPS`); both were cut in the same proportion.
    /// @param rewardPerRound What the round's trainers share.
    /// @param aggregatorFee What the round's winning aggregators share.
    event RoundPayoutCapped(uint256 indexed round, uint256 rewardPerRound, uint256 aggregatorFee);
    /// @notice Emitted when a trainer commits the seal of its update; nothing about the update is public yet.
    event UpdateCommitted(uint256 indexed round, address indexed trainer, bytes32 seal);
    /// @notice Emitted when a relayer commits a batch of signed commitments: the Merkle root of
    /// their leaves keccak256(keccak256(abi.encode(trainer, seal))), in calldata order.
    event BatchCommitted(uint256 indexed round, uint256 indexed batchIndex, bytes32 root, uint256 count, address relayer);
    /// @notice Emitted when a sealed update is revealed. The CID locates the bytes; the digest binds them.
    event UpdateRevealed(uint256 indexed round, address indexed trainer, bytes32 digest, string cid, uint256 numSamples);
    /// @notice Emitted when an aggregator attests a round's result.
    event AttestationSubmitted(uint256 indexed round, address indexed aggregator, bytes32 indexed resultKey, bytes32 modelDigest, string modelCid, uint256 rejectedCount);
    /// @notice Emitted when a round reaches quorum and its model becomes the global model.
    event RoundFinalized(uint256 indexed round, bytes32 indexed resultKey, bytes32 modelDigest, string modelCid, uint256 acceptedCount, uint256 rejectedCount, uint256 trainerReward);
    /// @notice Emitted when an update is rejected by the finalized result.
    event UpdateRejected(uint256 indexed round, address indexed trainer, RejectionReason reason);
    /// @notice Emitted when a stale round is closed without a model change.
    event RoundClosed(uint256 indexed round, uint256 commits);
    /// @notice Emitted when a trainer claims its reward for a round.
    event RewardClaimed(uint256 indexed round, address indexed trainer, uint256 amount);
    /// @notice Emitted when an aggregator is credited its share of a round's fee.
    event FeeCredited(uint256 indexed round, address indexed aggregator, uint256 amount);
    /// @notice Emitted when an aggregator withdraws its fees.
    event FeesWithdrawn(address indexed aggregator, uint256 amount);
    /// @notice Emitted when someone adds tokens to the reward pool.
    event RewardsFunded(address indexed funder, uint256 amount);
    /// @notice Emitted when the registry syncs a trainer's eligibility.
    event TrainerSynced(address indexed trainer, uint256 activeSince);
    /// @notice Emitted when governance changes a parameter.
    event ParameterChanged(Parameter indexed parameter, uint256 oldValue, uint256 newValue);

    // ---------------------------------------------------------------- functions

    /// @notice Opens round 0. Anyone, once, when enough trainers and an aggregator are active.
    function start() external;

    /// @notice Commits the caller's sealed update for `round`:
    /// `seal` = keccak256(abi.encode(trainer, digest, numSamples, salt)) where `digest` is the
    /// sha256 of the update file, `numSamples` the local samples it was trained on and `salt` a
    /// secret random value. The file stays private until the commit window closes, so nobody
    /// can copy an update into their own commitment.
    function commitUpdate(uint256 round, bytes32 seal) external;

    /// @notice Commits many trainers' seals for `round` in one transaction (any relayer). Each
    /// entry is signed by its trainer, so a relayer can neither forge nor alter one; the batch
    /// stores one Merkle root, and every leaf is provable from it. Reverts as a whole if any
    /// entry is invalid (relayers simulate first).
    function commitBatch(uint256 round, SignedCommitment[] calldata commitments) external;

    /// @notice Opens batched commitments of `round` from batch `batchIndex`, each with its proof.
    function revealBatch(uint256 round, uint256 batchIndex, BatchReveal[] calldata reveals) external;

    /// @notice Opens `trainer`'s seal in `round` once the commit window has closed: the update's
    /// `digest`, its IPFS `cid` (the file must be published by now) and `numSamples`, with the
    /// `salt`. Anyone holding the opening may submit it (e.g. a relayer).
    function revealUpdate(
        uint256 round,
        address trainer,
        bytes32 digest,
        string calldata cid,
        uint256 numSamples,
        bytes32 salt
    ) external;

    /// @notice Attests the result of `round`: the aggregated model and the rejected updates,
    /// sorted by trainer. Finalizes the round when this result reaches the quorum.
    function attest(uint256 round, bytes32 modelDigest, string calldata modelCid, Rejection[] calldata rejections) external;

    /// @notice Closes the current round without a model change once it is stale; opens the next.
    function closeStaleRound() external;

    /// @notice Pays the caller's reward for a finalized `round` in which its update was accepted.
    function claimReward(uint256 round, bytes32 digest, uint256 numSamples) external;

    /// @notice Pays the caller's credited aggregator fees.
    function withdrawFees() external;

    /// @notice Adds `amount` (approved beforehand) to the reward pool.
    function fundRewards(uint256 amount) external;

    /// @notice Changes a parameter. Only the timelock.
    function setParameter(Parameter parameter, uint256 value) external;

    /// @notice Records whether `trainer` may commit and since when (0: it may not). Only the
    /// registry calls it, on every change of a trainer's status, so a commit reads one local slot.
    function syncTrainer(address trainer, uint256 activeSince) external;

    /// @notice Length of a round from opening to the aggregation deadline, in seconds.
    function roundDuration() external view returns (uint256);
}
