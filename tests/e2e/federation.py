"""A real federation for end-to-end tests: Anvil, the IPFS daemon, the ape deploy script,
registered trainers and aggregators, round 0 open. Participants run in threads, or as real
`fedledger` service processes (`ServiceProcess`) for tests that kill, pause and restart them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from eth_account.signers.local import LocalAccount

from fedledger.aggregator.service import Aggregator
from fedledger.attacks import Attack
from fedledger.chain import ape_cli
from fedledger.chain.accounts import devnet_accounts
from fedledger.chain.contracts import FedLedger
from fedledger.chain.deployments import Deployment
from fedledger.chain.params import TOKEN, Role
from fedledger.chain.rpc import connect
from fedledger.demo.placeholder import write_placeholder
from fedledger.devnet import PROFILES, Devnet, running_devnet
from fedledger.devnet import ipfs as ipfs_daemon
from fedledger.devnet.process import log_tail
from fedledger.learning.model import build_model, get_weights, model_spec
from fedledger.learning.shards import ShardSpec, held_out, shard
from fedledger.learning.train import TrainConfig, evaluate
from fedledger.storage.ipfs import IpfsClient
from fedledger.storage.models import pin_initial_model
from fedledger.storage.schema import ModelSpec
from fedledger.trainer.trainer import Trainer
from tests.mnist_app import mnist_app

PROJECT = Path(__file__).resolve().parents[2]
CHAIN_ID = 31337
T = TypeVar("T")


@dataclass
class Federation:
    rpc_url: str
    ipfs_url: str
    deployment: Deployment
    initial_accuracy: float
    trainers: list[LocalAccount]
    aggregators: list[LocalAccount]
    owner: LocalAccount
    run_dir: Path
    daemon: ipfs_daemon.IpfsDaemon  # the IPFS daemon running now (see start_ipfs)

    def ledger(self) -> FedLedger:
        """A fresh client (one per thread: web3 sessions are not shared)."""
        return FedLedger(connect(self.rpc_url), self.deployment)

    def open_first_round(self) -> None:
        """Opens round 0 (when `running_federation` was told not to)."""
        self.ledger().start(self.owner)

    def stop_ipfs(self, *, crash: bool = False) -> None:
        """Stops the IPFS daemon: SIGTERM to its process group, or with `crash` SIGKILL (no
        cleanup: its state file and repository lock stay behind). Its repository stays."""
        if not crash:
            self.daemon.stop()
            return
        os.killpg(self.daemon.state.pid, signal.SIGKILL)
        wait_until(lambda: not self.daemon.is_running(), timeout=10, what="the IPFS daemon to die")

    def start_ipfs(self) -> None:
        """Starts the daemon again on the same repository and API port: pins survive."""
        self.daemon = ipfs_daemon.start(run_dir=self.run_dir, api_port=self.daemon.state.api_port)


def _mnist_accuracy(weights: dict[str, Any]) -> float:
    model = build_model()
    model.load_state_dict({name: torch.from_numpy(value) for name, value in weights.items()})
    return evaluate(model, held_out(0))


def deploy_placeholder(devnet: Devnet, *options: str) -> Path:
    """Deploys everything on `devnet` with the ape script and a placeholder initial model;
    returns the deployments directory (in the devnet's run directory)."""
    model = write_placeholder(devnet.run_dir)
    directory = devnet.run_dir / "deployments"
    ape_cli.deploy(
        project=PROJECT,
        network=PROFILES["local"].ape_network,
        rpc_url=devnet.url,
        chain_id=CHAIN_ID,
        account="TEST::0",
        deployments_dir=directory,
        options=["--initial-model-file", str(model.path), *options],
    )
    return directory


@contextmanager
def running_federation(
    run_dir: Path,
    *,
    trainers: int,
    aggregator_stakes: list[int],
    deploy_options: list[str] = (),  # type: ignore[assignment]
    start: bool = True,
    initial: tuple[dict[str, Any], ModelSpec] | None = None,
) -> Iterator[Federation]:
    """Starts everything, deploys, registers, opens round 0 (unless not `start`: then the test
    calls `open_first_round` once its participants run); stops everything on the way out.
    `initial`: another app's initial weights and spec (default: the MNIST CNN's, seed 0)."""
    with (
        running_devnet(PROFILES["local"], run_dir=run_dir) as devnet,
        ipfs_daemon.running_ipfs(run_dir=run_dir) as daemon,
    ):
        weights, spec = initial if initial is not None else (get_weights(build_model(seed=0)), model_spec())
        pinned = pin_initial_model(IpfsClient(daemon.api_url), weights, spec, chain_id=CHAIN_ID)
        deployment, _ = ape_cli.deploy(
            project=PROJECT,
            network=PROFILES["local"].ape_network,
            rpc_url=devnet.url,
            chain_id=CHAIN_ID,
            account="TEST::0",
            deployments_dir=run_dir / "deployments",
            options=[
                *pinned.deploy_options(),
                "--min-updates",
                "2",
                "--commit-window",
                "120",
                "--aggregation-window",
                "60",
                *deploy_options,
            ],
        )
        ledger = FedLedger(connect(devnet.url), deployment)
        accounts = devnet_accounts(1 + trainers + len(aggregator_stakes))
        owner, trainer_keys, aggregator_keys = (
            accounts[0],
            accounts[1 : 1 + trainers],
            accounts[1 + trainers :],
        )
        for account in trainer_keys:
            ledger.transfer(owner, account.address, 100 * TOKEN)
            ledger.stake_and_register(account, Role.TRAINER, 100 * TOKEN)
        for account, stake in zip(aggregator_keys, aggregator_stakes, strict=True):
            ledger.transfer(owner, account.address, stake)
            ledger.stake_and_register(account, Role.AGGREGATOR, stake)
        if start:
            ledger.start(owner)
        federation = Federation(
            rpc_url=devnet.url,
            ipfs_url=daemon.api_url,
            deployment=deployment,
            # The MNIST CNN's accuracy on the held-out digits (NaN for another app).
            initial_accuracy=_mnist_accuracy(weights) if initial is None else float("nan"),
            trainers=trainer_keys,
            aggregators=aggregator_keys,
            owner=owner,
            run_dir=run_dir,
            daemon=daemon,
        )
        try:
            yield federation
        finally:
            federation.daemon.stop()  # a daemon the test restarted (the first one stops anyway)


def run_all(tasks: list[Callable[[threading.Event], object]], timeout: float = 240) -> None:
    """Runs each participant loop in a thread; the first error stops all and is raised."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def guarded(task: Callable[[threading.Event], object]) -> None:
        try:
            task(stop)
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=guarded, args=(task,)) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    stop.set()
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), "participants did not finish in time"


Loop = Callable[[threading.Event], object]


def trainer_loop(
    fed: Federation,
    index: int,
    *,
    rounds: int,
    epochs: int = 1,
    attack: Attack | None = None,
    kind: type[Trainer] = Trainer,
    ipfs: IpfsClient | None = None,
    **extra: Any,
) -> Loop:
    """Trainer `index` (of class `kind`, given `extra` arguments) on its shard of the
    federation's trainers, for `rounds` commits."""
    runner = kind(
        ledger=fed.ledger(),
        ipfs=ipfs or IpfsClient(fed.ipfs_url),
        account=fed.trainers[index],
        data=shard(ShardSpec(index=index, count=len(fed.trainers))),
        spec=model_spec(),
        **mnist_app(TrainConfig(epochs=epochs, seed=index)),
        attack=attack,
        **extra,
    )
    return lambda stop: runner.run(max_rounds=rounds, stop=stop)


def aggregator_loop(
    fed: Federation, index: int, *, rounds: int, kind: type[Aggregator] = Aggregator, **extra: Any
) -> Loop:
    """Aggregator `index` (of class `kind`, given `extra` arguments) for `rounds` rounds."""
    service = kind(
        ledger=fed.ledger(),
        ipfs=IpfsClient(fed.ipfs_url),
        account=fed.aggregators[index],
        spec=model_spec(),
        **extra,
    )
    return lambda stop: service.run(max_rounds=rounds, stop=stop)


# ---------------------------------------------------------------- faults: threads and processes


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    check: Callable[[], object] | None = None,
    poll: float = 0.1,
) -> T:
    """Polls `condition` until it returns something truthy (returned); `check` runs before each
    poll to fail fast (a participant died). Raises AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


class Background:
    """Participant loops in threads, started while the test drives faults from its own thread."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def start(self, *tasks: Loop) -> None:
        for task in tasks:
            thread = threading.Thread(target=self._guarded, args=(task,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def check(self) -> None:
        """Raises the first error of a participant loop."""
        if self.errors:
            raise self.errors[0]

    def join(self, timeout: float) -> None:
        """Waits for every loop started so far to finish on its own; raises its first error."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.check()
        assert not any(t.is_alive() for t in self.threads), "participants did not finish in time"

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _guarded(self, task: Loop) -> None:
        try:
            task(self.stop)
        except BaseException as exc:  # re-raised in the test thread by check()/join()
            self.errors.append(exc)


@contextmanager
def in_background() -> Iterator[Background]:
    """A `Background` whose loops are stopped (and joined) however the block is left."""
    background = Background()
    try:
        yield background
    finally:
        background.close()


class ServiceProcess:
    """One `fedledger` service in its own process, as `fedledger demo` runs them: it can be
    killed, paused, resumed and restarted. Incarnation N logs to `<logs>/<name>-<N>.log`."""

    def __init__(self, name: str, args: list[str], logs: Path) -> None:
        self.name = name
        self.args = args
        self.logs = logs
        self.incarnation = 0
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> ServiceProcess:
        """Starts the next incarnation (the previous one must have ended), with `extra` arguments."""
        assert self.popen is None or self.popen.poll() is not None, f"{self.name} is still running"
        self.incarnation += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        with self.log_path().open("wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "fedledger", *self.args, *extra],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def log_path(self, incarnation: int | None = None) -> Path:
        return self.logs / f"{self.name}-{incarnation or self.incarnation}.log"

    def log(self, incarnation: int | None = None) -> str:
        """What incarnation `incarnation` (default: the current one) logged so far."""
        try:
            return self.log_path(incarnation).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logs_all(self) -> str:
        return "\n".join(self.log(n) for n in range(1, self.incarnation + 1))

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check(self) -> None:
        """Fails if the current incarnation exited (tests expect it to run until told otherwise)."""
        if self.popen is not None and self.popen.poll() is not None:
            raise AssertionError(
                f"{self.name} (incarnation {self.incarnation}) exited with code {self.popen.returncode}; "
                f"last lines of {self.log_path()}:\n{log_tail(self.log_path())}"
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last words, like a crash or a power cut."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process stalls mid-whatever (a frozen VM, a stuck machine)."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGCONT)

    def wait(self, timeout: float) -> int:
        """Waits for the current incarnation to exit on its own; its exit code."""
        assert self.popen is not None
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} did not exit within {timeout:.0f} s; last lines:\n{log_tail(self.log_path())}"
            ) from None

    def stop(self) -> None:
        """Ends the current incarnation for sure (SIGCONT first, in case it is paused). Idempotent."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGCONT)
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def aggregator_process(fed: Federation, index: int, *, rounds: int | None = None) -> ServiceProcess:
    """`fedledger aggregator run` for aggregator `index` (not started), as the demo runs it."""
    account = f"dev:{1 + len(fed.trainers) + index}"  # devnet_accounts order: owner, trainers, aggregators
    args = [
        "--run-dir",
        str(fed.run_dir),
        "--deployments-dir",
        str(fed.run_dir / "deployments"),
        "--project-dir",
        str(PROJECT),
        "aggregator",
        "run",
        "--account",
        account,
        "-v",
        "--rpc-url",
        fed.rpc_url,
        "--ipfs-api",
        fed.ipfs_url,
        *(["--rounds", str(rounds)] if rounds is not None else []),
    ]
    return ServiceProcess(f"aggregator-{index}", args, fed.run_dir / "logs")


@contextmanager
def service_processes(*processes: ServiceProcess) -> Iterator[list[ServiceProcess]]:
    """Stops every process (all incarnations ended) however the block is left."""
    try:
        yield list(processes)
    finally:
        for process in processes:
            process.stop()
