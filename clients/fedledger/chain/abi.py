"""The contract ABIs shipped with the package (chain/abi/<Contract>.json).

`tools/export_abi.py` writes them from ape's build; `make test` checks they are current.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from fedledger.chain.deployments import CONTRACT_NAMES

ABI = list[dict[str, Any]]


def load_abi(contract: str) -> ABI:
    """The ABI of `contract` (one of `CONTRACT_NAMES`)."""
    if contract not in CONTRACT_NAMES:
        raise KeyError(f"unknown contract {contract!r}; known: {', '.join(CONTRACT_NAMES)}")
    path = resources.files("fedledger.chain").joinpath("abi", f"{contract}.json")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"ABI file for {contract} is missing: run `make abi` (python tools/export_abi.py)"
        ) from None
    abi: ABI = json.loads(text)
    return abi


def load_abis() -> dict[str, ABI]:
    """Every fedledger contract's ABI, by contract name."""
    return {name: load_abi(name) for name in CONTRACT_NAMES}
