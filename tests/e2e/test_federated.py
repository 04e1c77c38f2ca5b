"""Federated training for real: Anvil, the IPFS daemon, the ape deploy script, trainers and
aggregators on the chain client. 3 trainers (one commits a digest that does not match its
file), 2 aggregators, 2 rounds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from fedledger.aggregator.service import Aggregator
from fedledger.attacks import DigestMismatch
from fedledger.audit.verify import verify_round
from fedledger.chain import ape_cli
from fedledger.chain.accounts import devnet_accounts
from fedledger.chain.contracts import FedLedger
from fedledger.chain.deployments import Deployment
from fedledger.chain.params import Phase, RejectionReason, Role
from fedledger.chain.rounds import Rounds
from fedledger.chain.rpc import connect
from fedledger.devnet import PROFILES, running_devnet
from fedledger.devnet import ipfs as ipfs_daemon
from fedledger.learning.model import build_model, get_weights, model_spec, set_weights
from fedledger.learning.shards import ShardSpec, held_out, shard
from fedledger.learning.train import TrainConfig, evaluate
from fedledger.storage.codec import encode
from fedledger.storage.digests import sha256, to_hex
from fedledger.storage.ipfs import IpfsClient
from fedledger.storage.models import fetch_model, global_model_binding
from fedledger.trainer.trainer import Trainer

ROUNDS = 2
TRAINERS = 3
AGGREGATORS = 2
PROJECT = Path(__file__).resolve().parents[2]


@dataclass
class Federation:
    rpc_url: str
    ipfs_url: str
    deployment: Deployment
    initial_accuracy: float


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    run_dir = tmp_path_factory.mktemp("federation")
    with (
        running_devnet(PROFILES["local"], run_dir=run_dir) as devnet,
        ipfs_daemon.running_ipfs(run_dir=run_dir) as daemon,
    ):
        ipfs = IpfsClient(daemon.api_url)
        spec = model_spec()
        initial = build_model(seed=0)
        data = encode(
            get_weights(initial), global_model_binding(chain_id=31337, task="", version=0, spec=spec), spec
        )
        cid = ipfs.add(data).cid
        deployment, _ = ape_cli.deploy(
            project=PROJECT,
            network=PROFILES["local"].ape_network,
            rpc_url=devnet.url,
            chain_id=31337,
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
            ],
        )
        ledger = FedLedger(connect(devnet.url), deployment)
        accounts = devnet_accounts(1 + TRAINERS + AGGREGATORS)
        for account in accounts[1 : 1 + TRAINERS]:
            ledger.transfer(accounts[0], account.address, 100 * 10**18)
            ledger.stake_and_register(account, Role.TRAINER, 100 * 10**18)
        for account in accounts[1 + TRAINERS :]:
            ledger.transfer(accounts[0], account.address, 1_000 * 10**18)
            ledger.stake_and_register(account, Role.AGGREGATOR, 1_000 * 10**18)
        ledger.start(accounts[0])
        accuracy = evaluate(initial, held_out(0))
        _run_participants(devnet.url, daemon.api_url, deployment, accounts)
        yield Federation(devnet.url, daemon.api_url, deployment, accuracy)


def _run_participants(rpc_url: str, ipfs_url: str, deployment: Deployment, accounts: list) -> None:  # type: ignore[type-arg]
    torch.set_num_threads(1)
    stop = threading.Event()
    errors: list[BaseException] = []
    workers: list[threading.Thread] = []

    def guarded(target: object) -> None:
        try:
            target()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    for index, account in enumerate(accounts[1 : 1 + TRAINERS]):
        # The last trainer pins its real update but commits the digest of other bytes.
        liar = index == TRAINERS - 1
        trainer = Trainer(
            ledger=FedLedger(connect(rpc_url), deployment),
            ipfs=IpfsClient(ipfs_url),
            account=account,
            data=shard(ShardSpec(index=index, count=TRAINERS)),
            spec=model_spec(),
            train_config=TrainConfig(epochs=2, seed=index),
            attack=DigestMismatch() if liar else None,
        )
        # The liar is slashed below the minimum stake in round 0, so it only ever commits once.
        limit = 1 if liar else ROUNDS
        workers.append(
            threading.Thread(
                target=guarded, args=(lambda t=trainer, n=limit: t.run(max_rounds=n, stop=stop),)
            )
        )
    for account in accounts[1 + TRAINERS :]:
        aggregator = Aggregator(
            ledger=FedLedger(connect(rpc_url), deployment),
            ipfs=IpfsClient(ipfs_url),
            account=account,
            spec=model_spec(),
        )
        workers.append(
            threading.Thread(target=guarded, args=(lambda a=aggregator: a.run(max_rounds=ROUNDS, stop=stop),))
        )
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    stop.set()
    if errors:
        raise errors[0]
    assert not any(worker.is_alive() for worker in workers), "participants did not finish in time"


@pytest.fixture(scope="module")
def rounds(federation: Federation) -> Rounds:
    return Rounds(FedLedger(connect(federation.rpc_url), federation.deployment))


def test_rounds_finalize_with_pinned_models_matching_the_onchain_root(
    federation: Federation, rounds: Rounds
) -> None:
    finals = rounds.finalizations()
    assert [f.round for f in finals] == list(range(ROUNDS))
    ipfs = IpfsClient(federation.ipfs_url)
    for final in finals:
        assert rounds.phase(final.round) == Phase.FINALIZED
        assert rounds.result(final.round).model_digest == final.model_digest
        assert sha256(ipfs.cat(final.model_cid, 1 << 20)) == final.model_digest
        assert ipfs.is_pinned(final.model_cid)
    assert rounds.global_model().digest == finals[-1].model_digest
    # Aggregators pin every update they fetched, so the rounds stay reproducible.
    for round_ in range(ROUNDS):
        assert all(ipfs.is_pinned(commit.cid) for commit in rounds.commits(round_))


def test_verify__an_outsider_recomputes_every_round(federation: Federation, rounds: Rounds) -> None:
    for round_ in range(ROUNDS):
        report = verify_round(rounds.ledger, IpfsClient(federation.ipfs_url), round_, model_spec())
        assert report.matches, report.problems
        assert report.recomputed_digest == report.onchain_digest


def test_accuracy_rises(federation: Federation, rounds: Rounds) -> None:
    spec, model, ipfs = model_spec(), build_model(), IpfsClient(federation.ipfs_url)
    accuracies = [federation.initial_accuracy]
    for version, final in enumerate(rounds.finalizations(), start=1):
        binding = global_model_binding(
            chain_id=31337, task=str(rounds.ledger.task.address), version=version, spec=spec
        )
        set_weights(model, fetch_model(ipfs, final.model_cid, final.model_digest, spec, binding))
        accuracies.append(evaluate(model, held_out(0)))
    assert accuracies == sorted(accuracies), accuracies
    assert accuracies[-1] > 0.85


def test_digest_mismatch__rejected_with_reason_slashed_and_deactivated(
    federation: Federation, rounds: Rounds
) -> None:
    liar = devnet_accounts(1 + TRAINERS)[TRAINERS].address
    assert rounds.rejection(0, liar) == RejectionReason.DIGEST_MISMATCH
    assert rounds.result(0).rejected_count == 1
    assert not rounds.reward_claimed(0, liar)
    # Slashed 10% of its 100 FED: below the 100 FED minimum, so it may not commit any more.
    participant = rounds.ledger.participant(liar)
    assert participant.stake == 90 * 10**18 and not participant.active
    assert rounds.commitment(1, liar) == bytes(32)
    assert rounds.result(1).rejected_count == 0 and rounds.state(1).commits == TRAINERS - 1


def test_honest_trainers_claimed_their_rewards(federation: Federation, rounds: Rounds) -> None:
    honest = [a.address for a in devnet_accounts(1 + TRAINERS)[1:TRAINERS]]
    for round_ in range(ROUNDS):
        for trainer in honest:
            assert rounds.reward_claimed(round_, trainer)
    # Two honest trainers with equal shards split each round's 100 FED reward.
    assert rounds.ledger.balance_of(honest[0]) == ROUNDS * 50 * 10**18
