"""Running a local daemon for the devnet: ports, liveness, stopping a process group for sure.

Shared by the Anvil and IPFS lifecycles. A daemon runs in its own session (process group), so
stopping it also stops anything it spawned.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

HOST = "127.0.0.1"
StateT = TypeVar("StateT")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a daemon can listen on `port`. Like Anvil, ignores connections in TIME_WAIT left
    by a daemon that just stopped, so a restart can take the same port at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def log_tail(path: Path | str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    """Whether `pid` runs (a zombie does not count; our own children are reaped here)."""
    if process is not None:
        return process.poll() is None
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def terminate_group(pid: int, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid, process):
                return
            time.sleep(0.02)


def raise_on_termination() -> Callable[[], None]:
    """Turns SIGTERM/SIGHUP into SystemExit (so `finally` blocks run); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[signal.Signals, Any] = {}

    def _handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, _handler)

    def _restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return _restore


def write_state(path: Path, state: Any) -> None:
    """Writes a daemon's state dataclass as JSON, atomically (another process may read it)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_state(path: Path, kind: type[StateT]) -> StateT | None:
    """The state dataclass `kind` recorded at `path`, or None if there is none (or it is unreadable)."""
    try:
        return kind(**json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError):
        return None
