"""The dashboard's parts without a chain: the refresher's error handling, the web app's routes
and host check, the loopback-only socket, the accuracy book and its disk cache, the CLI's errors."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from fedledger.cli import cli
from fedledger.dashboard.accuracy import RETRY_SECONDS, AccuracyBook, ModelRef
from fedledger.dashboard.app import STATIC_DIRECTORY, create_app
from fedledger.dashboard.refresher import Refresher
from fedledger.dashboard.server import DashboardError, loopback_socket
from fedledger.dashboard.snapshot import ChainWentBackError
from fedledger.learning.model import build_model, get_weights, model_spec
from fedledger.storage.codec import encode
from fedledger.storage.digests import sha256
from fedledger.storage.models import (
    ModelSpecError,
    deployed_spec,
    fetch_model,
    fetch_spec,
    global_model_binding,
    pin_initial_model,
)
from tests.clients.fakes import FakeIpfs

CHAIN_ID = 31337
TASK = "0x" + "ab" * 20


# ---------------------------------------------------------------- refresher


class FakeSnapshot:
    def __init__(self, block: int) -> None:
        self.block = block

    def to_json(self) -> dict[str, Any]:
        return {"block": self.block}


class ScriptedView:
    """Returns the snapshots or raises the errors it is given, in turn."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes

    def refresh(self) -> FakeSnapshot:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return FakeSnapshot(outcome)


def payload(refresher: Refresher) -> dict[str, Any]:
    return json.loads(refresher.payload())


def test_refresher__keeps_the_last_snapshot_beside_the_error_until_a_read_succeeds() -> None:
    view = ScriptedView([ConnectionError("node down"), 5, ConnectionError("node down again"), 7])
    refresher = Refresher(lambda: view, interval=1.0, about={"node": "http://127.0.0.1:8545"})  # type: ignore[arg-type, return-value]

    refresher.refresh_once()
    first = payload(refresher)
    assert first["snapshot"] is None and first["updated_at"] is None
    assert first["error"] == "ConnectionError: node down" and not refresher.healthy
    assert first["node"] == "http://127.0.0.1:8545" and first["refresh_seconds"] == 1.0

    refresher.refresh_once()
    good = payload(refresher)
    assert good["snapshot"] == {"block": 5} and good["error"] is None and refresher.healthy

    refresher.refresh_once()
    failed = payload(refresher)
    assert failed["snapshot"] == {"block": 5} and failed["updated_at"] == good["updated_at"]
    assert failed["error"] == "ConnectionError: node down again" and not refresher.healthy

    refresher.refresh_once()
    assert payload(refresher)["snapshot"] == {"block": 7} and refresher.healthy


def test_refresher__chain_went_back__reads_again_from_a_new_view() -> None:
    views = [ScriptedView([4, ChainWentBackError("reset")]), ScriptedView([2])]
    made: list[ScriptedView] = []

    def make() -> ScriptedView:
        made.append(views.pop(0))
        return made[-1]

    refresher = Refresher(make, interval=1.0, about={})  # type: ignore[arg-type]
    refresher.refresh_once()
    refresher.refresh_once()
    assert "ChainWentBackError: reset" in payload(refresher)["error"]
    refresher.refresh_once()
    assert len(made) == 2 and payload(refresher)["snapshot"] == {"block": 2}


def test_refresher__a_failing_view_factory_is_retried() -> None:
    calls = []

    def make() -> ScriptedView:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("no node yet")
        return ScriptedView([1])

    refresher = Refresher(make, interval=1.0, about={})  # type: ignore[arg-type]
    refresher.refresh_once()
    refresher.refresh_once()
    assert payload(refresher)["snapshot"] == {"block": 1} and len(calls) == 2


def test_refresher__thread_reads_every_interval_and_stops() -> None:
    view = ScriptedView(list(range(1000)))
    refresher = Refresher(lambda: view, interval=0.05, about={})  # type: ignore[arg-type, return-value]
    refresher.start()
    time.sleep(0.5)
    refresher.stop()
    reads = 1000 - len(view.outcomes)
    assert 3 <= reads <= 15
    time.sleep(0.2)
    assert 1000 - len(view.outcomes) == reads  # stopped


# ---------------------------------------------------------------- web app


