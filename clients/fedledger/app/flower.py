"""Flower apps as fedledger apps: a Flower `ClientApp` runs unchanged, called as Flower calls it.

    flower_app("flwr_quickstart.client_app:app", "flwr_quickstart.task:Net")

`client_app` names a `ClientApp` written with the Message API (`@app.train()`,
`@app.evaluate()`), a legacy one (`ClientApp(client_fn=...)`), or a bare legacy
`client_fn(context) -> Client` (wrapped in a `ClientApp` as Flower does); `model` names a callable
returning the app's `torch.nn.Module` (its `Net`) or an `ArrayRecord`: global model version 0,
drawn under `torch.manual_seed(context.seed)`.

Each fedledger call becomes one Flower message to the ClientApp, built from Flower's own classes
and handled the way a SuperNode runs a ClientApp (`client_app(message=..., context=...)`):

- weights: named arrays <-> the "arrays" `ArrayRecord`, same names (a state_dict's keys); a legacy
  client gets Flower's legacy `FitIns`/`EvaluateIns` records instead, its unnamed list of arrays
  ordered as the model's state_dict. Replies come back in the dtypes that went in.
- the "config" `ConfigRecord`: {"server-round": round + 1 (Flower counts from 1), **--config};
  whatever the app's ServerApp would put in its train config (e.g. "lr") comes from --config.
- the Flower `Context` (one per trainer, kept across rounds, so `context.state` persists):
  node_config "data-path" (`--data`), or "partition-id"/"num-partitions" in a simulation, or
  partition 0 of 1 (all of the data) otherwise; run_config the defaults of the app's
  `[tool.flwr.app.config]` (from the pyproject.toml beside its package, as `flwr run .` reads
  them) overridden by --config.
- the reply: "arrays", and "num-examples" of its `MetricRecord` (Flower's FedAvg weight) as
  `num_samples`; an evaluate reply's "eval_acc" (or "accuracy") is the headline "accuracy".

A ServerApp and its strategy do not run: aggregation is the federation's governed on-chain rule.
"""

from __future__ import annotations

import importlib
import random
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import torch
from torch import nn

from fedledger.app.api import App, Context, EvaluateResult, Scalar, TrainResult, Weights
from fedledger.app.errors import AppError, AppLoadError, AppWeightsError
from fedledger.app.loader import import_object
from fedledger.arrays import Array
from fedledger.chain.errors import FedledgerError
from fedledger.learning.weights import state_dict_to_arrays

try:
    from flwr.app import (
        DEFAULT_TTL,
        ArrayRecord,
        ConfigRecord,
        Message,
        MessageType,
        Metadata,
        RecordDict,
    )
    from flwr.app import Array as FlowerArray
    from flwr.app import Context as FlowerContext
    from flwr.clientapp import ClientApp
    from flwr.common import Code, EvaluateIns, FitIns, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.common.config import flatten_dict, get_project_config
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.compat.common.recorddict_compat import (
        evaluateins_to_recorddict,
        fitins_to_recorddict,
        recorddict_to_evaluateres,
        recorddict_to_fitres,
    )
    from flwr.serverapp import ServerApp
except ImportError:  # the `flower` extra is not installed: flower_app() says so
    ClientApp = None  # type: ignore[assignment,misc]

RUN_ID = 0  # a fedledger federation is one long run; its Flower run id is fixed
NODE_ID = 1000  # Flower node ids of trainers: NODE_ID + partition id (SUPERLINK_NODE_ID is 1)
ACCURACY_KEYS = ("accuracy", "eval_acc")  # Flower's quickstarts report "eval_acc"
LOSS_KEYS = ("loss", "eval_loss")


