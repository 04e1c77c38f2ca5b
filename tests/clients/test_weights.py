"""PyTorch models of every common dtype through the wire format, exactly."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch
from torch import nn

from fedledger.learning.model import build_model, get_weights, model_spec
from fedledger.learning.weights import load_arrays, state_dict_to_arrays
from fedledger.storage.codec import Binding, decode, encode
from fedledger.storage.schema import ModelSpec


class BatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(torch.flatten(torch.relu(self.bn(self.conv(x))), 1))
        return out


def trained(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A few training steps, so BatchNorm's statistics and `num_batches_tracked` move."""
    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(8, 1, 8, 8, dtype=dtype)).sum().backward()
        optimizer.step()
    return model


def binding_for(spec: ModelSpec) -> Binding:
    return Binding(kind="model", chain_id=1, task="0x" + "00" * 20, round=0, model_spec=spec.hash().hex())


def through_the_wire(model: nn.Module) -> dict[str, np.ndarray]:
    arrays = state_dict_to_arrays(model)
    spec = ModelSpec.from_arrays("net", arrays)
    return decode(encode(arrays, binding_for(spec), spec), spec, binding_for(spec))


def fresh(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(1)
    return BatchNormNet().to(dtype)


@pytest.mark.parametrize(
    ("dtype", "numpy_dtype", "wire"),
    [
        (torch.float32, np.float32, "F32"),
        (torch.float16, np.float16, "F16"),
        (torch.bfloat16, ml_dtypes.bfloat16, "BF16"),
    ],
)
def test_model__state_dict_through_encode_decode_and_back__exact(
    dtype: torch.dtype, numpy_dtype: type, wire: str
) -> None:
    torch.manual_seed(0)
    model = BatchNormNet().to(dtype)
    if dtype == torch.float32:
        trained(model)
    else:
        with torch.no_grad():  # half-precision weights of every magnitude, not just the initial ones
            for parameter in model.parameters():
                parameter.mul_(torch.rand_like(parameter) * 3)
        model.bn.num_batches_tracked += 5
    arrays = state_dict_to_arrays(model)
    spec = ModelSpec.from_arrays("net", arrays)
    assert spec.dtypes()["bn.num_batches_tracked"] == "I64"
    assert spec.dtypes()["fc.weight"] == wire
    assert arrays["fc.weight"].dtype == numpy_dtype

    decoded = through_the_wire(model)
    other = fresh(dtype)
    load_arrays(other, decoded)
    expected = state_dict_to_arrays(model)  # bfloat16 compared bit for bit, through numpy
    for name, values in state_dict_to_arrays(other).items():
        assert other.state_dict()[name].dtype == model.state_dict()[name].dtype, name
        assert values.dtype == expected[name].dtype and values.tobytes() == expected[name].tobytes(), name
    assert int(other.state_dict()["bn.num_batches_tracked"]) == int(model.bn.num_batches_tracked) > 0


def test_state_dict_to_arrays__copies_and_accepts_a_state_dict() -> None:
    model = trained(BatchNormNet())
    arrays = state_dict_to_arrays(model.state_dict())
    assert arrays["bn.num_batches_tracked"].dtype == np.int64
    assert int(arrays["bn.num_batches_tracked"]) == 3
    arrays["fc.bias"][0] += 1  # a copy: the model is untouched
    assert float(model.fc.bias.detach()[0]) != float(arrays["fc.bias"][0])


def test_state_dict_to_arrays__float64__refused_with_the_conversion() -> None:
    with pytest.raises(ValueError, match=r"tensor 'weight' has dtype float64.*convert it to F32"):
        state_dict_to_arrays(nn.Linear(2, 2).double())


def test_load_arrays__mismatches__all_listed_nothing_loaded() -> None:
    model = BatchNormNet()
    arrays = state_dict_to_arrays(model)
    before = state_dict_to_arrays(model)
    bad = dict(arrays)
    bad.pop("fc.bias")
    bad["extra"] = np.zeros(1, np.float32)
    bad["fc.weight"] = np.ones((3, 2), np.float32)
    bad["bn.num_batches_tracked"] = np.zeros((), np.float32)  # not cast silently
    bad["conv.weight"] = arrays["conv.weight"].astype(np.float16)
    with pytest.raises(ValueError) as info:
        load_arrays(model, bad)
    message = str(info.value)
    for part in (
        "missing ['fc.bias']",
        "unexpected ['extra']",
        "fc.weight: shape (3, 2)",
        "bn.num_batches_tracked: dtype float32",
        "conv.weight: dtype float16",
    ):
        assert part in message
    for name, values in state_dict_to_arrays(model).items():
        assert values.tobytes() == before[name].tobytes()


def test_mnist_cnn__still_all_float32() -> None:
    assert set(model_spec().dtypes().values()) == {"F32"}
    assert all(values.dtype == np.float32 for values in get_weights(build_model(seed=0)).values())