class StaticSource:
    def __init__(self, body: dict[str, Any], healthy: bool) -> None:
        self.body, self.healthy = body, healthy

    def payload(self) -> bytes:
        return json.dumps(self.body).encode()


def client(source: StaticSource) -> TestClient:
    return TestClient(create_app(source), base_url="http://127.0.0.1:8050")


def test_app__serves_the_page_its_assets_and_the_state() -> None:
    web = client(StaticSource({"snapshot": {"block": 3}}, healthy=True))
    page = web.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["cache-control"] == "no-store"
    # Every script and stylesheet the page names is served here.
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert set(assets) == {"/static/dashboard.css", "/vendor/plotly.min.js", "/static/dashboard.js"}
    for asset in assets:
        assert web.get(asset).status_code == 200, asset
    assert "plotly.js v" in web.get("/vendor/plotly.min.js").text[:200]
    state = web.get("/api/state")
    assert state.json() == {"snapshot": {"block": 3}} and state.headers["cache-control"] == "no-store"
    assert web.get("/healthz").json() == {"ok": True}
    assert web.get("/nothing-here").status_code == 404


def test_app__nothing_the_page_loads_comes_from_the_internet() -> None:
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        text = (STATIC_DIRECTORY / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), name


def test_app__unhealthy_source__healthz_is_503() -> None:
    web = client(StaticSource({"snapshot": None, "error": "down"}, healthy=False))
    assert web.get("/healthz").status_code == 503
    assert web.get("/api/state").json()["error"] == "down"


def test_app__refuses_hosts_that_are_not_loopback() -> None:
    web = client(StaticSource({}, healthy=True))
    assert web.get("/api/state", headers={"host": "attacker.example"}).status_code == 400
    assert web.get("/api/state", headers={"host": "localhost:8050"}).status_code == 200


# ---------------------------------------------------------------- loopback socket


def test_loopback_socket__refuses_other_addresses() -> None:
    for host in ("0.0.0.0", "192.168.1.10", "::1", "example.org"):
        with pytest.raises(DashboardError, match=r"127\.0\.0\.1"):
            loopback_socket(host, 0)


def test_loopback_socket__free_port_and_port_in_use() -> None:
    sock = loopback_socket("localhost", 0)
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        with pytest.raises(DashboardError, match=f"cannot listen on 127.0.0.1:{port}.*another --port"):
            loopback_socket("127.0.0.1", port)
    finally:
        sock.close()


# ---------------------------------------------------------------- accuracy book


def model_file(version: int, seed: int) -> bytes:
    spec = model_spec()
    task = TASK if version else ""
    binding = global_model_binding(chain_id=CHAIN_ID, task=task, version=version, spec=spec)
    return encode(get_weights(build_model(seed=seed)), binding, spec)


def book(ipfs: FakeIpfs, cache: Path | None, evaluations: list[int], fail_load: bool = False) -> AccuracyBook:
    def load() -> Any:
        if fail_load:
            raise OSError("no MNIST here")

        def evaluate(weights: dict[str, np.ndarray]) -> float:
            evaluations.append(1)
            return float(np.abs(weights["fc2.bias"]).sum() % 1)  # any deterministic score

        return evaluate

    return AccuracyBook(
        ipfs, chain_id=CHAIN_ID, task=TASK, spec=model_spec(), load_evaluator=load, cache_file=cache
    )


