"""The demo's dashboard: `fedledger dashboard` as its own process, on the demo's devnet.

Started right after deployment so the page shows registration, the governance vote and every
round as they happen; optionally kept up after the last round (`--dashboard-hold`) so the
final state can be looked at before the devnet stops.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from fedledger.demo.run import DemoLog
from fedledger.devnet.process import log_tail

URL_LINE = re.compile(r"fedledger dashboard: (http://\S+)")
START_TIMEOUT = 60.0


class DashboardStartError(RuntimeError):
    """The dashboard process exited or printed no URL in time."""


@contextlib.contextmanager
def dashboard_process(
    *,
    project: Path,
    run_dir: Path,
    deployment_file: Path,
    rpc_url: str,
    ipfs_url: str,
    port: int,
    data_seed: int,
    log: DemoLog,
    app_options: Sequence[str] = (),
) -> Iterator[str]:
    """Runs the dashboard until the block ends; yields its URL once it serves."""
    log_path = run_dir / "logs" / "dashboard.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "fedledger",
        "--project-dir",
        str(project),
        "--run-dir",
        str(run_dir),
        "dashboard",
        "--deployment",
        str(deployment_file),
        "--rpc-url",
        rpc_url,
        "--ipfs-api",
        ipfs_url,
        "--port",
        str(port),
        "--data-seed",
        str(data_seed),
        "--cache-dir",
        str(run_dir / "dashboard"),
        "--verbose",
        *app_options,  # which app scores the models, and on what data (--app, --data, --config)
    ]
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = _wait_for_url(popen, log_path)
        log.step(f"dashboard: {url} (log {log_path})")
        yield url
    finally:
        if popen.poll() is None:
            popen.terminate()
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def hold(url: str, seconds: float, log: DemoLog) -> None:
    """Keeps everything up for `seconds` so the page can be looked at; Ctrl-C ends it sooner."""
    log.step(f"the dashboard stays up at {url} for {seconds:g} s (Ctrl-C ends the wait)")
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        log.info("stopped waiting")


def _wait_for_url(popen: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = URL_LINE.search(log_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        if popen.poll() is not None:
            raise DashboardStartError(
                f"the dashboard exited with code {popen.returncode}; last lines of {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.1)
    raise DashboardStartError(f"the dashboard printed no URL within {START_TIMEOUT:.0f} s; see {log_path}")
