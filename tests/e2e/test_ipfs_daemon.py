"""The project's IPFS daemon for real: start, add/cat/pin through the Kubo RPC API, stop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedledger.devnet import ipfs as ipfs_daemon
from fedledger.storage.ipfs import (
    ContentTooLargeError,
    ContentUnavailableError,
    IpfsClient,
    IpfsUnavailableError,
)


def test_ipfs_daemon__lifecycle_and_api(tmp_path: Path) -> None:
    daemon = ipfs_daemon.start(run_dir=tmp_path)
    try:
        assert ipfs_daemon.find(tmp_path) is not None
        with pytest.raises(ipfs_daemon.IpfsDaemonError, match="already running"):
            ipfs_daemon.start(run_dir=tmp_path)
        client = IpfsClient(daemon.api_url, timeout=5)
        data = os.urandom(300_000)  # larger than one block: a chunked DAG
        pinned = client.add(data)
        assert pinned.cid.startswith("b")
        assert client.cat(pinned.cid, max_bytes=len(data)) == data
        assert client.is_pinned(pinned.cid)
        with pytest.raises(ContentTooLargeError):
            client.cat(pinned.cid, max_bytes=1000)
        with pytest.raises(ContentUnavailableError):
            client.cat("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 100, timeout=1)
    finally:
        daemon.stop()
    assert not daemon.is_running()
    assert ipfs_daemon.find(tmp_path) is None
    with pytest.raises(IpfsUnavailableError):
        IpfsClient(daemon.api_url, timeout=2).version()
    # Pins survive a restart of the daemon on the same repository.
    again = ipfs_daemon.start(run_dir=tmp_path)
    try:
        assert IpfsClient(again.api_url).cat(pinned.cid, max_bytes=len(data)) == data
    finally:
        again.stop()
