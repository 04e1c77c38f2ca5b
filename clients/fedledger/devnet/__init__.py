"""Local devnets for development and the demo: Anvil with the `local` or `sei-like` profile."""

from fedledger.devnet.anvil import (
    PROFILES,
    Devnet,
    DevnetError,
    DevnetState,
    Profile,
    find,
    running_devnet,
    start,
    stop,
)

__all__ = [
    "PROFILES",
    "Devnet",
    "DevnetError",
    "DevnetState",
    "Profile",
    "find",
    "running_devnet",
    "start",
    "stop",
]
