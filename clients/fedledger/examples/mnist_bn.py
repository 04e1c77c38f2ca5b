"""`mnist-bn`: a CNN with BatchNorm on the MNIST digits, so the model holds integer buffers.

BatchNorm keeps `running_mean`/`running_var` (float32) and `num_batches_tracked` (int64) beside
its parameters; all of them travel in the update files with their own dtypes, and the integer
counter is aggregated by the protocol's rule for integer tensors. Same data as `mnist-cnn`.
"""

from __future__ import annotations

import torch
from torch import nn

from fedledger.app.api import Context
from fedledger.app.torch_app import TorchApp
from fedledger.examples.mnist_cnn import mnist_data
from fedledger.learning.data import Dataset


class MnistBatchNormCNN(nn.Module):
    """Two convolutions, each followed by BatchNorm, then one dense layer (about 12k parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=5)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=5)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        logits: torch.Tensor = self.fc(torch.flatten(x, 1))
        return logits


class MnistBatchNormApp(TorchApp):
    name = "mnist-bn-v1"
    learning_rate = 0.02

    def build_model(self, context: Context) -> nn.Module:
        return MnistBatchNormCNN()

    def load_data(self, context: Context) -> Dataset:
        return mnist_data(context)


app = MnistBatchNormApp()
