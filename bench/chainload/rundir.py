"""Where a benchmark run keeps its files: the directory asked for, or a temporary one."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def run_directory(path: Path | None, name: str) -> Iterator[Path]:
    """`path` (created if needed, kept afterwards), or a temporary directory removed on exit."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=f"fedledger-{name}-") as tmp:
        yield Path(tmp)
