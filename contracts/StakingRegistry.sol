// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Votes} from "@openzeppelin/contracts/governance/utils/Votes.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Time} from "@openzeppelin/contracts/utils/types/Time.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IStakingRegistry} from "./interfaces/IStakingRegistry.sol";
import {IFederatedTask} from "./interfaces/IFederatedTask.sol";

/// @title StakingRegistry
/// @notice Holds the stake of trainers and aggregators. Bonded stake is voting power for the
/// governor (OpenZeppelin `Votes`, timestamp clock); registering self-delegates it.
/// @dev Invariant: the token balance of this contract equals `totalStaked()` (bonded plus unbonding).
contract StakingRegistry is IStakingRegistry, Votes, ReentrancyGuard {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @notice The staking token.
    IERC20 public immutable stakeToken;
    /// @notice The timelock: the only address that changes parameters. It cannot slash: only the
    /// task does, by the round rules governance sets within their bounds.
    address public immutable timelock;

    address private immutable _deployer;
    address private _task;
    uint256 private _totalStaked;
    mapping(address account => Participant) private _participants;
    mapping(Role role => uint256) private _totalActiveStake;
    mapping(Role role => uint256) private _activeCount;
    mapping(Parameter parameter => uint256) private _parameters;

    /// @param token The staking token.
    /// @param timelock_ The governance timelock.
    /// @param minTrainerStake Minimum bonded stake of a trainer.
    /// @param minAggregatorStake Minimum bonded stake of an aggregator.
    /// @param unbondingPeriod Seconds between an unstake request and its withdrawal; must exceed
    /// the task's round duration so stake stays slashable until a round's result is final.
    constructor(
        IERC20 token,
        address timelock_,
        uint256 minTrainerStake,
        uint256 minAggregatorStake,
        uint256 unbondingPeriod
    ) EIP712("fedledger StakingRegistry", "1") {
        if (address(token) == address(0) || timelock_ == address(0)) revert RegistryZeroAddress();
        stakeToken = token;
        timelock = timelock_;
        _deployer = msg.sender;
        _setParameter(Parameter.MinTrainerStake, minTrainerStake);
        _setParameter(Parameter.MinAggregatorStake, minAggregatorStake);
        _setParameter(Parameter.UnbondingPeriod, unbondingPeriod);
    }

    // ---------------------------------------------------------------- modifiers

    modifier onlyGovernance() {
        _checkGovernance();
        _;
    }

    // ---------------------------------------------------------------- setup

    /// @notice Binds the task contract allowed to slash and to receive slashed stake. Once, by the deployer.
    function bindTask(address task_) external {
        if (msg.sender != _deployer) revert RegistryOnlyDeployer(msg.sender);
        if (task_ == address(0)) revert RegistryZeroAddress();
        if (_task != address(0)) revert RegistryTaskAlreadyBound(_task);
        uint256 unbonding = _parameters[Parameter.UnbondingPeriod];
        if (unbonding <= IFederatedTask(task_).roundDuration()) {
            revert RegistryInvalidParameter(Parameter.UnbondingPeriod, unbonding);
        }
        _task = task_;
        emit TaskBound(task_);
    }

    // ---------------------------------------------------------------- participants

    /// @inheritdoc IStakingRegistry
    function register(Role role, uint256 amount) external nonReentrant {
        if (role == Role.None) revert RegistryInvalidRole();
        if (_task == address(0)) revert RegistryTaskNotBound();
        Participant storage p = _participants[msg.sender];
        if (p.role != Role.None) revert RegistryAlreadyRegistered(msg.sender, p.role);
        uint256 minimum = _minStake(role);
        if (amount < minimum) revert RegistryStakeBelowMinimum(amount, minimum);

        // Self-delegate before the stake is recorded: `_delegate` moves the account's current
        // voting units (zero here), so the new stake is counted once, by `_transferVotingUnits`.
        if (delegates(msg.sender) == address(0)) _delegate(msg.sender, msg.sender);
        p.role = role;
        p.active = true;
        p.activeSince = uint40(block.timestamp);
        p.stake = amount.toUint128();
        _activeCount[role] += 1;
        _totalActiveStake[role] += amount;
        _totalStaked += amount;
        _transferVotingUnits(address(0), msg.sender, amount);
        emit Registered(msg.sender, role, amount);
        _syncTask(msg.sender, role, p);

        stakeToken.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IStakingRegistry
    function addStake(uint256 amount) external nonReentrant {
        if (amount == 0) revert RegistryZeroAmount();
        Participant storage p = _participants[msg.sender];
        if (p.role == Role.None) revert RegistryNotRegistered(msg.sender);

        uint256 newStake = uint256(p.stake) + amount;
        p.stake = newStake.toUint128();
        _totalStaked += amount;
        if (p.active) {
            _totalActiveStake[p.role] += amount;
        } else if (newStake >= _minStake(p.role)) {
            _activate(msg.sender, p);
            _syncTask(msg.sender, p.role, p);
        }
        _transferVotingUnits(address(0), msg.sender, amount);
        emit StakeAdded(msg.sender, amount, newStake);

        stakeToken.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IStakingRegistry
    function requestUnstake(uint256 amount) external {
        if (amount == 0) revert RegistryZeroAmount();
        Participant storage p = _participants[msg.sender];
        Role role = p.role;
        if (role == Role.None) revert RegistryNotRegistered(msg.sender);
        if (amount > p.stake) revert RegistryInsufficientStake(amount, p.stake);
        uint256 remaining = p.stake - amount;
        uint256 minimum = _minStake(role);
        // A partial unstake must leave a working stake; leaving the role takes everything.
        if (remaining != 0 && remaining < minimum) revert RegistryStakeBelowMinimum(remaining, minimum);

        if (p.active) _totalActiveStake[role] -= amount;
        p.stake = uint128(remaining);
        p.unbonding += uint128(amount);
        uint256 unbondingEnd = block.timestamp + _parameters[Parameter.UnbondingPeriod];
        p.unbondingEnd = unbondingEnd.toUint40();
        _transferVotingUnits(msg.sender, address(0), amount);
        emit UnstakeRequested(msg.sender, amount, unbondingEnd);

        if (remaining == 0) {
            if (p.active) _deactivate(msg.sender, p);
            p.role = Role.None;
            emit Deregistered(msg.sender, role);
            _syncTask(msg.sender, role, p);
        }
    }

    /// @inheritdoc IStakingRegistry
    function withdraw() external nonReentrant {
        Participant storage p = _participants[msg.sender];
        uint256 amount = p.unbonding;
        if (amount == 0) revert RegistryNothingToWithdraw(msg.sender);
        if (block.timestamp < p.unbondingEnd) revert RegistryUnbondingNotOver(p.unbondingEnd, block.timestamp);

        p.unbonding = 0;
        p.unbondingEnd = 0;
        _totalStaked -= amount;
        emit Withdrawn(msg.sender, amount);

        stakeToken.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IStakingRegistry
    function slash(address account, uint256 amount, bytes32 reason) external nonReentrant {
        // Only the task, applying a round's rules. Governance cannot slash: a captured vote could
        // otherwise take the stake of everyone who stayed, including those already unbonding.
        if (msg.sender != _task) revert RegistryUnauthorizedSlasher(msg.sender);
        if (amount == 0) revert RegistryZeroAmount();
        Participant storage p = _participants[account];
        uint256 slashable = uint256(p.stake) + p.unbonding;
        if (amount > slashable) revert RegistrySlashExceedsStake(amount, slashable);

        // Bonded stake goes first: it is what votes and earns.
        uint256 fromStake = amount < p.stake ? amount : p.stake;
        p.stake -= uint128(fromStake);
        p.unbonding -= uint128(amount - fromStake);
        _totalStaked -= amount;
        if (fromStake != 0) _transferVotingUnits(account, address(0), fromStake);
        if (p.active) {
            _totalActiveStake[p.role] -= fromStake;
            if (p.stake < _minStake(p.role)) {
                _deactivate(account, p);
                _syncTask(account, p.role, p);
            }
        }
        emit Slashed(account, msg.sender, amount, reason);

        // Slashed stake funds future rewards.
        stakeToken.safeTransfer(_task, amount);
    }

    // ---------------------------------------------------------------- governance

    /// @inheritdoc IStakingRegistry
    function setParameter(Parameter parameter_, uint256 value) external onlyGovernance {
        _setParameter(parameter_, value);
    }

    // ---------------------------------------------------------------- views

    /// @notice The bound task contract, or zero before binding.
    function task() external view returns (address) {
        return _task;
    }

    /// @notice Bonded plus unbonding stake of all accounts; equals this contract's token balance.
    function totalStaked() external view returns (uint256) {
        return _totalStaked;
    }

    /// @inheritdoc IStakingRegistry
    function participant(address account) external view returns (Participant memory) {
        return _participants[account];
    }

    /// @inheritdoc IStakingRegistry
    function activeRole(address account, Role role) external view returns (bool isActive, uint256 activeSince) {
        Participant storage p = _participants[account];
        return (p.active && p.role == role, p.activeSince);
    }

    /// @inheritdoc IStakingRegistry
    function slashableStake(address account) external view returns (uint256) {
        Participant storage p = _participants[account];
        return uint256(p.stake) + p.unbonding;
    }

    /// @inheritdoc IStakingRegistry
    function totalActiveStake(Role role) external view returns (uint256) {
        return _totalActiveStake[role];
    }

    /// @inheritdoc IStakingRegistry
    function activeCount(Role role) external view returns (uint256) {
        return _activeCount[role];
    }

    /// @inheritdoc IStakingRegistry
    function parameter(Parameter parameter_) external view returns (uint256) {
        return _parameters[parameter_];
    }

    /// @notice Votes use timestamps, like the task's round windows.
    function clock() public view override returns (uint48) {
        return Time.timestamp();
    }

    /// @notice Machine-readable description of the clock (EIP-6372).
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    // ---------------------------------------------------------------- internal

    function _getVotingUnits(address account) internal view override returns (uint256) {
        return _participants[account].stake;
    }

    function _minStake(Role role) private view returns (uint256) {
        return role == Role.Trainer
            ? _parameters[Parameter.MinTrainerStake]
            : _parameters[Parameter.MinAggregatorStake];
    }

    function _activate(address account, Participant storage p) private {
        p.active = true;
        p.activeSince = uint40(block.timestamp);
        _activeCount[p.role] += 1;
        _totalActiveStake[p.role] += p.stake;
        emit ActiveChanged(account, true);
    }

    function _deactivate(address account, Participant storage p) private {
        p.active = false;
        _activeCount[p.role] -= 1;
        _totalActiveStake[p.role] -= p.stake;
        emit ActiveChanged(account, false);
    }

    /// Keeps the task's copy of trainer eligibility current (see `IFederatedTask.syncTrainer`).
    function _syncTask(address account, Role role, Participant storage p) private {
        if (role != Role.Trainer) return;
        IFederatedTask(_task).syncTrainer(account, p.active ? p.activeSince : 0);
    }

    function _setParameter(Parameter parameter_, uint256 value) private {
        if (value == 0 || value > type(uint128).max) revert RegistryInvalidParameter(parameter_, value);
        if (parameter_ == Parameter.UnbondingPeriod) {
            if (value > 365 days) revert RegistryInvalidParameter(parameter_, value);
            if (_task != address(0) && value <= IFederatedTask(_task).roundDuration()) {
                revert RegistryInvalidParameter(parameter_, value);
            }
        }
        uint256 old = _parameters[parameter_];
        _parameters[parameter_] = value;
        emit ParameterChanged(parameter_, old, value);
    }

    function _checkGovernance() private view {
        if (msg.sender != timelock) revert RegistryOnlyGovernance(msg.sender);
    }
}
