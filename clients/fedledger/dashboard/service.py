"""`fedledger dashboard`: connect to a deployment, read it in the background, serve the page."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedledger.chain.contracts import FedLedger
from fedledger.chain.deployments import Deployment
from fedledger.chain.rpc import connect, display_url
from fedledger.dashboard.accuracy import AccuracyBook
from fedledger.dashboard.app import create_app
from fedledger.dashboard.refresher import Refresher
from fedledger.dashboard.server import DashboardError, loopback_socket, serve
from fedledger.dashboard.snapshot import FederationView

LOG = logging.getLogger("fedledger.dashboard")


@dataclass(frozen=True, kw_only=True)
class DashboardOptions:
    rpc_url: str
    deployment: Deployment
    ipfs_api: str | None  # None: no accuracy plot
    host: str = "127.0.0.1"
    port: int = 8050
    refresh_seconds: float = 2.0
    data_seed: int = 0
    app: str = "mnist-cnn"  # the app whose evaluate() scores each global model
    flower_app: str | None = None  # a Flower ClientApp to score with instead (with flower_model)
    flower_model: str | None = None
    app_config: dict[str, Any] = field(default_factory=dict)
    test_data: Path | None = None  # its held-out data (--data); None: what the app reads by default
    cache_dir: Path | None = None  # where evaluated accuracies are kept between runs

    @property
    def evaluator_name(self) -> str:
        """The app that scores, as named on the command line (also keys the accuracy cache)."""
        return self.flower_app if self.flower_app is not None else self.app


def run_dashboard(options: DashboardOptions, *, echo: Callable[[str], None] = print) -> None:
    """Serves the dashboard until SIGINT or SIGTERM. Fails before serving if the node does not
    answer, is another chain than the deployments file's, or has no contracts at its addresses."""
    deployment = options.deployment
    sock = loopback_socket(options.host, options.port)
    try:
        _check_deployment(options)
        accuracy = _accuracy_book(options)
    except BaseException:
        sock.close()
        raise

    def make_view() -> FederationView:
        # Built in the refresher's thread, with its own node session.
        ledger = FedLedger(connect(options.rpc_url), deployment, url=options.rpc_url)
        return FederationView(ledger, accuracy)

    about = {
        "node": display_url(options.rpc_url),
        "evaluator": f"{options.evaluator_name}'s evaluate() on its held-out data (seed {options.data_seed})"
        if accuracy
        else None,
    }
    refresher = Refresher(make_view, interval=options.refresh_seconds, about=about)
    refresher.refresh_once()  # the page has data from its first load
    refresher.start()
    try:
        serve(
            create_app(refresher),
            sock,
            on_ready=lambda url: echo(
                f"fedledger dashboard: {url} (chain {deployment.chain_id}, task "
                f"{deployment.address('FederatedTask')}, node {about['node']}); Ctrl-C stops it"
            ),
        )
    finally:
        refresher.stop()
        if accuracy is not None:
            accuracy.close()


def _check_deployment(options: DashboardOptions) -> None:
    """The node answers, is the deployments file's chain, and has the contracts."""
    deployment = options.deployment
    w3 = connect(options.rpc_url)
    if int(w3.eth.chain_id) != deployment.chain_id:
        raise DashboardError(
            f"the deployments file is for chain {deployment.chain_id}, but {display_url(options.rpc_url)} "
            f"is chain {w3.eth.chain_id}"
        )
    FedLedger(w3, deployment, url=options.rpc_url)  # raises if a contract has no code there


def _accuracy_book(options: DashboardOptions) -> AccuracyBook | None:
    if options.ipfs_api is None:
        return None
    from fedledger.app.api import Context as AppContext
    from fedledger.app.evaluation import app_evaluator
    from fedledger.app.loader import load_any_app
    from fedledger.storage.ipfs import IpfsClient
    from fedledger.storage.models import ModelSpecError, deployed_spec

    deployment = options.deployment
    task = deployment.address("FederatedTask")
    ipfs = IpfsClient(options.ipfs_api)
    try:
        ledger = FedLedger(connect(options.rpc_url), deployment, url=options.rpc_url)
        spec = deployed_spec(ipfs, ledger.model_spec_cid(), ledger.model_spec_hash())
    except ModelSpecError as exc:
        LOG.warning("no accuracy: %s", exc)
        return None
    app = load_any_app(options.app, options.flower_app, options.flower_model)
    if not app.can_evaluate:
        LOG.warning("no accuracy: app %s does not evaluate", app.name)
        return None
    context = AppContext(
        config={"data-seed": options.data_seed, **options.app_config}, data_path=options.test_data
    )
    cache = None
    if options.cache_dir is not None:
        cache = (
            options.cache_dir
            / f"accuracy-{deployment.chain_id}-{task.lower()}-{options.evaluator_name.replace(':', '.')}-seed{options.data_seed}.json"
        )
    return AccuracyBook(
        ipfs,
        chain_id=deployment.chain_id,
        task=task,
        spec=spec,
        load_evaluator=lambda: app_evaluator(app, context),
        cache_file=cache,
    )
