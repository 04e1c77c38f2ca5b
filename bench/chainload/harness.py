"""The load harness: signs a workload's transactions, sends them, watches them into blocks and
confirms them.

`run_workload` takes a `Workload` (`Call`s not yet signed) and
1. signs all of them first (eth-account, with coincurve doing the secp256k1 work), each
   sender's nonces assigned locally (`NonceBook`), so one sender can have many transactions
   in flight without asking the node (nonce pipelining);
2. sends them as JSON-RPC batches of `eth_sendRawTransaction` (the provider's
   `make_batch_request`) from a few threads (`send_batches`);
3. watches new blocks (`BlockWatcher`: `eth_blockNumber` polled every few ms, then each
   block's transaction hashes) until every transaction is in a block, and fails after a
   timeout;
4. then confirms each one (`confirm`): a receipt with status 1, and every sender's mined nonce
   equal to the next nonce the book would assign;
5. and returns the rates (`measure`): wall clock from the first send to the block with the
   last transaction, and the steady state of the interior blocks.

`decompose_workload` sends a workload with mining paused and then mines it in one block, to
time accepting and executing transactions apart. `CpuClock` reads the node's and this
process's CPU time.
"""

from __future__ import annotations

import itertools
import os
import queue
import statistics
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider
from web3.types import RPCEndpoint

TRANSFER_GAS = 21_000
# Full blocks raise the base fee 12.5% each; a fixed, very high fee cap keeps every signed
# transaction includable for ~97 full blocks from the initial base fee (1 gwei). Fees paid =
# base fee + tip. `reset_base_fee` before a workload puts it back to the start, so every
# workload starts from the same fee and that far from the cap; a longer workload (a big
# setup) goes in chunks (`federation.run_setup`). Above the cap Anvil holds transactions back
# until empty blocks bring the fee down, or drops them.
MAX_FEE_PER_GAS = 10**14
PRIORITY_FEE = 10**9
INITIAL_BASE_FEE = 10**9  # Anvil's

BATCH_SIZE = 100  # eth_sendRawTransaction requests per JSON-RPC batch
SENDER_THREADS = 4
POLL_SECONDS = 0.005
INCLUDE_TIMEOUT = 180.0
RPC_TIMEOUT = 60.0


class ThroughputError(RuntimeError):
    """A workload was not sent, included or confirmed as expected."""


# ---------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Call:
    """One transaction to sign and send. `items`: protocol items it carries (a commit one, a
    batched commit its commitments; a transfer counts one)."""

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
    commits: int = 0  # commitments it submits to `round` (checked on chain afterwards)
    round: int = 0

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
    # The same interior blocks' items per block of the chain between the first and the last
    # interior one (blocks without the workload's transactions count): rates on the block clock,
    # blind to when the watcher saw them (an Anvil starved of CPU mines late, then in bursts).
    steady_items_per_block: float | None
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


def reset_base_fee(url: str, wei: int = INITIAL_BASE_FEE) -> None:
    """The next block's base fee back to `wei` (Anvil's `anvil_setNextBlockBaseFeePerGas`)."""
    Rpc(url)("anvil_setNextBlockBaseFeePerGas", [hex(wei)])


def wait_for_cadence(url: str, block_time: float, *, timeout: float = 15.0) -> None:
    """Returns once two consecutive blocks came at least 3/4 of `block_time` apart. Anvil's
    interval miner catches up on the ticks it missed while busy (long `eth_estimateGas` calls,
    or a starved CPU) by mining blocks back to back; a workload sent then would see blocks much
    faster than the chain's. Raises after `timeout`."""
    rpc = Rpc(url)
    deadline = time.perf_counter() + timeout
    last, seen_at = int(rpc("eth_blockNumber", []), 16), time.perf_counter()
    while time.perf_counter() < deadline:
        time.sleep(POLL_SECONDS)
        head = int(rpc("eth_blockNumber", []), 16)
        if head == last:
            continue
        now = time.perf_counter()
        if head == last + 1 and now - seen_at >= 0.75 * block_time:
            return
        last, seen_at = head, now
    raise ThroughputError(f"blocks did not settle to one per {block_time} s within {timeout:.0f} s")


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
    block_span = blocks[-2].number - blocks[0].number if len(blocks) > 2 else 0
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
        steady_items_per_block=sum(items[1:-1]) / block_span if block_span else None,
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
