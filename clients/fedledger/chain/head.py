"""Waiting for the chain to move: a service loop sleeps until a new block, not a fixed interval.

Every change a round goes through (a commit, a reveal, an attestation, a finalization) arrives
in a block, so a loop that re-reads the round once per block misses nothing. `ChainHead` holds
a `newHeads` subscription over WebSocket (Anvil serves it on its HTTP port): a wait costs no
RPC and ends within milliseconds of a block. A `LogBloom` passes over blocks that cannot hold
the events the caller waits for (claims, say), by the bloom filter in each header. Where the
node offers no WebSocket it polls `eth_blockNumber` instead. Phases that end by time alone are
the caller's business: it passes a timeout up to the deadline (`seconds_until`).

A wait never raises: a lost subscription is reopened with backoff (polling meanwhile) and a node
that does not answer just makes the wait last its timeout; the service's own calls then report
the outage and back off as before (fedledger.retry).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3
from web3.exceptions import Web3Exception
from websockets.exceptions import InvalidHandshake, WebSocketException
from websockets.sync.client import ClientConnection, connect

from fedledger.chain.errors import RpcUnavailableError
from fedledger.chain.rpc import display_url
from fedledger.retry import Backoff

log = logging.getLogger("fedledger.chain.head")

# The longest a service waits for a block before it looks at its round anyway.
IDLE_WAIT = 1.0
# A wait is cut into slices this long so a stop request ends it promptly.
STOP_SLICE = 0.25
OPEN_TIMEOUT = 2.0


def websocket_url(http_url: str) -> str | None:
    """The WebSocket address served next to an HTTP JSON-RPC address (same host, port and path)."""
    parts = urlsplit(http_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme)) if scheme else None


def seconds_until(deadline: int | None, *, idle: float, overdue: float) -> float:
    """How long a loop may wait for a block before it must look again.

    `deadline`: unix time at which the current phase ends by time (None: only a transaction
    ends it); at most `idle` seconds anyway. A deadline already past waits `overdue`: the
    phase changes with the next block, which the wait catches if it comes earlier.
    """
    if deadline is None:
        return idle
    left = deadline - time.time()
    # A hair past the second: a block mined then carries the deadline as its timestamp.
    return min(idle, left + 0.01) if left > 0 else min(idle, overdue)


class LogBloom:
    """Blocks that may hold a log of `address` with one of `topics` (event signature hashes),
    told by the bloom filter in their header: never a false negative, rarely a false positive."""

    def __init__(self, address: str, topics: Iterable[str | bytes]) -> None:
        self.address_bits = _bloom_bits(bytes.fromhex(address.removeprefix("0x")))
        self.topic_bits = tuple(
            _bloom_bits(bytes.fromhex(t.removeprefix("0x")) if isinstance(t, str) else t) for t in topics
        )

    def may_contain(self, bloom: int | None) -> bool:
        """Whether a block with this header bloom may hold such a log (None: unknown, so yes)."""
        if bloom is None:
            return True
        if bloom & self.address_bits != self.address_bits:
            return False
        return any(bloom & bits == bits for bits in self.topic_bits)


def _bloom_bits(item: bytes) -> int:
    """The three bits an item sets in a 2048-bit log bloom (yellow paper, M3:2048)."""
    digest = keccak(item)
    bits = 0
    for i in (0, 2, 4):
        bits |= 1 << (((digest[i] << 8) | digest[i + 1]) & 2047)
    return bits


def _logs_bloom(message: str | bytes) -> int | None:
    """The `logsBloom` of a `newHeads` notification, None if it has none."""
    try:
        bloom = json.loads(message)["params"]["result"]["logsBloom"]
        return int(bloom, 16)
    except (ValueError, KeyError, TypeError):
        return None


class ChainHead:
    """Wakes its owner when a block is mined (or a timeout passes). One per thread."""

    def __init__(self, w3: Web3, *, poll_interval: float = 0.2, url: str | None = None) -> None:
        self.w3 = w3
        self.poll_interval = poll_interval
        endpoint = url or (str(w3.provider.endpoint_uri) if isinstance(w3.provider, HTTPProvider) else None)
        self.ws_url = websocket_url(endpoint) if endpoint else None
        self._socket: ClientConnection | None = None
        self._retry_at = 0.0  # monotonic time of the next attempt to subscribe
        self._backoff = Backoff(initial=0.5, maximum=30.0)
        self._last_block: int | None = None  # polling: the block number last seen
        self._moved_unseen = False  # a (re)subscription may have missed blocks: report one

    @property
    def subscribed(self) -> bool:
        return self._socket is not None

    def start(self) -> None:
        """Subscribes (or takes the polling baseline) now, so a block mined before the first
        `wait` still ends it."""
        if self._subscribe():
            self._moved_unseen = False
        else:
            self._last_block = self._block_number()

    def wait(
        self, timeout: float, stop: threading.Event | None = None, *, interest: LogBloom | None = None
    ) -> bool:
        """True as soon as a block was mined since the previous wait returned (at once if one
        already was), False after `timeout` seconds or once `stop` is set. With `interest`, a
        block whose header shows none of those logs is passed over (subscribed only)."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            if self._moved(max(0.0, min(remaining, STOP_SLICE)), interest):
                return True
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return False

    def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):
                self._socket.close()
            self._socket = None

    def __enter__(self) -> ChainHead:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- one slice

    def _moved(self, within: float, interest: LogBloom | None) -> bool:
        """Whether a block (of `interest`) comes within `within` seconds (or came already)."""
        if self._socket is None and not self._subscribe():
            return self._polled(within)
        if self._moved_unseen:
            self._moved_unseen = False
            return True
        assert self._socket is not None
        deadline = time.monotonic() + within
        while True:
            try:
                message = self._socket.recv(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
            except (WebSocketException, OSError) as exc:
                log.debug("block subscription lost (%s); polling until it is back", type(exc).__name__)
                self.close()
                self._retry_at = time.monotonic() + self._backoff.next_delay()
                return self._polled(max(0.0, deadline - time.monotonic()))
            if interest is None or interest.may_contain(_logs_bloom(message)):
                self._drain()  # heads that piled up while the owner was busy: one wake for all
                return True

    def _drain(self) -> None:
        assert self._socket is not None
        with contextlib.suppress(TimeoutError, WebSocketException, OSError):
            while True:
                self._socket.recv(timeout=0)

    def _polled(self, within: float) -> bool:
        number = self._block_number()
        if number is not None:
            moved = self._last_block is not None and number != self._last_block
            self._last_block = number
            if moved:
                return True
        time.sleep(min(within, self.poll_interval))
        return False

    def _block_number(self) -> int | None:
        try:
            return int(self.w3.eth.block_number)
        except (RpcUnavailableError, Web3Exception, ValueError, OSError):
            return None  # the service's own calls report the outage

    def _subscribe(self) -> bool:
        """Opens the `newHeads` subscription if it is time to try; whether one is open."""
        if self._socket is not None:
            return True
        if self.ws_url is None or time.monotonic() < self._retry_at:
            return False
        try:
            socket = connect(self.ws_url, open_timeout=OPEN_TIMEOUT, close_timeout=1.0)
        except InvalidHandshake as exc:
            # Something answers, but not with WebSocket (a plain HTTP node): poll for good.
            log.debug("no WebSocket at %s (%s); polling for blocks", display_url(self.ws_url), exc)
            self.ws_url = None
            return False
        except (WebSocketException, OSError, TimeoutError) as exc:
            log.debug("cannot subscribe to blocks (%s); polling meanwhile", type(exc).__name__)
            self._retry_at = time.monotonic() + self._backoff.next_delay()
            return False
        try:
            socket.send(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
            )
            answer = json.loads(socket.recv(timeout=OPEN_TIMEOUT))
        except (WebSocketException, OSError, TimeoutError, ValueError) as exc:
            socket.close()
            log.debug("block subscription failed (%s); polling meanwhile", type(exc).__name__)
            self._retry_at = time.monotonic() + self._backoff.next_delay()
            return False
        if "result" not in answer:
            socket.close()
            log.debug("the node refuses newHeads subscriptions (%s); polling for blocks", answer.get("error"))
            self.ws_url = None
            return False
        self._socket = socket
        self._backoff.reset()
        self._moved_unseen = True  # blocks may have come while unsubscribed
        return True
