"""`IpfsClient.cat` failures: the file's fault or the local daemon's.

A tiny HTTP server stands in for the daemon so that a transfer can be cut at an exact byte:
the real daemon, killed mid-transfer, cuts it at a random one (`Response ended prematurely`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fedledger.aggregator.verification import Commit, verify
from fedledger.chain.params import RejectionReason
from fedledger.learning.model import model_spec
from fedledger.storage.codec import Binding
from fedledger.storage.ipfs import ContentUnavailableError, IpfsClient, IpfsUnavailableError

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


class Daemon(ThreadingHTTPServer):
    """Answers `version`; `cat` cuts its transfer (`cut`) or fails (500); `dies` after a cat:
    from then on it drops every connection without an answer, as a crashed daemon would."""

    daemon_threads = True

    def __init__(self, *, cat: str, dies: bool) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.cat_mode = cat
        self.dies = dies
        self.dead = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Daemon

    def do_POST(self) -> None:
        if self.server.dead:
            self.close_connection = True
            return  # no status line: the client sees the connection close
        if self.path.startswith("/api/v0/version"):
            self._send(200, b'{"Version": "fake"}')
        elif self.server.cat_mode == "cut":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\0" * 1000)  # then the connection closes: 99,000 bytes short
            self.close_connection = True
        else:
            self._send(500, b'{"Message": "failed to fetch", "Code": 0}')
        self.server.dead = self.server.dies and self.path.startswith("/api/v0/cat")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def _serve(*, cat: str, dies: bool) -> Daemon:
        daemon = Daemon(cat=cat, dies=dies)
        threading.Thread(target=daemon.serve_forever, daemon=True).start()
        started.append(daemon)
        return daemon

    yield _serve
    for daemon in started:
        daemon.shutdown()
        daemon.server_close()


@pytest.mark.parametrize("cat", ["cut", "error"])
def test_cat__daemon_still_answers__the_content_is_unavailable(
    serve: Callable[..., Daemon], cat: str
) -> None:
    daemon = serve(cat=cat, dies=False)
    with pytest.raises(ContentUnavailableError):
        IpfsClient(daemon.url, timeout=5).cat(CID, 1 << 20)


@pytest.mark.parametrize("cat", ["cut", "error"])
def test_cat__daemon_dies_during_the_fetch__the_daemon_is_unavailable(
    serve: Callable[..., Daemon], cat: str
) -> None:
    daemon = serve(cat=cat, dies=True)
    with pytest.raises(IpfsUnavailableError, match="no longer answers"):
        IpfsClient(daemon.url, timeout=5).cat(CID, 1 << 20)


def test_verify__transfer_cut_by_a_dying_local_daemon__is_no_rejection(serve: Callable[..., Daemon]) -> None:
    """Before: `Unavailable`, the trainer's fault, for an outage of the aggregator's own node."""
    daemon = serve(cat="cut", dies=True)
    commit = Commit(trainer="0x" + "11" * 20, digest=bytes(32), cid=CID, num_samples=10)
    binding = Binding(kind="update", chain_id=1, task="", round=0, model_spec="")
    with pytest.raises(IpfsUnavailableError):
        verify(commit, IpfsClient(daemon.url, timeout=5).cat, model_spec(), binding)
    healthy = serve(cat="cut", dies=False)
    verdict = verify(commit, IpfsClient(healthy.url, timeout=5).cat, model_spec(), binding)
    assert verdict.reason == RejectionReason.UNAVAILABLE
