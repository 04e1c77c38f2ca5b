"""A local IPFS daemon speaking the Kubo RPC API: js-ipfs from npm, offline, on loopback.

Kubo cannot be installed on these machines, so the project runs js-ipfs (the npm package
`ipfs`), whose HTTP API is Kubo-compatible; `fedledger.storage.ipfs` talks to either. The
repository lives in `<run_dir>/ipfs-repo` (pins survive restarts); the daemon is described by
`<run_dir>/ipfs.json` and stopped with its whole process group, like the Anvil devnet.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from fedledger.devnet.process import (
    HOST,
    alive,
    free_port,
    log_tail,
    raise_on_termination,
    read_state,
    terminate_group,
    write_state,
)

DEFAULT_RUN_DIR = Path(".run")
STATE_FILE = "ipfs.json"
LOG_FILE = "ipfs.log"
REPO_DIR = "ipfs-repo"
REPO_LOCK = "repo.lock"  # inside the repository, held by the running daemon
START_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0


class IpfsDaemonError(RuntimeError):
    """The IPFS daemon could not be started, found or stopped."""


@dataclass(frozen=True, kw_only=True)
class IpfsState:
    pid: int
    api_port: int
    repo: str
    log_path: str
    started_at: float

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"


class IpfsDaemon:
    """A started daemon; keeps the process handle when this process started it."""

    def __init__(
        self, state: IpfsState, run_dir: Path, process: subprocess.Popen[bytes] | None = None
    ) -> None:
        self.state = state
        self.run_dir = run_dir
        self._process = process

    @property
    def api_url(self) -> str:
        return self.state.api_url

    def is_running(self) -> bool:
        return alive(self.state.pid, self._process)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stops the daemon's process group and verifies it is gone. Idempotent."""
        if alive(self.state.pid, self._process) and _is_ipfs(self.state.pid):
            terminate_group(self.state.pid, self._process, timeout)
        if alive(self.state.pid, self._process):
            raise IpfsDaemonError(f"IPFS daemon (pid {self.state.pid}) is still running after SIGKILL")
        state_path = self.run_dir / STATE_FILE
        if read_state(state_path, IpfsState) == self.state:
            state_path.unlink(missing_ok=True)


def find_cli() -> Path:
    """The js-ipfs command-line entry point in the project's node_modules."""
    package_root = Path(__file__).resolve().parents[3]
    for parent in (Path.cwd(), *Path.cwd().parents, package_root):
        candidate = parent / "node_modules" / "ipfs" / "src" / "cli.js"
        if candidate.is_file():
            return candidate
    raise IpfsDaemonError("the IPFS daemon (npm package `ipfs`) is not installed: run `make setup`")


