"""A local Anvil devnet: start it, wait until it answers, find it again, stop it for sure.

A started Anvil runs in its own session (process group), writes its log to `<run_dir>/anvil.log`
and is described by `<run_dir>/anvil.json` (pid, port, profile), so `fedledger devnet down`
in another process finds and stops it. `stop` signals the whole group, waits, escalates to
SIGKILL and verifies the process is gone. `running_devnet` is the context manager for code
that must leave nothing behind: it stops the devnet on return, on exceptions, on SIGTERM/SIGHUP
and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fedledger.devnet.process import (
    HOST,
    alive,
    free_port,
    log_tail,
    port_is_free,
    raise_on_termination,
    read_state,
    terminate_group,
    write_state,
)

DEFAULT_RUN_DIR = Path(".run")
STATE_FILE = "anvil.json"
LOG_FILE = "anvil.log"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


class DevnetError(RuntimeError):
    """The devnet could not be started, found or stopped."""


@dataclass(frozen=True)
class Profile:
    """How Anvil is run: chain id, mining mode and block gas limit."""

    name: str
    chain_id: int
    block_time: float | None = None  # None: automine, one block per transaction
    gas_limit: int | None = None
    ape_network: str = "ethereum:local:foundry"

    def anvil_args(self) -> list[str]:
        args = ["--chain-id", str(self.chain_id)]
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        if self.gas_limit is not None:
            args += ["--gas-limit", str(self.gas_limit)]
        return args


PROFILES: dict[str, Profile] = {
    "local": Profile("local", 31337),
    "sei-like": Profile(
        "sei-like", 713715, block_time=0.4, gas_limit=10_000_000, ape_network="sei:seilike:node"
    ),
}


@dataclass(frozen=True, kw_only=True)
class DevnetState:
    """What `<run_dir>/anvil.json` records about a started devnet."""

    pid: int
    port: int
    host: str
    profile: str
    chain_id: int
    log_path: str
    started_at: float

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Devnet:
    """A started Anvil. Keeps the process handle when this process started it (to reap it)."""

    def __init__(
        self, state: DevnetState, run_dir: Path, process: subprocess.Popen[bytes] | None = None
    ) -> None:
        self.state = state
        self.run_dir = run_dir
        self._process = process
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.state.url

    @property
    def pid(self) -> int:
        return self.state.pid

    def is_running(self) -> bool:
        return alive(self.state.pid, self._process)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stops the Anvil process group and verifies it is gone. Idempotent."""
        with self._lock:
            if alive(self.state.pid, self._process) and _is_anvil(self.state.pid):
                terminate_group(self.state.pid, self._process, timeout)
            if alive(self.state.pid, self._process):
                raise DevnetError(f"anvil (pid {self.state.pid}) is still running after SIGKILL")
            state_path = self.run_dir / STATE_FILE
            if read_state(state_path, DevnetState) == self.state:
                state_path.unlink(missing_ok=True)


