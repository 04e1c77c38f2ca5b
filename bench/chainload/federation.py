"""The federation under load: a deployment on a local Anvil with its participants registered and
round 0 open, set up quickly (not timed) through the harness.

`setup_federation` deploys with the project's ape script, sets ETH balances
(`anvil_setBalance`), registers the aggregators and trainers (FED stakes, approvals and
registrations sent as pipelined workloads) and opens round 0. Accounts are deterministic
throwaway keys (`bench_accounts`). `advance_round` closes the open round once its deadlines
have passed (Anvil's clock moved forward) and opens the next one for the same trainers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chainload.harness import (
    INCLUDE_TIMEOUT,
    RPC_TIMEOUT,
    SENDER_THREADS,
    Call,
    NonceBook,
    Rpc,
    ThroughputError,
    Workload,
    reset_base_fee,
    run_workload,
)
from fedledger.chain import ape_cli
from fedledger.chain.accounts import devnet_account
from fedledger.chain.contracts import FedLedger
from fedledger.chain.deployments import Deployment
from fedledger.chain.params import TOKEN, Phase, Role
from fedledger.chain.rounds import Rounds
from fedledger.chain.rpc import connect
from fedledger.devnet import PROFILES

REPO = Path(__file__).resolve().parents[2]

# ape's foundry provider cannot deploy to an interval-mining Anvil ("did not create a
# contract"), so every chain uses the generic node provider of `sei:seilike:node` and its
# chain id. The chain id has no bearing on throughput.
CHAIN_ID = PROFILES["sei-like"].chain_id
APE_NETWORK = PROFILES["sei-like"].ape_network

STAKE = 100 * TOKEN  # the default minimum trainer stake
AGGREGATOR_STAKE = 1_000 * TOKEN
COMMIT_WINDOW = 1_800  # round 0 stays in Commit for the whole run (must stay below unbonding)
ETH_BALANCE = 10**24  # wei per account: fees at MAX_FEE_PER_GAS never run out
SETUP_GAS_MARGIN = 1.25

KEY_SEED = b"fedledger throughput bench"


@dataclass
class Federation:
    """A deployment with `round` open (round 0 at first) and `trainers` registered before it
    opened."""

    url: str
    ledger: FedLedger
    nonces: NonceBook
    owner: LocalAccount
    trainers: list[LocalAccount]
    setup_gas: dict[str, int]  # gas limits the setup transactions were sent with
    commit_gas: int = 0  # gas limit of a commit (its estimate with the costliest seal)
    setup_seconds: float = 0.0
    aggregators: list[LocalAccount] = field(default_factory=list)
    relayers: list[LocalAccount] = field(default_factory=list)  # funded, not registered
    round: int = 0  # the open round the workloads commit to

    @property
    def chain_id(self) -> int:
        return self.ledger.chain_id


def bench_accounts(count: int, tag: str) -> list[LocalAccount]:
    """Deterministic throwaway keys (faster than HD derivation)."""
    return [
        Account.from_key(hashlib.sha256(KEY_SEED + tag.encode() + i.to_bytes(4, "big")).digest())
        for i in range(count)
    ]


def default_deploy_options() -> list[str]:
    return [
        "--initial-model-digest",
        "0x" + hashlib.sha256(b"throughput bench model").hexdigest(),
        "--initial-model-cid",
        "bafkreithroughputbenchmodel",
        "--commit-window",
        str(COMMIT_WINDOW),
    ]


def deploy(url: str, run_dir: Path, options: Sequence[str] = ()) -> Deployment:
    """The project's ape deploy script; `options` come after the defaults, so an option given
    in both takes its value from `options` (click keeps the last one)."""
    deployment, _ = ape_cli.deploy(
        project=REPO,
        network=APE_NETWORK,
        rpc_url=url,
        chain_id=CHAIN_ID,
        account="TEST::0",
        deployments_dir=run_dir / "deployments",
        options=[*default_deploy_options(), *options],
    )
    return deployment


def set_balances(rpc: Rpc, addresses: Iterable[str]) -> None:
    rpc.batch([("anvil_setBalance", [a, hex(ETH_BALANCE)]) for a in addresses])


def setup_federation(
    url: str,
    run_dir: Path,
    trainer_count: int,
    *,
    deploy_options: Sequence[str] = (),
    aggregator_count: int = 1,
    relayer_count: int = 0,
) -> Federation:
    """Deploys (the default options, then `deploy_options`), funds and registers
    `aggregator_count` aggregators and `trainer_count` trainers, funds `relayer_count` relayers
    (not registered) and opens round 0."""
    if aggregator_count < 1 or trainer_count < 1:
        raise ValueError("a federation needs at least one aggregator and one trainer")
    started = time.perf_counter()
    deployment = deploy(url, run_dir, deploy_options)
    ledger = FedLedger(connect(url, timeout=RPC_TIMEOUT), deployment)
    owner = devnet_account(0)
    aggregators = bench_accounts(aggregator_count, "aggregator")
    trainers = bench_accounts(trainer_count, "trainer")
    relayers = bench_accounts(relayer_count, "relayer")
    rpc = Rpc(url)
    set_balances(rpc, [owner.address, *(a.address for a in [*aggregators, *trainers, *relayers])])

    # The first aggregator and the first trainer the ordinary way: their gas sets the others' limits.
    aggregator_gas = _register_one(ledger, owner, aggregators[0], Role.AGGREGATOR, AGGREGATOR_STAKE)
    gas = _register_one(ledger, owner, trainers[0], Role.TRAINER, STAKE)
    nonces = NonceBook(rpc)
    _register_many(
        url, nonces, ledger, owner, aggregators[1:], Role.AGGREGATOR, AGGREGATOR_STAKE, aggregator_gas
    )
    _register_many(url, nonces, ledger, owner, trainers[1:], Role.TRAINER, STAKE, gas)

    ledger.sender.reset_nonces()
    ledger.sender.receipt_timeout = 30.0
    ledger.start(aggregators[0])  # anyone may open round 0
    nonces.forget(aggregators[0].address)
    state = ledger.round_state(0)
    if ledger.phase(0) != Phase.COMMIT or state.expected_commits != trainer_count:
        raise ThroughputError(f"round 0 is not open for {trainer_count} trainers: {state}")
    federation = Federation(
        url, ledger, nonces, owner, trainers, gas, aggregators=aggregators, relayers=relayers
    )
    federation.commit_gas = commit_gas_limit(federation)
    federation.setup_seconds = time.perf_counter() - started
    return federation


def _register_one(
    ledger: FedLedger, owner: LocalAccount, account: LocalAccount, role: Role, stake: int
) -> dict[str, int]:
    """Stakes and registers `account` one transaction at a time; returns the gas limits (gas
    used plus a margin) for registering others like it."""
    transfer = ledger.transfer(owner, account.address, stake)
    approve, register = ledger.stake_and_register(account, role, stake)
    return {
        "token_transfer": int(transfer.gas_used * SETUP_GAS_MARGIN),
        "approve": int(approve.gas_used * SETUP_GAS_MARGIN),
        "register": int(register.gas_used * SETUP_GAS_MARGIN),
    }


def _register_many(
    url: str,
    nonces: NonceBook,
    ledger: FedLedger,
    owner: LocalAccount,
    accounts: Sequence[LocalAccount],
    role: Role,
    stake: int,
    gas: dict[str, int],
) -> None:
    if not accounts:
        return
    # All stakes come from one sender: sent in nonce order by one thread, so Anvil never sees a
    # nonce gap in that long chain (one sender's out-of-order nonces are foundry#10122's case).
    nonces.forget(owner.address)  # the ledger sent from it meanwhile
    run_setup(url, nonces, stake_transfers(ledger, owner, accounts, gas["token_transfer"], stake), threads=1)
    run_setup(url, nonces, registrations(ledger, accounts, gas["approve"], gas["register"], role, stake))


# Full blocks a setup chunk may fill: from the initial base fee, 12.5% more per full block
# reaches the transactions' fee cap (MAX_FEE_PER_GAS) after ~97 of them, and Anvil then holds
# back or drops what is left (a 5,000-trainer setup lost its last 381 registrations so).
SETUP_CHUNK_BLOCKS = 60


def run_setup(url: str, nonces: NonceBook, workload: Workload, threads: int = SENDER_THREADS) -> None:
    """Sends a setup workload through the harness in chunks of at most `SETUP_CHUNK_BLOCKS`
    full blocks (by gas limit), one after the other, each from the initial base fee
    (`reset_base_fee`). A sender's calls keep their order."""
    block_gas = int(Rpc(url)("eth_getBlockByNumber", ["latest", False])["gasLimit"], 16)
    budget = SETUP_CHUNK_BLOCKS * block_gas
    chunks: list[list[Call]] = [[]]
    used = 0
    for call in workload.calls:
        if chunks[-1] and used + call.gas > budget:
            chunks.append([])
            used = 0
        chunks[-1].append(call)
        used += call.gas
    for calls in chunks:
        timeout = max(INCLUDE_TIMEOUT, len(calls) / 20)
        reset_base_fee(url)
        run_workload(
            url, Workload(workload.name, calls), nonces, chain_id=CHAIN_ID, threads=threads, timeout=timeout
        )