class FlowerApp(App["FlowerContext"]):
    """A Flower `ClientApp` (Message API or legacy client) behind fedledger's `App` interface.

    Build it with `flower_app(...)`. The data `load_data` returns is the Flower `Context` the
    ClientApp receives every round: a Flower app loads its own data inside train and evaluate.
    """

    def __init__(
        self,
        client_app: ClientApp,
        model: Callable[[], Any],
        *,
        name: str,
        run_config: Mapping[str, Scalar] | None = None,
    ) -> None:
        self.client_app = client_app
        self.model = model
        self.name = name
        self.run_config: dict[str, Scalar] = dict(run_config or {})
        # flwr 1.42 keeps what a ClientApp handles private: a legacy app has a `_call`, a
        # Message-API app a registry of "<category>.<action>" functions.
        self.legacy = getattr(client_app, "_call", None) is not None
        registered = getattr(client_app, "_registered_funcs", {})
        # A legacy client may or may not implement evaluate: that shows only when it is asked.
        self.metric = "accuracy" if self.legacy or f"{MessageType.EVALUATE}.default" in registered else None
        self._names: tuple[str, ...] | None = None

    # -- the App interface -------------------------------------------------------------------

    def initial_weights(self, context: Context) -> Weights:
        with _seeded(context.seed):
            return self._model_arrays()

    def load_data(self, context: Context) -> FlowerContext:
        """The Flower `Context` of this trainer (or evaluator): node_config and run_config."""
        node_config: dict[str, Scalar] = {}
        if context.partition_id is not None and context.num_partitions is not None:
            node_config.update(
                {"partition-id": context.partition_id, "num-partitions": context.num_partitions}
            )
        elif context.data_path is None:  # one node holding all of the data
            node_config.update({"partition-id": 0, "num-partitions": 1})
        if context.data_path is not None:
            node_config["data-path"] = str(context.data_path)
        return FlowerContext(
            run_id=RUN_ID,
            node_id=NODE_ID + (context.partition_id or 0),
            node_config=node_config,
            state=RecordDict(),
            run_config={**self.run_config, **context.config},
        )

    def train(self, weights: Weights, data: FlowerContext, context: Context) -> TrainResult:
        arrays = self._ordered(weights)
        config = self._config(context)
        if self.legacy:
            fit_ins = FitIns(parameters=ndarrays_to_parameters(list(arrays.values())), config=config)
            reply = self._ask(
                fitins_to_recorddict(fit_ins, keep_input=True), MessageType.TRAIN, data, context
            )
            fit_res = self._legacy_result(
                lambda content: recorddict_to_fitres(content, keep_input=False), reply, "fit"
            )
            new = self._unnamed(parameters_to_ndarrays(fit_res.parameters))
            return TrainResult(
                weights=self._matching(new, weights),
                num_samples=int(fit_res.num_examples),
                metrics=_scalars(fit_res.metrics),
            )
        content = RecordDict({"arrays": _array_record(arrays), "config": ConfigRecord(config)})
        reply = self._ask(content, MessageType.TRAIN, data, context)
        metrics = self._metrics(reply, "train")
        record = self._record(reply.array_records, "arrays", "train")
        new = {key: array.numpy() for key, array in record.items()}
        return TrainResult(
            weights=self._matching(new, weights),
            num_samples=self._num_examples(metrics, "train"),
            metrics={k: v for k, v in metrics.items() if k != "num-examples"},
        )

    def evaluate(self, weights: Weights, data: FlowerContext, context: Context) -> EvaluateResult:
        arrays = self._ordered(weights)
        config = self._config(context)
        if self.legacy:
            evaluate_ins = EvaluateIns(
                parameters=ndarrays_to_parameters(list(arrays.values())), config=config
            )
            content = evaluateins_to_recorddict(evaluate_ins, keep_input=True)
            reply = self._ask(content, MessageType.EVALUATE, data, context)
            evaluate_res = self._legacy_result(recorddict_to_evaluateres, reply, "evaluate")
            metrics = {"loss": float(evaluate_res.loss), **_scalars(evaluate_res.metrics)}
            num_samples = int(evaluate_res.num_examples)
        else:
            content = RecordDict({"arrays": _array_record(arrays), "config": ConfigRecord(config)})
            metrics = self._metrics(self._ask(content, MessageType.EVALUATE, data, context), "evaluate")
            num_samples = self._num_examples(metrics, "evaluate")
            metrics.pop("num-examples")
        return EvaluateResult(num_samples=num_samples, metrics=_headline(metrics, self.name))

    # -- calling the ClientApp ---------------------------------------------------------------

    def _ask(
        self, content: RecordDict, message_type: str, node: FlowerContext, context: Context
    ) -> RecordDict:
        """The content of the ClientApp's reply to one message, as a SuperNode delivers it."""
        server_round = 0 if context.round is None else context.round + 1
        # A SuperNode hands its ClientApp a message whose metadata the SuperLink set; flwr builds
        # such messages with the (internal) `metadata` argument.
        message = Message(  # type: ignore[call-overload]
            content,
            metadata=Metadata(
                run_id=node.run_id,
                message_id=uuid4().hex,  # the SuperLink sets it; replies refer to it
                src_node_id=SUPERLINK_NODE_ID,
                dst_node_id=node.node_id,
                reply_to_message_id="",
                group_id=str(server_round),
                created_at=time.time(),
                ttl=DEFAULT_TTL,
                message_type=message_type,
            ),
        )
        try:
            with _seeded(context.seed):
                reply = self.client_app(message=message, context=node)
        except FedledgerError:
            raise
        except Exception as exc:
            raise self._raised(exc, message_type, node) from exc
        if not isinstance(reply, Message):
            raise AppError(
                f"Flower app {self.name!r}: {message_type} returned a {type(reply).__name__}, not a Message"
            )
        if reply.has_error():
            raise AppError(
                f"Flower app {self.name!r}: {message_type} replied with error: {reply.error.reason}"
            )
        return reply.content

    def _raised(self, exc: Exception, message_type: str, node: FlowerContext) -> AppError:
        """The user's exception as a one-line fedledger error, with a hint where one helps."""
        text = f"Flower app {self.name!r} raised {type(exc).__name__} in {message_type}: {exc}"
        if isinstance(exc, RuntimeError) and "state_dict" in str(exc):
            return AppWeightsError(
                f"{text.splitlines()[0]} (the model of --flower-model does not match the model the ClientApp loads)"
            )
        if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
            key = exc.args[0]
            if key not in node.run_config and key not in node.node_config:
                text += f" (settings a Flower app reads from run_config or its train config come from --config {key}=VALUE)"
        return AppError(text)

    def _config(self, context: Context) -> dict[str, Any]:
        """The message's "config" record: the server round and the --config values."""
        config: dict[str, Any] = {} if context.round is None else {"server-round": context.round + 1}
        return {**config, **context.config}

    def _legacy_result(self, convert: Callable[[RecordDict], Any], reply: RecordDict, what: str) -> Any:
        """A legacy client's FitRes or EvaluateRes (an error unless its status is OK)."""
        try:
            result = convert(reply)
        except (KeyError, TypeError, ValueError) as exc:
            raise AppError(
                f"Flower app {self.name!r}: its {what} reply is not a legacy {what} result: {exc}"
            ) from None
        if result.status.code != Code.OK:
            raise AppError(
                f"Flower app {self.name!r}: {what} failed: {result.status.code.name} {result.status.message}"
            )
        return result

    def _metrics(self, reply: RecordDict, what: str) -> dict[str, float]:
        record = self._record(reply.metric_records, "metrics", what)
        return _scalars(dict(record))

    def _record(self, records: Mapping[str, Any], key: str, what: str) -> Any:
        if key in records:
            return records[key]
        if len(records) == 1:
            return next(iter(records.values()))
        raise AppError(
            f"Flower app {self.name!r}: its {what} reply has no {key!r} record (it has {sorted(records)})"
        )

    def _num_examples(self, metrics: Mapping[str, float], what: str) -> int:
        if "num-examples" not in metrics:
            raise AppError(
                f"Flower app {self.name!r}: its {what} reply's metrics have no 'num-examples' "
                f"(Flower's FedAvg weight); it reported {sorted(metrics)}"
            )
        return int(metrics["num-examples"])

    # -- weights -----------------------------------------------------------------------------

    def _model_arrays(self) -> Weights:
        try:
            model = self.model()
        except Exception as exc:
            raise AppError(f"Flower app {self.name!r}: its model raised {type(exc).__name__}: {exc}") from exc
        if isinstance(model, nn.Module):
            return state_dict_to_arrays(model)
        if isinstance(model, ArrayRecord):
            return {key: array.numpy() for key, array in model.items()}
        raise AppLoadError(
            f"Flower app {self.name!r}: its model is a {type(model).__name__}, not a torch.nn.Module or an ArrayRecord"
        )

    def _model_names(self) -> tuple[str, ...]:
        """The names of the model's arrays, in its state_dict's order (a legacy client's order)."""
        if self._names is None:
            with _seeded(0):
                self._names = tuple(self._model_arrays())
        return self._names

    def _ordered(self, weights: Weights) -> Weights:
        """`weights` in the model's order (a clear error if they are not the model's)."""
        names = self._model_names()
        if set(weights) != set(names):
            raise AppWeightsError(
                f"Flower app {self.name!r}: the weights do not fit its model: {_difference(names, weights)}"
            )
        return {name: weights[name] for name in names}

    def _unnamed(self, arrays: list[Array]) -> Weights:
        names = self._model_names()
        if len(arrays) != len(names):
            raise AppWeightsError(
                f"Flower app {self.name!r}: its client returned {len(arrays)} arrays, its model has {len(names)}"
            )
        return dict(zip(names, arrays, strict=True))

    def _matching(self, new: Mapping[str, Array], like: Weights) -> Weights:
        """`new` in the names, order and dtypes of `like`; an error if names or shapes differ."""
        if set(new) != set(like):
            raise AppWeightsError(
                f"Flower app {self.name!r}: its reply's arrays are not the model's: {_difference(tuple(like), new)}"
            )
        out: Weights = {}
        for name, reference in like.items():
            array = np.asarray(new[name])
            if array.shape != reference.shape:
                raise AppWeightsError(
                    f"Flower app {self.name!r}: its reply's {name!r} has shape {array.shape}, "
                    f"the model's is {reference.shape}"
                )
            out[name] = array.astype(reference.dtype, copy=True)
        return out


