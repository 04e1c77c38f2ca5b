// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IGovernor, Governor} from "@openzeppelin/contracts/governance/Governor.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {GovernorCountingSimple} from "@openzeppelin/contracts/governance/extensions/GovernorCountingSimple.sol";
import {GovernorVotes} from "@openzeppelin/contracts/governance/extensions/GovernorVotes.sol";
import {GovernorVotesQuorumFraction} from
    "@openzeppelin/contracts/governance/extensions/GovernorVotesQuorumFraction.sol";
import {GovernorTimelockControl} from "@openzeppelin/contracts/governance/extensions/GovernorTimelockControl.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";
import {IFedGovernor} from "./interfaces/IFedGovernor.sol";

/// @title FedGovernor
/// @notice Stake-weighted governance of a fedledger deployment: OpenZeppelin's Governor with
/// the staking registry as its votes source (timestamp clock), a quorum fraction of total
/// stake, and execution through the timelock. Its own settings (voting delay and period, quorum)
/// stay within `settingRange`: never below the deployment's values, never above fixed ceilings.
contract FedGovernor is
    IFedGovernor,
    Governor,
    GovernorSettings,
    GovernorCountingSimple,
    GovernorVotes,
    GovernorVotesQuorumFraction,
    GovernorTimelockControl
{
    /// @notice The longest voting delay governance may set.
    uint256 public constant MAX_VOTING_DELAY = 30 days;
    /// @notice The longest voting period governance may set.
    uint256 public constant MAX_VOTING_PERIOD = 30 days;
    /// @notice The lowest quorum a deployment may choose, in percent: zero would let one vote pass anything.
    uint256 public constant MIN_QUORUM_PERCENT = 1;
    /// @notice The highest quorum, in percent: above it, ordinary turnout could never pass anything.
    uint256 public constant MAX_QUORUM_PERCENT = 50;

    uint256 private immutable _minVotingDelay;
    uint256 private immutable _minVotingPeriod;
    uint256 private immutable _minQuorumPercent;

    /// @param registry The staking registry (`IVotes`).
    /// @param timelock_ The timelock that executes passed proposals.
    /// @param votingDelay_ Seconds between proposing and the vote snapshot; the floor of later
    /// delays. At most `MAX_VOTING_DELAY`.
    /// @param votingPeriod_ Seconds the vote stays open; the floor of later periods. At most
    /// `MAX_VOTING_PERIOD`.
    /// @param proposalThreshold_ Stake needed to propose.
    /// @param quorumPercent Share of the voting stake (bonded stake at the vote's snapshot, in
    /// percent) that must vote for or abstain; the floor of later quorums. Between
    /// `MIN_QUORUM_PERCENT` and `MAX_QUORUM_PERCENT`.
    constructor(
        IVotes registry,
        TimelockController timelock_,
        uint48 votingDelay_,
        uint32 votingPeriod_,
        uint256 proposalThreshold_,
        uint256 quorumPercent
    )
        Governor("fedledger Governor")
        GovernorSettings(votingDelay_, votingPeriod_, proposalThreshold_)
        GovernorVotes(registry)
        GovernorVotesQuorumFraction(quorumPercent)
        GovernorTimelockControl(timelock_)
    {
        if (votingDelay_ > MAX_VOTING_DELAY) {
            revert GovernorSettingOutOfRange(Setting.VotingDelay, votingDelay_, 0, MAX_VOTING_DELAY);
        }
        if (votingPeriod_ > MAX_VOTING_PERIOD) {
            revert GovernorSettingOutOfRange(Setting.VotingPeriod, votingPeriod_, 1, MAX_VOTING_PERIOD);
        }
        if (quorumPercent < MIN_QUORUM_PERCENT || quorumPercent > MAX_QUORUM_PERCENT) {
            revert GovernorSettingOutOfRange(
                Setting.QuorumNumerator, quorumPercent, MIN_QUORUM_PERCENT, MAX_QUORUM_PERCENT
            );
        }
        _minVotingDelay = votingDelay_;
        _minVotingPeriod = votingPeriod_;
        _minQuorumPercent = quorumPercent;
    }

    // ---------------------------------------------------------------- bounded settings

    /// @notice Sets the voting delay, within `settingRange(Setting.VotingDelay)`. Only governance.
    function setVotingDelay(uint48 newVotingDelay) public override onlyGovernance {
        _checkRange(Setting.VotingDelay, newVotingDelay);
        _setVotingDelay(newVotingDelay);
    }

    /// @notice Sets the voting period, within `settingRange(Setting.VotingPeriod)`. Only governance.
    function setVotingPeriod(uint32 newVotingPeriod) public override onlyGovernance {
        _checkRange(Setting.VotingPeriod, newVotingPeriod);
        _setVotingPeriod(newVotingPeriod);
    }

    /// @notice Sets the quorum (percent), within `settingRange(Setting.QuorumNumerator)`. Only governance.
    function updateQuorumNumerator(uint256 newQuorumNumerator) public override onlyGovernance {
        _checkRange(Setting.QuorumNumerator, newQuorumNumerator);
        _updateQuorumNumerator(newQuorumNumerator);
    }

    /// @inheritdoc IFedGovernor
    function settingRange(Setting setting) public view returns (uint256 minimum, uint256 maximum) {
        if (setting == Setting.VotingDelay) return (_minVotingDelay, MAX_VOTING_DELAY);
        if (setting == Setting.VotingPeriod) return (_minVotingPeriod, MAX_VOTING_PERIOD);
        return (_minQuorumPercent, MAX_QUORUM_PERCENT);
    }

    function _checkRange(Setting setting, uint256 value) private view {
        (uint256 minimum, uint256 maximum) = settingRange(setting);
        if (value < minimum || value > maximum) revert GovernorSettingOutOfRange(setting, value, minimum, maximum);
    }

    // The overrides below only resolve multiple inheritance, as OpenZeppelin's wizard does.

    /// @inheritdoc GovernorSettings
    function votingDelay() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingDelay();
    }

    /// @inheritdoc GovernorSettings
    function votingPeriod() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingPeriod();
    }

    /// @inheritdoc GovernorSettings
    function proposalThreshold() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.proposalThreshold();
    }

    /// @inheritdoc GovernorTimelockControl
    function state(uint256 proposalId) public view override(Governor, GovernorTimelockControl) returns (ProposalState) {
        return super.state(proposalId);
    }

    /// @inheritdoc GovernorTimelockControl
    function proposalNeedsQueuing(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (bool)
    {
        return super.proposalNeedsQueuing(proposalId);
    }

    function _queueOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint48) {
        return super._queueOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _executeOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) {
        super._executeOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _cancel(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint256) {
        return super._cancel(targets, values, calldatas, descriptionHash);
    }

    function _executor() internal view override(Governor, GovernorTimelockControl) returns (address) {
        return super._executor();
    }
}
