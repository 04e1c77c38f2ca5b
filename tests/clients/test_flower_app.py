"""Flower apps as fedledger apps: the quickstart example (Message API and legacy NumPyClient) run
through real flwr classes, and every way a Flower app can go wrong gives a one-line fedledger error."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from fedledger.app.api import Context, Weights
from fedledger.app.errors import AppError, AppLoadError, AppWeightsError
from fedledger.app.flower import FlowerApp, flower_app
from fedledger.storage.codec import Binding, decode, encode
from fedledger.storage.digests import to_hex
from fedledger.storage.schema import ModelSpec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flower-quickstart"
MODEL = "flwr_quickstart.task:Net"
MESSAGE_APP = "flwr_quickstart.client_app:app"
LEGACY_APP = "flwr_quickstart.legacy_client:app"
APPS = [MESSAGE_APP, LEGACY_APP, "flwr_quickstart.legacy_client:client_fn"]
CONFIG = {"lr": 0.1}  # what quickstart's ServerApp puts in its train config

BAD_APPS = """
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch import nn


class OtherNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)


raising = ClientApp()


@raising.train()
def train_raises(msg, context):
    raise ValueError("the data is on fire")


wrong_arrays = ClientApp()


@wrong_arrays.train()
def train_drops_a_layer(msg, context):
    arrays = msg.content["arrays"]
    kept = ArrayRecord({key: arrays[key] for key in list(arrays.keys())[1:]})
    metrics = MetricRecord({"num-examples": 10})
    return Message(RecordDict({"arrays": kept, "metrics": metrics}), reply_to=msg)


no_examples = ClientApp()


@no_examples.train()
def train_without_count(msg, context):
    content = RecordDict({"arrays": msg.content["arrays"], "metrics": MetricRecord({"loss": 1.0})})
    return Message(content, reply_to=msg)


