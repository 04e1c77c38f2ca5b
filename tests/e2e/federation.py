"""A real federation for end-to-end tests: Anvil, the IPFS daemon, the ape deploy script,
registered trainers and aggregators, round 0 open. Participants run in threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from fedledger.aggregator.service import Aggregator
from fedledger.attacks import Attack
from fedledger.chain import ape_cli
from fedledger.chain.accounts import devnet_accounts
from fedledger.chain.contracts import FedLedger
from fedledger.chain.deployments import Deployment
from fedledger.chain.params import TOKEN, Role
from fedledger.chain.rpc import connect
from fedledger.devnet import PROFILES, running_devnet
from fedledger.devnet import ipfs as ipfs_daemon
from fedledger.learning.model import build_model, get_weights, model_spec
from fedledger.learning.shards import ShardSpec, held_out, shard
from fedledger.learning.train import TrainConfig, evaluate
from fedledger.storage.codec import encode
from fedledger.storage.digests import sha256, to_hex
from fedledger.storage.ipfs import IpfsClient
from fedledger.storage.models import global_model_binding
from fedledger.trainer.trainer import Trainer

PROJECT = Path(__file__).resolve().parents[2]
CHAIN_ID = 31337


@dataclass
class Federation:
    rpc_url: str
    ipfs_url: str
    deployment: Deployment
    initial_accuracy: float
    trainers: list[LocalAccount]
    aggregators: list[LocalAccount]

    def ledger(self) -> FedLedger:
        """A fresh client (one per thread: web3 sessions are not shared)."""
        return FedLedger(connect(self.rpc_url), self.deployment)


@contextmanager
def running_federation(
    run_dir: Path,
    *,
    trainers: int,
    aggregator_stakes: list[int],
    deploy_options: list[str] = (),  # type: ignore[assignment]
) -> Iterator[Federation]:
    """Starts everything, deploys, registers, opens round 0; stops everything on the way out."""
    with (
        running_devnet(PROFILES["local"], run_dir=run_dir) as devnet,
        ipfs_daemon.running_ipfs(run_dir=run_dir) as daemon,
    ):
        spec = model_spec()
        initial = build_model(seed=0)
        data = encode(
            get_weights(initial), global_model_binding(chain_id=CHAIN_ID, task="", version=0, spec=spec), spec
        )
        cid = IpfsClient(daemon.api_url).add(data).cid
        deployment, _ = ape_cli.deploy(
            project=PROJECT,
            network=PROFILES["local"].ape_network,
            rpc_url=devnet.url,
            chain_id=CHAIN_ID,
            account="TEST::0",
            deployments_dir=run_dir / "deployments",
            options=[
                "--initial-model-digest",
                to_hex(sha256(data)),
                "--initial-model-cid",
                cid,
                "--model-spec-hash",
                to_hex(spec.hash()),
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
        ledger.start(owner)
        yield Federation(
            devnet.url,
            daemon.api_url,
            deployment,
            evaluate(initial, held_out(0)),
            trainer_keys,
            aggregator_keys,
        )


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
    fed: Federation, index: int, *, rounds: int, epochs: int = 1, attack: Attack | None = None
) -> Loop:
    """Trainer `index` on its shard of the federation's trainers, for `rounds` commits."""
    runner = Trainer(
        ledger=fed.ledger(),
        ipfs=IpfsClient(fed.ipfs_url),
        account=fed.trainers[index],
        data=shard(ShardSpec(index=index, count=len(fed.trainers))),
        spec=model_spec(),
        train_config=TrainConfig(epochs=epochs, seed=index),
        attack=attack,
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
