// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IFedGovernor
/// @notice What fedledger adds to OpenZeppelin's Governor: ranges for the governor's own
/// settings, so that a captured governance cannot make the next capture faster. Each setting
/// may move between the value the deployment chose (its floor) and a fixed ceiling: governance
/// can lengthen its delays and raise its quorum, and later lower them again, but never below
/// what the deployment chose, and never so high that it can no longer act.
interface IFedGovernor {
    /// @notice The governor settings with a range.
    enum Setting {
        VotingDelay,
        VotingPeriod,
        QuorumNumerator
    }

    /// @notice Thrown when a setting, at deployment or by a proposal, is outside its range.
    /// @param setting The setting.
    /// @param value The rejected value (seconds, or percent of the votes' total supply).
    /// @param minimum The lowest allowed value: at deployment the absolute floor, afterwards
    /// the deployment's own value.
    /// @param maximum The highest allowed value.
    error GovernorSettingOutOfRange(Setting setting, uint256 value, uint256 minimum, uint256 maximum);

    /// @notice The range governance may move `setting` within, inclusive.
    function settingRange(Setting setting) external view returns (uint256 minimum, uint256 maximum);
}
