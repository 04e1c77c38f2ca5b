"""Where an aggregator keeps the update files it fetched ahead of the aggregation phase.

On disk, not in memory: a round's updates are as many files as it has trainers, and the
aggregation reads them back one at a time (and spools the verified ones), so memory grows
with the model, not with the federation. The files are only a cache: every byte is verified
against the revealed digest when the round is computed.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path


class PrefetchCache:
    """Files fetched for one round, by CID, in a private temporary directory."""

    def __init__(self) -> None:
        self.round: int | None = None
        self._dir: Path | None = None
        self._files: dict[str, Path] = {}
        self._lock = threading.Lock()  # prefetches run in a thread pool

    def start(self, round_: int) -> None:
        """Forgets every file unless they were fetched for `round_`."""
        if self.round == round_:
            return
        self.clear()
        self.round = round_

    def __contains__(self, cid: str) -> bool:
        return cid in self._files

    def cids(self) -> set[str]:
        return set(self._files)

    def put(self, cid: str, data: bytes) -> None:
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="fedledger-prefetch-"))
            path = self._dir / f"{len(self._files):06d}"
            self._files[cid] = path
        path.write_bytes(data)

    def take(self, cid: str) -> bytes | None:
        """The file's bytes (once: the file is removed), or None if it was not fetched."""
        with self._lock:
            path = self._files.pop(cid, None)
        if path is None:
            return None
        data = path.read_bytes()
        path.unlink(missing_ok=True)
        return data

    def clear(self) -> None:
        with self._lock:
            directory, self._dir, self._files, self.round = self._dir, None, {}, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __del__(self) -> None:
        self.clear()
