// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IStakingRegistry
/// @notice Staking and registration of fedledger participants. A participant stakes the
/// task token to take one role (trainer or aggregator); its active stake is its voting power.
interface IStakingRegistry {
    /// @notice The role an address holds. One role per address.
    enum Role {
        None,
        Trainer,
        Aggregator
    }

    /// @notice Parameters that only governance (the timelock) may change.
    enum Parameter {
        MinTrainerStake,
        MinAggregatorStake,
        UnbondingPeriod
    }

    /// @notice A participant's record. Packed: the first slot is all a commit needs to read.
    /// @param role The role held, or None once fully unstaked.
    /// @param active Whether the participant may act in its role (false after a slash left it
    /// below the minimum stake, until it adds stake again).
    /// @param activeSince When the participant last became active; rounds opened earlier ignore it.
    /// @param stake Bonded stake: slashable and counted as voting power.
    /// @param unbonding Stake waiting out the unbonding period: slashable, no voting power.
    /// @param unbondingEnd When `unbonding` may be withdrawn.
    struct Participant {
        Role role;
        bool active;
        uint40 activeSince;
        uint128 stake;
        uint128 unbonding;
        uint40 unbondingEnd;
    }

    // ---------------------------------------------------------------- errors

    /// @notice Thrown when a caller other than the timelock calls a governance function.
    error RegistryOnlyGovernance(address caller);
    /// @notice Thrown when a caller other than the bound task tries to slash (the timelock included).
    error RegistryUnauthorizedSlasher(address caller);
    /// @notice Thrown when someone other than the deployer binds the task.
    error RegistryOnlyDeployer(address caller);
    /// @notice Thrown when the task is bound a second time.
    error RegistryTaskAlreadyBound(address task);
    /// @notice Thrown when an address is given where a contract or account is required.
    error RegistryZeroAddress();
    /// @notice Thrown when registering before the task is bound.
    error RegistryTaskNotBound();
    /// @notice Thrown when registering with the role None.
    error RegistryInvalidRole();
    /// @notice Thrown when an address that already holds a role registers again.
    error RegistryAlreadyRegistered(address account, Role role);
    /// @notice Thrown when an action needs a registered participant.
    error RegistryNotRegistered(address account);
    /// @notice Thrown when a stake would be below the role's minimum.
    error RegistryStakeBelowMinimum(uint256 stake, uint256 minimum);
    /// @notice Thrown when an amount of zero is given.
    error RegistryZeroAmount();
    /// @notice Thrown when unstaking more than the bonded stake.
    error RegistryInsufficientStake(uint256 requested, uint256 available);
    /// @notice Thrown when withdrawing before the unbonding period ends.
    error RegistryUnbondingNotOver(uint256 unbondingEnd, uint256 nowTimestamp);
    /// @notice Thrown when withdrawing with nothing unbonding.
    error RegistryNothingToWithdraw(address account);
    /// @notice Thrown when a slash exceeds what the account has at stake.
    error RegistrySlashExceedsStake(uint256 amount, uint256 slashable);
    /// @notice Thrown when a parameter value is out of its allowed range.
    error RegistryInvalidParameter(Parameter parameter, uint256 value);

    // ---------------------------------------------------------------- events

    /// @notice Emitted when the task contract allowed to slash is bound.
    event TaskBound(address indexed task);
    /// @notice Emitted when an account registers in a role.
    event Registered(address indexed account, Role indexed role, uint256 stake);
    /// @notice Emitted when stake is added.
    event StakeAdded(address indexed account, uint256 amount, uint256 newStake);
    /// @notice Emitted when stake moves from bonded to unbonding.
    event UnstakeRequested(address indexed account, uint256 amount, uint256 unbondingEnd);
    /// @notice Emitted when an account leaves its role (its whole stake is unbonding).
    event Deregistered(address indexed account, Role indexed role);
    /// @notice Emitted when unbonded stake is withdrawn.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice Emitted when stake is slashed.
    /// @param slasher The task contract.
    /// @param reason A short code for why (for example a rejection reason), for indexers.
    event Slashed(address indexed account, address indexed slasher, uint256 amount, bytes32 indexed reason);
    /// @notice Emitted when a participant becomes active or inactive.
    event ActiveChanged(address indexed account, bool active);
    /// @notice Emitted when governance changes a parameter.
    event ParameterChanged(Parameter indexed parameter, uint256 oldValue, uint256 newValue);

    // ---------------------------------------------------------------- functions

    /// @notice Registers the caller in `role`, staking `amount` (approved beforehand) and
    /// self-delegating its voting power.
    function register(Role role, uint256 amount) external;

    /// @notice Adds `amount` to the caller's bonded stake; reactivates it once at the minimum.
    function addStake(uint256 amount) external;

    /// @notice Moves `amount` of bonded stake into unbonding. Unstaking everything leaves the role.
    function requestUnstake(uint256 amount) external;

    /// @notice Withdraws the caller's unbonding stake once the unbonding period is over.
    function withdraw() external;

    /// @notice Takes `amount` from `account`'s stake (bonded first, then unbonding) and sends it
    /// to the task's reward pool. Only the bound task, applying a round's rules: governance
    /// (the timelock) cannot slash.
    function slash(address account, uint256 amount, bytes32 reason) external;

    /// @notice Changes a parameter. Only the timelock.
    function setParameter(Parameter parameter, uint256 value) external;

    /// @notice The staking token.
    function stakeToken() external view returns (IERC20);

    /// @notice The participant record of `account`.
    function participant(address account) external view returns (Participant memory);

    /// @notice Whether `account` may act as `role`, and since when.
    function activeRole(address account, Role role) external view returns (bool isActive, uint256 activeSince);

    /// @notice Bonded plus unbonding stake: the most a slash can take.
    function slashableStake(address account) external view returns (uint256);

    /// @notice Bonded stake of active participants in `role`.
    function totalActiveStake(Role role) external view returns (uint256);

    /// @notice Number of active participants in `role`.
    function activeCount(Role role) external view returns (uint256);

    /// @notice The current value of a parameter.
    function parameter(Parameter parameter) external view returns (uint256);
}
