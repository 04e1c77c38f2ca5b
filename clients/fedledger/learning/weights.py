"""PyTorch state dicts to and from named numpy arrays, every dtype kept exactly.

A state dict holds parameters and buffers: float32, float16 or bfloat16 weights, and integer
buffers such as BatchNorm's `num_batches_tracked` (int64). Nothing is cast: numpy has no
bfloat16, so bfloat16 tensors travel as `ml_dtypes.bfloat16` arrays (the same 16 bits, through
an int16 view). What the wire format carries is decided by `storage.schema`; a tensor of
another dtype (float64, say) is refused with the conversion to make.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_dtypes
import numpy as np
import torch
from torch import nn

from fedledger.arrays import Array
from fedledger.storage.schema import dtype_name, numpy_dtype


def state_dict_to_arrays(module_or_state_dict: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, Array]:
    """Each tensor of the module's state dict (or of `module_or_state_dict` itself) as a numpy
    array of the same dtype and values: copies, on the CPU.

    Raises
    ------
    ValueError
        If a tensor's dtype is not one the wire format carries (naming it and what to convert to).
    """
    state = (
        module_or_state_dict.state_dict()
        if isinstance(module_or_state_dict, nn.Module)
        else module_or_state_dict
    )
    arrays: dict[str, Array] = {}
    for name, tensor in state.items():
        dtype_name(_numpy_dtype_of(tensor.dtype), name)  # refuses what the wire does not carry
        values = tensor.detach().cpu().contiguous()
        if values.dtype == torch.bfloat16:
            arrays[name] = values.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
        else:
            arrays[name] = values.numpy().copy()
    return arrays


def load_arrays(module: nn.Module, arrays: Mapping[str, Array]) -> None:
    """Loads named arrays into `module`'s parameters and buffers.

    Strict: the names, shapes and dtypes must be exactly the module's state dict's; nothing is
    cast.

    Raises
    ------
    ValueError
        Listing every missing or unexpected name and every shape or dtype that differs.
    """
    state = module.state_dict()
    problems = []
    missing, extra = sorted(set(state) - set(arrays)), sorted(set(arrays) - set(state))
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"unexpected {extra}")
    for name in sorted(set(state) & set(arrays)):
        expected, values = state[name], np.asarray(arrays[name])
        if tuple(values.shape) != tuple(expected.shape):
            problems.append(f"{name}: shape {tuple(values.shape)}, the model's is {tuple(expected.shape)}")
        if values.dtype.newbyteorder("=") != _numpy_dtype_of(expected.dtype):
            problems.append(f"{name}: dtype {values.dtype}, the model's is {expected.dtype}")
    if problems:
        raise ValueError(f"arrays do not match the model: {'; '.join(problems)}")
    module.load_state_dict({name: _to_tensor(name, values) for name, values in arrays.items()}, strict=True)


def _to_tensor(name: str, values: Array) -> torch.Tensor:
    wire = numpy_dtype(dtype_name(values.dtype, name))
    copy = np.array(values, dtype=wire, order="C", copy=True)  # little-endian, writable, contiguous
    if wire == ml_dtypes.bfloat16:
        return torch.from_numpy(copy.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(copy)


def _numpy_dtype_of(dtype: torch.dtype) -> np.dtype[Any]:
    """The numpy dtype holding a torch dtype's values (bfloat16: `ml_dtypes.bfloat16`)."""
    if dtype == torch.bfloat16:
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(torch.empty((), dtype=dtype).numpy().dtype)
