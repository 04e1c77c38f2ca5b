"""The app interface: loading, configuration, the built-in apps' data and the clear errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedledger.app.api import App, Context, TrainResult, Weights
from fedledger.app.config import config_items, parse_config
from fedledger.app.errors import AppConfigError, AppDataError, AppError, AppLoadError, AppWeightsError
from fedledger.app.loader import BUILTIN_APPS, load_any_app, load_app
from fedledger.app.mods import TrainCall, app_step, attack_mod, chain, client_dp_mod, dp_sgd_step
from fedledger.app.spec import app_spec, check_app_matches
from fedledger.attacks import attack_from_name
from fedledger.examples.tabular import TabularApp, read_csv
from fedledger.learning.dp_sgd import DpSgdConfig, DpSgdLedger
from fedledger.learning.privacy import PrivacyRule


class Doubler(App[list[float]]):
    """A minimal app that is not a TorchApp: weights are doubled by 'training'."""

    name = "doubler"

    def initial_weights(self, context: Context) -> Weights:
        return {"w": np.full(3, 1.0 + context.seed, dtype=np.float32)}

    def load_data(self, context: Context) -> list[float]:
        return [1.0, 2.0]

    def train(self, weights: Weights, data: list[float], context: Context) -> TrainResult:
        return TrainResult(weights={"w": weights["w"] * 2}, num_samples=len(data))


doubler = Doubler()


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding a user's module `user_apps`."""
    (tmp_path / "user_apps.py").write_text(
        "from tests.clients.test_apps import Doubler\n"
        "app = Doubler()\n"
        "AppClass = Doubler\n"
        "not_an_app = 42\n"
        "def broken():\n    raise RuntimeError('no GPU here')\n"
    )
    (tmp_path / "raises_on_import.py").write_text("raise ImportError('missing optional thing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("user_apps", "raises_on_import"):
        sys.modules.pop(name, None)


def test_load_app__builtins_instances_classes_and_factories(module_dir: Path) -> None:
    assert {load_app(name).name for name in BUILTIN_APPS} == {"mnist-cnn-v1", "mnist-bn-v1", "tabular-mlp-v1"}
    assert load_app("user_apps:app").name == "doubler"
    assert type(load_app("user_apps:AppClass")).__name__ == "Doubler"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_package.module:app", "could not import module 'no_such_package.module'"),
        ("user_apps:missing", "module 'user_apps' has no attribute 'missing'"),
        ("user_apps:not_an_app", "is a int, not a fedledger App"),
        ("user_apps:broken", "could not be created: RuntimeError: no GPU here"),
        ("raises_on_import:app", "importing 'raises_on_import' failed"),
        ("unknown-app", "neither a built-in nor an installed entry point"),
        ("user_apps:", "must be of the form package.module:attribute"),
    ],
)
def test_load_app__bad_reference__says_what_did_not_resolve(
    module_dir: Path, reference: str, message: str
) -> None:
    with pytest.raises(AppLoadError, match=re.escape(message)):
        load_app(reference)


def test_load_any_app__flower_model_without_flower_app__refused() -> None:
    with pytest.raises(AppLoadError, match="goes with a Flower app"):
        load_any_app("mnist-cnn", None, "pkg.task:Net")
    with pytest.raises(AppLoadError, match="needs --flower-model"):
        load_any_app("mnist-cnn", "pkg.client_app:app", None)


def test_parse_config__types_like_toml_and_round_trips() -> None:
    config = parse_config(["epochs=3", "lr=0.01", "standardize=false", "label-column=target", 'code="007"'])
    assert config == {"epochs": 3, "lr": 0.01, "standardize": False, "label-column": "target", "code": "007"}
    assert parse_config(config_items(config)[1::2]) == config
    with pytest.raises(AppConfigError, match="is not KEY=VALUE"):
        parse_config(["epochs"])


def test_context__typed_getters__refuse_the_wrong_type() -> None:
    context = Context(config={"epochs": 3, "lr": 1, "fast": True, "name": "x"})
    assert (context.get_int("epochs", 1), context.get_float("lr", 0.1), context.get_bool("fast", False)) == (
        3,
        1.0,
        True,
    )
    assert context.get_int("missing", 7) == 7
    with pytest.raises(AppConfigError, match="expected int"):
        context.get_int("name", 1)
    with pytest.raises(AppConfigError, match="expected int"):
        context.get_int("fast", 1)  # a flag is not a number
    with pytest.raises(ValueError, match="outside"):
        Context(partition_id=3, num_partitions=3)