def start(
    *, run_dir: Path = DEFAULT_RUN_DIR, api_port: int | None = None, timeout: float = START_TIMEOUT
) -> IpfsDaemon:
    """Initializes the repository if needed, starts the daemon offline and waits for its API."""
    run_dir.mkdir(parents=True, exist_ok=True)
    existing = find(run_dir)
    if existing is not None:
        raise IpfsDaemonError(
            f"an IPFS daemon is already running from {run_dir} (pid {existing.state.pid}, {existing.api_url}); "
            "stop it first (`fedledger devnet down`)"
        )
    cli = find_cli()
    repo = (run_dir / REPO_DIR).resolve()
    env = {**os.environ, "IPFS_PATH": str(repo)}
    log_path = run_dir / LOG_FILE
    if not (repo / "config").exists():
        init = subprocess.run(
            ["node", str(cli), "init", "--profile", "test"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if init.returncode != 0:
            raise IpfsDaemonError(f"ipfs init failed: {init.stderr.decode(errors='replace')[-2000:]}")
    _clear_stale_lock(repo)
    api_port = api_port or free_port()
    _configure(repo / "config", api_port)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["node", str(cli), "daemon", "--offline"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    state = IpfsState(
        pid=process.pid, api_port=api_port, repo=str(repo), log_path=str(log_path), started_at=time.time()
    )
    daemon = IpfsDaemon(state, run_dir, process)
    try:
        _wait_ready(daemon, process, timeout)
    except BaseException:
        daemon.stop()
        raise
    write_state(run_dir / STATE_FILE, state)
    return daemon


def find(run_dir: Path = DEFAULT_RUN_DIR) -> IpfsDaemon | None:
    """The daemon started from `run_dir`, if it still runs. Removes a stale state file."""
    path = run_dir / STATE_FILE
    state = read_state(path, IpfsState)
    if state is None:
        return None
    if not (alive(state.pid, None) and _is_ipfs(state.pid)):
        path.unlink(missing_ok=True)
        return None
    return IpfsDaemon(state, run_dir)


def stop(run_dir: Path = DEFAULT_RUN_DIR) -> IpfsState | None:
    """Stops the daemon started from `run_dir`; returns what was stopped (None: nothing ran)."""
    daemon = find(run_dir)
    if daemon is None:
        return None
    daemon.stop()
    return daemon.state


@contextlib.contextmanager
def running_ipfs(*, run_dir: Path = DEFAULT_RUN_DIR) -> Iterator[IpfsDaemon]:
    """Starts a daemon and stops it however the block is left (return, error, SIGTERM, exit)."""
    daemon = start(run_dir=run_dir)
    atexit.register(daemon.stop)
    restore = raise_on_termination()
    try:
        yield daemon
    finally:
        try:
            daemon.stop()
        finally:
            atexit.unregister(daemon.stop)
            restore()


def _configure(config_path: Path, api_port: int) -> None:
    """Loopback only, no swarm, no bootstrap peers, no discovery: a private offline node."""
    config = json.loads(config_path.read_text())
    addresses = config.setdefault("Addresses", {})
    addresses["API"] = f"/ip4/{HOST}/tcp/{api_port}"
    addresses["Gateway"] = f"/ip4/{HOST}/tcp/{free_port()}"
    addresses["RPC"] = f"/ip4/{HOST}/tcp/{free_port()}"
    addresses["Swarm"] = []  # with listening swarm addresses the offline daemon hangs
    addresses["Delegates"] = []
    config["Bootstrap"] = []
    discovery = config.setdefault("Discovery", {})
    discovery["MDNS"] = {"Enabled": False}
    discovery["webRTCStar"] = {"Enabled": False}
    config_path.write_text(json.dumps(config, indent=2))


def _clear_stale_lock(repo: Path) -> None:
    """Removes the repository lock a daemon left behind when it died without stopping (SIGKILL,
    OOM killer, power cut): js-ipfs would refuse to start on it until the lock is 20 s stale.
    Only when no process runs with this repository (IPFS_PATH), so a live daemon keeps its lock."""
    lock = repo / REPO_LOCK
    if lock.exists() and not _repo_users(repo):
        shutil.rmtree(lock, ignore_errors=True)  # proper-lockfile's lock is a directory


def _repo_users(repo: Path) -> list[int]:
    """The processes of this user that were started with IPFS_PATH=`repo`."""
    marker = f"IPFS_PATH={repo}".encode()
    users = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if marker in environ.split(b"\0"):
            users.append(int(entry.name))
    return users


def _wait_ready(daemon: IpfsDaemon, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise IpfsDaemonError(
                f"the IPFS daemon exited with code {code}; last lines of {daemon.state.log_path}:\n"
                f"{log_tail(daemon.state.log_path)}"
            )
        try:
            if requests.post(f"{daemon.api_url}/api/v0/version", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise IpfsDaemonError(
                f"the IPFS daemon did not answer at {daemon.api_url} within {timeout:.0f} s; "
                f"last lines of {daemon.state.log_path}:\n{log_tail(daemon.state.log_path)}"
            )
        time.sleep(0.1)


def _is_ipfs(pid: int) -> bool:
    """Guards against signalling an unrelated process that reused a recorded PID."""
    try:
        return b"ipfs" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
