"""Retrying after failures: exponential backoff, and logging that follows the outage, not each try.

`Backoff` gives the delays: `initial`, then doubled each failure up to `maximum`; `reset()`
after a success starts again from `initial`. `Outage` wraps one for a service loop: the first
failure (and a failure of another kind) logs one warning, further ones of the same kind only
at debug level, and the first success after failures logs that the service recovered.
"""

from __future__ import annotations

import logging

# Services: the first retry after the old fixed wait, then doubling up to half a minute.
SERVICE_MAX_DELAY = 30.0


class Backoff:
    """Deterministic exponential delays: initial, 2x, 4x, ... capped at `maximum`."""

    def __init__(self, initial: float, maximum: float, factor: float = 2.0) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError(f"bad backoff: initial {initial}, maximum {maximum}, factor {factor}")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.failures = 0

    def next_delay(self) -> float:
        """The delay to wait after one more failure."""
        delay = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits `initial` again."""
        self.failures = 0


class Outage:
    """Backoff plus one log line per change of state (failing, failing otherwise, recovered)."""

    def __init__(self, log: logging.Logger, backoff: Backoff) -> None:
        self.log = log
        self.backoff = backoff
        self._kind: str | None = None

    @property
    def failing(self) -> bool:
        return self._kind is not None

    def failed(self, error: BaseException) -> float:
        """Records a failure; returns how long to wait before trying again."""
        delay = self.backoff.next_delay()
        kind = type(error).__name__
        if kind != self._kind:
            self.log.warning(
                "%s; retrying in %.1f s, backing off up to %.0f s", error, delay, self.backoff.maximum
            )
            self._kind = kind
        else:
            self.log.debug("still failing (%s); retrying in %.1f s", error, delay)
        return delay

    def succeeded(self) -> None:
        """Records a success: logs the recovery once and resets the backoff."""
        if self._kind is not None:
            self.log.warning("recovered after %d failed attempts", self.backoff.failures)
        self._kind = None
        self.backoff.reset()


def service_outage(log: logging.Logger, poll_interval: float) -> Outage:
    """The retry policy of the trainer and aggregator loops."""
    return Outage(log, Backoff(initial=min(5.0, max(0.01, poll_interval * 10)), maximum=SERVICE_MAX_DELAY))
