// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {IFederatedTask} from "./interfaces/IFederatedTask.sol";
import {IStakingRegistry} from "./interfaces/IStakingRegistry.sol";

/// @title FederatedTask
/// @notice Runs the rounds of one federated learning task. Trainers commit a seal of their
/// update (commit phase), then reveal its sha256 digest and IPFS CID once the commit window has
/// closed (reveal phase), so nobody can copy another trainer's update into their own
/// commitment; staked aggregators attest the aggregated model;
/// the round finalizes when attestations of one result reach the quorum share of aggregator
/// stake. Accepted trainers then claim rewards in proportion to their (capped) samples,
/// provably bad updates and dissenting aggregators are slashed, and the next round opens.
/// @dev A commit writes only per-trainer slots reused every round (the last committed round
/// and the seal), so it costs no new storage after a trainer's first round; the reveal stores
/// keccak256(digest, numSamples) for the round, and claims and rejections re-supply digest and
/// samples against it. Digest, CID and sample count are in the `UpdateRevealed` event.
contract FederatedTask is IFederatedTask, ReentrancyGuard, EIP712 {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    uint256 private constant _BPS = 10_000;
    uint256 private constant _MAX_CID_LENGTH = 128;
    /// @notice The highest slash rate governance may set (trainer, outlier, aggregator), in
    /// basis points: a captured vote cannot take more than half of anyone's stake per offence.
    uint256 public constant MAX_SLASH_BPS = 5_000;
    /// @notice The most a round may pay (trainer reward and aggregator fee together), in basis
    /// points of the pool not yet promised when the round opens. Whatever the governed reward
    /// and fee, n rounds leave at least 0.99^n of the pool: paying out half takes 69 rounds.
    uint256 public constant MAX_ROUND_PAYOUT_BPS = 100;
    /// @notice EIP-712 type of a commitment a trainer signs for a relayer.
    bytes32 public constant COMMITMENT_TYPEHASH = keccak256("Commitment(uint256 round,bytes32 seal)");
    /// @notice Slash reason code recorded for an aggregator that attested a losing result.
    bytes32 public constant SLASH_REASON_ATTESTATION_MISMATCH = bytes32(uint256(0xA0));

    /// @notice The staking registry (roles, stake, slashing).
    IStakingRegistry public immutable registry;
    /// @notice The reward token (the staking token).
    IERC20 public immutable rewardToken;
    /// @notice The governance timelock: the only address that changes parameters.
    address public immutable timelock;
    /// @notice Hash of the model specification every update must match.
    bytes32 public immutable modelSpecHash;
    /// @notice IPFS CID of the model specification's canonical JSON (whose sha256 is
    /// `modelSpecHash`), so anyone can read the spec from the chain; empty if it was not pinned.
    string public modelSpecCid;

    uint256 private _currentRound;
    uint256 private _reservedRewards;
    GlobalModel private _globalModel;
    mapping(Parameter parameter => uint256) private _parameters;
    /// One slot per trainer: since when it may commit (0: it may not) and the round (plus one)
    /// of its last commitment, by either path.
    struct TrainerSlot {
        uint40 activeSince;
        uint64 committedRoundPlusOne;
    }

    mapping(address trainer => TrainerSlot) private _trainers;
    /// A trainer's last single-path seal, tagged with its round: keccak256(round, seal). Reused
    /// from round to round, so a commit writes no new storage slot once a trainer has committed.
    mapping(address trainer => bytes32 taggedSeal) private _seals;
    mapping(uint256 round => bytes32[] roots) private _batchRoots;
    mapping(uint256 round => RoundState) private _rounds;
    mapping(uint256 round => RoundConfig) private _configs;
    mapping(uint256 round => RoundResult) private _results;
    mapping(uint256 round => mapping(address trainer => bytes32 commitmentHash)) private _commitments;
    mapping(uint256 round => mapping(address aggregator => bytes32 resultKey)) private _attestations;
    mapping(uint256 round => address[]) private _attesters;
    mapping(uint256 round => mapping(address trainer => RejectionReason)) private _rejections;
    mapping(uint256 round => mapping(address trainer => bool)) private _rewardClaimed;
    mapping(address aggregator => uint256) private _fees;

    /// @param registry_ The staking registry.
    /// @param timelock_ The governance timelock.
    /// @param initialModelDigest sha256 of the initial model file.
    /// @param initialModelCid IPFS CID of the initial model file.
    /// @param modelSpecHash_ Hash of the model specification (architecture, shapes, dtypes).
    /// @param modelSpecCid_ IPFS CID of the specification's canonical JSON (may be empty).
    /// @param initial Initial parameter values, validated like governance changes.
    constructor(
        IStakingRegistry registry_,
        address timelock_,
        bytes32 initialModelDigest,
        string memory initialModelCid,
        bytes32 modelSpecHash_,
        string memory modelSpecCid_,
        InitialParameters memory initial
    ) EIP712("fedledger", "1") {
        if (initialModelDigest == bytes32(0)) revert TaskZeroDigest();
        uint256 cidLength = bytes(initialModelCid).length;
        if (cidLength == 0 || cidLength > _MAX_CID_LENGTH) revert TaskInvalidCid(cidLength);
        if (bytes(modelSpecCid_).length > _MAX_CID_LENGTH) revert TaskInvalidCid(bytes(modelSpecCid_).length);
        registry = registry_;
        rewardToken = registry_.stakeToken();
        timelock = timelock_;
        modelSpecHash = modelSpecHash_;
        modelSpecCid = modelSpecCid_;
        _globalModel = GlobalModel({digest: initialModelDigest, version: 0, cid: initialModelCid});

        _setParameter(Parameter.CommitWindow, initial.commitWindow);
        _setParameter(Parameter.AggregationWindow, initial.aggregationWindow);
        _setParameter(Parameter.MinUpdates, initial.minUpdates);
        _setParameter(Parameter.AggregationRule, initial.aggregationRule);
        _setParameter(Parameter.AggregationParam, initial.aggregationParam);
        _setParameter(Parameter.RewardPerRound, initial.rewardPerRound);
        _setParameter(Parameter.AggregatorFee, initial.aggregatorFee);
        _setParameter(Parameter.SampleCap, initial.sampleCap);
        _setParameter(Parameter.TrainerSlashBps, initial.trainerSlashBps);
        _setParameter(Parameter.OutlierSlashBps, initial.outlierSlashBps);
        _setParameter(Parameter.AggregatorSlashBps, initial.aggregatorSlashBps);
        _setParameter(Parameter.QuorumBps, initial.quorumBps);
        _setParameter(Parameter.ClipNorm, initial.clipNorm);
        _setParameter(Parameter.RevealWindow, initial.revealWindow);
        _setParameter(Parameter.DpNoiseMultiplier, initial.dpNoiseMultiplier);
        _setParameter(Parameter.DpClipNorm, initial.dpClipNorm);
        _setParameter(Parameter.DpDelta, initial.dpDelta);
    }

    // ---------------------------------------------------------------- modifiers

    modifier onlyGovernance() {
        _checkGovernance();
        _;
    }

    modifier inPhase(uint256 round, Phase expected) {
        _checkPhase(round, expected);
        _;
    }

    // ---------------------------------------------------------------- rounds

    /// @inheritdoc IFederatedTask
    function start() external {
        if (_rounds[0].status != RoundStatus.None) revert TaskAlreadyStarted();
        uint256 trainers = registry.activeCount(IStakingRegistry.Role.Trainer);
        uint256 required = _parameters[Parameter.MinUpdates];
        if (trainers < required) revert TaskNotEnoughTrainers(trainers, required);
        if (registry.activeCount(IStakingRegistry.Role.Aggregator) == 0) revert TaskNoAggregators();
        _openRound(0);
    }

    /// @inheritdoc IFederatedTask
    function commitUpdate(uint256 round, bytes32 seal) external {
        // Every field read here lives in the state's first slot: one cold read.
        RoundState storage state = _rounds[round];
        uint24 commits = state.commits;
        // Hot path: an open round before its deadline with commits still expected is in Commit.
        // Anything else takes the full phase check, which reverts with the actual phase.
        bool surelyCommit = state.status == RoundStatus.Open && block.timestamp < state.commitDeadline
            && commits < state.expectedCommits;
        if (!surelyCommit) _checkPhase(round, Phase.Commit);
        if (seal == bytes32(0)) revert TaskZeroSeal();
        _recordCommit(round, state.openedAt, msg.sender);
        _seals[msg.sender] = _taggedSeal(round, seal);
        state.commits = commits + 1;
        emit UpdateCommitted(round, msg.sender, seal);
    }

    /// @inheritdoc IFederatedTask
    function commitBatch(uint256 round, SignedCommitment[] calldata commitments) external {
        uint256 count = commitments.length;
        if (count == 0) revert TaskEmptyBatch();
        _checkPhase(round, Phase.Commit);
        RoundState storage state = _rounds[round];
        uint256 openedAt = state.openedAt;
        bytes32[] memory leaves = new bytes32[](count);
        for (uint256 i = 0; i < count; ++i) {
            leaves[i] = _commitSigned(round, openedAt, commitments[i]);
        }
        bytes32 root = _merkleRoot(leaves);
        _batchRoots[round].push(root);
        state.commits = (state.commits + count).toUint24();
        emit BatchCommitted(round, _batchRoots[round].length - 1, root, count, msg.sender);
    }

    /// @inheritdoc IFederatedTask
    function revealBatch(uint256 round, uint256 batchIndex, BatchReveal[] calldata reveals)
        external
        inPhase(round, Phase.Reveal)
    {
        if (reveals.length == 0) revert TaskEmptyBatch();
        bytes32[] storage roots = _batchRoots[round];
        if (batchIndex >= roots.length) revert TaskUnknownBatch(round, batchIndex);
        bytes32 root = roots[batchIndex];
        RoundState storage state = _rounds[round];
        uint256 sampleCap = state.sampleCap;
        uint256 samples = 0;
        for (uint256 i = 0; i < reveals.length; ++i) {
            samples += _revealBatched(round, root, reveals[i], sampleCap);
        }
        state.reveals += reveals.length.toUint24();
        state.totalSamples += samples.toUint48();
    }

    /// @inheritdoc IFederatedTask
    function revealUpdate(
        uint256 round,
        address trainer,
        bytes32 digest,
        string calldata cid,
        uint256 numSamples,
        bytes32 salt
    ) external inPhase(round, Phase.Reveal) {
        _checkOpening(digest, cid, numSamples);
        if (_commitments[round][trainer] != bytes32(0)) revert TaskAlreadyRevealed(round, trainer);
        // The tag binds the stored seal to its round: an opening of an earlier round never fits.
        if (_seals[trainer] != _taggedSeal(round, sealOf(trainer, digest, numSamples, salt))) {
            revert TaskRevealMismatch(round, trainer);
        }

        _commitments[round][trainer] = commitmentHash(digest, numSamples);
        RoundState storage state = _rounds[round];
        state.reveals += 1;
        state.totalSamples += uint48(_capped(numSamples, state.sampleCap));
        emit UpdateRevealed(round, trainer, digest, cid, numSamples);
    }

    /// @inheritdoc IFederatedTask
    function attest(uint256 round, bytes32 modelDigest, string calldata modelCid, Rejection[] calldata rejections)
        external
        nonReentrant
        inPhase(round, Phase.Aggregation)
    {
        if (modelDigest == bytes32(0)) revert TaskZeroDigest();
        if (bytes(modelCid).length == 0 || bytes(modelCid).length > _MAX_CID_LENGTH) {
            revert TaskInvalidCid(bytes(modelCid).length);
        }
        (bool active,) = registry.activeRole(msg.sender, IStakingRegistry.Role.Aggregator);
        if (!active) revert TaskNotAggregator(msg.sender);
        if (_attestations[round][msg.sender] != bytes32(0)) revert TaskAlreadyAttested(round, msg.sender);
        _checkRejections(round, rejections);

        bytes32 resultKey = keccak256(abi.encode(round, modelDigest, rejections));
        _attestations[round][msg.sender] = resultKey;
        _attesters[round].push(msg.sender);
        emit AttestationSubmitted(round, msg.sender, resultKey, modelDigest, modelCid, rejections.length);

        // Support and total are both measured now: an attester that has since unstaked or been
        // slashed out counts in neither, so leaving after attesting cannot shrink the quorum.
        uint256 totalStake = registry.totalActiveStake(IStakingRegistry.Role.Aggregator);
        if (support(round, resultKey) * _BPS >= uint256(_configs[round].quorumBps) * totalStake) {
            _finalize(round, resultKey, modelDigest, modelCid, rejections);
        }
    }

    /// @inheritdoc IFederatedTask
    function closeStaleRound() external {
        uint256 round = _currentRound;
        _checkPhase(round, Phase.Stale);
        RoundState storage state = _rounds[round];
        state.status = RoundStatus.Closed;
        emit RoundClosed(round, state.commits);
        _openRound(round + 1);
    }

    /// @inheritdoc IFederatedTask
    function syncTrainer(address trainer, uint256 activeSince) external {
        if (msg.sender != address(registry)) revert TaskOnlyRegistry(msg.sender);
        _trainers[trainer].activeSince = uint40(activeSince);
        emit TrainerSynced(trainer, activeSince);
    }

    // ---------------------------------------------------------------- payments

    /// @inheritdoc IFederatedTask
    function claimReward(uint256 round, bytes32 digest, uint256 numSamples)
        external
        nonReentrant
        inPhase(round, Phase.Finalized)
    {
        bytes32 stored = _commitments[round][msg.sender];
        if (stored == bytes32(0) || stored != commitmentHash(digest, numSamples)) revert TaskNoReward(round, msg.sender);
        if (_rejections[round][msg.sender] != RejectionReason.None) revert TaskNoReward(round, msg.sender);
        if (_rewardClaimed[round][msg.sender]) revert TaskRewardAlreadyClaimed(round, msg.sender);

        uint256 amount = rewardOf(round, numSamples);
        _rewardClaimed[round][msg.sender] = true;
        _reservedRewards -= amount;
        emit RewardClaimed(round, msg.sender, amount);

        if (amount != 0) rewardToken.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IFederatedTask
    function withdrawFees() external nonReentrant {
        uint256 amount = _fees[msg.sender];
        if (amount == 0) revert TaskNoFees(msg.sender);
        _fees[msg.sender] = 0;
        _reservedRewards -= amount;
        emit FeesWithdrawn(msg.sender, amount);

        rewardToken.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IFederatedTask
    function fundRewards(uint256 amount) external nonReentrant {
        if (amount == 0) revert TaskZeroAmount();
        emit RewardsFunded(msg.sender, amount);
        rewardToken.safeTransferFrom(msg.sender, address(this), amount);
    }

    // ---------------------------------------------------------------- governance

    /// @inheritdoc IFederatedTask
    function setParameter(Parameter parameter_, uint256 value) external onlyGovernance {
        _setParameter(parameter_, value);
    }

    // ---------------------------------------------------------------- views

    /// @notice The round now open (or the last one, if the task has not started: round 0).
    function currentRound() external view returns (uint256) {
        return _currentRound;
    }

    /// @notice The phase of `round` now.
    function phase(uint256 round) public view returns (Phase) {
        RoundState storage state = _rounds[round];
        RoundStatus status = state.status;
        if (status == RoundStatus.None) return Phase.Inactive;
        if (status == RoundStatus.Finalized) return Phase.Finalized;
        if (status == RoundStatus.Closed) return Phase.Closed;
        bool beforeDeadline = block.timestamp < state.commitDeadline;
        // The commit window closes early once every trainer expected at opening has committed.
        if (beforeDeadline && state.commits < state.expectedCommits) return Phase.Commit;
        uint256 minUpdates = _configs[round].minUpdates;
        if (state.commits < minUpdates) return beforeDeadline ? Phase.Commit : Phase.Stale;
        // The reveal window closes early once every committed update is revealed.
        if (state.reveals < state.commits && block.timestamp < state.revealDeadline) return Phase.Reveal;
        if (state.reveals < minUpdates) return Phase.Stale;
        if (block.timestamp < state.aggregationDeadline) return Phase.Aggregation;
        return Phase.Stale;
    }

    /// @notice Since when `trainer` may commit (rounds opened at or after it); 0 if it may not.
    function trainerActiveSince(address trainer) external view returns (uint256) {
        return _trainers[trainer].activeSince;
    }

    /// @notice The stored state of `round`.
    function roundState(uint256 round) external view returns (RoundState memory) {
        return _rounds[round];
    }

    /// @notice The rules `round` runs under.
    function roundConfig(uint256 round) external view returns (RoundConfig memory) {
        return _configs[round];
    }

    /// @notice The result of a finalized `round`.
    function roundResult(uint256 round) external view returns (RoundResult memory) {
        return _results[round];
    }

    /// @notice The current global model.
    function globalModel() external view returns (GlobalModel memory) {
        return _globalModel;
    }

    /// @notice The revealed commitment of `trainer` in `round`, `commitmentHash(digest,
    /// numSamples)`; zero until it is revealed.
    function commitment(uint256 round, address trainer) external view returns (bytes32) {
        return _commitments[round][trainer];
    }

    /// @notice The round of `trainer`'s latest commitment (by either path), if it ever committed.
    /// Earlier commitments are in the `UpdateCommitted` and `BatchCommitted` events.
    function lastCommittedRound(address trainer) external view returns (bool committed, uint256 round) {
        uint256 plusOne = _trainers[trainer].committedRoundPlusOne;
        return (plusOne != 0, plusOne == 0 ? 0 : plusOne - 1);
    }

    /// @notice The seal of `trainer`'s last single-path commit, tagged with its round:
    /// keccak256(abi.encode(round, seal)).
    function taggedSealOf(address trainer) external view returns (bytes32) {
        return _seals[trainer];
    }

    /// @notice What a commitment stores once revealed: keccak256(abi.encode(digest, numSamples)).
    function commitmentHash(bytes32 digest, uint256 numSamples) public pure returns (bytes32) {
        return keccak256(abi.encode(digest, numSamples));
    }

    /// @notice The seal a trainer commits: keccak256(abi.encode(trainer, digest, numSamples, salt)).
    /// Binding the trainer means a copied seal can never be opened by the copier.
    function sealOf(address trainer, bytes32 digest, uint256 numSamples, bytes32 salt) public pure returns (bytes32) {
        return keccak256(abi.encode(trainer, digest, numSamples, salt));
    }

    /// @notice The EIP-712 digest a trainer signs to have a relayer commit `seal` in `round`.
    function commitmentTypedDataHash(uint256 round, bytes32 seal) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(COMMITMENT_TYPEHASH, round, seal)));
    }

    /// @notice A batch's Merkle leaf: keccak256(keccak256(abi.encode(trainer, seal))). Hashed
    /// twice so a leaf can never pass for an inner node.
    function batchLeaf(address trainer, bytes32 seal) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(trainer, seal))));
    }

    /// @notice The Merkle roots of `round`'s committed batches, in order.
    function batchRoots(uint256 round) external view returns (bytes32[] memory) {
        return _batchRoots[round];
    }

    /// @notice The result key `aggregator` attested in `round`, zero if none.
    function attestation(uint256 round, address aggregator) external view returns (bytes32) {
        return _attestations[round][aggregator];
    }

    /// @notice The aggregators that attested in `round`, in order.
    function attesters(uint256 round) external view returns (address[] memory) {
        return _attesters[round];
    }

    /// @notice Aggregator stake behind `resultKey` in `round` now: the current stake of the
    /// attesters of that result that are still active aggregators.
    function support(uint256 round, bytes32 resultKey) public view returns (uint256 stake) {
        address[] storage roundAttesters = _attesters[round];
        for (uint256 i = 0; i < roundAttesters.length; ++i) {
            address aggregator = roundAttesters[i];
            if (_attestations[round][aggregator] != resultKey) continue;
            IStakingRegistry.Participant memory p = registry.participant(aggregator);
            if (p.active && p.role == IStakingRegistry.Role.Aggregator) stake += p.stake;
        }
    }

    /// @notice Why `trainer`'s update was rejected in a finalized `round` (None if accepted).
    function rejection(uint256 round, address trainer) external view returns (RejectionReason) {
        return _rejections[round][trainer];
    }

    /// @notice Whether `trainer` claimed its reward for `round`.
    function rewardClaimed(uint256 round, address trainer) external view returns (bool) {
        return _rewardClaimed[round][trainer];
    }

    /// @notice The reward an accepted update of `numSamples` earns in finalized `round`.
    function rewardOf(uint256 round, uint256 numSamples) public view returns (uint256) {
        RoundResult storage result = _results[round];
        if (result.acceptedSamples == 0) return 0;
        return uint256(result.trainerReward) * _capped(numSamples, _rounds[round].sampleCap) / result.acceptedSamples;
    }

    /// @notice Fees credited to `aggregator` and not yet withdrawn.
    function feesOf(address aggregator) external view returns (uint256) {
        return _fees[aggregator];
    }

    /// @notice Tokens owed to trainers and aggregators and not yet paid.
    function reservedRewards() external view returns (uint256) {
        return _reservedRewards;
    }

    /// @notice Tokens in the pool not yet promised to anyone.
    function availableRewards() public view returns (uint256) {
        return rewardToken.balanceOf(address(this)) - _reservedRewards;
    }

    /// @notice The current value of a parameter.
    function parameter(Parameter parameter_) external view returns (uint256) {
        return _parameters[parameter_];
    }

    /// @inheritdoc IFederatedTask
    function roundDuration() public view returns (uint256) {
        return _parameters[Parameter.CommitWindow] + _parameters[Parameter.RevealWindow]
            + _parameters[Parameter.AggregationWindow];
    }

    // ---------------------------------------------------------------- internal

    function _openRound(uint256 round) private {
        uint256 commitDeadline = block.timestamp + _parameters[Parameter.CommitWindow];
        uint256 revealDeadline = commitDeadline + _parameters[Parameter.RevealWindow];
        uint256 aggregationDeadline = revealDeadline + _parameters[Parameter.AggregationWindow];
        uint256 expected = registry.activeCount(IStakingRegistry.Role.Trainer);
        (uint256 reward, uint256 fee) = _roundPayout(round);
        _currentRound = round;
        _rounds[round] = RoundState({
            openedAt: uint40(block.timestamp),
            commitDeadline: commitDeadline.toUint40(),
            revealDeadline: revealDeadline.toUint40(),
            aggregationDeadline: aggregationDeadline.toUint40(),
            commits: 0,
            expectedCommits: expected.toUint24(),
            status: RoundStatus.Open,
            reveals: 0,
            sampleCap: uint32(_parameters[Parameter.SampleCap]),
            totalSamples: 0
        });
        // Ranges were checked when the parameters were set, so these casts cannot truncate.
        _configs[round] = RoundConfig({
            rewardPerRound: uint128(reward),
            aggregatorFee: uint128(fee),
            aggregationParam: uint64(_parameters[Parameter.AggregationParam]),
            minUpdates: uint32(_parameters[Parameter.MinUpdates]),
            quorumBps: uint16(_parameters[Parameter.QuorumBps]),
            trainerSlashBps: uint16(_parameters[Parameter.TrainerSlashBps]),
            outlierSlashBps: uint16(_parameters[Parameter.OutlierSlashBps]),
            aggregatorSlashBps: uint16(_parameters[Parameter.AggregatorSlashBps]),
            aggregationRule: AggregationRule(_parameters[Parameter.AggregationRule]),
            clipNorm: uint64(_parameters[Parameter.ClipNorm]),
            dpNoiseMultiplier: uint32(_parameters[Parameter.DpNoiseMultiplier]),
            dpClipNorm: uint64(_parameters[Parameter.DpClipNorm]),
            dpDelta: uint64(_parameters[Parameter.DpDelta])
        });
        emit RoundOpened(round, commitDeadline, revealDeadline, aggregationDeadline, expected);
    }

    /// The reward and fee of a round opening now: the governed values, cut in proportion when
    /// together they exceed `MAX_ROUND_PAYOUT_BPS` of the unpromised pool. Nothing else is
    /// reserved before this round finalizes, so the round can always pay what is fixed here.
    function _roundPayout(uint256 round) private returns (uint256 reward, uint256 fee) {
        reward = _parameters[Parameter.RewardPerRound];
        fee = _parameters[Parameter.AggregatorFee];
        uint256 limit = availableRewards() * MAX_ROUND_PAYOUT_BPS / _BPS;
        uint256 total = reward + fee;
        if (total <= limit) return (reward, fee);
        reward = Math.mulDiv(reward, limit, total);
        fee = Math.mulDiv(fee, limit, total);
        emit RoundPayoutCapped(round, reward, fee);
    }

    /// Checks one signed commitment of a batch, records its trainer's batch commit and returns
    /// its Merkle leaf.
    function _commitSigned(uint256 round, uint256 openedAt, SignedCommitment calldata signed)
        private
        returns (bytes32)
    {
        if (signed.seal == bytes32(0)) revert TaskZeroSeal();
        address trainer = ECDSA.recover(commitmentTypedDataHash(round, signed.seal), signed.r, signed.vs);
        _recordCommit(round, openedAt, trainer);
        return batchLeaf(trainer, signed.seal);
    }

    /// Checks that `trainer` may commit in `round` (active since the round opened, not yet
    /// committed in it) and records that it did.
    function _recordCommit(uint256 round, uint256 openedAt, address trainer) private {
        TrainerSlot storage slot = _trainers[trainer];
        uint256 activeSince = slot.activeSince;
        // Trainers that joined after the round opened wait for the next one: the round's
        // expected commit count, which can close the commit window early, was fixed at opening.
        if (activeSince == 0 || activeSince > openedAt) revert TaskNotEligibleTrainer(trainer);
        if (slot.committedRoundPlusOne == round + 1) revert TaskAlreadyCommitted(round, trainer);
        slot.committedRoundPlusOne = uint64(round + 1);
    }

    function _taggedSeal(uint256 round, bytes32 seal) private pure returns (bytes32) {
        return keccak256(abi.encode(round, seal));
    }

    /// Opens one batched commitment against the batch's `root`; returns its capped samples.
    function _revealBatched(uint256 round, bytes32 root, BatchReveal calldata opened, uint256 sampleCap)
        private
        returns (uint256)
    {
        _checkOpening(opened.digest, opened.cid, opened.numSamples);
        bytes32 seal = sealOf(opened.trainer, opened.digest, opened.numSamples, opened.salt);
        if (!MerkleProof.verifyCalldata(opened.proof, root, batchLeaf(opened.trainer, seal))) {
            revert TaskRevealMismatch(round, opened.trainer);
        }
        if (_commitments[round][opened.trainer] != bytes32(0)) revert TaskAlreadyRevealed(round, opened.trainer);
        _commitments[round][opened.trainer] = commitmentHash(opened.digest, opened.numSamples);
        emit UpdateRevealed(round, opened.trainer, opened.digest, opened.cid, opened.numSamples);
        return _capped(opened.numSamples, sampleCap);
    }

    function _checkOpening(bytes32 digest, string calldata cid, uint256 numSamples) private pure {
        if (digest == bytes32(0)) revert TaskZeroDigest();
        if (bytes(cid).length == 0 || bytes(cid).length > _MAX_CID_LENGTH) revert TaskInvalidCid(bytes(cid).length);
        if (numSamples == 0 || numSamples > type(uint64).max) revert TaskInvalidSampleCount(numSamples);
    }

    /// The Merkle root over `leaves` with OpenZeppelin's commutative pair hash (what
    /// MerkleProof verifies): each level pairs neighbours, an odd last node moves up unchanged.
    /// Overwrites `leaves`.
    function _merkleRoot(bytes32[] memory leaves) private pure returns (bytes32) {
        uint256 width = leaves.length;
        while (width > 1) {
            uint256 next = 0;
            for (uint256 i = 0; i < width; i += 2) {
                leaves[next++] = i + 1 < width ? Hashes.commutativeKeccak256(leaves[i], leaves[i + 1]) : leaves[i];
            }
            width = next;
        }
        return leaves[0];
    }

    function _checkRejections(uint256 round, Rejection[] calldata rejections) private view {
        address previous = address(0);
        for (uint256 i = 0; i < rejections.length; ++i) {
            Rejection calldata rejected = rejections[i];
            // Strict order makes the result key canonical and rules out duplicates.
            if (rejected.trainer <= previous) revert TaskRejectionsNotSorted();
            previous = rejected.trainer;
            if (rejected.reason == RejectionReason.None) revert TaskInvalidRejectionReason(rejected.trainer);
            bytes32 stored = _commitments[round][rejected.trainer];
            if (stored == bytes32(0) || stored != commitmentHash(rejected.updateDigest, rejected.numSamples)) {
                revert TaskRejectionMismatch(rejected.trainer);
            }
        }
    }

    function _finalize(
        uint256 round,
        bytes32 resultKey,
        bytes32 modelDigest,
        string calldata modelCid,
        Rejection[] calldata rejections
    ) private {
        RoundState storage state = _rounds[round];
        RoundConfig memory config = _configs[round];
        state.status = RoundStatus.Finalized;

        uint256 rejectedSamples = 0;
        for (uint256 i = 0; i < rejections.length; ++i) {
            Rejection calldata rejected = rejections[i];
            _rejections[round][rejected.trainer] = rejected.reason;
            rejectedSamples += _capped(rejected.numSamples, state.sampleCap);
            emit UpdateRejected(round, rejected.trainer, rejected.reason);
            _slashShare(rejected.trainer, _slashBpsFor(rejected.reason, config), bytes32(uint256(rejected.reason)));
        }
        uint256 acceptedSamples = state.totalSamples - rejectedSamples;
        uint256 trainerReward = acceptedSamples == 0 ? 0 : _reserve(config.rewardPerRound);

        _results[round] = RoundResult({
            resultKey: resultKey,
            modelDigest: modelDigest,
            trainerReward: uint128(trainerReward),
            acceptedSamples: uint48(acceptedSamples),
            rejectedCount: uint24(rejections.length),
            modelCid: modelCid
        });
        _globalModel = GlobalModel({digest: modelDigest, version: _globalModel.version + 1, cid: modelCid});
        _settleAggregators(round, resultKey, config);
        emit RoundFinalized(
            round, resultKey, modelDigest, modelCid, state.reveals - rejections.length, rejections.length, trainerReward
        );
        _openRound(round + 1);
    }

    /// Pays the aggregators that attested the winning result an equal share of the fee and
    /// slashes those that attested anything else. Silent aggregators simply earn nothing.
    function _settleAggregators(uint256 round, bytes32 resultKey, RoundConfig memory config) private {
        address[] storage roundAttesters = _attesters[round];
        uint256 winners = 0;
        for (uint256 i = 0; i < roundAttesters.length; ++i) {
            if (_attestations[round][roundAttesters[i]] == resultKey) ++winners;
        }
        // `winners` >= 1: the attestation that reached the quorum is among them.
        uint256 fee = _reserve(config.aggregatorFee);
        uint256 share = fee / winners;
        _reservedRewards -= fee - share * winners; // division dust stays in the pool
        for (uint256 i = 0; i < roundAttesters.length; ++i) {
            address aggregator = roundAttesters[i];
            if (_attestations[round][aggregator] == resultKey) {
                _fees[aggregator] += share;
                emit FeeCredited(round, aggregator, share);
            } else {
                _slashShare(aggregator, config.aggregatorSlashBps, SLASH_REASON_ATTESTATION_MISMATCH);
            }
        }
    }

    /// Reserves up to `amount` from the unpromised pool and returns what was reserved.
    function _reserve(uint256 amount) private returns (uint256) {
        uint256 available = availableRewards();
        uint256 reserved = amount < available ? amount : available;
        _reservedRewards += reserved;
        return reserved;
    }

    function _slashShare(address account, uint256 bps, bytes32 reason) private {
        if (bps == 0) return;
        uint256 amount = registry.slashableStake(account) * bps / _BPS;
        if (amount != 0) registry.slash(account, amount, reason);
    }

    function _slashBpsFor(RejectionReason reason, RoundConfig memory config) private pure returns (uint256) {
        if (reason == RejectionReason.Outlier) return config.outlierSlashBps;
        if (reason == RejectionReason.Unavailable || reason == RejectionReason.Duplicate) return 0;
        return config.trainerSlashBps;
    }

    function _capped(uint256 numSamples, uint256 cap) private pure returns (uint256) {
        return numSamples < cap ? numSamples : cap;
    }

    function _checkPhase(uint256 round, Phase expected) private view {
        Phase actual = phase(round);
        if (actual != expected) revert TaskUnexpectedPhase(round, expected, actual);
    }

    function _checkGovernance() private view {
        if (msg.sender != timelock) revert TaskOnlyGovernance(msg.sender);
    }

    function _setParameter(Parameter parameter_, uint256 value) private {
        if (!_isValid(parameter_, value)) revert TaskInvalidParameter(parameter_, value);
        uint256 old = _parameters[parameter_];
        _parameters[parameter_] = value;
        emit ParameterChanged(parameter_, old, value);
    }

    function _isValid(Parameter parameter_, uint256 value) private view returns (bool) {
        if (
            parameter_ == Parameter.CommitWindow || parameter_ == Parameter.RevealWindow
                || parameter_ == Parameter.AggregationWindow
        ) {
            if (value == 0 || value > 30 days) return false;
            uint256 others = roundDuration() - _parameters[parameter_];
            // Stake must stay slashable for a whole round: unbonding outlasts the round.
            return value + others < registry.parameter(IStakingRegistry.Parameter.UnbondingPeriod);
        }
        if (parameter_ == Parameter.MinUpdates) return value != 0 && value <= type(uint24).max;
        if (parameter_ == Parameter.AggregationRule) return value <= uint256(type(AggregationRule).max);
        if (
            parameter_ == Parameter.AggregationParam || parameter_ == Parameter.ClipNorm
                || parameter_ == Parameter.DpClipNorm
        ) {
            return value <= type(uint64).max;
        }
        if (parameter_ == Parameter.DpNoiseMultiplier) return value <= type(uint32).max;
        // A delta is a probability below 1 (1e12 units of 1e-12).
        if (parameter_ == Parameter.DpDelta) return value < 1e12;
        if (parameter_ == Parameter.RewardPerRound || parameter_ == Parameter.AggregatorFee) {
            return value <= type(uint128).max;
        }
        if (parameter_ == Parameter.SampleCap) return value != 0 && value <= type(uint32).max;
        // A strict majority of aggregator stake, so two results can never both reach quorum.
        if (parameter_ == Parameter.QuorumBps) return value > _BPS / 2 && value <= _BPS;
        return value <= MAX_SLASH_BPS; // the three slash rates
    }
}