def flower_app(client_app: str, model: str, *, name: str | None = None) -> FlowerApp:
    """The Flower app `client_app` names, with initial weights from the model `model` names.

    Parameters
    ----------
    client_app : str
        Import string (`package.module:attr`) of a Flower `ClientApp`, or of a legacy
        `client_fn(context) -> Client`.
    model : str
        Import string of a callable returning the app's `torch.nn.Module` or an `ArrayRecord`.
    name : str, optional
        The model spec's name on chain (default: the app's top-level package).
    """
    if ClientApp is None:
        raise AppLoadError("Flower is not installed: pip install 'fedledger[flower]' (flwr)")
    target = import_object(client_app)
    if isinstance(target, ServerApp):
        raise AppLoadError(
            f"{client_app} is a Flower ServerApp: name the ClientApp (pyproject.toml's "
            "[tool.flwr.app.components] clientapp); aggregation is the federation's on-chain rule"
        )
    if not isinstance(target, ClientApp):
        if not callable(target):
            raise AppLoadError(
                f"{client_app} is a {type(target).__name__}, not a Flower ClientApp or client_fn"
            )
        try:
            target = ClientApp(client_fn=target)  # as Flower wraps a legacy client_fn
        except ValueError as exc:
            raise AppLoadError(f"{client_app} is not a Flower client_fn(context): {exc}") from None
    factory = import_object(model)
    if not callable(factory):
        raise AppLoadError(f"model {model} is a {type(factory).__name__}, not a callable returning the model")
    package = client_app.partition(":")[0].split(".")[0]
    return FlowerApp(target, factory, name=name or package, run_config=_project_run_config(package))