def test_torch_app__initial_weights_deterministic_training_reproducible(tmp_path: Path) -> None:
    app = TabularApp()
    data = app.demo_data(tmp_path, 2, seed=0)
    context = Context(data_path=data.trainer_paths[0], seed=5)
    first, second = app.initial_weights(context), app.initial_weights(context)
    assert all(np.array_equal(first[k], second[k]) for k in first)
    train = app.load_data(context)
    a = app.train(first, train, context.for_round(0, 11))
    b = app.train(first, train, context.for_round(0, 11))
    assert a.num_samples == len(train) and all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
    test = app.load_data(Context(data_path=data.test_path, purpose="evaluate"))
    before = app.evaluate(first, test, context).metrics["accuracy"]
    after = app.evaluate(a.weights, test, context).metrics["accuracy"]
    assert after > before and after > 0.85


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,target\n1,2,0\n", "has no label column 'label' \\(columns: a, b, target\\)"),
        ("a,label\n1,0\n2\n", "line 3: 1 values, the header has 2"),
        ("a,label\nx,0\n", "column 'a': 'x' is not a number"),
        ("a,label\n1,0.5\n", "must hold integer classes"),
        ("a,label\n", "has a header but no rows"),
        ("", "is empty"),
    ],
)
def test_tabular_csv__bad_files__clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AppDataError, match=message):
        read_csv(_csv(tmp_path / "data.csv", text), "label")


def test_tabular_load_data__missing_file_wrong_classes_and_shape(tmp_path: Path) -> None:
    app = TabularApp()
    with pytest.raises(AppDataError, match="does not exist"):
        app.load_data(Context(data_path=tmp_path / "nope.csv"))
    with pytest.raises(AppDataError, match=r"labels must be in 0\.\.1"):
        app.load_data(Context(data_path=_csv(tmp_path / "three.csv", "a,label\n1,0\n2,2\n")))
    with pytest.raises(AppDataError, match="num-features=3"):
        app.load_data(
            Context(data_path=_csv(tmp_path / "two.csv", "a,label\n1,0\n"), config={"num-features": 3})
        )
    path = _csv(tmp_path / "ok.csv", "a,b,label\n1,2,0\n3,4,1\n5,6,1\n")
    assert len(app.load_data(Context(data_path=path, partition_id=1, num_partitions=2))) == 1
    with pytest.raises(AppConfigError, match="needs --config num-features"):
        app.initial_weights(Context())


def test_check_app_matches__names_every_difference(tmp_path: Path) -> None:
    app = TabularApp()
    _, spec = app_spec(app, Context(config={"num-features": 30}))
    check_app_matches(app, Context(config={"num-features": 30}), spec)
    with pytest.raises(AppWeightsError, match=r"hidden.weight is .*\(32, 29\).*deployed .*\(32, 30\)"):
        check_app_matches(app, Context(config={"num-features": 29}), spec)
    with pytest.raises(AppWeightsError, match=r"missing hidden\.bias"):
        check_app_matches(doubler, Context(), spec)


def test_mods__client_dp_clips_and_noises_any_app() -> None:
    weights = doubler.initial_weights(Context())
    step = chain(app_step(doubler), [client_dp_mod(PrivacyRule(1.0, 0.5, 1e-5))])
    released = step(TrainCall(weights=weights, data=[1.0], context=Context())).weights["w"]
    assert not np.allclose(released, weights["w"] * 2)  # clipped and noised, not the raw update


def test_mods__data_poisoning_and_dp_sgd_need_labelled_arrays_or_torch_apps() -> None:
    call = TrainCall(weights=doubler.initial_weights(Context()), data=[1.0], context=Context())
    with pytest.raises(AppError, match="poisons labelled arrays"):
        chain(app_step(doubler), [attack_mod(attack_from_name("label-flip"), 0)])(call)
    scaled: Any = chain(app_step(doubler), [attack_mod(attack_from_name("scaling"), 0)])(call)
    assert not np.array_equal(scaled.weights["w"], call.weights["w"] * 2)
    with pytest.raises(AppError, match=r"DP-SGD needs an app built on fedledger\.app\.TorchApp"):
        dp_sgd_step(doubler, DpSgdConfig(1.0, 1.0), DpSgdLedger())


@pytest.mark.parametrize(
    ("flower", "expected"),
    [
        (False, ["--app", "tabular", "--data", "held-out.csv", "--config", "epochs=2"]),
        (True, ["--flower-app", "pkg.client:app", "--flower-model", "pkg.task:Net", "--config", "epochs=2"]),
    ],
    ids=["native", "flower"],
)
def test_demo_dashboard_options__score_with_the_demo_app(
    tmp_path: Path, flower: bool, expected: list[str]
) -> None:
    from fedledger.demo.federated import AppSetup, FederatedOptions

    app = load_app("tabular")
    setup = AppSetup(
        app=app,
        config={"epochs": 2},
        demo_data=None,
        trainer_data=[],
        initial={},
        spec=None,  # type: ignore[arg-type]  # not read here
        evaluator=lambda weights: 0.5,
        seed=0,
    )
    options = FederatedOptions(
        project=tmp_path,
        run_dir=tmp_path,
        app="tabular",
        test_data=None if flower else Path("held-out.csv"),
        flower_app="pkg.client:app" if flower else None,
        flower_model="pkg.task:Net" if flower else None,
    )
    assert setup.dashboard_options(options) == expected
    silent = AppSetup(**{**setup.__dict__, "evaluator": None})
    assert silent.dashboard_options(options) == ["--no-accuracy"]