not_an_app = 42
"""


@pytest.fixture(autouse=True)
def example_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The example package and a module of broken apps, importable without installing them."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    bad = tmp_path_factory.getbasetemp() / "bad_flower_apps"
    if not bad.exists():
        bad.mkdir()
        (bad / "bad_flower_apps.py").write_text(textwrap.dedent(BAD_APPS))
    monkeypatch.syspath_prepend(str(bad))


def trainer_context(seed: int = 1, **config: object) -> Context:
    return Context(config={**CONFIG, **config}, partition_id=0, num_partitions=2, seed=seed)  # type: ignore[dict-item]


def evaluator_context() -> Context:
    return Context(config=CONFIG, purpose="evaluate")


def partition_train_size(num_partitions: int = 2) -> int:
    """Samples in partition 0's 80% training split (quickstart's task.load_data)."""
    return int(0.8 * len(np.array_split(np.arange(1797), num_partitions)[0]))


def accuracy(app: FlowerApp, weights: Weights) -> float:
    return app.evaluate(weights, app.load_data(evaluator_context()), evaluator_context()).metrics["accuracy"]


@pytest.mark.parametrize("reference", APPS)
def test_initial_weights__same_seed__same_arrays_of_the_model(reference: str) -> None:
    app = flower_app(reference, MODEL)
    first = app.initial_weights(trainer_context(seed=7))
    again = app.initial_weights(trainer_context(seed=7))
    other = app.initial_weights(trainer_context(seed=8))
    from flwr_quickstart.task import Net

    assert list(first) == list(Net().state_dict())
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["fc1.weight"], other["fc1.weight"])
    assert {v.dtype for v in first.values()} == {np.dtype(np.float32)}


@pytest.mark.parametrize("reference", APPS)
def test_train__one_round__new_weights_of_the_same_names_shapes_dtypes(reference: str) -> None:
    app = flower_app(reference, MODEL)
    context = trainer_context()
    weights = app.initial_weights(context)
    result = app.train(weights, app.load_data(context), context.for_round(0, 11))

    assert list(result.weights) == list(weights)
    assert all(
        result.weights[k].shape == v.shape and result.weights[k].dtype == v.dtype for k, v in weights.items()
    )
    assert not np.array_equal(result.weights["conv1.weight"], weights["conv1.weight"])
    assert result.num_samples == partition_train_size()
    assert result.metrics["train_loss"] > 0


@pytest.mark.parametrize("reference", [MESSAGE_APP, LEGACY_APP])
def test_train__two_rounds__accuracy_improves(reference: str) -> None:
    app = flower_app(reference, MODEL)
    assert app.can_evaluate and app.metric == "accuracy"
    context = trainer_context()
    data = app.load_data(context)
    weights = app.initial_weights(context)
    accuracies = [accuracy(app, weights)]
    for round_ in range(2):
        weights = app.train(weights, data, context.for_round(round_, 100 + round_)).weights
        accuracies.append(accuracy(app, weights))

    assert accuracies[0] < accuracies[1] < accuracies[2]
    assert accuracies[2] > 0.5


def test_message_and_legacy_apps__same_seed__train_identically() -> None:
    context = trainer_context().for_round(3, 42)
    results = []
    for reference in (MESSAGE_APP, LEGACY_APP):
        app = flower_app(reference, MODEL)
        results.append(app.train(app.initial_weights(context), app.load_data(context), context))

    assert all(np.array_equal(results[0].weights[k], results[1].weights[k]) for k in results[0].weights)
    assert results[0].num_samples == results[1].num_samples


def test_evaluate__message_app__quickstart_metrics_under_fedledger_names() -> None:
    app = flower_app(MESSAGE_APP, MODEL)
    result = app.evaluate(
        app.initial_weights(evaluator_context()), app.load_data(evaluator_context()), evaluator_context()
    )

    assert result.metrics["accuracy"] == result.metrics["eval_acc"]
    assert result.metrics["loss"] == result.metrics["eval_loss"]
    assert result.num_samples == 1797 - int(0.8 * 1797)


def test_load_data__flower_context_from_fedledger_context() -> None:
    app = flower_app(MESSAGE_APP, MODEL, name="digits-cnn")
    simulated = app.load_data(Context(config={"lr": 0.5, "batch-size": 8}, partition_id=1, num_partitions=3))
    alone = app.load_data(Context())
    deployed = app.load_data(Context(data_path=Path("/data/digits.csv")))

    assert app.name == "digits-cnn"
    assert simulated.node_config == {"partition-id": 1, "num-partitions": 3}
    assert alone.node_config == {"partition-id": 0, "num-partitions": 1}
    assert deployed.node_config == {"data-path": "/data/digits.csv"}
    # pyproject.toml's [tool.flwr.app.config] defaults, overridden by --config
    assert simulated.run_config["batch-size"] == 8 and simulated.run_config["local-epochs"] == 1
    assert simulated.run_config["lr"] == 0.5 and alone.run_config["batch-size"] == 32


def test_train__data_path__node_reads_its_own_csv(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path / "digits.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*(f"pixel{i}" for i in range(64)), "label"])
        writer.writerows(
            [*map(int, image), int(label)]
            for image, label in zip(digits.data[:200], digits.target[:200], strict=True)
        )
    app = flower_app(MESSAGE_APP, MODEL)
    context = Context(config=CONFIG, data_path=path, seed=3)
    result = app.train(app.initial_weights(context), app.load_data(context), context.for_round(0, 3))

    assert result.num_samples == 160


def test_weights__encode_with_the_update_codec() -> None:
    app = flower_app(MESSAGE_APP, MODEL)
    context = trainer_context()
    result = app.train(app.initial_weights(context), app.load_data(context), context.for_round(0, 5))
    spec = ModelSpec.from_arrays(app.name, result.weights)
    binding = Binding(
        kind="update",
        chain_id=31337,
        task="0x" + "11" * 20,
        round=0,
        model_spec=to_hex(spec.hash()),
        trainer="0x" + "ab" * 20,
        num_samples=result.num_samples,
    )

    decoded = decode(encode(result.weights, binding, spec), spec, binding)

    assert all(np.array_equal(decoded[k], v) for k, v in result.weights.items())


@pytest.mark.parametrize(
    ("client_app", "model", "message"),
    [
        ("flwr_quickstart.no_such_module:app", MODEL, "no module named 'flwr_quickstart.no_such_module'"),
        ("flwr_quickstart.client_app:no_such_app", MODEL, "has no attribute 'no_such_app'"),
        (MESSAGE_APP, "flwr_quickstart.task:NoSuchNet", "has no attribute 'NoSuchNet'"),
        ("flwr_quickstart.client_app", MODEL, "must be of the form"),
        ("flwr_quickstart.server_app:app", MODEL, "is a Flower ServerApp"),
        ("bad_flower_apps:not_an_app", MODEL, "not a Flower ClientApp or client_fn"),
        ("flwr_quickstart.task:load_data", MODEL, "not a Flower client_fn"),
    ],
)
def test_flower_app__bad_reference__load_error(client_app: str, model: str, message: str) -> None:
    with pytest.raises(AppLoadError, match=message):
        flower_app(client_app, model)


def test_train__model_does_not_match_the_client_apps__weights_error() -> None:
    app = flower_app(MESSAGE_APP, "bad_flower_apps:OtherNet")
    context = trainer_context()

    with pytest.raises(AppWeightsError, match="does not match the model the ClientApp loads") as raised:
        app.train(app.initial_weights(context), app.load_data(context), context.for_round(0, 1))
    assert "\n" not in str(raised.value)


def test_train__reply_arrays_not_the_models__weights_error() -> None:
    app = flower_app("bad_flower_apps:wrong_arrays", MODEL)
    context = trainer_context()

    with pytest.raises(
        AppWeightsError, match=r"reply's arrays are not the model's: missing \['conv1.weight'\]"
    ):
        app.train(app.initial_weights(context), app.load_data(context), context.for_round(0, 1))


def test_train__weights_not_the_models__weights_error() -> None:
    app = flower_app(MESSAGE_APP, MODEL)
    context = trainer_context()
    weights = app.initial_weights(context)
    weights["extra"] = np.zeros(2, np.float32)

    with pytest.raises(AppWeightsError, match=r"unexpected \['extra'\]"):
        app.train(weights, app.load_data(context), context.for_round(0, 1))


def test_train__app_raises__app_error_with_its_message() -> None:
    app = flower_app("bad_flower_apps:raising", MODEL)
    context = trainer_context()

    with pytest.raises(AppError, match="raised ValueError in train: the data is on fire"):
        app.train(app.initial_weights(context), app.load_data(context), context.for_round(0, 1))


def test_train__reply_without_num_examples__app_error() -> None:
    app = flower_app("bad_flower_apps:no_examples", MODEL)
    context = trainer_context()

    with pytest.raises(AppError, match="no 'num-examples'"):
        app.train(app.initial_weights(context), app.load_data(context), context.for_round(0, 1))


@pytest.mark.parametrize("reference", [MESSAGE_APP, LEGACY_APP])
def test_train__train_config_missing__hint_names_the_config_option(reference: str) -> None:
    app = flower_app(reference, MODEL)
    context = Context(partition_id=0, num_partitions=2)

    with pytest.raises(AppError, match=r"KeyError.*--config lr=VALUE"):
        app.train(app.initial_weights(context), app.load_data(context), context.for_round(0, 1))


def test_train__leaves_the_callers_random_state_alone() -> None:
    app = flower_app(MESSAGE_APP, MODEL)
    context = trainer_context()
    torch.manual_seed(123)
    np.random.seed(123)
    app.train(app.initial_weights(context), app.load_data(context), context.for_round(0, 1))

    assert torch.equal(torch.rand(3), torch.rand(3, generator=torch.Generator().manual_seed(123)))
    assert np.random.rand() == np.random.RandomState(123).rand()
