"""fedledger: federated learning governed on chain."""

__version__ = "0.1.0"
