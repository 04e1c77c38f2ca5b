"""flwr_quickstart: A Flower / PyTorch app.

Flower's quickstart-pytorch task, with scikit-learn's bundled 8x8 digits (1,797 real
handwritten digits inside the wheel, no download) in place of CIFAR-10 from the Hugging Face
hub: the same `Net`, `load_data`, `train` and `test`, and batches of {"img", "label"} as
`flwr_datasets` yields them.
"""

import csv

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, Dataset


class Net(nn.Module):
    """Model (simple CNN adapted from 'PyTorch: A 60 Minute Blitz', for 8x8 grayscale digits)"""

    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 32 * 2 * 2)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


class DigitsDataset(Dataset):
    """8x8 digits as {"img": 1x8x8 tensor normalized to [-1, 1], "label": int}."""

    def __init__(self, images, labels):
        scaled = np.asarray(images, dtype=np.float32).reshape(-1, 1, 8, 8) / 16.0
        self.images = torch.from_numpy((scaled - 0.5) / 0.5)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"img": self.images[index], "label": self.labels[index]}


def _loaders(images, labels, batch_size):
    """Divide data on each node: 80% train, 20% test (seed 42, as Flower's quickstart)."""
    order = np.random.default_rng(42).permutation(len(labels))
    cut = int(0.8 * len(labels))
    train, test = order[:cut], order[cut:]
    trainloader = DataLoader(DigitsDataset(images[train], labels[train]), batch_size=batch_size, shuffle=True)
    testloader = DataLoader(DigitsDataset(images[test], labels[test]), batch_size=batch_size)
    return trainloader, testloader


def load_data(partition_id: int, num_partitions: int, batch_size: int):
    """Load partition `partition_id` of `num_partitions` IID partitions of the digits."""
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    partition = np.array_split(order, num_partitions)[partition_id]
    return _loaders(digits.data[partition], digits.target[partition], batch_size)


def load_centralized_dataset():
    """Load the test split of all digits and return its dataloader."""
    digits = load_digits()
    _, testloader = _loaders(digits.data, digits.target, 128)
    return testloader


def load_local_data(data_path: str, batch_size: int):
    """Load a node's own digits from a CSV file: 64 pixel columns (0-16) and a "label" column."""
    with open(data_path, newline="") as file:
        rows = list(csv.DictReader(file))
    labels = np.array([int(row.pop("label")) for row in rows])
    images = np.array([[float(value) for value in row.values()] for row in rows])
    return _loaders(images, labels, batch_size)


def train(net, trainloader, epochs, lr, device):
    """Train the model on the training set."""
    net.to(device)  # move model to GPU if available
    criterion = torch.nn.CrossEntropyLoss().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    net.train()
    running_loss = 0.0
    for _ in range(epochs):
        for batch in trainloader:
            images = batch["img"].to(device)
            labels = batch["label"].to(device)
            optimizer.zero_grad()
            loss = criterion(net(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    avg_trainloss = running_loss / (epochs * len(trainloader))
    return avg_trainloss


def test(net, testloader, device):
    """Validate the model on the test set."""
    net.to(device)
    criterion = torch.nn.CrossEntropyLoss()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for batch in testloader:
            images = batch["img"].to(device)
            labels = batch["label"].to(device)
            outputs = net(images)
            loss += criterion(outputs, labels).item()
            correct += (torch.max(outputs.data, 1)[1] == labels).sum().item()
    accuracy = correct / len(testloader.dataset)
    loss = loss / len(testloader)
    return loss, accuracy
