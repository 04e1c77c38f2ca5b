"""The devnet module against a real Anvil: start, answer, find, stop, and nothing left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import Web3

from fedledger.devnet import anvil
from fedledger.devnet.anvil import DevnetError, find, rpc_chain_id, running_devnet, start, stop


def gone(pid: int) -> bool:
    """No such process, or only its zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_start_find_stop__local_profile(tmp_path: Path) -> None:
    devnet = start("local", run_dir=tmp_path)
    try:
        assert rpc_chain_id(devnet.url) == 31337
        assert (tmp_path / "anvil.json").exists() and (tmp_path / "anvil.log").exists()
        found = find(tmp_path)
        assert found is not None and found.state == devnet.state
        with pytest.raises(DevnetError, match="already running"):
            start("local", run_dir=tmp_path)
    finally:
        stopped = stop(tmp_path)
    assert stopped == devnet.state
    assert gone(devnet.pid) and port_closed(devnet.state.port)
    assert not (tmp_path / "anvil.json").exists()
    assert find(tmp_path) is None and stop(tmp_path) is None


def test_sei_like_profile__chain_id_and_interval_blocks(tmp_path: Path) -> None:
    with running_devnet("sei-like", run_dir=tmp_path) as devnet:
        assert rpc_chain_id(devnet.url) == 713715
        w3 = Web3(Web3.HTTPProvider(devnet.url))
        first = w3.eth.block_number
        time.sleep(1.0)
        assert w3.eth.block_number >= first + 2  # a block every 0.4 s without transactions
        assert w3.eth.get_block("latest")["gasLimit"] == 10_000_000
    assert gone(devnet.pid)


def test_running_devnet__stops_on_error(tmp_path: Path) -> None:
    pid = None
    with pytest.raises(RuntimeError, match="midway"), running_devnet("local", run_dir=tmp_path) as devnet:
        pid = devnet.pid
        raise RuntimeError("demo failed midway")
    assert pid is not None and gone(pid)


def test_running_devnet__stops_on_sigterm(tmp_path: Path) -> None:
    """A process killed with SIGTERM mid-demo still stops its Anvil."""
    code = (
        "import sys, time; from pathlib import Path; from fedledger.devnet import running_devnet\n"
        "with running_devnet('local', run_dir=Path(sys.argv[1])) as d:\n"
        "    print(d.pid, flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        assert not gone(pid)
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=15)
    finally:
        if child.poll() is None:
            child.kill()
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)


def test_stop__finds_devnet_started_by_another_process(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from fedledger.devnet import start\n"
        "start('local', run_dir=Path(sys.argv[1]))"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=30)
    found = find(tmp_path)
    assert found is not None and rpc_chain_id(found.url) == 31337
    stop(tmp_path)
    assert gone(found.pid)


def test_start__port_in_use__clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(DevnetError, match=rf"port {port} .* in use"):
            start("local", port=port, run_dir=tmp_path)


def test_start__anvil_dies__error_shows_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "anvil"
    fake.write_text("#!/bin/sh\necho 'fake anvil: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(DevnetError, match=r"exited with code 3(.|\n)*fake anvil: cannot start"):
        start("local", run_dir=tmp_path / "run", anvil=str(fake))
    assert find(tmp_path / "run") is None


def test_stale_state_file__is_ignored(tmp_path: Path) -> None:
    devnet = start("local", run_dir=tmp_path)
    state_text = (tmp_path / "anvil.json").read_text()
    os.killpg(devnet.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while devnet.is_running() and time.monotonic() < deadline:
        time.sleep(0.02)
    (tmp_path / "anvil.json").write_text(state_text)
    assert find(tmp_path) is None
    assert not (tmp_path / "anvil.json").exists()


def test_profiles() -> None:
    assert anvil.PROFILES["local"].anvil_args() == ["--chain-id", "31337"]
    assert anvil.PROFILES["sei-like"].anvil_args() == [
        "--chain-id",
        "713715",
        "--block-time",
        "0.4",
        "--gas-limit",
        "10000000",
    ]


def test_ipfs_repo_lock__cleared_only_once_no_process_uses_the_repository(tmp_path: Path) -> None:
    """A daemon killed without stopping leaves `repo.lock`; js-ipfs would refuse to start for 20 s."""
    from fedledger.devnet import ipfs

    repo = tmp_path / ipfs.REPO_DIR
    lock = repo / ipfs.REPO_LOCK
    lock.mkdir(parents=True)
    env = {**os.environ, "IPFS_PATH": str(repo.resolve())}
    user = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    try:
        ipfs._clear_stale_lock(repo.resolve())
        assert lock.is_dir()  # the live process may be the daemon holding it
    finally:
        user.kill()
        user.wait()
    ipfs._clear_stale_lock(repo.resolve())
    assert not lock.exists()
