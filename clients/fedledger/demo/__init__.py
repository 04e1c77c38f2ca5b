"""The `fedledger demo`: deploy, register, open a round and pass a governance vote on a private Anvil."""

from fedledger.demo.run import DemoOptions, DemoSummary, run_demo

__all__ = ["DemoOptions", "DemoSummary", "run_demo"]
