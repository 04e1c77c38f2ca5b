// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IFedTimelock
/// @notice What fedledger adds to OpenZeppelin's TimelockController: a range for the delay.
/// The delay is the notice everyone gets before a passed proposal takes effect; governance may
/// lengthen it and shorten it again, but never below the delay the deployment chose (so a
/// captured governance cannot remove the notice in one step) and never above a ceiling.
interface IFedTimelock {
    /// @notice Thrown when the delay, at deployment or by `updateDelay`, is outside its range.
    /// @param delay The rejected delay, in seconds.
    /// @param minimum The shortest allowed delay: the deployment's delay (0 at deployment).
    /// @param maximum The longest allowed delay.
    error TimelockDelayOutOfRange(uint256 delay, uint256 minimum, uint256 maximum);

    /// @notice The range `updateDelay` accepts, inclusive, in seconds.
    function delayRange() external view returns (uint256 minimum, uint256 maximum);
}