def stake_transfers(
    ledger: FedLedger, owner: LocalAccount, accounts: Sequence[LocalAccount], gas: int, stake: int = STAKE
) -> Workload:
    token = ledger.token
    calls = [
        Call(owner, token.address, token.encode_abi("transfer", args=[a.address, stake]), gas=gas)
        for a in accounts
    ]
    return Workload("setup: stakes", calls)


def registrations(
    ledger: FedLedger,
    accounts: Sequence[LocalAccount],
    approve: int,
    register: int,
    role: Role = Role.TRAINER,
    stake: int = STAKE,
) -> Workload:
    """approve then register, per account (consecutive nonces keep them in order)."""
    token, registry = ledger.token, ledger.registry
    approve_data = token.encode_abi("approve", args=[registry.address, stake])
    register_data = registry.encode_abi("register", args=[int(role), stake])
    calls = []
    for account in accounts:
        calls.append(Call(account, token.address, approve_data, gas=approve))
        calls.append(Call(account, registry.address, register_data, gas=register))
    return Workload("setup: registrations", calls)


def commit_gas_limit(federation: Federation) -> int:
    """`eth_estimateGas` of the first trainer's commit in the open round, with a seal that has
    no zero byte (the costliest calldata).

    Anvil fills a block by the transactions' gas limits, not the gas they end up using, so
    the limit is the estimate itself, without the usual margin: every commit costs the same
    but for its calldata (given the same history: a trainer's first commit creates its seal's
    slot, a later one rewrites it), and the receipts confirm none ran out of gas."""
    task = federation.ledger.task
    trainer = federation.trainers[0]
    function = task.functions.commitUpdate(federation.round, b"\xff" * 32)
    return int(function.estimate_gas({"from": trainer.address}))