def wait_for(condition: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_accuracy_book__evaluates_in_the_background_and_keeps_scores_on_disk(tmp_path: Path) -> None:
    ipfs, evaluations = FakeIpfs(), []
    data = model_file(1, seed=3)
    model = ModelRef(1, sha256(data), ipfs.put(data))
    cache = tmp_path / "cache" / "accuracy.json"
    first = book(ipfs, cache, evaluations)
    try:
        assert first.score(model).accuracy is None  # queued, not blocking
        score = wait_for(lambda: first.score(model).accuracy)
        assert 0 <= score < 1 and evaluations == [1] and first.pending == 0
        assert first.score(model).accuracy == score and evaluations == [1]  # evaluated once
    finally:
        first.close()
    assert json.loads(cache.read_text())["accuracy"] == {"0x" + sha256(data).hex(): score}

    again: list[int] = []
    second = book(FakeIpfs(), cache, again)  # nothing on IPFS: the disk cache answers
    try:
        assert second.score(model).accuracy == score and again == []
    finally:
        second.close()


def test_accuracy_book__bytes_that_do_not_match_the_chain_are_never_scored(tmp_path: Path) -> None:
    ipfs, evaluations = FakeIpfs(), []
    genuine, other = model_file(2, seed=1), model_file(2, seed=2)
    wrong_bytes = ModelRef(2, sha256(genuine), ipfs.put(other))
    wrong_binding = ModelRef(3, sha256(genuine), ipfs.put(genuine))  # bound to version 2, named 3
    accounts = book(ipfs, None, evaluations)
    try:
        for model in (wrong_bytes, wrong_binding):
            accounts.score(model)
            problem = wait_for(lambda m=model: accounts.score(m).problem)
            assert problem.startswith("does not match the chain")
            assert accounts.score(model).accuracy is None
        assert evaluations == []
    finally:
        accounts.close()


def test_accuracy_book__missing_content_is_retried_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ipfs, evaluations = FakeIpfs(), []
    data = model_file(1, seed=4)
    model = ModelRef(1, sha256(data), "bafkreimissing")
    accounts = book(ipfs, None, evaluations)
    try:
        accounts.score(model)
        assert "not fetched from IPFS" in wait_for(lambda: accounts.score(model).problem)
        ipfs.files["bafkreimissing"] = data  # the content appears
        assert accounts.score(model).accuracy is None and accounts.pending == 0  # not before the retry
        clock = time.monotonic() + RETRY_SECONDS + 1
        monkeypatch.setattr("fedledger.dashboard.accuracy.time.monotonic", lambda: clock)
        accounts.score(model)
        assert wait_for(lambda: accounts.score(model).accuracy) is not None
    finally:
        accounts.close()


def test_accuracy_book__evaluator_that_does_not_load__reported_per_model() -> None:
    ipfs = FakeIpfs()
    data = model_file(1, seed=5)
    model = ModelRef(1, sha256(data), ipfs.put(data))
    accounts = book(ipfs, None, [], fail_load=True)
    try:
        accounts.score(model)
        assert "the evaluator did not load: no MNIST here" in wait_for(lambda: accounts.score(model).problem)
    finally:
        accounts.close()


def test_accuracy_book__unreadable_cache_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "accuracy.json"
    cache.write_text("{not json")
    accounts = book(FakeIpfs(), cache, [])
    try:
        assert accounts.pending == 0
    finally:
        accounts.close()


# ---------------------------------------------------------------- CLI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deployment_file(tmp_path: Path) -> Path:
    path = tmp_path / "31337.json"
    addresses = {
        name: "0x" + f"{i:02x}" * 20
        for i, name in enumerate(
            ["FedToken", "FedTimelock", "StakingRegistry", "FederatedTask", "FedGovernor"], 1
        )
    }
    path.write_text(
        json.dumps(
            {
                "chain_id": 31337,
                "network": "x",
                "deployer": "0x" + "00" * 20,
                "block_number": 0,
                "addresses": addresses,
            }
        )
    )
    return path


def run(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--run-dir", str(tmp_path / "run"), *args], env={"FEDLEDGER_RPC_URL": ""})


def dashboard(tmp_path: Path, *args: str, rpc_url: str = "http://127.0.0.1:1") -> Any:
    """`fedledger dashboard` on a well-formed deployments file and `rpc_url`, with `args`."""
    return run(
        tmp_path, "dashboard", "--rpc-url", rpc_url, "--deployment", str(deployment_file(tmp_path)), *args
    )


def test_cli_dashboard__dead_node__clear_error(tmp_path: Path) -> None:
    result = dashboard(tmp_path, "--no-accuracy", "--port", "0", rpc_url=f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 1
    assert "127.0.0.1" in result.output and "Traceback" not in result.output


def test_cli_dashboard__not_a_deployments_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = run(tmp_path, "dashboard", "--rpc-url", "http://127.0.0.1:1", "--deployment", str(bad))
    assert result.exit_code == 2 and "not a fedledger deployments file" in result.output


def test_cli_dashboard__host_that_is_not_loopback__refused_before_anything_else(tmp_path: Path) -> None:
    result = dashboard(tmp_path, "--no-accuracy", "--host", "0.0.0.0")
    assert result.exit_code == 1 and "not an IPv4 loopback address" in result.output


def test_cli_dashboard__no_ipfs_for_the_accuracy__says_how_to_turn_it_off(tmp_path: Path) -> None:
    result = dashboard(tmp_path)
    assert result.exit_code == 2 and "--no-accuracy" in result.output


def test_cli_dashboard__bad_arguments(tmp_path: Path) -> None:
    assert run(tmp_path, "dashboard", "--port", "70000").exit_code == 2
    assert run(tmp_path, "dashboard", "--refresh", "0").exit_code == 2
    assert run(tmp_path, "dashboard", "--deployment", str(tmp_path / "missing.json")).exit_code == 2


def test_cli_dashboard__flower_app__scores_with_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fedledger.dashboard.service as service

    served: list[service.DashboardOptions] = []
    monkeypatch.setattr(service, "run_dashboard", lambda options, echo: served.append(options))
    flower = ["--flower-app", "task.client:app", "--flower-model", "task.model:Net"]
    result = dashboard(tmp_path, "--ipfs-api", "http://127.0.0.1:1", *flower)
    assert result.exit_code == 0, result.output
    (options,) = served
    assert (options.flower_app, options.flower_model) == ("task.client:app", "task.model:Net")
    assert options.evaluator_name == "task.client:app"  # names the page's evaluator and the cache


def test_accuracy_book__app_loaded_with_its_flower_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fedledger.dashboard.service as service
    import fedledger.storage.models as models
    from fedledger.app.errors import AppLoadError
    from fedledger.chain.deployments import read_deployment

    class Ledger:  # what _accuracy_book reads before it loads the app
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.model_spec_cid, self.model_spec_hash = lambda: "", lambda: bytes(32)

    monkeypatch.setattr(service, "connect", lambda url: None)
    monkeypatch.setattr(service, "FedLedger", Ledger)
    monkeypatch.setattr(models, "deployed_spec", lambda *args: model_spec())
    options = service.DashboardOptions(
        rpc_url="http://127.0.0.1:1",
        deployment=read_deployment(deployment_file(tmp_path)),
        ipfs_api="http://127.0.0.1:1",
        flower_model="task.model:Net",
    )
    # Loaded by load_any_app, which knows the Flower options belong together.
    with pytest.raises(AppLoadError, match="goes with a Flower app"):
        service._accuracy_book(options)


def test_cli_demo__dashboard_needs_the_training_demo(tmp_path: Path) -> None:
    result = run(tmp_path, "demo", "--governance-only", "--dashboard")
    assert result.exit_code == 2 and "--dashboard runs with the training demo" in result.output


def test_pin_initial_model__pinned_version_0_and_the_options_that_name_it() -> None:
    ipfs, spec = FakeIpfs(), model_spec()
    weights = get_weights(build_model(seed=4))
    initial = pin_initial_model(ipfs, weights, spec, chain_id=CHAIN_ID)
    assert ipfs.files[initial.cid] == initial.data and initial.digest == sha256(initial.data)
    assert initial.deploy_options() == [
        "--initial-model-digest",
        "0x" + initial.digest.hex(),
        "--initial-model-cid",
        initial.cid,
        "--model-spec-hash",
        "0x" + spec.hash().hex(),
        "--model-spec-cid",
        initial.spec_cid,
    ]
    # The spec is pinned too, and reads back as itself, checked against its hash.
    assert fetch_spec(ipfs, initial.spec_cid, spec.hash()) == spec
    with pytest.raises(ModelSpecError, match="is not the task's modelSpecHash"):
        fetch_spec(ipfs, initial.spec_cid, bytes(32))
    with pytest.raises(ModelSpecError, match="records no model spec"):
        deployed_spec(ipfs, "", spec.hash())
    # What the dashboard (and every trainer) fetches back as version 0, checked against the chain.
    fetched = fetch_model(
        ipfs,
        initial.cid,
        initial.digest,
        spec,
        global_model_binding(chain_id=CHAIN_ID, task="", version=0, spec=spec),
    )
    assert all(np.array_equal(fetched[k], weights[k]) for k in weights)
