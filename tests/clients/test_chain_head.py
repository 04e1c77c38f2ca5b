"""`ChainHead` against a real Anvil: waits end with the next block (over WebSocket or by
polling), last their timeout when nothing is mined, and survive a lost subscription or a dead
node without raising."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest
from web3 import Web3

from fedledger.chain import rpc
from fedledger.chain.head import ChainHead, LogBloom, seconds_until, websocket_url
from fedledger.devnet import Devnet, running_devnet
from fedledger.devnet.process import free_port


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    with running_devnet("local", run_dir=tmp_path_factory.mktemp("head")) as devnet:
        yield devnet


@pytest.fixture
def w3(devnet: Devnet) -> Web3:
    return rpc.connect(devnet.url)


def mine_soon(w3: Web3, delay: float) -> threading.Thread:
    """Mines one block `delay` seconds from now, from another thread (and client)."""
    other = rpc.connect(str(w3.provider.endpoint_uri))  # type: ignore[attr-defined]
    thread = threading.Timer(delay, rpc.mine, args=(other,))
    thread.start()
    return thread


def timed_wait(
    head: ChainHead, timeout: float, stop: threading.Event | None = None, interest: LogBloom | None = None
) -> tuple[bool, float]:
    started = time.monotonic()
    moved = head.wait(timeout, stop, interest=interest)
    return moved, time.monotonic() - started


def test_websocket_url() -> None:
    assert websocket_url("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert websocket_url("https://node.example/v3/KEY?x=1") == "wss://node.example/v3/KEY?x=1"
    assert websocket_url("ipc:///tmp/anvil.ipc") is None


def test_seconds_until__idle_deadline_or_overdue() -> None:
    assert seconds_until(None, idle=1.0, overdue=0.2) == 1.0
    assert seconds_until(int(time.time()) + 100, idle=1.0, overdue=0.2) == 1.0
    soon = seconds_until(int(time.time()) + 1, idle=5.0, overdue=0.2)
    assert 0.01 < soon <= 1.01  # until just past the deadline's second
    assert seconds_until(int(time.time()) - 3, idle=1.0, overdue=0.2) == 0.2


def test_subscribed__wait_ends_with_the_next_block(w3: Web3) -> None:
    with ChainHead(w3) as head:
        assert head.subscribed
        mine_soon(w3, 0.3)
        moved, took = timed_wait(head, 5.0)
        assert moved and 0.25 < took < 1.0


def test_subscribed__nothing_mined__waits_its_timeout(w3: Web3) -> None:
    with ChainHead(w3) as head:
        moved, took = timed_wait(head, 0.6)
        assert not moved and 0.55 < took < 1.5


def test_blocks_mined_between_waits__one_immediate_wake_for_all(w3: Web3) -> None:
    with ChainHead(w3) as head:
        for _ in range(3):
            rpc.mine(w3)
        time.sleep(0.1)  # the notifications arrive
        assert timed_wait(head, 5.0)[0]
        moved, took = timed_wait(head, 0.3)  # all three consumed by the first wake
        assert not moved and took >= 0.25


def test_block_mined_before_the_first_wait__still_seen(w3: Web3) -> None:
    for head in (ChainHead(w3), ChainHead(w3, url="ipc:///nowhere")):  # subscribed, polling
        with head:
            rpc.mine(w3)
            moved, took = timed_wait(head, 2.0)
            assert moved and took < 0.5


def test_stop__ends_a_long_wait(w3: Web3) -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with ChainHead(w3) as head:
        moved, took = timed_wait(head, 30.0, stop)
    assert not moved and took < 1.0


def test_no_websocket__polls_block_numbers(w3: Web3) -> None:
    """A node address that answers HTTP but not WebSocket: the head polls `eth_blockNumber`."""
    server = http.server.HTTPServer(("127.0.0.1", free_port()), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with ChainHead(w3, url=f"http://127.0.0.1:{server.server_port}", poll_interval=0.05) as head:
            assert not head.subscribed and head.ws_url is None  # not tried again
            mine_soon(w3, 0.2)
            moved, took = timed_wait(head, 5.0)
            assert moved and took < 0.6
            assert not timed_wait(head, 0.3)[0]
    finally:
        server.shutdown()
        server.server_close()


def test_subscription_lost__polls_then_subscribes_again(w3: Web3) -> None:
    with ChainHead(w3, poll_interval=0.05) as head:
        assert head._socket is not None
        head._socket.close()  # as when the node drops the connection
        mine_soon(w3, 0.2)
        assert timed_wait(head, 5.0)[0]  # seen by polling
        assert not head.subscribed
        time.sleep(0.6)  # the first retry comes after 0.5 s
        head.wait(0.1)
        assert head.subscribed
        mine_soon(w3, 0.2)
        assert timed_wait(head, 5.0)[0]


def test_dead_node__waits_the_timeout_without_raising() -> None:
    dead = Web3(rpc.NodeProvider(f"http://127.0.0.1:{free_port()}", request_kwargs={"timeout": 1}))
    with ChainHead(dead, poll_interval=0.05) as head:
        assert not head.subscribed
        moved, took = timed_wait(head, 0.5)
    assert not moved and 0.45 < took < 2.0


# ---------------------------------------------------------------- waking only for some logs

# A contract that logs its 32 bytes of calldata as the topic of one anonymous log (LOG1).
LOGGER_RUNTIME = "6000356000600" + "0a100"
LOGGER_INIT = "0x6009600c60003960096000f3" + LOGGER_RUNTIME
TOPIC_A, TOPIC_B = b"\xaa" * 32, b"\xbb" * 32


@pytest.fixture(scope="module")
def logger(devnet: Devnet) -> str:
    w3 = rpc.connect(devnet.url)
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "data": LOGGER_INIT})
    return str(w3.eth.wait_for_transaction_receipt(tx)["contractAddress"])


def log_soon(w3: Web3, address: str, topic: bytes, delay: float) -> None:
    other = rpc.connect(str(w3.provider.endpoint_uri))  # type: ignore[attr-defined]

    def send() -> None:
        other.eth.send_transaction({"from": other.eth.accounts[0], "to": address, "data": "0x" + topic.hex()})  # type: ignore[typeddict-item]

    threading.Timer(delay, send).start()


def test_log_bloom__agrees_with_the_blocks_bloom(w3: Web3, logger: str) -> None:
    from eth_bloom import BloomFilter

    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": logger, "data": "0x" + TOPIC_A.hex()})  # type: ignore[typeddict-item]
    block = w3.eth.get_block(w3.eth.wait_for_transaction_receipt(tx)["blockNumber"])
    bloom = int.from_bytes(block["logsBloom"], "big")
    assert bytes.fromhex(logger[2:]) in BloomFilter(bloom) and TOPIC_A in BloomFilter(bloom)
    assert LogBloom(logger, [TOPIC_A]).may_contain(bloom)
    assert LogBloom(logger, ["0x" + TOPIC_B.hex(), TOPIC_A]).may_contain(bloom)
    assert not LogBloom(logger, [TOPIC_B]).may_contain(bloom)
    assert not LogBloom("0x" + "12" * 20, [TOPIC_A]).may_contain(bloom)
    assert not LogBloom(logger, [TOPIC_A]).may_contain(0) and LogBloom(logger, [TOPIC_A]).may_contain(None)


def test_interest__blocks_without_such_logs_are_passed_over(w3: Web3, logger: str) -> None:
    with ChainHead(w3) as head:
        mine_soon(w3, 0.1)  # an empty block
        log_soon(w3, logger, TOPIC_B, 0.3)  # a log of no interest
        log_soon(w3, logger, TOPIC_A, 0.6)
        moved, took = timed_wait(head, 5.0, interest=LogBloom(logger, [TOPIC_A]))
        assert moved and 0.55 < took < 1.5
        mine_soon(w3, 0.1)
        moved, took = timed_wait(head, 0.6, interest=LogBloom(logger, [TOPIC_A]))
        assert not moved and took >= 0.55
