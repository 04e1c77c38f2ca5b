// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title HostileToken
/// @notice Test-only ERC-20 that re-enters the contract moving it: once armed, its next
/// `transfer` or `transferFrom` calls a configured target with configured calldata and records
/// whether that reentrant call reverted. Never deploy it outside tests.
/// @dev The reentrant call comes from this token's address, so tests impersonate that address to
/// give the token a role (trainer, aggregator, staker) in the contracts it attacks. `transfer`
/// calls back after the balances move, as a recipient hook (ERC-777 `tokensReceived`, ERC-1363)
/// would; `transferFrom` calls back before they move, as a sender hook (`tokensToSend`) would.
contract HostileToken is ERC20 {
    /// @notice The contract the armed hook calls.
    address public target;
    /// @notice The calldata the armed hook sends to `target`.
    bytes public payload;
    /// @notice Whether the next transfer or transferFrom calls back (the hook fires once).
    bool public armed;
    /// @notice Whether the hook has fired since it was last armed.
    bool public reentered;
    /// @notice Whether the reentrant call succeeded.
    bool public reentrySucceeded;
    /// @notice What the reentrant call returned, or its revert data.
    bytes public reentryReturnData;

    /// @notice Emitted when the hook has made its reentrant call.
    event Reentered(address indexed target, bool success, bytes returnData);

    /// @param holder Receives the whole supply.
    /// @param supply Total supply, in the smallest unit.
    constructor(address holder, uint256 supply) ERC20("Hostile Token", "HOSTILE") {
        _mint(holder, supply);
    }

    /// @notice Makes the next `transfer` or `transferFrom` call `target_` with `payload_`.
    /// Anyone may arm it: this is a test tool.
    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        armed = true;
        reentered = false;
        reentrySucceeded = false;
        delete reentryReturnData;
    }

    /// @notice ERC-20 `transfer`, then the armed callback (as a recipient hook would).
    function transfer(address to, uint256 value) public override returns (bool) {
        bool moved = super.transfer(to, value);
        _callBack();
        return moved;
    }

    /// @notice The armed callback (as a sender hook would), then ERC-20 `transferFrom`.
    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        _callBack();
        return super.transferFrom(from, to, value);
    }

    /// Calls the target once per arming; a revert is recorded, never propagated, so the outer
    /// token movement completes and the test can inspect both.
    function _callBack() private {
        if (!armed) return;
        armed = false;
        reentered = true;
        (bool success, bytes memory returnData) = target.call(payload);
        reentrySucceeded = success;
        reentryReturnData = returnData;
        emit Reentered(target, success, returnData);
    }
}
