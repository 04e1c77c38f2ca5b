"""The sample data `fedledger new` ships with every app: scikit-learn's bundled wine data.

178 wines, 13 chemical measurements, 3 cultivars (UCI Wine, via `sklearn.datasets.load_wine`,
no download), split 80/20 per class under a fixed seed and written as CSV files with a `label`
column. The files are stored in `templates/data/` so that `fedledger new` does not need
scikit-learn; `python -m fedledger.scaffold.sample_data` writes them again, and the tests check
that the stored files are what this module writes.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from fedledger.learning.partition import stratified_split

SEED = 0
TEST_FRACTION = 0.2
LABEL_COLUMN = "label"
NUM_FEATURES = 13
NUM_CLASSES = 3


def wine_csv_files(seed: int = SEED) -> dict[str, str]:
    """`{"train.csv": text, "test.csv": text}`: a seeded, stratified 80/20 split of the wine data."""
    from sklearn.datasets import load_wine

    bundle = load_wine()
    inputs, labels = np.asarray(bundle.data, dtype=np.float64), np.asarray(bundle.target, dtype=np.int64)
    # The training rows come shuffled, so every partition `i::N` of the file holds every class;
    # the test rows were stored shuffled too, and the stored files must not change.
    train, test = stratified_split(labels, TEST_FRACTION, seed, shuffle_test=True)
    splits = {"train.csv": train, "test.csv": test}
    header = [str(name) for name in bundle.feature_names] + [LABEL_COLUMN]
    files = {}
    for filename, rows in splits.items():
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([*(repr(float(value)) for value in inputs[row]), int(labels[row])])
        files[filename] = text.getvalue()
    return files


def main() -> None:
    directory = Path(__file__).resolve().parent / "templates" / "data"
    directory.mkdir(parents=True, exist_ok=True)
    for filename, text in wine_csv_files().items():
        (directory / filename).write_text(text)
        print(f"wrote {directory / filename}")


if __name__ == "__main__":
    main()
