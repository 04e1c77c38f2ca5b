"""Connecting to a JSON-RPC node, and the chain clock.

`connect` fails fast with `RpcUnavailableError` when nothing answers; later, a node that stops
answering (down, restarting, unreachable) raises `RpcUnavailableError` from any call too, so
callers handle one project error rather than the HTTP library's. `wait_for_timestamp` waits
until the chain's latest block reaches a time: under Anvil's automine a block (and so the clock
seen by calls) only appears when a transaction arrives, so there it mines empty blocks while
waiting; on interval-mining or real chains it only polls.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast
from urllib.parse import urlsplit

import requests
from eth_abi import decoding, encoding
from eth_abi.codec import ABICodec
from eth_abi.registry import BaseEquals
from web3 import HTTPProvider, Web3
from web3._utils.abi import build_strict_registry
from web3.exceptions import Web3Exception
from web3.types import RPCEndpoint, RPCResponse

from fedledger.chain.errors import FedledgerError, RpcUnavailableError
from fedledger.retry import Backoff

DEFAULT_TIMEOUT = 10.0
# web3's validation middleware asks eth_chainId before every call, gas estimate and send, which
# doubles the requests (and the client's CPU) of a service; a node's chain id is asked once.
CACHED_REQUESTS = {RPCEndpoint("eth_chainId")}


class NodeProvider(HTTPProvider):
    """web3's HTTP provider whose transport failures raise `RpcUnavailableError`, asking the
    node's chain id only once."""

    def __init__(self, endpoint_uri: str, request_kwargs: Any | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("cache_allowed_requests", True)
        kwargs.setdefault("cacheable_requests", CACHED_REQUESTS)
        super().__init__(endpoint_uri, request_kwargs, **kwargs)

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except (requests.RequestException, OSError) as exc:
            if isinstance(exc, RpcUnavailableError):
                raise
            raise RpcUnavailableError(
                f"no JSON-RPC node answers at {display_url(str(self.endpoint_uri))} ({type(exc).__name__})"
            ) from exc


def connect(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> Web3:
    """A `Web3` on `url`, checked by asking its chain id."""
    w3 = Web3(NodeProvider(url, request_kwargs={"timeout": timeout}))
    w3.codec = strict_codec()
    try:
        w3.eth.chain_id  # noqa: B018 - the cheapest call that proves a node answers
    except RpcUnavailableError as exc:
        raise RpcUnavailableError(
            f"{exc}; is the devnet running (`fedledger devnet status`) or the URL right?"
        ) from exc.__cause__
    except (Web3Exception, ValueError) as exc:
        raise RpcUnavailableError(
            f"{display_url(url)} does not answer eth_chainId as an Ethereum node: {exc}"
        ) from exc
    return w3


def strict_codec() -> ABICodec:
    """web3's ABI codec with eth-abi's own uint decoder.

    Importing ape (the deploy path, the test runner) replaces the process-wide uint decoder with
    one that reads missing bytes as zeros; a call to an address without code would then return
    0 instead of failing, and a node that lost its state would look like a task at round 0.
    """
    registry = build_strict_registry()
    registry.unregister("uint")
    registry.register(
        BaseEquals("uint"),  # type: ignore[no-untyped-call]
        encoding.UnsignedIntegerEncoder,
        decoding.UnsignedIntegerDecoder,
        label="uint",
    )
    return ABICodec(registry)


def connect_waiting(url: str, *, wait: float, log: logging.Logger, timeout: float = DEFAULT_TIMEOUT) -> Web3:
    """`connect`, retried with backoff for up to `wait` seconds: for services that may start
    before their node. Logs once when it starts waiting and once when the node answers."""
    deadline = time.monotonic() + wait
    backoff = Backoff(initial=0.5, maximum=10.0)
    while True:
        try:
            w3 = connect(url, timeout=timeout)
        except RpcUnavailableError as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if wait > 0:
                    raise RpcUnavailableError(f"{exc} (waited {wait:.0f} s)") from exc.__cause__
                raise
            if backoff.failures == 0:
                log.warning("%s; waiting up to %.0f s for it", exc, wait)
            time.sleep(min(backoff.next_delay(), remaining))
            continue
        if backoff.failures:
            log.warning("the JSON-RPC node at %s answers now", display_url(url))
        return w3


def display_url(url: str) -> str:
    """`url` fit for messages and logs: scheme, host and port; no credentials, path or query.

    Hosted endpoints carry API keys in the path (`/v3/<key>`) or the user info.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "<malformed URL>"
    if not parts.scheme or not host:
        return "<malformed URL>"
    shown = f"[{host}]" if ":" in host else host
    location = f"{parts.scheme}://{shown}" + (f":{port}" if port is not None else "")
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment
    return location + ("/..." if hidden else "")


def latest_timestamp(w3: Web3) -> int:
    """The timestamp of the latest block: the time calls and views see."""
    return int(w3.eth.get_block("latest")["timestamp"])


def client_version(w3: Web3) -> str:
    """`web3_clientVersion`, e.g. `anvil/v1.7.1`."""
    return str(w3.client_version)


def is_anvil(w3: Web3) -> bool:
    """Whether the node is Anvil (devnet-only methods such as `evm_mine` exist)."""
    try:
        return "anvil" in client_version(w3).lower()
    except (Web3Exception, ValueError):
        return False


def automine(w3: Web3) -> bool:
    """Whether the node mines a block per transaction and otherwise none (Anvil's default)."""
    if not is_anvil(w3):
        return False
    return bool(_request(w3, "anvil_getAutomine", []))


def mine(w3: Web3) -> None:
    """Mines one empty block (Anvil only)."""
    _request(w3, "evm_mine", [])


def wait_for_timestamp(
    w3: Web3, target: int, *, timeout: float, mine_blocks: bool | None = None, poll: float = 0.25
) -> int:
    """Waits until the latest block's timestamp is at least `target`; returns that timestamp.

    `mine_blocks`: mine empty blocks while waiting (default: when the node is an automining Anvil).
    """
    if mine_blocks is None:
        mine_blocks = automine(w3)
    deadline = time.monotonic() + timeout
    while True:
        now = latest_timestamp(w3)
        if now >= target:
            return now
        if time.monotonic() > deadline:
            raise FedledgerError(f"chain time {now} did not reach {target} within {timeout:.0f} s")
        # Sleep until about when the target second starts on the wall clock, but not too long.
        time.sleep(min(poll, max(0.02, target - time.time())))
        if mine_blocks:
            mine(w3)


def _request(w3: Web3, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(cast(Any, method), params)
    if "error" in response:
        raise FedledgerError(f"{method} failed: {response['error']}")
    return response.get("result")
