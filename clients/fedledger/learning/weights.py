"""Any torch module's state_dict as named numpy arrays, and back (placeholder: float32 only)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from fedledger.arrays import Array


def state_dict_to_arrays(source: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, Array]:
    state = source.state_dict() if isinstance(source, nn.Module) else source
    return {name: value.detach().cpu().numpy().copy() for name, value in state.items()}


def load_arrays(module: nn.Module, arrays: Mapping[str, Array]) -> None:
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, strict=True)
