"""The dashboard in a real headless Chromium, on real chains.

1. `fedledger demo --dashboard` (3 trainers, 1 aggregator, 3 rounds, a rule switch voted
   mid-run): the page, loaded while the demo runs, shows the rounds as they finalize, plots the
   accuracy the dashboard evaluated itself (equal to the demo's own), the two proposals, the
   participants and the parameters the vote changed. About 80 s.
2. `fedledger dashboard` on a bare deployment: the page follows registration, a round that
   goes stale and a proposal whose description is HTML (shown as text); then the node dies, and the page keeps the last data and says it cannot read
   the chain.

Set FEDLEDGER_DASHBOARD_SCREENSHOT_OUT=path to keep the screenshot of test 1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from fedledger.chain import rpc
from fedledger.chain.accounts import devnet_accounts
from fedledger.chain.contracts import FedLedger
from fedledger.chain.governance import Governance
from fedledger.chain.params import TOKEN, RegistryParameter, Role
from fedledger.chain.proposals import ParameterChange
from fedledger.chain.rounds import Rounds
from fedledger.demo.run import DemoLog, register_all
from fedledger.devnet import PROFILES, running_devnet
from tests.e2e.browser import headless_chromium, script
from tests.e2e.federation import PROJECT, deploy_placeholder, wait_until

ROUNDS = 3
URL_LINE = re.compile(r"dashboard: (http://127\.0\.0\.1:\d+/)")
DEMO_ROW = re.compile(r"^\s+(\d+)\s+\w+\s+(\d+)\s+(\d+)\s+([0-9.]+)\s")


class OutputReader:
    """Collects a process's output lines in a thread, so the test can wait for one."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def find(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        for line in list(self.lines):
            if found := pattern.search(line):
                return found
        return None

    def alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            self._thread.join(timeout=5)
            raise AssertionError(f"process exited with {code}:\n" + "\n".join(self.lines[-40:]))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def fedledger_process(*args: str, cwd: Path) -> Iterator[OutputReader]:
    popen = subprocess.Popen(
        [sys.executable, "-m", "fedledger", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("FEDLEDGER_")},
    )
    try:
        yield OutputReader(popen)
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def page_state(browser: Any) -> dict[str, Any]:
    """What the page shows, read from its DOM and its Plotly charts."""
    return script(
        browser,
        """
        const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr`)];
        const chart = document.getElementById('accuracy-chart');
        const timeline = document.getElementById('timeline-chart');
        return {
          ready: document.body.dataset.ready,
          banner: document.getElementById('banner').hidden ? null : document.getElementById('banner').textContent,
          round: document.getElementById('round-number').textContent,
          phase: document.getElementById('round-phase').textContent,
          countdown: document.getElementById('round-countdown').textContent,
          rounds: rows('rounds-table').map((r) => ({round: r.dataset.round, cells: [...r.cells].map((c) => c.textContent)})),
          accuracy: chart.data ? chart.data.map((t) => ({name: t.name, x: t.x, y: t.y})) : [],
          accuracyPaths: [...chart.querySelectorAll('.scatterlayer .trace path.js-line')].map((p) => p.getAttribute('d')),
          timeline: timeline.data ? timeline.data.map((t) => ({name: t.name, x: t.x, y: t.y})) : [],
          bars: timeline.querySelectorAll('.barlayer .point').length,
          participants: rows('participants-table').map((r) => ({address: r.dataset.address, cells: [...r.cells].map((c) => c.textContent)})),
          proposals: rows('proposals-table').map((r) => ({state: r.dataset.state, text: r.textContent})),
          proposalsEmpty: !document.getElementById('proposals-empty').hidden,
          parameters: Object.fromEntries(
            [...document.querySelectorAll('[data-parameter]')].map((r) => [r.dataset.parameter, r.cells[1].textContent])),
          note: document.getElementById('accuracy-note').textContent,
        };
        """,
    )


def finalized(state: dict[str, Any]) -> list[str]:
    return [r["round"] for r in state["rounds"] if r["cells"][1] == "finalized"]


