"""Held-out accuracy of every global model, evaluated by the dashboard itself and kept on disk.

Each model is fetched from IPFS by the CID on chain and checked against the on-chain digest
and binding before it is evaluated, so the plot shows what the chain finalized, not what some
aggregator claims. Evaluation runs in one background thread at low CPU priority; results are
cached by model digest (the digest fixes the bytes, hence the score) in a JSON file, so a
restarted dashboard does not evaluate anything twice.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fedledger.arrays import Array
from fedledger.priority import lower_thread_priority
from fedledger.storage.codec import InvalidUpdateError
from fedledger.storage.digests import to_hex
from fedledger.storage.ipfs import IpfsError
from fedledger.storage.models import ContentSource, ModelIntegrityError, fetch_model, global_model_binding
from fedledger.storage.schema import ModelSpec

Evaluator = Callable[[dict[str, Array]], float]
LOG = logging.getLogger("fedledger.dashboard.accuracy")
# IPFS may come back (a restarted daemon, a provider found later): try again after this long.
RETRY_SECONDS = 15.0


@dataclass(frozen=True)
class ModelRef:
    """A global model as the chain names it: its version (0: the initial model), digest and CID."""

    version: int
    digest: bytes
    cid: str


@dataclass(frozen=True)
class Score:
    """What the book knows of one model: its accuracy, or why there is none (yet)."""

    accuracy: float | None
    problem: str | None = None  # set when the model could not be evaluated


class AccuracyBook:
    """Accuracy per global model; `score` never blocks, it queues what it has not evaluated."""

    def __init__(
        self,
        ipfs: ContentSource,
        *,
        chain_id: int,
        task: str,
        spec: ModelSpec,
        load_evaluator: Callable[[], Evaluator],
        cache_file: Path | None,
    ) -> None:
        self.ipfs, self.chain_id, self.task, self.spec = ipfs, chain_id, task, spec
        self._load_evaluator = load_evaluator
        self.cache_file = cache_file
        self._scores: dict[str, float] = self._read_cache()
        self._problems: dict[str, tuple[str, float, bool]] = {}  # digest -> (why, when, final)
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self._work: queue.Queue[ModelRef | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="dashboard-accuracy", daemon=True)
        self._thread.start()

    def score(self, model: ModelRef) -> Score:
        """The model's score if known; otherwise queues it (again, once a retry is due)."""
        key = to_hex(model.digest)
        with self._lock:
            if key in self._scores:
                return Score(self._scores[key])
            problem = self._problems.get(key)
            retry_due = (
                problem is not None and not problem[2] and time.monotonic() - problem[1] > RETRY_SECONDS
            )
            if key not in self._queued and (problem is None or retry_due):
                self._queued.add(key)
                self._work.put(model)
            return Score(None, problem[0] if problem else None)

    @property
    def pending(self) -> int:
        """Models queued or being evaluated."""
        with self._lock:
            return len(self._queued)

    def close(self) -> None:
        self._work.put(None)
        self._thread.join(timeout=5)

    # ---------------------------------------------------------------- the worker

    def _run(self) -> None:
        lower_thread_priority()
        evaluate: Evaluator | None = None
        while (model := self._work.get()) is not None:
            key = to_hex(model.digest)
            if evaluate is None:
                try:
                    evaluate = self._load_evaluator()
                except Exception as exc:  # the thread must live on to report it for every model
                    self._fail(key, f"the evaluator did not load: {exc}", final=True)
                    continue
            try:
                accuracy = float(evaluate(self._fetch(model)))
            except IpfsError as exc:  # may be transient: retried later
                self._fail(key, f"not fetched from IPFS: {exc}", final=False)
            except (ModelIntegrityError, InvalidUpdateError) as exc:  # these bytes will never pass
                self._fail(key, f"does not match the chain: {exc}", final=True)
            else:
                with self._lock:
                    self._scores[key] = accuracy
                    self._problems.pop(key, None)
                    self._queued.discard(key)
                self._write_cache()
                LOG.info("model v%d %s: accuracy %.4f", model.version, key[:12], accuracy)

    def _fetch(self, model: ModelRef) -> dict[str, Array]:
        binding = global_model_binding(
            chain_id=self.chain_id, task=self.task, version=model.version, spec=self.spec
        )
        return fetch_model(self.ipfs, model.cid, model.digest, self.spec, binding)

    def _fail(self, key: str, why: str, *, final: bool) -> None:
        LOG.warning("model %s: %s", key[:12], why)
        with self._lock:
            self._problems[key] = (why, time.monotonic(), final)
            self._queued.discard(key)

    # ---------------------------------------------------------------- the disk cache

    def _read_cache(self) -> dict[str, float]:
        if self.cache_file is None or not self.cache_file.exists():
            return {}
        try:
            data = json.loads(self.cache_file.read_text())
            return {str(k): float(v) for k, v in data["accuracy"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            LOG.warning("ignoring unreadable accuracy cache %s: %s", self.cache_file, exc)
            return {}

    def _write_cache(self) -> None:
        if self.cache_file is None:
            return
        with self._lock:
            data = {"chain_id": self.chain_id, "task": self.task, "accuracy": dict(self._scores)}
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.cache_file)
