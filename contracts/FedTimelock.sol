// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title FedTimelock
/// @notice OpenZeppelin's TimelockController, the only address that may change task and
/// registry parameters. The governor is its proposer and canceller; anyone may execute.
contract FedTimelock is TimelockController {
    /// @param minDelay Seconds between queueing and executing an operation.
    /// @param proposers Addresses allowed to queue (the governor, granted after its deployment).
    /// @param executors Addresses allowed to execute; the zero address means anyone.
    /// @param admin Optional setup admin that renounces its role once the governor is wired.
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
