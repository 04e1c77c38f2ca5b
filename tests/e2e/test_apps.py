"""Apps end to end, as their users run them: the built-in tabular app on per-trainer CSV files
(then scored by `status` and the dashboard with the app), the BatchNorm CNN (integer buffers),
an unchanged Flower app, and an app freshly written by `fedledger new` each train two rounds
with two aggregators, every participant a real `fedledger` process on a real Anvil and IPFS
daemon. Then `fedledger verify` reproduces every round in a process that cannot import the app:
the spec comes from the deployment, the tensors from IPFS."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from fedledger.app.api import Context
from fedledger.app.loader import load_any_app
from fedledger.app.spec import app_spec
from fedledger.chain.params import TOKEN
from fedledger.chain.rounds import Rounds
from tests.e2e.federation import PROJECT, Federation, running_federation, wait_until

ROUNDS = 2
TRAINERS = 2
FLOWER_EXAMPLE = PROJECT / "examples" / "flower-quickstart"


def _env(extra_path: list[Path]) -> dict[str, str]:
    """This environment, with `extra_path` (and nothing else the test added) on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(str(path) for path in extra_path)
    return env


def _fedledger(fed: Federation, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedledger", *_common(fed), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _common(fed: Federation) -> list[str]:
    return ["--run-dir", str(fed.run_dir), "--deployments-dir", str(fed.run_dir / "deployments")]


@contextmanager
def _services(
    fed: Federation, trainer_args: Callable[[int], list[str]], app_path: list[Path]
) -> Iterator[None]:
    """Two aggregators (which never see the app) and the trainers, as processes; stopped after."""
    node = ["--rpc-url", fed.rpc_url, "--ipfs-api", fed.ipfs_url]
    logs = fed.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    commands: list[tuple[str, list[str], dict[str, str]]] = []
    for index in range(len(fed.aggregators)):
        account = f"dev:{1 + len(fed.trainers) + index}"
        args = ["aggregator", "run", "--account", account, "--rounds", str(ROUNDS), "-v", *node]
        commands.append((f"aggregator-{index}", args, _env([])))
    for index in range(len(fed.trainers)):
        args = ["trainer", "run", "--account", f"dev:{1 + index}", "--rounds", str(ROUNDS), "-v"]
        commands.append((f"trainer-{index}", [*args, *trainer_args(index), *node], _env(app_path)))
    processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for name, args, env in commands:
            path = logs / f"{name}.log"
            with path.open("wb") as out:
                popen = subprocess.Popen(
                    [sys.executable, "-m", "fedledger", *_common(fed), *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            processes.append((name, popen, path))

        def check() -> None:
            for name, popen, path in processes:
                if popen.poll() not in (None, 0):
                    raise AssertionError(
                        f"{name} exited with {popen.returncode}:\n{path.read_text()[-3000:]}"
                    )

        fed.open_first_round()
        rounds = Rounds(fed.ledger())
        wait_until(
            lambda: len(rounds.finalizations()) >= ROUNDS,
            timeout=240,
            what=f"{ROUNDS} finalized rounds",
            check=check,
            poll=0.5,
        )
        yield
    finally:
        for _, popen, _ in processes:
            if popen.poll() is None:
                popen.terminate()
        for _, popen, _ in processes:
            try:
                popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                popen.kill()


@contextmanager
def _train_and_verify(
    tmp_path: Path,
    initial: tuple[dict[str, Any], Any],
    trainer_args: Callable[[int], list[str]],
    app_path: list[Path],
) -> Iterator[Federation]:
    """Trains ROUNDS rounds, checks every round with `fedledger verify`, then yields the
    federation (still running) for further checks."""
    with running_federation(
        tmp_path / "run",
        trainers=TRAINERS,
        aggregator_stakes=[1_000 * TOKEN, 1_000 * TOKEN],
        start=False,
        initial=initial,
    ) as fed:
        with _services(fed, trainer_args, app_path):
            pass
        node = ["--rpc-url", fed.rpc_url, "--ipfs-api", fed.ipfs_url]
        for round_ in range(ROUNDS):
            # A clean environment: the app's package is not importable where verify runs.
            result = _fedledger(fed, "verify", str(round_), "--json", *node, env=_env([]))
            assert result.returncode == 0, result.stdout + result.stderr
            report = json.loads(result.stdout)
            assert report["matches"] is True
            assert len(report["accepted"]) == TRAINERS and not report["rejected"]
        yield fed


def _dashboard_accuracies(fed: Federation, scoring: list[str], node: list[str]) -> list[float | None]:
    """The accuracy of each finalized round as `fedledger dashboard` (scoring with the app)
    serves it, once it has scored them all."""
    deployment = fed.run_dir / "deployments" / f"{fed.ledger().chain_id}.json"
    args = [
        "dashboard",
        *scoring,
        "--deployment",
        str(deployment),
        "--port",
        "0",
        "--refresh",
        "0.5",
        "-v",
        *node,
    ]
    log = fed.run_dir / "logs" / "dashboard.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "fedledger", *_common(fed), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env([]),
        )
    try:

        def alive() -> None:
            if popen.poll() is not None:
                raise AssertionError(
                    f"the dashboard exited with {popen.returncode}:\n{log.read_text()[-3000:]}"
                )

        url = wait_until(
            lambda: re.search(r"dashboard: (http://\S+)", log.read_text()),
            timeout=60,
            what="the URL",
            check=alive,
        )[1]

        def scored() -> list[float | None] | None:
            snapshot = requests.get(url + "api/state", timeout=5).json()["snapshot"]  # null before a read
            rounds = snapshot["rounds"] if snapshot else []
            finalized = [r for r in rounds if r["model_digest"]]
            done = len(finalized) == ROUNDS and all(r["accuracy"] is not None for r in finalized)
            return [r["accuracy"] for r in finalized] if done else None

        accuracies: list[float | None] = wait_until(scored, timeout=120, what="scored rounds", check=alive)
        return accuracies
    finally:
        popen.terminate()
        popen.wait(timeout=30)


def test_tabular_app__csv_files__two_rounds_verified_and_scored(tmp_path: Path) -> None:
    app = load_any_app("tabular")
    data = app.demo_data(tmp_path / "data", TRAINERS, seed=0)
    assert data is not None
    weights, spec = app_spec(app, Context(data_path=data.union_path))
    scoring = ["--app", "tabular", "--data", str(data.test_path)]
    with _train_and_verify(
        tmp_path,
        (weights, spec),
        lambda i: ["--app", "tabular", "--data", str(data.trainer_paths[i])],
        [],
    ) as fed:
        node = ["--rpc-url", fed.rpc_url, "--ipfs-api", fed.ipfs_url]
        # status scores every global model with the app's evaluate on the held-out file ...
        result = _fedledger(fed, "status", "--accuracy", *scoring, "--json", *node, env=_env([]))
        assert result.returncode == 0, result.stdout + result.stderr
        status = json.loads(result.stdout)
        accuracies = [r["accuracy"] for r in status["rounds"]]
        assert len(accuracies) == ROUNDS and all(a is not None and a >= 0.85 for a in accuracies), status
        # ... and so does the dashboard, the same scores.
        assert _dashboard_accuracies(fed, scoring, node) == accuracies


def test_batchnorm_app__integer_buffers__two_rounds_verified(tmp_path: Path) -> None:
    app = load_any_app("mnist-bn")
    weights, spec = app_spec(app, Context())
    assert {tensor.dtype for tensor in spec.tensors} == {"F32", "I64"}  # num_batches_tracked
    with _train_and_verify(
        tmp_path, (weights, spec), lambda i: ["--app", "mnist-bn", "--shard", f"{i}/{TRAINERS}"], []
    ) as fed:
        # Both aggregators attested the same model bytes, integer buffers included.
        rounds = Rounds(fed.ledger())
        for round_ in range(ROUNDS):
            attestations = rounds.attestations(round_)
            assert len(attestations) == 2 and len({a.model_digest for a in attestations}) == 1


@pytest.mark.skipif(not FLOWER_EXAMPLE.exists(), reason="the Flower example is not in this tree")
@pytest.mark.parametrize(
    "client_app",
    ["flwr_quickstart.client_app:app", "flwr_quickstart.legacy_client:app"],
    ids=["message-api", "numpy-client"],
)
def test_flower_app__unchanged__two_rounds_verified(
    tmp_path: Path, client_app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(FLOWER_EXAMPLE))
    model = "flwr_quickstart.task:Net"
    weights, spec = app_spec(load_any_app("", client_app, model), Context())
    # The learning rate a Flower ServerApp would send in its train config comes from --config.
    flower = ["--flower-app", client_app, "--flower-model", model, "--config", "lr=0.1"]
    with _train_and_verify(
        tmp_path, (weights, spec), lambda i: [*flower, "--shard", f"{i}/{TRAINERS}"], [FLOWER_EXAMPLE]
    ):
        pass


def test_scaffolded_app__installed__two_rounds_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scaffold = pytest.importorskip("fedledger.scaffold")
    package = scaffold.write_app("clinic-risk", tmp_path)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(package),
        ],
        check=True,
        timeout=300,
    )
    monkeypatch.syspath_prepend(str(target))
    train = package / "data" / "train.csv"
    weights, spec = app_spec(load_any_app("clinic-risk"), Context(data_path=train))
    with _train_and_verify(
        tmp_path,
        (weights, spec),
        lambda i: ["--app", "clinic-risk", "--data", str(train), "--shard", f"{i}/{TRAINERS}"],
        [target],
    ):
        pass
