"""What goes wrong with a user's app: each a one-line message for the CLI, never a traceback."""

from __future__ import annotations

from fedledger.chain.errors import FedledgerError


class AppError(FedledgerError):
    """An app cannot be used as asked."""


class AppLoadError(AppError):
    """An app reference (import string, entry point or built-in name) does not resolve to an app."""


class AppConfigError(AppError, ValueError):
    """A `--config` pair is malformed or has the wrong type for the app."""


class AppDataError(AppError):
    """The operator's data cannot be read: a missing path, a file of the wrong shape or columns."""


class AppWeightsError(AppError):
    """The app's weights do not match the model spec the federation deployed."""