def test_dashboard__during_the_demo__shows_rounds_accuracy_proposals_and_parameters(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with (
        fedledger_process(
            "--run-dir",
            str(run_dir),
            "demo",
            "--trainers",
            "3",
            "--aggregators",
            "1",
            "--rounds",
            str(ROUNDS),
            "--epochs",
            "1",
            "--switch-rule",
            "median",
            "--switch-at",
            "0",
            "--dashboard",
            "--dashboard-hold",
            "600",
            cwd=PROJECT,
        ) as demo,
        headless_chromium(tmp_path / "profile") as browser,
    ):
        url = wait_until(
            lambda: demo.find(URL_LINE), timeout=120, what="the dashboard URL", check=demo.alive
        )[1]
        browser.get(url)
        assert browser.title == "fedledger dashboard"

        # While the demo runs: the page follows the rounds as they finalize.
        early = wait_until(
            lambda: (s := page_state(browser)) and len(finalized(s)) >= 1 and s,
            timeout=180,
            what="a finalized round on the page",
            check=demo.alive,
        )
        assert early["ready"] == "true" and early["banner"] is None
        assert "stays up" not in demo.text  # the demo is still running its rounds

        # After the last round (the demo holds the devnet up): everything is on the page.
        wait_until(
            lambda: "stays up" in demo.text, timeout=240, what="the demo's last round", check=demo.alive
        )
        state = wait_until(
            lambda: (
                (s := page_state(browser))
                and len(finalized(s)) == ROUNDS
                and len(s["accuracy"][0]["y"]) == ROUNDS
                and all(p["state"] == "Executed" for p in s["proposals"])
                and s
            ),
            timeout=60,
            what="every round evaluated and both proposals executed on the page",
        )

        # Round numbers: the rounds the demo ran, the current one after them.
        assert finalized(state) == [str(r) for r in reversed(range(ROUNDS))]
        assert int(state["round"]) == ROUNDS and state["phase"] in ("COMMIT", "REVEAL", "AGGREGATION")
        assert "ends in" in state["countdown"] or "ended" in state["countdown"]

        # The accuracy series is plotted, and it is the demo's own evaluation of the same models.
        demo_accuracy = {int(m[1]): float(m[4]) for line in demo.lines if (m := DEMO_ROW.match(line))}
        series = state["accuracy"][0]
        assert series["name"] == "global model" and series["x"] == list(range(ROUNDS))
        assert [round(y, 4) for y in series["y"]] == [demo_accuracy[r] for r in range(ROUNDS)]
        assert all(0.5 < y <= 1 for y in series["y"])
        assert state["accuracyPaths"] and all(path for path in state["accuracyPaths"])
        assert state["accuracy"][1]["name"] == "initial model" and state["accuracy"][1]["y"][0] < 0.5
        assert "checked against its on-chain digest" in state["note"]

        # The timeline: three trainers accepted in every finalized round, drawn as bars.
        accepted = next(t for t in state["timeline"] if t["name"] == "accepted")
        assert accepted["y"][:ROUNDS] == [3] * ROUNDS and state["bars"] >= ROUNDS

        # The proposals with their states and votes.
        texts = [p["text"] for p in state["proposals"]]
        assert any("Raise the trainers' reward per round by half" in t for t in texts)
        assert any("Switch aggregation to median" in t and "task.AGGREGATION_RULE=MEDIAN" in t for t in texts)
        assert all("FED" in t for t in texts)

        # Participants and the parameters the votes changed.
        roles = [p["cells"][1] for p in state["participants"]]
        assert roles == ["trainer"] * 3 + ["aggregator"]
        assert all(p["cells"][3] == "100 FED" for p in state["participants"][:3])
        assert state["parameters"]["REWARD_PER_ROUND"] == "150 FED"
        assert state["parameters"]["AGGREGATION_RULE"] == "MEDIAN"

        screenshot = tmp_path / "dashboard.png"
        browser.save_screenshot(str(screenshot))
        if target := os.environ.get("FEDLEDGER_DASHBOARD_SCREENSHOT_OUT"):
            shutil.copyfile(screenshot, target)

        # Ctrl-C ends the hold; the demo then stops the dashboard, Anvil and IPFS.
        demo.popen.send_signal(signal.SIGINT)
        assert demo.popen.wait(timeout=120) == 0
    summary = json.loads(demo.lines[-1])
    assert summary["ok"] and summary["rounds"] == ROUNDS and summary["dashboard_url"] == url
    assert summary["anvil_stopped"] and summary["ipfs_stopped"]
    try:
        requests.get(url, timeout=2)
        raise AssertionError(f"the dashboard still answers at {url} after the demo")
    except requests.ConnectionError:
        pass


def test_dashboard__stale_round_then_the_node_dies__page_keeps_the_last_data_and_says_so(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "devnet"
    with running_devnet(PROFILES["local"], run_dir=run_dir) as devnet:
        deployments = deploy_placeholder(devnet)
        with (
            fedledger_process(
                "--run-dir",
                str(run_dir),
                "dashboard",
                "--rpc-url",
                devnet.url,
                "--deployment",
                str(deployments / "31337.json"),
                "--no-accuracy",
                "--port",
                "0",
                "--refresh",
                "0.5",
                cwd=tmp_path,
            ) as dashboard,
            headless_chromium(tmp_path / "profile") as browser,
        ):
            url = wait_until(
                lambda: dashboard.find(re.compile(r"fedledger dashboard: (http://\S+)")),
                timeout=60,
                what="the dashboard URL",
                check=dashboard.alive,
            )[1]
            assert requests.get(url + "healthz", timeout=5).json() == {"ok": True}
            browser.get(url)
            state = wait_until(
                lambda: (s := page_state(browser))["ready"] == "true" and s, timeout=30, what="the page"
            )
            assert (state["round"], state["phase"]) == ("0", "INACTIVE")
            assert state["rounds"] == [] and state["participants"] == [] and state["proposalsEmpty"]
            assert state["parameters"]["COMMIT_WINDOW"] == "120s"
            assert state["note"] == "Accuracy is off (started with --no-accuracy)."
            assert state["banner"] is None

            # Participants register and round 0 opens, but nobody commits: it goes stale and
            # is closed, and round 1 opens.
            ledger = FedLedger.connect(devnet.url, deployments_dir=deployments)
            owner, *members = devnet_accounts(4)
            quiet = DemoLog(lambda _line: None)
            register_all(ledger, quiet, owner, members[:2], Role.TRAINER, 100 * TOKEN)
            register_all(ledger, quiet, owner, members[2:], Role.AGGREGATOR, 1_000 * TOKEN)
            ledger.start(owner)
            ledger.w3.provider.make_request("evm_increaseTime", [121])  # past the commit window
            rpc.mine(ledger.w3)
            Rounds(ledger).close_stale_round(owner)
            state = wait_until(
                lambda: (s := page_state(browser))["round"] == "1" and s,
                timeout=30,
                what="round 1 on the page",
            )
            assert [(r["round"], r["cells"][1]) for r in state["rounds"]] == [("1", "open"), ("0", "stale")]
            stale = next(t for t in state["timeline"] if t["name"] == "stale (commits)")
            assert stale["x"] == [0, 1] and stale["y"][0] > 0 and stale["y"][1] == 0
            assert [(p["cells"][1], p["cells"][3]) for p in state["participants"]] == [
                ("trainer", "100 FED"),
                ("trainer", "100 FED"),
                ("aggregator", "1,000 FED"),
            ]
            assert state["phase"] == "COMMIT" and "commit window ends in" in state["countdown"]

            # A proposal whose description is HTML: shown as text, never run.
            hostile = "<img src=x onerror=\"document.title='pwned'\"><b>Lower the stake</b>"
            change = ParameterChange("registry", RegistryParameter.MIN_TRAINER_STAKE, 50 * TOKEN)
            Governance(ledger).propose(members[0], [change], hostile)
            state = wait_until(
                lambda: (s := page_state(browser))["proposals"] and s, timeout=30, what="the proposal"
            )
            assert hostile in state["proposals"][0]["text"] and state["proposals"][0]["state"] == "Pending"
            assert (
                script(
                    browser,
                    "return document.querySelectorAll('#proposals-table img, #proposals-table b').length",
                )
                == 0
            )
            assert browser.title == "fedledger dashboard"

            devnet.stop()
            state = wait_until(
                lambda: (s := page_state(browser))["banner"] and s, timeout=30, what="the error banner"
            )
            assert (
                "Cannot read the chain" in state["banner"] and "Showing what was read at" in state["banner"]
            )
            assert state["parameters"]["COMMIT_WINDOW"] == "120s"  # the last data stays
            health = requests.get(url + "healthz", timeout=5)
            assert health.status_code == 503
            dashboard.alive()  # it keeps serving, and will read again when the node is back