def _project_run_config(package: str) -> dict[str, Scalar]:
    """`[tool.flwr.app.config]` of the Flower project whose source tree holds `package`, flattened
    as Flower flattens it; empty when the package is installed without its pyproject.toml."""
    module = importlib.import_module(package)  # already imported with the ClientApp
    locations = getattr(module, "__path__", None) or [Path(str(getattr(module, "__file__", ""))).parent]
    for location in locations:
        project_dir = Path(location).resolve().parent
        pyproject = project_dir / "pyproject.toml"
        if not pyproject.is_file():
            continue
        with pyproject.open("rb") as file:
            if "flwr" not in tomllib.load(file).get("tool", {}):
                continue
        try:
            config = get_project_config(project_dir)
            return dict(flatten_dict(config["tool"]["flwr"]["app"].get("config", {})))
        except (ValueError, KeyError) as exc:
            raise AppLoadError(f"{pyproject} is not a valid Flower app configuration: {exc}") from None
    return {}


def _array_record(arrays: Weights) -> ArrayRecord:
    return ArrayRecord({name: FlowerArray(np.ascontiguousarray(array)) for name, array in arrays.items()})


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric scalars of a Flower metrics mapping (lists and strings are left out)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float | np.number) and not isinstance(value, bool)
    }


def _headline(metrics: dict[str, float], name: str) -> dict[str, float]:
    """`metrics` with "accuracy" and "loss" under fedledger's names (from "eval_acc", ...)."""
    out = dict(metrics)
    for target, keys in (("accuracy", ACCURACY_KEYS), ("loss", LOSS_KEYS)):
        found = next((key for key in keys if key in metrics), None)
        if found is not None:
            out[target] = metrics[found]
    if "accuracy" not in out:
        raise AppError(
            f"Flower app {name!r}: its evaluate reply has no accuracy (one of {', '.join(ACCURACY_KEYS)}); "
            f"it reported {sorted(metrics)}"
        )
    return out


def _difference(expected: tuple[str, ...], got: Mapping[str, Any]) -> str:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    return "; ".join(
        part
        for part in (f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else "")
        if part
    )


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """torch, numpy and random seeded with `seed` inside, their global states restored after."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)