def advance_round(federation: Federation, timeout: float = 30.0) -> int:
    """Moves Anvil's clock past the open round's aggregation deadline (`evm_increaseTime`), so
    the round, neither revealed nor attested, is stale, then closes it (`closeStaleRound`, which
    opens the next round for every active trainer). Sets the federation's round and its commit
    gas limit for it; returns the new round."""
    ledger, rpc = federation.ledger, Rpc(federation.url)
    closing = ledger.current_round()
    deadline = ledger.round_state(closing).aggregation_deadline
    latest = int(rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    rpc("evm_increaseTime", [hex(max(deadline - latest + 1, 1))])
    waited = time.perf_counter() + timeout
    while ledger.phase(closing) != Phase.STALE:  # until a block with the new time is mined
        if time.perf_counter() > waited:
            raise ThroughputError(
                f"round {closing} is not stale after moving the clock: {ledger.round_state(closing)}"
            )
        time.sleep(0.05)
    closer = federation.aggregators[0] if federation.aggregators else federation.owner
    ledger.sender.reset_nonces()  # the harness may have sent from it meanwhile
    Rounds(ledger).close_stale_round(closer)
    federation.nonces.forget(closer.address)
    opened = ledger.current_round()
    if opened != closing + 1 or ledger.phase(opened) != Phase.COMMIT:
        raise ThroughputError(f"round {closing} closed, but round {closing + 1} is not open in Commit")
    federation.round = opened
    federation.commit_gas = commit_gas_limit(federation)
    return opened
