"""The network guard: transactions go to local devnets only, unless the user says otherwise.

The CLI runs against a fake connection (`fedledger.chain.rpc.connect` patched): a node is its
URL, chain id and client. A command that gets past the guard fails next on the missing
deployments file, which proves it was let through.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

from fedledger.chain import rpc
from fedledger.chain.network import (
    NodeFacts,
    RemoteNetworkError,
    is_loopback,
    require_local_devnet,
)
from fedledger.chain.rpc import display_url
from fedledger.cli import cli
from fedledger.devnet.process import free_port

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "k3y0fTheHostedEndpoint"
REMOTE = f"https://rpc.example.org/v3/{API_KEY}"
ANVIL, GETH = "anvil/v1.7.1", "Geth/v1.14.0-stable/linux-amd64/go1.22"


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8545", True),
        ("http://127.1.2.3:8545", True),
        ("http://localhost:8545", True),
        ("http://LOCALHOST", True),
        ("http://[::1]:8545", True),
        ("http://10.0.0.5:8545", False),
        ("http://0.0.0.0:8545", False),
        ("https://evm-rpc.sei-apis.com", False),
        ("http://localhost.example.org:8545", False),
        ("not a url", False),
        ("http://[::1", False),
    ],
)
def test_is_loopback(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://127.0.0.1:8545/", "http://127.0.0.1:8545"),
        (REMOTE, "https://rpc.example.org/..."),
        ("https://user:secret@node.example.org:8443?key=secret", "https://node.example.org:8443/..."),
        ("http://[::1]:8545", "http://[::1]:8545"),
        ("localhost:8545", "<malformed URL>"),
    ],
)
def test_display_url__hides_credentials(url: str, shown: str) -> None:
    assert display_url(url) == shown


@pytest.mark.parametrize(
    ("facts", "why"),
    [
        (NodeFacts("http://127.0.0.1:8545", 31337, anvil=True), ""),
        (NodeFacts("http://localhost:9000", 713715, anvil=True), ""),
        (NodeFacts("http://10.1.1.1:8545", 31337, anvil=True), "not a loopback address"),
        (NodeFacts("http://127.0.0.1:8545", 31337, anvil=False), "the node is not Anvil"),
        (NodeFacts("http://127.0.0.1:8545", 1, anvil=True), "chain id 1 is not a devnet's"),
        (
            NodeFacts(REMOTE, 1329, anvil=False),
            "not a loopback address, the node is not Anvil, chain id 1329 is not a devnet's",
        ),
    ],
)
def test_local_devnet__loopback_anvil_devnet_chain(facts: NodeFacts, why: str) -> None:
    assert facts.local_devnet is (why == "")
    assert facts.why_not_local() == why
    if why:
        with pytest.raises(RemoteNetworkError, match="--allow-remote") as excinfo:
            require_local_devnet(facts, allow_remote=False)
        assert why in str(excinfo.value)
        assert API_KEY not in str(excinfo.value)
    require_local_devnet(facts, allow_remote=True)


# ------------------------------------------------------------------ the CLI, on a fake node


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, str], None]:
    """Makes every connection reach a fake node with `chain_id` and `client` version."""

    def _node(chain_id: int, client: str) -> None:
        w3 = SimpleNamespace(eth=SimpleNamespace(chain_id=chain_id), client_version=client)
        monkeypatch.setattr(rpc, "connect", lambda url, **kwargs: w3)

    return _node


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    for variable in ("FEDLEDGER_ALLOW_REMOTE", "FEDLEDGER_RPC_URL", "FEDLEDGER_ACCOUNT"):
        monkeypatch.delenv(variable, raising=False)
    runner = CliRunner()
    base = ["--project-dir", str(ROOT), "--run-dir", str(tmp_path), "--deployments-dir", str(tmp_path)]

    def _run(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, [*base, *args], env=env)

    return _run


SENDING = {
    "gov propose": [
        "gov",
        "propose",
        "--set",
        "task.MIN_UPDATES=3",
        "--description",
        "x",
        "--account",
        "dev:1",
    ],
    "gov vote": ["gov", "vote", "7", "--support", "for", "--account", "dev:1"],
    "gov queue": ["gov", "queue", "7", "--account", "dev:0"],
    "gov execute": ["gov", "execute", "7", "--account", "dev:0"],
    "aggregator run": ["aggregator", "run", "--account", "dev:5", "--ipfs-api", "http://127.0.0.1:5001"],
    "trainer run": [
        "trainer",
        "run",
        "--account",
        "dev:1",
        "--shard",
        "0/2",
        "--ipfs-api",
        "http://127.0.0.1:5001",
    ],
}
READ_ONLY = {"gov list": ["gov", "list"], "status": ["status"]}


@pytest.mark.parametrize("command", sorted(SENDING))
def test_cli__sending_to_a_remote_node__refused_naming_chain_url_and_flag(
    command: str, run: Callable[..., Result], node: Callable[[int, str], None]
) -> None:
    node(1329, GETH)
    result = run(*SENDING[command], "--rpc-url", REMOTE)
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert message.startswith(
        "Error: refusing to send transactions to chain 1329 at https://rpc.example.org/...: "
        "it is not a local devnet (not a loopback address, the node is not Anvil, "
    ), message
    assert "--allow-remote" in message and "FEDLEDGER_ALLOW_REMOTE=1" in message
    assert API_KEY not in result.output and "Traceback" not in result.output
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("url", "chain_id", "client", "why"),
    [
        ("http://127.0.0.1:8545", 31337, GETH, "the node is not Anvil"),  # e.g. a tunnel to a node
        ("http://127.0.0.1:8545", 1, ANVIL, "chain id 1 is not a devnet's"),  # a fork of mainnet
        ("http://192.168.1.20:8545", 31337, ANVIL, "not a loopback address"),  # someone else's Anvil
    ],
)
def test_cli__look_alike_devnets__refused(
    url: str,
    chain_id: int,
    client: str,
    why: str,
    run: Callable[..., Result],
    node: Callable[[int, str], None],
) -> None:
    node(chain_id, client)
    result = run(*SENDING["gov vote"], "--rpc-url", url)
    assert result.exit_code == 1
    assert (
        f"refusing to send transactions to chain {chain_id} at {url}: it is not a local devnet ({why};"
        in (result.output)
    )


@pytest.mark.parametrize(
    ("url", "chain_id"), [("http://127.0.0.1:8545", 31337), ("http://localhost:8546", 713715)]
)
def test_cli__local_devnets__let_through(
    url: str, chain_id: int, run: Callable[..., Result], node: Callable[[int, str], None]
) -> None:
    node(chain_id, ANVIL)
    for command in ("gov vote", "aggregator run"):
        result = run(*SENDING[command], "--rpc-url", url)
        assert result.exit_code == 1
        assert f"no fedledger deployment for chain {chain_id}" in result.output, result.output


def test_cli__allow_remote__flag_or_env_lets_through(
    run: Callable[..., Result], node: Callable[[int, str], None]
) -> None:
    node(1329, GETH)
    for command in ("gov propose", "gov execute", "aggregator run", "trainer run"):
        result = run(*SENDING[command], "--rpc-url", REMOTE, "--allow-remote")
        assert "no fedledger deployment for chain 1329" in result.output, (command, result.output)
    by_env = run(*SENDING["gov vote"], "--rpc-url", REMOTE, env={"FEDLEDGER_ALLOW_REMOTE": "1"})
    assert "no fedledger deployment for chain 1329" in by_env.output
    off = run(*SENDING["gov vote"], "--rpc-url", REMOTE, env={"FEDLEDGER_ALLOW_REMOTE": "0"})
    assert "refusing to send transactions" in off.output


@pytest.mark.parametrize("command", sorted(READ_ONLY))
def test_cli__read_only_commands__run_anywhere(
    command: str, run: Callable[..., Result], node: Callable[[int, str], None]
) -> None:
    node(1329, GETH)
    result = run(*READ_ONLY[command], "--rpc-url", REMOTE)
    assert "no fedledger deployment for chain 1329" in result.output
    assert "--allow-remote" not in run(*READ_ONLY[command], "--help").output


# ------------------------------------------------------------------ no node at all


def test_services__dead_node_at_startup__wait_then_clear_error(
    run: Callable[..., Result], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    caplog.set_level(logging.WARNING, logger="fedledger.node")
    result = run(*SENDING["aggregator run"], "--rpc-url", url, "--wait-for-node", "3")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: no JSON-RPC node answers at {url} (ConnectionError); is the devnet running "
        "(`fedledger devnet status`) or the URL right? (waited 3 s)"
    ]
    waiting = [r.getMessage() for r in caplog.records if r.name == "fedledger.node"]
    assert len(waiting) == 1 and waiting[0].endswith("waiting up to 3 s for it")
    at_once = run(*SENDING["aggregator run"], "--rpc-url", url, "--wait-for-node", "0")
    assert at_once.exit_code == 1 and "no JSON-RPC node answers" in at_once.output
    assert "(waited" not in at_once.output and "Traceback" not in at_once.output


def test_strict_codec__empty_return_data__fails_even_with_ape_loaded() -> None:
    import ape.utils.abi  # noqa: F401 - swaps the process-wide uint decoder for a padding one
    from eth_abi.exceptions import InsufficientDataBytes
    from web3 import Web3

    assert Web3().codec.decode(["uint256"], b"") == (0,)  # what a call to a missing contract gives
    with pytest.raises(InsufficientDataBytes):
        rpc.strict_codec().decode(["uint256"], b"")
    assert rpc.strict_codec().decode(["uint256"], (7).to_bytes(32, "big")) == (7,)


# ------------------------------------------------------------------ requests per call


class CountingNode(http.server.BaseHTTPRequestHandler):
    """A JSON-RPC node that knows its chain id and answers every call with empty data."""

    methods: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.methods.append(request["method"])
        result = "0x7a69" if request["method"] == "eth_chainId" else "0x"
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_connect__chain_id_asked_once_not_before_every_call() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), CountingNode)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        w3 = rpc.connect(f"http://127.0.0.1:{server.server_port}")
        assert set(CountingNode.methods) == {"eth_chainId"}  # web3 itself asks twice on the first call
        del CountingNode.methods[:]
        for _ in range(3):
            w3.eth.call({"to": "0x0000000000000000000000000000000000000004", "data": "0x12"})
    finally:
        server.shutdown()
        server.server_close()
    assert CountingNode.methods == ["eth_call"] * 3
