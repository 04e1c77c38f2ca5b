"""Commit throughput on a local Anvil, against plain transfers measured by the same harness.

    python bench/throughput.py [--quick] [--out PATH] [--run-dir DIR]

writes bench/results/throughput.json.

The harness (`run_workload`) takes a workload, a list of transactions not yet signed, and
1. signs all of them first (eth-account, with coincurve doing the secp256k1 work), each
   sender's nonces assigned locally (`NonceBook`), so one sender can have many transactions
   in flight without asking the node (nonce pipelining);
2. sends them as JSON-RPC batches of `eth_sendRawTransaction` (the provider's
   `make_batch_request`) from a few threads;
3. watches new blocks (`eth_blockNumber` polled every few ms, then each block's transaction
   hashes) until every transaction is in a block, and fails after a timeout;
4. then confirms each one: a receipt with status 1, and every sender's mined nonce equal to
   the next nonce the book would assign.

Clocks (both are reported for every measurement):
- wall clock: from the first send to the moment the watcher saw the block that includes the
  last transaction. `tx_per_second` = confirmed transactions / that time. Anvil's block
  timestamps are whole seconds, so they cannot time 0.1 s blocks; the watcher's wall-clock
  observation is at most one poll (plus one RPC round trip) late.
- steady state: the transactions of the interior blocks (all but the first and the last
  block carrying the workload), over the time between the watcher seeing the first block and
  the last interior one. It leaves out the wait for the first block (however fast the client
  sends) and the part-full last block: the rate a saturated chain sustains, which is what a
  gas-bound limit describes.

Workloads (`WORKLOADS`): `transfers` (1 wei from each of M trainers to the next one, the raw
Anvil baseline) and `commits` (`commitUpdate` from the same M trainers, once each, in the open
round 0). Each repetition starts a fresh Anvil (its work per block grows with the state),
deploys, registers M trainers before round 0 opens, and runs both workloads back to back,
alternating which goes first; the figures are medians over the repetitions. A decomposition
(`decompose_workload`) sends a workload with mining paused and then mines it in one block, to
time accepting and executing transactions apart.

A batched commit (EIP-712 signed commitments that a relayer submits in one transaction) would
be one more entry in `WORKLOADS` whose `Call`s carry `items` > 1 (and `Workload.commits`); the
contracts have no such path yet, so nothing is measured for it.

Setup is not timed: deploy with the project's ape script, set ETH balances (`anvil_setBalance`),
send the FED stakes, approvals and registrations through the same harness, open round 0.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import queue
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import click
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.backends import get_backend
from web3 import HTTPProvider
from web3.types import RPCEndpoint

from fedledger.chain import ape_cli
from fedledger.chain.accounts import devnet_account
from fedledger.chain.contracts import FedLedger
from fedledger.chain.deployments import Deployment
from fedledger.chain.params import TOKEN, Phase, Role
from fedledger.chain.rounds import seal_of
from fedledger.chain.rpc import client_version, connect
from fedledger.devnet import PROFILES, Profile, running_devnet

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "throughput.json"
COMMAND = "python bench/throughput.py"

# ape's foundry provider cannot deploy to an interval-mining Anvil ("did not create a
# contract"), so both chains use the generic node provider of `sei:seilike:node` and its
# chain id. The chain id has no bearing on throughput.
CHAIN_ID = PROFILES["sei-like"].chain_id
APE_NETWORK = PROFILES["sei-like"].ape_network
LOCAL_BLOCK_TIME = 0.1
# Anvil's default block gas limit (30M) caps 0.1 s blocks at 300 Mgas/s: ~5,500 commits/s
# against ~14,000 transfers/s. The local comparison is about submission and mining, so its
# blocks are made big enough not to bind; the default is measured as well (`local-30m`).
LOCAL_GAS_LIMIT = 1_000_000_000
ANVIL_DEFAULT_GAS_LIMIT = 30_000_000
SEI = PROFILES["sei-like"]

TRANSFER_GAS = 21_000
STAKE = 100 * TOKEN  # the default minimum trainer stake
AGGREGATOR_STAKE = 1_000 * TOKEN
COMMIT_WINDOW = 1_800  # round 0 stays in Commit for the whole run (must stay below unbonding)
ETH_BALANCE = 10**24  # wei per account: fees at MAX_FEE_PER_GAS never run out
# Full blocks raise the base fee 12.5% each; a fixed, very high fee cap keeps every signed
# transaction includable however many full blocks come first. Fees paid = base fee + tip.
MAX_FEE_PER_GAS = 10**14
PRIORITY_FEE = 10**9
SETUP_GAS_MARGIN = 1.25

BATCH_SIZE = 100
SENDER_THREADS = 4
POLL_SECONDS = 0.005
INCLUDE_TIMEOUT = 180.0
RPC_TIMEOUT = 60.0

KEY_SEED = b"fedledger throughput bench"


class ThroughputError(RuntimeError):
    """A workload was not sent, included or confirmed as expected."""


# ---------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Call:
    """One transaction to sign and send. `items`: protocol items it carries (one commit; a
    batched commit would carry several; a transfer counts one)."""

    sender: LocalAccount
    to: str
    data: str = "0x"
    value: int = 0
    gas: int = TRANSFER_GAS
    items: int = 1


@dataclass(frozen=True)
class Workload:
    name: str
    calls: list[Call]
    commits: int = 0  # commitments it submits to round 0 (checked on chain afterwards)

    @property
    def items(self) -> int:
        return sum(call.items for call in self.calls)


@dataclass(frozen=True)
class SignedTx:
    hash: str  # 0x-hex, lower case
    raw: str
    sender: str
    nonce: int
    items: int


class NonceBook:
    """Each sender's next nonce, read from the node once ("pending") and then kept locally."""

    def __init__(self, rpc: Rpc) -> None:
        self._rpc = rpc
        self._next: dict[str, int] = {}

    def load(self, senders: Iterable[str]) -> None:
        """Reads the unknown senders' nonces in JSON-RPC batches."""
        missing = sorted({s for s in senders if s not in self._next})
        if not missing:
            return
        counts = self._rpc.batch([("eth_getTransactionCount", [s, "pending"]) for s in missing])
        self._next.update({s: int(c, 16) for s, c in zip(missing, counts, strict=True)})

    def take(self, sender: str) -> int:
        nonce = self._next[sender]
        self._next[sender] = nonce + 1
        return nonce

    def peek(self, sender: str) -> int:
        return self._next[sender]

    def forget(self, sender: str) -> None:
        """After someone else sent from `sender`: read its nonce again next time."""
        self._next.pop(sender, None)