def start(
    profile: Profile | str = "local",
    *,
    port: int | None = None,
    run_dir: Path = DEFAULT_RUN_DIR,
    accounts: int = 10,
    anvil: str | None = None,
    timeout: float = START_TIMEOUT,
) -> Devnet:
    """Starts Anvil with `profile` on `port` (default: a free one) and waits until it answers."""
    profile = PROFILES[profile] if isinstance(profile, str) else profile
    run_dir.mkdir(parents=True, exist_ok=True)
    existing = find(run_dir)
    if existing is not None:
        raise DevnetError(
            f"a devnet is already running from {run_dir} (pid {existing.pid}, {existing.url}); "
            "stop it first (`fedledger devnet down`)"
        )
    port = port if port is not None else free_port()
    if not port_is_free(port):
        raise DevnetError(f"port {port} on {HOST} is already in use; choose another with --port")
    binary = anvil or find_anvil()
    log_path = run_dir / LOG_FILE
    command = [
        binary,
        "--host",
        HOST,
        "--port",
        str(port),
        "--accounts",
        str(accounts),
        *profile.anvil_args(),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    state = DevnetState(
        pid=process.pid,
        port=port,
        host=HOST,
        profile=profile.name,
        chain_id=profile.chain_id,
        log_path=str(log_path),
        started_at=time.time(),
    )
    devnet = Devnet(state, run_dir, process)
    try:
        _wait_ready(devnet, process, timeout)
    except BaseException:
        devnet.stop()
        raise
    write_state(run_dir / STATE_FILE, state)
    return devnet


def find(run_dir: Path = DEFAULT_RUN_DIR) -> Devnet | None:
    """The devnet started from `run_dir`, if it is still running. Removes a stale state file."""
    path = run_dir / STATE_FILE
    state = read_state(path, DevnetState)
    if state is None:
        return None
    if not (alive(state.pid, None) and _is_anvil(state.pid)):
        path.unlink(missing_ok=True)
        return None
    return Devnet(state, run_dir)


def stop(run_dir: Path = DEFAULT_RUN_DIR) -> DevnetState | None:
    """Stops the devnet started from `run_dir`; returns what was stopped (None: nothing ran)."""
    devnet = find(run_dir)
    if devnet is None:
        return None
    devnet.stop()
    return devnet.state


def rpc_chain_id(url: str, timeout: float = 1.0) -> int:
    """`eth_chainId` at `url` with the standard library only (fast, no web3 import)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(json.loads(response.read())["result"], 16)


@contextlib.contextmanager
def running_devnet(
    profile: Profile | str = "local",
    *,
    port: int | None = None,
    run_dir: Path = DEFAULT_RUN_DIR,
    accounts: int = 10,
) -> Iterator[Devnet]:
    """Starts a devnet and stops it however the block is left (return, error, SIGTERM, exit)."""
    devnet = start(profile, port=port, run_dir=run_dir, accounts=accounts)
    atexit.register(devnet.stop)
    restore = raise_on_termination()
    try:
        yield devnet
    finally:
        try:
            devnet.stop()
        finally:
            atexit.unregister(devnet.stop)
            restore()


def find_anvil() -> str:
    """The Anvil binary: $FEDLEDGER_ANVIL, the project's .bin/anvil, or `anvil` on PATH.

    The npm package's node_modules/.bin/anvil is a node wrapper whose PID is not Anvil's; the
    project links the real binary into .bin/ (tools/setup.sh).
    """
    candidates = [os.environ.get("FEDLEDGER_ANVIL")]
    package_root = Path(__file__).resolve().parents[3]  # clients/fedledger/devnet/anvil.py
    for parent in (Path.cwd(), *Path.cwd().parents, package_root):
        candidates.append(str(parent / ".bin" / "anvil"))
    candidates.append(shutil.which("anvil"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise DevnetError("anvil not found: run `make setup`, or set FEDLEDGER_ANVIL to the anvil binary")


# ---------------------------------------------------------------- internals


def _wait_ready(devnet: Devnet, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise DevnetError(
                f"anvil exited with code {code} before answering; last lines of {devnet.state.log_path}:\n"
                f"{log_tail(devnet.state.log_path)}"
            )
        try:
            chain_id = rpc_chain_id(devnet.url, timeout=0.5)
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            chain_id = None
        if chain_id is not None:
            if chain_id != devnet.state.chain_id:
                raise DevnetError(
                    f"{devnet.url} answers chain id {chain_id}, expected {devnet.state.chain_id}"
                )
            return
        if time.monotonic() > deadline:
            raise DevnetError(
                f"anvil did not answer eth_chainId at {devnet.url} within {timeout:.0f} s; "
                f"last lines of {devnet.state.log_path}:\n{log_tail(devnet.state.log_path)}"
            )
        time.sleep(0.05)


def _is_anvil(pid: int) -> bool:
    """Guards against signalling an unrelated process that reused a recorded PID."""
    try:
        return b"anvil" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
