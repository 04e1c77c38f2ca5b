"""`tabular`: a small MLP classifier on a CSV file of one's own, with a label column.

Each operator points `--data` at its own CSV file: a header row, one column holding the class
(`--config label-column=NAME`, default `label`, integers 0..num-classes-1) and numeric features
in every other column. The model's shape comes from `--config num-features=N` and
`--config num-classes=K` (default 2); at deployment, `num-features` may instead be read from
the header of the file given with `--data`. Features are standardized per file (each operator
scales its own data; nothing about it leaves the machine) unless `--config standardize=false`.

`fedledger demo --app tabular` writes scikit-learn's bundled breast-cancer data (569 tumours,
30 features, 2 classes) out as one CSV file per trainer plus a held-out file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fedledger.app.api import Context, DemoData
from fedledger.app.errors import AppConfigError, AppDataError
from fedledger.app.torch_app import TorchApp
from fedledger.arrays import Array
from fedledger.learning.data import Dataset
from fedledger.learning.partition import stratified_split

DEFAULT_LABEL_COLUMN = "label"
TEST_FRACTION = 0.2


def read_csv(path: Path, label_column: str) -> tuple[list[str], Array, Array]:
    """Feature names, float32 features (N, F) and int64 labels (N,) of a CSV file."""
    if not path.is_file():
        raise AppDataError(
            f"data file {path} does not exist" if not path.exists() else f"{path} is not a file"
        )
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise AppDataError(f"{path} is empty: expected a header row naming the columns")
    header, body = [name.strip() for name in rows[0]], [row for row in rows[1:] if row]
    if label_column not in header:
        raise AppDataError(
            f"{path} has no label column {label_column!r} (columns: {', '.join(header)}); "
            "name it with --config label-column=NAME"
        )
    if not body:
        raise AppDataError(f"{path} has a header but no rows")
    label_index = header.index(label_column)
    features = [name for index, name in enumerate(header) if index != label_index]
    values = np.empty((len(body), len(header)), dtype=np.float64)
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise AppDataError(f"{path}, line {line}: {len(row)} values, the header has {len(header)}")
        for column, text in enumerate(row):
            try:
                values[line - 2, column] = float(text)
            except ValueError:
                raise AppDataError(
                    f"{path}, line {line}, column {header[column]!r}: {text!r} is not a number"
                ) from None
    labels = values[:, label_index]
    if not np.all(labels == np.round(labels)):
        raise AppDataError(f"{path}: label column {label_column!r} must hold integer classes")
    return features, np.delete(values, label_index, axis=1).astype(np.float32), labels.astype(np.int64)


def write_csv(path: Path, features: list[str], inputs: Array, labels: Array, label_column: str) -> None:
    """Writes features and labels as a CSV file with a header (labels last)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*features, label_column])
        for row, label in zip(inputs, labels, strict=True):
            writer.writerow([*(repr(float(value)) for value in row), int(label)])


class MLP(nn.Module):
    """One hidden ReLU layer."""

    def __init__(self, num_features: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(num_features, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.out(torch.relu(self.hidden(x)))
        return logits


class TabularApp(TorchApp):
    """An MLP over the numeric columns of a CSV file."""

    name = "tabular-mlp-v1"
    epochs = 5
    batch_size = 16
    learning_rate = 0.05

    def build_model(self, context: Context) -> nn.Module:
        return MLP(self._num_features(context), context.get_int("hidden", 32), self._num_classes(context))

    def load_data(self, context: Context) -> Dataset:
        if context.data_path is None:
            raise AppDataError("the tabular app reads a CSV file: give its path with --data")
        label_column = context.get_str("label-column", DEFAULT_LABEL_COLUMN)
        names, inputs, labels = read_csv(context.data_path, label_column)
        expected = context.config.get("num-features")
        if expected is not None and len(names) != expected:
            raise AppDataError(
                f"{context.data_path} has {len(names)} feature columns, the model takes num-features={expected}"
            )
        classes = self._num_classes(context)
        if labels.min() < 0 or labels.max() >= classes:
            raise AppDataError(
                f"{context.data_path}: labels must be in 0..{classes - 1} (num-classes={classes}), "
                f"found {labels.min()}..{labels.max()}"
            )
        if context.get_bool("standardize", True):
            scale = inputs.std(axis=0)
            inputs = (inputs - inputs.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
        data = Dataset(np.ascontiguousarray(inputs, dtype=np.float32), labels)
        if context.partition_id is not None and context.num_partitions is not None:
            data = data.subset(np.arange(context.partition_id, len(data), context.num_partitions))
        return data

    def demo_data(self, directory: Path, num_partitions: int, seed: int) -> DemoData:
        """scikit-learn's bundled breast-cancer data as `num_partitions` private CSV files, their
        union and a held-out file (a seeded, stratified split)."""
        from sklearn.datasets import load_breast_cancer

        bundle = load_breast_cancer()
        features = [str(name) for name in bundle.feature_names]
        inputs, labels = bundle.data.astype(np.float32), bundle.target.astype(np.int64)
        train_rows, test_rows = stratified_split(labels, TEST_FRACTION, seed)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, rows in enumerate(np.array_split(train_rows, num_partitions)):
            path = directory / f"trainer-{index}.csv"
            write_csv(path, features, inputs[rows], labels[rows], DEFAULT_LABEL_COLUMN)
            paths.append(path)
        union, held_out = directory / "union.csv", directory / "test.csv"
        write_csv(union, features, inputs[train_rows], labels[train_rows], DEFAULT_LABEL_COLUMN)
        write_csv(held_out, features, inputs[test_rows], labels[test_rows], DEFAULT_LABEL_COLUMN)
        return DemoData(trainer_paths=tuple(paths), union_path=union, test_path=held_out)

    def _num_features(self, context: Context) -> int:
        if "num-features" in context.config:
            return context.get_int("num-features", 0)
        if context.data_path is not None:
            label_column = context.get_str("label-column", DEFAULT_LABEL_COLUMN)
            return len(read_csv(context.data_path, label_column)[0])
        raise AppConfigError("the tabular app needs --config num-features=N (or --data FILE to read it from)")

    def _num_classes(self, context: Context) -> int:
        classes = context.get_int("num-classes", 2)
        if classes < 2:
            raise AppConfigError(f"--config num-classes={classes}: a classifier needs at least 2")
        return classes


app = TabularApp()
