// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title FedToken
/// @notice The stake and reward token of a fedledger deployment: a fixed-supply ERC-20 with
/// EIP-2612 permit, minted once to the sponsor, who funds rewards and distributes stake.
contract FedToken is ERC20, ERC20Permit {
    /// @param holder Receives the whole supply.
    /// @param supply Total supply, in the smallest unit (18 decimals).
    constructor(address holder, uint256 supply) ERC20("fedledger Token", "FED") ERC20Permit("fedledger Token") {
        _mint(holder, supply);
    }
}
