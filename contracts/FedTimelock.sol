// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IFedTimelock} from "./interfaces/IFedTimelock.sol";

/// @title FedTimelock
/// @notice OpenZeppelin's TimelockController, the only address that may change task and
/// registry parameters. The governor is its proposer and canceller; anyone may execute.
/// Its delay may never drop below the deployment's, nor exceed `MAX_DELAY`.
contract FedTimelock is IFedTimelock, TimelockController {
    /// @notice The longest delay: past it, governance could no longer answer anything in time.
    uint256 public constant MAX_DELAY = 30 days;

    uint256 private immutable _delayFloor;

    /// @param minDelay Seconds between queueing and executing an operation; also the floor of
    /// every later delay. At most `MAX_DELAY`.
    /// @param proposers Addresses allowed to queue (the governor, granted after its deployment).
    /// @param executors Addresses allowed to execute; the zero address means anyone.
    /// @param admin Optional setup admin that renounces its role once the governor is wired.
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {
        if (minDelay > MAX_DELAY) revert TimelockDelayOutOfRange(minDelay, 0, MAX_DELAY);
        _delayFloor = minDelay;
    }

    /// @notice Changes the delay; only the timelock itself (a passed proposal), within
    /// `delayRange()`.
    function updateDelay(uint256 newDelay) public override {
        if (msg.sender != address(this)) revert TimelockUnauthorizedCaller(msg.sender);
        if (newDelay < _delayFloor || newDelay > MAX_DELAY) {
            revert TimelockDelayOutOfRange(newDelay, _delayFloor, MAX_DELAY);
        }
        super.updateDelay(newDelay);
    }

    /// @inheritdoc IFedTimelock
    function delayRange() external view returns (uint256 minimum, uint256 maximum) {
        return (_delayFloor, MAX_DELAY);
    }
}
