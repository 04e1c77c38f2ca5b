"""Reads the federation every few seconds in one thread; web requests only take the latest read.

However many browser tabs are open, the node sees one reader. When the node stops answering,
the last good snapshot stays on the page beside the error, and reading resumes by itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fedledger.dashboard.snapshot import ChainWentBackError, FederationView

LOG = logging.getLogger("fedledger.dashboard")


class Refresher:
    """Calls `FederationView.refresh` every `interval` seconds; `payload` is what `/api/state` serves."""

    def __init__(
        self, make_view: Callable[[], FederationView], *, interval: float, about: dict[str, Any]
    ) -> None:
        self._make_view = make_view
        self.interval = interval
        self.about = about  # fixed facts for the page: the node, the evaluator
        self._view: FederationView | None = None
        self._snapshot: dict[str, Any] | None = None
        self._updated_at: float | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def refresh_once(self) -> None:
        """One read; on failure the error is kept for the page and the previous snapshot stays."""
        try:
            if self._view is None:
                self._view = self._make_view()
            snapshot = self._view.refresh().to_json()
        except Exception as exc:  # any failure of the node, IPFS or a decode: shown, then retried
            if isinstance(exc, ChainWentBackError):
                self._view = None  # read everything again, from a fresh view, next time
            message = f"{type(exc).__name__}: {exc}"
            if message != self._error:
                LOG.warning("reading the chain failed: %s", message)
            with self._lock:
                self._error = message
            return
        with self._lock:
            self._snapshot, self._updated_at, self._error = snapshot, time.time(), None

    def payload(self) -> bytes:
        """The JSON for `/api/state`: the latest snapshot (or null), when it was read, the last error."""
        with self._lock:
            body = {
                "snapshot": self._snapshot,
                "updated_at": self._updated_at,
                "error": self._error,
                "refresh_seconds": self.interval,
                "server_time": time.time(),
                **self.about,
            }
        return json.dumps(body).encode()

    @property
    def healthy(self) -> bool:
        with self._lock:
            return self._snapshot is not None and self._error is None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.refresh_once()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