def sign_workload(workload: Workload, nonces: NonceBook, chain_id: int) -> list[SignedTx]:
    """Signs every call in order, assigning nonces from the book (EIP-1559 transactions)."""
    nonces.load(call.sender.address for call in workload.calls)
    signed = []
    for call in workload.calls:
        nonce = nonces.take(call.sender.address)
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": chain_id,
            "nonce": nonce,
            "to": call.to,
            "value": call.value,
            "data": call.data,
            "gas": call.gas,
            "maxFeePerGas": MAX_FEE_PER_GAS,
            "maxPriorityFeePerGas": PRIORITY_FEE,
        }
        result = call.sender.sign_transaction(tx)
        signed.append(
            SignedTx(
                hash=result.hash.to_0x_hex().lower(),
                raw=result.raw_transaction.to_0x_hex(),
                sender=call.sender.address,
                nonce=nonce,
                items=call.items,
            )
        )
    return signed


# ---------------------------------------------------------------- JSON-RPC


class Rpc:
    """Raw JSON-RPC over one HTTP provider (web3 keeps one session per thread): results as the
    node sends them (hex strings), errors raised."""

    def __init__(self, url: str) -> None:
        self.provider = HTTPProvider(url, request_kwargs={"timeout": RPC_TIMEOUT})

    def __call__(self, method: str, params: list[Any]) -> Any:
        response = self.provider.make_request(RPCEndpoint(method), params)
        if "error" in response:
            raise ThroughputError(f"{method} failed: {response['error']}")
        return response.get("result")

    def responses(self, requests: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """One JSON-RPC batch: the responses (with "result" or "error") in request order."""
        responses = self.provider.make_batch_request([(RPCEndpoint(m), p) for m, p in requests])
        if not isinstance(responses, list):  # the node refused the whole batch
            raise ThroughputError(f"batch refused: {dict(responses).get('error')}")
        return list(responses)

    def batch(self, requests: Sequence[tuple[str, list[Any]]], size: int = 500) -> list[Any]:
        """The results of `requests`, sent in batches of `size`; raises on any error."""
        results: list[Any] = []
        for start in range(0, len(requests), size):
            for response in self.responses(requests[start : start + size]):
                if "error" in response:
                    raise ThroughputError(f"batched request failed: {response['error']}")
                results.append(response["result"])
        return results


# ---------------------------------------------------------------- the harness


@dataclass(frozen=True)
class BlockSeen:
    number: int
    observed: float  # perf_counter when the watcher first saw it
    hashes: tuple[str, ...]
    gas_used: int
    gas_limit: int


class BlockWatcher(threading.Thread):
    """Polls for new blocks and records when each appeared and which transactions it holds,
    until all `wanted` hashes are in blocks (or `stop` is set)."""

    def __init__(self, url: str, after_block: int, wanted: Iterable[str]) -> None:
        super().__init__(daemon=True, name="block-watcher")
        self._rpc = Rpc(url)
        self._last = after_block
        self.missing = set(wanted)
        self.blocks: list[BlockSeen] = []
        self.done = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while self.missing and not self.stop.is_set():
                head = int(self._rpc("eth_blockNumber", []), 16)
                if head <= self._last:
                    time.sleep(POLL_SECONDS)
                    continue
                observed = time.perf_counter()
                for number in range(self._last + 1, head + 1):
                    self._record(number, observed)
                self._last = head
        except BaseException as exc:  # reported by `wait`
            self.error = exc
        finally:
            self.done.set()

    def _record(self, number: int, observed: float) -> None:
        block = self._rpc("eth_getBlockByNumber", [hex(number), False])
        hashes = tuple(str(h).lower() for h in block["transactions"])
        self.missing.difference_update(hashes)
        self.blocks.append(
            BlockSeen(number, observed, hashes, int(block["gasUsed"], 16), int(block["gasLimit"], 16))
        )

    def wait(self, timeout: float) -> None:
        finished = self.done.wait(timeout)
        self.stop.set()
        self.join(timeout=5)
        if self.error is not None:
            raise ThroughputError(f"block watcher failed: {self.error}") from self.error
        if not finished or self.missing:
            raise ThroughputError(f"{len(self.missing)} transactions not in a block after {timeout:.0f} s")


@dataclass(frozen=True)
class Sent:
    first_send: float  # perf_counter of the first request
    last_ack: float  # perf_counter when the node answered the last batch


def send_batches(url: str, txs: Sequence[SignedTx], *, threads: int, batch_size: int) -> Sent:
    """Sends `txs` in order as batches of `eth_sendRawTransaction`, taken from a shared queue by
    `threads` senders; raises if the node rejected any (or answered another hash)."""
    batches: queue.SimpleQueue[Sequence[SignedTx]] = queue.SimpleQueue()
    for start in range(0, len(txs), batch_size):
        batches.put(txs[start : start + batch_size])
    ready = threading.Barrier(threads)
    starts: list[float] = []
    acks: list[float] = []
    errors: list[str] = []

    def sender() -> None:
        rpc = Rpc(url)
        try:
            rpc("eth_chainId", [])  # connect before the clock starts
        except Exception as exc:
            errors.append(f"connect: {exc}")
        ready.wait()
        starts.append(time.perf_counter())
        while True:
            try:
                batch = batches.get_nowait()
            except queue.Empty:
                return
            try:
                responses = rpc.responses([("eth_sendRawTransaction", [tx.raw]) for tx in batch])
            except Exception as exc:
                errors.append(f"batch of {len(batch)}: {exc}")
                continue
            acks.append(time.perf_counter())
            for tx, response in zip(batch, responses, strict=True):
                if "error" in response:
                    errors.append(f"{tx.hash} (nonce {tx.nonce}): {response['error']}")
                elif str(response["result"]).lower() != tx.hash:
                    errors.append(f"{tx.hash}: the node answered hash {response['result']}")

    workers = [threading.Thread(target=sender, name=f"sender-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise ThroughputError(f"{len(errors)} sends failed; first: {errors[0]}")
    return Sent(first_send=min(starts), last_ack=max(acks))


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """One workload run by the harness. Times in seconds, rates per second."""

    workload: str
    txs: int
    items: int
    submit_seconds: float  # first send to the node's answer to the last batch
    elapsed_seconds: float  # first send to the block with the last transaction (wall clock)
    tx_per_second: float
    items_per_second: float
    steady_tx_per_second: float | None  # blocks after the first, between first and last block
    steady_items_per_second: float | None
    blocks: int
    first_block: int
    txs_per_block: list[int]
    block_gas_used: list[int]
    block_gas_limit: int
    mean_block_interval: float | None  # as the watcher saw it
    # Every block from the first send to the last inclusion: (number, seconds after the first
    # send when the watcher saw it, transactions of the workload in it).
    timeline: list[tuple[int, float, int]]
    # Blocks mined after the node had accepted every transaction, before the last one was
    # included, that carried none of them: the node held ready transactions back.
    idle_blocks_after_submit: int
    gas_used: int  # all transactions of the workload
    gas_per_item: float
    gas_limit_per_tx: int  # the largest a transaction of the workload had
    # CPU time per transaction from the first send to the last inclusion (microseconds): of the
    # Anvil process, and of this process (senders and block watcher).
    node_cpu_us_per_tx: float | None
    client_cpu_us_per_tx: float

    def rate(self, steady: bool) -> float | None:
        return self.steady_items_per_second if steady else self.items_per_second


def run_workload(
    url: str,
    workload: Workload,
    nonces: NonceBook,
    *,
    chain_id: int,
    threads: int = SENDER_THREADS,
    batch_size: int = BATCH_SIZE,
    timeout: float = INCLUDE_TIMEOUT,
    node_pid: int | None = None,
) -> Measurement:
    """Signs, sends and confirms `workload`; raises `ThroughputError` unless every transaction
    succeeded. Signing is done before the clock starts. `node_pid`: Anvil's, to read its CPU time."""
    rpc = Rpc(url)
    txs = sign_workload(workload, nonces, chain_id)
    watcher = BlockWatcher(url, int(rpc("eth_blockNumber", []), 16), (tx.hash for tx in txs))
    cpu = CpuClock(node_pid)
    watcher.start()
    try:
        sent = send_batches(url, txs, threads=threads, batch_size=batch_size)
        watcher.wait(timeout)
    except ThroughputError as exc:
        status = rpc("txpool_status", [])
        raise ThroughputError(f"{workload.name}: {exc} (txpool {status})") from exc
    finally:
        watcher.stop.set()
    used = cpu.used()
    gas_used = confirm(rpc, workload.name, txs, nonces)
    return measure(workload, txs, sent, watcher.blocks, gas_used, used)


class CpuClock:
    """CPU seconds used since creation by this process and (if its pid is given) the node."""

    def __init__(self, node_pid: int | None) -> None:
        self.node_pid = node_pid
        self.client = time.process_time()
        self.node = process_cpu_seconds(node_pid)

    def used(self) -> tuple[float | None, float]:
        """(node, client) CPU seconds since creation."""
        node = process_cpu_seconds(self.node_pid)
        spent = None if node is None or self.node is None else node - self.node
        return spent, time.process_time() - self.client


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of process `pid` (all its threads), from /proc; None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def confirm(rpc: Rpc, name: str, txs: Sequence[SignedTx], nonces: NonceBook) -> int:
    """Every transaction has a successful receipt, every sender's mined nonce is the book's
    next one. Returns the gas all of them used."""
    receipts = rpc.batch([("eth_getTransactionReceipt", [tx.hash]) for tx in txs])
    failed = [tx.hash for tx, r in zip(txs, receipts, strict=True) if r is None or int(r["status"], 16) != 1]
    if failed:
        raise ThroughputError(
            f"{name}: {len(failed)} transactions failed or have no receipt; first {failed[0]}"
        )
    senders = sorted({tx.sender for tx in txs})
    mined = rpc.batch([("eth_getTransactionCount", [s, "latest"]) for s in senders])
    behind = [s for s, n in zip(senders, mined, strict=True) if int(n, 16) != nonces.peek(s)]
    if behind:
        raise ThroughputError(f"{name}: {len(behind)} senders' mined nonces differ from the sent ones")
    return sum(int(r["gasUsed"], 16) for r in receipts)


def measure(
    workload: Workload,
    txs: Sequence[SignedTx],
    sent: Sent,
    seen: Sequence[BlockSeen],
    gas_used: int,
    cpu: tuple[float | None, float],
) -> Measurement:
    """The rates of a confirmed workload from what the sender and the block watcher saw."""
    items_of = {tx.hash: tx.items for tx in txs}
    blocks = [b for b in seen if any(h in items_of for h in b.hashes)]
    counts = [sum(1 for h in b.hashes if h in items_of) for b in blocks]
    items = [sum(items_of.get(h, 0) for h in b.hashes) for b in blocks]
    elapsed = blocks[-1].observed - sent.first_send
    # Steady state: the interior blocks, mined while the pool held a backlog. The first one also
    # holds what piled up before it (since an unknown time), the last is part-full because the
    # workload ran out.
    span = blocks[-2].observed - blocks[0].observed if len(blocks) > 2 else 0.0
    steady = span > 0
    intervals = [b.observed - a.observed for a, b in itertools.pairwise(seen) if b.number == a.number + 1]
    return Measurement(
        workload=workload.name,
        txs=len(txs),
        items=workload.items,
        submit_seconds=sent.last_ack - sent.first_send,
        elapsed_seconds=elapsed,
        tx_per_second=len(txs) / elapsed,
        items_per_second=workload.items / elapsed,
        steady_tx_per_second=sum(counts[1:-1]) / span if steady else None,
        steady_items_per_second=sum(items[1:-1]) / span if steady else None,
        blocks=len(blocks),
        first_block=blocks[0].number,
        txs_per_block=counts,
        block_gas_used=[b.gas_used for b in blocks],
        block_gas_limit=blocks[0].gas_limit,
        mean_block_interval=statistics.fmean(intervals) if intervals else None,
        idle_blocks_after_submit=sum(
            1
            for b in seen
            if b.observed > sent.last_ack
            and b.number < blocks[-1].number
            and not (set(b.hashes) & items_of.keys())
        ),
        timeline=[
            (b.number, round(b.observed - sent.first_send, 4), sum(1 for h in b.hashes if h in items_of))
            for b in seen
            if b.number <= blocks[-1].number
        ],
        gas_used=gas_used,
        gas_per_item=gas_used / workload.items,
        gas_limit_per_tx=max(call.gas for call in workload.calls),
        node_cpu_us_per_tx=None if cpu[0] is None else cpu[0] / len(txs) * 1e6,
        client_cpu_us_per_tx=cpu[1] / len(txs) * 1e6,
    )


@dataclass(frozen=True, kw_only=True)
class Decomposition:
    """A workload sent while Anvil does not mine, then mined as one block (`evm_mine`): what
    accepting a transaction costs, apart from what executing it costs. Per transaction, in
    microseconds: wall time and Anvil's CPU time."""

    workload: str
    txs: int
    submit_us_per_tx: float
    submit_node_cpu_us_per_tx: float | None
    mine_us_per_tx: float
    mine_node_cpu_us_per_tx: float | None


def decompose_workload(
    url: str, workload: Workload, nonces: NonceBook, *, chain_id: int, node_pid: int | None
) -> Decomposition:
    """Times sending and mining `workload` apart. Pauses interval mining for good (Anvil cannot
    set a sub-second interval again): run it last on a chain."""
    rpc = Rpc(url)
    rpc("evm_setIntervalMining", [0])
    time.sleep(0.3)  # let a block being mined finish
    if int(rpc("txpool_status", [])["pending"], 16):
        raise ThroughputError(f"{workload.name}: the pool is not empty before the decomposition")
    txs = sign_workload(workload, nonces, chain_id)
    cpu = CpuClock(node_pid)
    sent = send_batches(url, txs, threads=SENDER_THREADS, batch_size=BATCH_SIZE)
    submit_cpu, _ = cpu.used()
    pending = int(rpc("txpool_status", [])["pending"], 16)
    if pending != len(txs):
        raise ThroughputError(f"{workload.name}: {pending} pending after sending {len(txs)}")
    cpu = CpuClock(node_pid)
    started = time.perf_counter()
    rpc("evm_mine", [])
    mine_seconds = time.perf_counter() - started
    mine_cpu, _ = cpu.used()
    block = rpc("eth_getBlockByNumber", ["latest", False])
    if len(block["transactions"]) != len(txs):
        raise ThroughputError(f"{workload.name}: one block mined {len(block['transactions'])} of {len(txs)}")
    confirm(rpc, workload.name, txs, nonces)
    per_tx = 1e6 / len(txs)
    return Decomposition(
        workload=workload.name,
        txs=len(txs),
        submit_us_per_tx=(sent.last_ack - sent.first_send) * per_tx,
        submit_node_cpu_us_per_tx=None if submit_cpu is None else submit_cpu * per_tx,
        mine_us_per_tx=mine_seconds * per_tx,
        mine_node_cpu_us_per_tx=None if mine_cpu is None else mine_cpu * per_tx,
    )


# ---------------------------------------------------------------- the federation under test


@dataclass
class Federation:
    """A deployment with round 0 open and `trainers` registered before it opened."""

    url: str
    ledger: FedLedger
    nonces: NonceBook
    owner: LocalAccount
    trainers: list[LocalAccount]
    setup_gas: dict[str, int]  # gas limits the setup transactions were sent with
    commit_gas: int = 0  # gas limit of a commit (its estimate with the costliest seal)
    setup_seconds: float = 0.0


def bench_accounts(count: int, tag: str) -> list[LocalAccount]:
    """Deterministic throwaway keys (faster than HD derivation)."""
    return [
        Account.from_key(hashlib.sha256(KEY_SEED + tag.encode() + i.to_bytes(4, "big")).digest())
        for i in range(count)
    ]


def deploy(url: str, run_dir: Path) -> Deployment:
    deployment, _ = ape_cli.deploy(
        project=REPO,
        network=APE_NETWORK,
        rpc_url=url,
        chain_id=CHAIN_ID,
        account="TEST::0",
        deployments_dir=run_dir / "deployments",
        options=[
            "--initial-model-digest",
            "0x" + hashlib.sha256(b"throughput bench model").hexdigest(),
            "--initial-model-cid",
            "bafkreithroughputbenchmodel",
            "--commit-window",
            str(COMMIT_WINDOW),
        ],
    )
    return deployment


def set_balances(rpc: Rpc, addresses: Iterable[str]) -> None:
    rpc.batch([("anvil_setBalance", [a, hex(ETH_BALANCE)]) for a in addresses])


def setup_federation(url: str, run_dir: Path, trainer_count: int) -> Federation:
    """Deploys, funds and registers `trainer_count` trainers and one aggregator, opens round 0."""
    started = time.perf_counter()
    deployment = deploy(url, run_dir)
    ledger = FedLedger(connect(url, timeout=RPC_TIMEOUT), deployment)
    owner = devnet_account(0)
    aggregator, *trainers = bench_accounts(trainer_count + 1, "participant")
    rpc = Rpc(url)
    set_balances(rpc, [owner.address, aggregator.address, *(t.address for t in trainers)])

    # One aggregator and the first trainer the ordinary way: their gas sets the others' limits.
    ledger.transfer(owner, aggregator.address, AGGREGATOR_STAKE)
    ledger.stake_and_register(aggregator, Role.AGGREGATOR, AGGREGATOR_STAKE)
    transfer = ledger.transfer(owner, trainers[0].address, STAKE)
    approve, register = ledger.stake_and_register(trainers[0], Role.TRAINER, STAKE)
    gas = {
        "token_transfer": int(transfer.gas_used * SETUP_GAS_MARGIN),
        "approve": int(approve.gas_used * SETUP_GAS_MARGIN),
        "register": int(register.gas_used * SETUP_GAS_MARGIN),
    }
    nonces = NonceBook(rpc)
    # All stakes come from one sender: sent in nonce order by one thread, so Anvil never sees a
    # nonce gap in that long chain (one sender's out-of-order nonces are foundry#10122's case).
    run_setup(url, nonces, stake_transfers(ledger, owner, trainers[1:], gas["token_transfer"]), threads=1)
    run_setup(url, nonces, registrations(ledger, trainers[1:], gas["approve"], gas["register"]))

    ledger.sender.reset_nonces()
    ledger.sender.receipt_timeout = 30.0
    ledger.start(aggregator)  # anyone may open round 0
    nonces.forget(aggregator.address)
    state = ledger.round_state(0)
    if ledger.phase(0) != Phase.COMMIT or state.expected_commits != trainer_count:
        raise ThroughputError(f"round 0 is not open for {trainer_count} trainers: {state}")
    federation = Federation(url, ledger, nonces, owner, trainers, gas)
    federation.commit_gas = commit_gas_limit(federation)
    federation.setup_seconds = time.perf_counter() - started
    return federation


def run_setup(url: str, nonces: NonceBook, workload: Workload, threads: int = SENDER_THREADS) -> None:
    timeout = max(INCLUDE_TIMEOUT, len(workload.calls) / 20)
    run_workload(url, workload, nonces, chain_id=CHAIN_ID, threads=threads, timeout=timeout)


def stake_transfers(
    ledger: FedLedger, owner: LocalAccount, trainers: Sequence[LocalAccount], gas: int
) -> Workload:
    token = ledger.token
    calls = [
        Call(owner, token.address, token.encode_abi("transfer", args=[t.address, STAKE]), gas=gas)
        for t in trainers
    ]
    return Workload("setup: stakes", calls)


def registrations(
    ledger: FedLedger, trainers: Sequence[LocalAccount], approve: int, register: int
) -> Workload:
    """approve then register, per trainer (consecutive nonces keep them in order)."""
    token, registry = ledger.token, ledger.registry
    approve_data = token.encode_abi("approve", args=[registry.address, STAKE])
    register_data = registry.encode_abi("register", args=[int(Role.TRAINER), STAKE])
    calls = []
    for trainer in trainers:
        calls.append(Call(trainer, token.address, approve_data, gas=approve))
        calls.append(Call(trainer, registry.address, register_data, gas=register))
    return Workload("setup: registrations", calls)


# ---------------------------------------------------------------- measured workloads


def transfer_workload(federation: Federation, senders: Sequence[LocalAccount]) -> Workload:
    """1 wei from each sender to the next one: the raw Anvil baseline."""
    calls = [
        Call(sender, senders[(i + 1) % len(senders)].address, value=1, gas=TRANSFER_GAS)
        for i, sender in enumerate(senders)
    ]
    return Workload("transfers", calls)


def commit_seal(trainer: str, index: int) -> bytes:
    digest = hashlib.sha256(b"update" + index.to_bytes(4, "big")).digest()
    salt = hashlib.sha256(b"salt" + trainer.encode()).digest()
    return seal_of(trainer, digest, 1_000 + index, salt)


def commit_workload(federation: Federation, trainers: Sequence[LocalAccount]) -> Workload:
    """`commitUpdate(0, seal)` from each trainer, with a distinct seal each."""
    task = federation.ledger.task
    calls = [
        Call(
            trainer,
            task.address,
            task.encode_abi("commitUpdate", args=[0, commit_seal(trainer.address, i)]),
            gas=federation.commit_gas,
        )
        for i, trainer in enumerate(trainers)
    ]
    return Workload("commits", calls, commits=len(calls))


def commit_gas_limit(federation: Federation) -> int:
    """`eth_estimateGas` of a commit whose seal has no zero byte (the costliest calldata).

    Anvil fills a block by the transactions' gas limits, not the gas they end up using, so
    the limit is the estimate itself, without the usual margin: every commit costs the same
    but for its calldata, and the receipts confirm none ran out of gas."""
    task = federation.ledger.task
    trainer = federation.trainers[0]
    function = task.functions.commitUpdate(0, b"\xff" * 32)
    return int(function.estimate_gas({"from": trainer.address}))


WorkloadFactory = Callable[[Federation, Sequence[LocalAccount]], Workload]
# The measured workloads, by name. A batched commit path would be added here (a factory that
# signs EIP-712 commitments for the trainers and builds relayer `Call`s with `items` > 1).
WORKLOADS: dict[str, WorkloadFactory] = {"transfers": transfer_workload, "commits": commit_workload}
BATCHED_NOTE = (
    "with batching: not available yet. The contracts have no batched commit (EIP-712 signed "
    "commitments submitted by a relayer in one transaction); when they do, a `batched` entry in "
    "WORKLOADS whose calls carry items = commitments per transaction is measured by the same "
    "harness, and its updates/s and gas-bound share are computed the same way (gas per item)."
)


# ---------------------------------------------------------------- scenarios


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A chain profile and how often to measure on it. Every repetition gets a fresh Anvil
    with `per_repetition` trainers registered, so each one measures the same chain state."""

    name: str
    profile: Profile
    per_repetition: int  # trainers (and transfer senders) per repetition
    repetitions: int
    workloads: tuple[str, ...] = ("transfers", "commits")
    decompositions: int = 0  # more chains on which the workloads run with mining paused


@dataclass(frozen=True, kw_only=True)
class ChainRun:
    """One fresh Anvil of a scenario."""

    repetition: int
    decomposition: bool
    setup_seconds: float
    # Cores Anvil kept busy with an empty pool after the setup: its work per block (it grows
    # with the state, so every repetition starts from the same state).
    idle_node_cpu: float | None
    round_commits: int  # round 0's on-chain commit count at the end
    commits_sent: int


@dataclass
class ScenarioResult:
    scenario: Scenario
    anvil: str = ""
    setup_gas: dict[str, int] = field(default_factory=dict)
    commit_gas_limit: int = 0
    chains: list[ChainRun] = field(default_factory=list)
    runs: list[tuple[int, Measurement]] = field(default_factory=list)  # (repetition, measurement)
    decompositions: list[Decomposition] = field(default_factory=list)

    def of(self, workload: str) -> list[Measurement]:
        return [m for _, m in self.runs if m.workload == workload]


def workload_order(names: Sequence[str], repetition: int) -> list[str]:
    """Alternates which workload goes first, so drift (of the machine, or of the chain as it
    grows) hits both alike."""
    return list(names) if repetition % 2 == 0 else list(reversed(names))


def run_scenario(scenario: Scenario, run_dir: Path, log: Callable[[str], None]) -> ScenarioResult:
    """The scenario's repetitions, then its decompositions, each on a fresh Anvil."""
    result = ScenarioResult(scenario)
    for repetition in range(scenario.repetitions):
        run_chain(result, repetition, decompose=False, run_dir=run_dir, log=log)
    for repetition in range(scenario.decompositions):
        run_chain(result, repetition, decompose=True, run_dir=run_dir, log=log)
    return result


def run_chain(
    result: ScenarioResult, repetition: int, *, decompose: bool, run_dir: Path, log: Callable[[str], None]
) -> None:
    """Starts Anvil with the scenario's profile, sets up, runs every workload once (alternating
    their order), checks round 0's commit count, stops Anvil."""
    scenario = result.scenario
    label = f"{scenario.name} {'decomposition' if decompose else 'repetition'} {repetition}"
    folder = run_dir / f"{scenario.name}-{'d' if decompose else 'r'}{repetition}"
    with running_devnet(scenario.profile, run_dir=folder) as devnet:
        federation = setup_federation(devnet.url, folder, scenario.per_repetition)
        idle = idle_cpu(devnet.pid)
        log(f"{label}: {scenario.per_repetition} trainers registered ({federation.setup_seconds:.0f} s)")
        result.anvil = client_version(federation.ledger.w3)
        result.setup_gas, result.commit_gas_limit = federation.setup_gas, federation.commit_gas
        commits_sent = 0
        for name in workload_order(scenario.workloads, repetition):
            workload = WORKLOADS[name](federation, federation.trainers)
            commits_sent += workload.commits
            if decompose:
                parts = decompose_workload(
                    devnet.url, workload, federation.nonces, chain_id=CHAIN_ID, node_pid=devnet.pid
                )
                result.decompositions.append(parts)
                log(
                    f"  {name}: submit {parts.submit_us_per_tx:.0f} us/tx, mine {parts.mine_us_per_tx:.0f} us/tx"
                )
                continue
            measurement = run_workload(
                devnet.url, workload, federation.nonces, chain_id=CHAIN_ID, node_pid=devnet.pid
            )
            result.runs.append((repetition, measurement))
            log(f"  {name}: {measurement.tx_per_second:,.0f} tx/s, {measurement.blocks} blocks")
        round_commits = federation.ledger.round_state(0).commits
    if round_commits != commits_sent:
        raise ThroughputError(f"{label}: round 0 has {round_commits} commits, {commits_sent} were sent")
    result.chains.append(
        ChainRun(
            repetition=repetition,
            decomposition=decompose,
            setup_seconds=federation.setup_seconds,
            idle_node_cpu=idle,
            round_commits=round_commits,
            commits_sent=commits_sent,
        )
    )


def idle_cpu(pid: int, seconds: float = 1.0) -> float | None:
    """Cores process `pid` keeps busy over `seconds` (Anvil with an empty pool: block production)."""
    before = process_cpu_seconds(pid)
    time.sleep(seconds)
    after = process_cpu_seconds(pid)
    return None if before is None or after is None else (after - before) / seconds


# ---------------------------------------------------------------- figures


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values present (None: a steady-state rate of a single block)."""
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def gas_bound(measurements: Sequence[Measurement], profile: Profile) -> float:
    """Items per second if every block were full of them: gas limit / gas per item / block time."""
    assert profile.block_time is not None and profile.gas_limit is not None
    gas_per_item = sum(m.gas_used for m in measurements) / sum(m.items for m in measurements)
    return profile.gas_limit / gas_per_item / profile.block_time


def paired_ratios(result: ScenarioResult, steady: bool = False) -> list[float]:
    """commits / transfers within each repetition."""
    by_rep: dict[int, dict[str, Measurement]] = {}
    for repetition, m in result.runs:
        by_rep.setdefault(repetition, {})[m.workload] = m
    ratios = []
    for pair in by_rep.values():
        commits, transfers = pair["commits"].rate(steady), pair["transfers"].rate(steady)
        if commits is not None and transfers:
            ratios.append(commits / transfers)
    return ratios


def figures(local: ScenarioResult, local_30m: ScenarioResult | None, sei: ScenarioResult) -> dict[str, Any]:
    commits = median(m.items_per_second for m in local.of("commits"))
    raw = median(m.tx_per_second for m in local.of("transfers"))
    sei_commits = median(m.steady_items_per_second for m in sei.of("commits"))
    sei_bound = gas_bound(sei.of("commits"), sei.scenario.profile)
    sei_raw = median(m.steady_tx_per_second for m in sei.of("transfers"))
    sei_raw_bound = gas_bound(sei.of("transfers"), sei.scenario.profile)
    paired = paired_ratios(local)
    out: dict[str, Any] = {
        "commits_per_second": rounded(commits),
        "raw_tx_per_second": rounded(raw),
        "commit_throughput_ratio": rounded(median(paired), 3),
        "commit_throughput_ratio_of_medians": rounded(ratio(commits, raw), 3),
        "commit_throughput_ratio_range": [round(min(paired), 3), round(max(paired), 3)] if paired else None,
        "commits_per_second_steady": rounded(median(m.steady_items_per_second for m in local.of("commits"))),
        "raw_tx_per_second_steady": rounded(median(m.steady_tx_per_second for m in local.of("transfers"))),
        "commit_gas_used": rounded(median(m.gas_per_item for m in local.of("commits")), 0),
        "sei_profile_updates_per_second": rounded(sei_commits),
        "sei_profile_gas_bound_updates_per_second": rounded(sei_bound),
        "sei_profile_gas_limit_share": rounded(ratio(sei_commits, sei_bound), 3),
        "sei_profile_updates_per_second_wall_clock": rounded(
            median(m.items_per_second for m in sei.of("commits"))
        ),
        "sei_profile_updates_per_second_batched": None,
        "sei_profile_gas_limit_share_batched": None,
        "sei_profile_raw_tx_per_second": rounded(sei_raw),
        "sei_profile_raw_gas_bound_tx_per_second": rounded(sei_raw_bound),
        "sei_profile_raw_gas_limit_share": rounded(ratio(sei_raw, sei_raw_bound), 3),
    }
    if local_30m is not None:
        commits_30m = median(m.items_per_second for m in local_30m.of("commits"))
        raw_30m = median(m.tx_per_second for m in local_30m.of("transfers"))
        out |= {
            "default_gas_limit_commits_per_second": rounded(commits_30m),
            "default_gas_limit_raw_tx_per_second": rounded(raw_30m),
            "default_gas_limit_commit_throughput_ratio": rounded(median(paired_ratios(local_30m)), 3),
            "default_gas_limit_gas_bound_commits_per_second": rounded(
                gas_bound(local_30m.of("commits"), local_30m.scenario.profile)
            ),
        }
    return out


def scenario_report(result: ScenarioResult) -> dict[str, Any]:
    profile = result.scenario.profile
    return {
        "anvil": result.anvil,
        "profile": {
            "block_time": profile.block_time,
            "gas_limit": profile.gas_limit,
            "chain_id": profile.chain_id,
        },
        "per_repetition": result.scenario.per_repetition,
        "repetitions": result.scenario.repetitions,
        "decompositions": result.scenario.decompositions,
        "chains": [_rounded(asdict(chain)) for chain in result.chains],
        "setup_gas_limits": result.setup_gas,
        "commit_gas_limit": result.commit_gas_limit,
        "paired_commit_ratios": [round(r, 3) for r in paired_ratios(result)],
        "runs": [{"repetition": rep, **_rounded(asdict(m))} for rep, m in result.runs],
        "decomposition_runs": [_rounded(asdict(d)) for d in result.decompositions],
    }


def explanation(result: ScenarioResult) -> dict[str, Any]:
    """Where a transaction's time goes on `result`'s chain, by workload (medians, microseconds
    per transaction): Anvil's and this process's CPU in the measured runs, and the
    decompositions' accepting (submit) and executing (mine) apart. `serial_cost_ratio`: the
    commit ratio if accepting and mining a transaction were done one after the other."""
    out: dict[str, Any] = {}
    for name in result.scenario.workloads:
        runs = result.of(name)
        parts = [d for d in result.decompositions if d.workload == name]
        out[name] = {
            "node_cpu_us_per_tx": rounded(median(m.node_cpu_us_per_tx for m in runs)),
            "client_cpu_us_per_tx": rounded(median(m.client_cpu_us_per_tx for m in runs)),
            "submit_us_per_tx": rounded(median(d.submit_us_per_tx for d in parts)),
            "submit_node_cpu_us_per_tx": rounded(median(d.submit_node_cpu_us_per_tx for d in parts)),
            "mine_us_per_tx": rounded(median(d.mine_us_per_tx for d in parts)),
            "mine_node_cpu_us_per_tx": rounded(median(d.mine_node_cpu_us_per_tx for d in parts)),
        }
    if {"transfers", "commits"} <= out.keys():
        cost = {
            name: _sum_or_none(out[name]["submit_us_per_tx"], out[name]["mine_us_per_tx"])
            for name in ("transfers", "commits")
        }
        out["serial_cost_ratio"] = rounded(ratio(cost["transfers"], cost["commits"]), 3)
        out["summary"] = cost_summary(out["transfers"], out["commits"], out["serial_cost_ratio"])
    return out


def cost_summary(transfers: dict[str, Any], commits: dict[str, Any], serial: float | None) -> str:
    """One sentence per cost, transfers against commits (microseconds per transaction)."""

    def pair(key: str) -> str:
        return f"{_us(transfers[key])} vs {_us(commits[key])}"

    return (
        f"Per transaction, transfers vs commits (us, medians): accepting it with mining paused "
        f"{pair('submit_us_per_tx')} wall ({pair('submit_node_cpu_us_per_tx')} of Anvil CPU); "
        f"mining it {pair('mine_us_per_tx')} wall ({pair('mine_node_cpu_us_per_tx')} of Anvil CPU); "
        f"ratio if accepting and mining were serial: {serial}. In the measured runs Anvil used "
        f"{pair('node_cpu_us_per_tx')} of CPU and this process {pair('client_cpu_us_per_tx')}."
    )


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _sum_or_none(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


def signing_library() -> str:
    backend = type(get_backend()).__name__
    versions = {name: _version(name) for name in ("eth-account", "coincurve", "web3")}
    return f"eth-account {versions['eth-account']} ({backend}, coincurve {versions['coincurve']}), web3 {versions['web3']}"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def notes(quick: bool) -> list[str]:
    return [
        "Clock (commits_per_second, raw_tx_per_second): wall clock from the first "
        "eth_sendRawTransaction batch to the moment the block watcher (eth_blockNumber every "
        f"{POLL_SECONDS * 1000:.0f} ms) saw the block holding the workload's last transaction; "
        "transactions were signed before the clock started. Anvil's block timestamps are whole "
        "seconds, too coarse for 0.1 s blocks.",
        "Clock (sei_profile_*_per_second, *_steady): steady state: the transactions of the interior "
        "blocks (all but the first and the last block carrying the workload), over the time between "
        "the watcher seeing the first block and the last interior one. The first block also holds "
        "what piled up before it, from an unknown start (the wait for a block no client can "
        "shorten); the last is part-full because the workload ran out. This is the rate of a "
        "saturated chain, which the gas-bound limit describes. The wall-clock rate is reported "
        "next to it (sei_profile_updates_per_second_wall_clock).",
        f"Local chain: Anvil --block-time {LOCAL_BLOCK_TIME} --gas-limit {LOCAL_GAS_LIMIT:,}. Anvil's "
        f"default block gas limit ({ANVIL_DEFAULT_GAS_LIMIT:,}) at 0.1 s blocks caps commits at "
        "~5,500/s (gas) but transfers at ~14,000/s, so with it the ratio would measure gas, not the "
        "client and node; the big limit keeps both workloads submission- and mining-bound. The "
        "default limit is measured as well (default_gas_limit_*) when not --quick.",
        "Sei-like chain: Anvil --block-time 0.4 --gas-limit 10,000,000 (fedledger.devnet "
        "PROFILES['sei-like']); gas-bound limit = 10,000,000 / measured gas per commit / 0.4 s.",
        "Transaction gas limits: transfers 21,000; commits the eth_estimateGas of a commit with "
        "the costliest seal (no zero byte), with no margin: Anvil packs blocks by gas limit, not "
        "gas used. Every receipt was checked for status 1.",
        "Each repetition starts a fresh Anvil, deploys, registers M trainers (all before round 0 "
        "opened; setup is not timed) and measures M transfers (trainer i to trainer i+1) and M "
        "commits (one per trainer) back to back, alternating which goes first; figures are medians "
        "over repetitions. commit_throughput_ratio is the median of the per-repetition ratios "
        "(commits/s over transfers/s measured back to back on the same chain, so both saw the same "
        "load from the machine's other tenants); commit_throughput_ratio_of_medians = "
        "commits_per_second / raw_tx_per_second; commit_throughput_ratio_range: the smallest and "
        "largest per-repetition ratio.",
        "Why a fresh chain per repetition: Anvil 1.7.1's work per block grows with the chain's "
        "state (an empty pool kept ~0.2 cores busy at 0.1 s blocks with 2,000 trainers registered, "
        "~0.65 with 6,000, RSS 1.6 GB). With 12,000 trainers on one chain, ready transactions "
        "waited tens of blocks and 2,000 transfers were not all mined within 180 s; chains.idle_node_cpu "
        "records this load for each repetition, idle_blocks_after_submit any holding back.",
        "Confirmation: every transaction was seen in a block by the watcher, has a receipt with "
        "status 1, every sender's mined nonce equals the next locally assigned one, and round 0's "
        "on-chain commit count equals the commits sent.",
        "Chain id 713715 on both chains: ape's foundry provider cannot deploy to an "
        "interval-mining Anvil, so the deploy uses the sei:seilike:node network.",
        BATCHED_NOTE,
        *(["--quick: a tiny run for the tests; the figures are not meaningful."] if quick else []),
    ]


def scenarios(quick: bool) -> list[Scenario]:
    local = Profile(
        "throughput-local",
        CHAIN_ID,
        block_time=LOCAL_BLOCK_TIME,
        gas_limit=LOCAL_GAS_LIMIT,
        ape_network=APE_NETWORK,
    )
    if quick:
        return [
            Scenario(name="local", profile=local, per_repetition=25, repetitions=1, decompositions=1),
            Scenario(name="sei-like", profile=SEI, per_repetition=250, repetitions=1),
        ]
    local_30m = Profile(
        "throughput-local-30m",
        CHAIN_ID,
        block_time=LOCAL_BLOCK_TIME,
        gas_limit=ANVIL_DEFAULT_GAS_LIMIT,
        ape_network=APE_NETWORK,
    )
    return [
        Scenario(name="local", profile=local, per_repetition=2_000, repetitions=9, decompositions=2),
        Scenario(name="local-30m", profile=local_30m, per_repetition=2_000, repetitions=5),
        Scenario(name="sei-like", profile=SEI, per_repetition=1_500, repetitions=3),
    ]


@contextmanager
def run_directory(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="fedledger-throughput-") as tmp:
        yield Path(tmp)


def report(
    results: dict[str, ScenarioResult],
    quick: bool,
    argv: Sequence[str],
    seconds: float,
    load_at_start: Sequence[float],
) -> dict[str, Any]:
    local, sei = results["local"], results["sei-like"]
    return {
        "benchmark": "throughput",
        "command": " ".join([COMMAND, *map(shlex.quote, argv)]),
        "quick": quick,
        "figures": figures(local, results.get("local-30m"), sei),
        "targets": {"commit_throughput_ratio": 0.8, "sei_profile_gas_limit_share": 0.9},
        "setup": {
            "trainers": {name: r.scenario.per_repetition for name, r in results.items()},
            "txs_per_workload": {name: r.scenario.per_repetition for name, r in results.items()},
            "repetitions": {name: r.scenario.repetitions for name, r in results.items()},
            "fresh_chain_per_repetition": True,
            "block_time": {name: r.scenario.profile.block_time for name, r in results.items()},
            "gas_limit": {name: r.scenario.profile.gas_limit for name, r in results.items()},
            "anvil": local.anvil,
            "signing": signing_library(),
            "batch_size": BATCH_SIZE,
            "sender_threads": SENDER_THREADS,
            "poll_seconds": POLL_SECONDS,
            "max_fee_per_gas": MAX_FEE_PER_GAS,
            "priority_fee": PRIORITY_FEE,
            "machine": {
                "cpu_count": os.cpu_count(),
                "load_average_at_start": list(load_at_start),
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
        },
        "explanation": explanation(local),
        "scenarios": {name: scenario_report(r) for name, r in results.items()},
        "total_seconds": round(seconds, 1),
        "notes": notes(quick),
    }


@click.command()
@click.option("--quick", is_flag=True, help="a tiny run (50 trainers) for the tests")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Anvil logs and deployments (default: a temporary directory)",
)
def main(quick: bool, out: Path, run_dir: Path | None) -> None:
    """Measures commit throughput against raw transfers on local Anvils; writes the JSON report."""
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, ScenarioResult] = {}
    with run_directory(run_dir) as folder:
        for scenario in scenarios(quick):
            results[scenario.name] = run_scenario(scenario, folder, lambda line: click.echo(line, err=True))
    document = report(results, quick, sys.argv[1:], time.perf_counter() - started, load_at_start)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    click.echo(json.dumps(document["figures"], indent=2))
    click.echo(f"wrote {out}", err=True)


if __name__ == "__main__":
    main()
