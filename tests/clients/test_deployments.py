"""The deployments file: one JSON per chain id, written atomically, read with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedledger.chain.deployments import (
    CONTRACT_NAMES,
    Deployment,
    DeploymentNotFoundError,
    deployment_path,
    load_deployment,
    read_deployment,
    write_deployment,
)

ADDRESSES = {name: f"0x{index:040x}" for index, name in enumerate(CONTRACT_NAMES, start=1)}


def make_deployment(**overrides: object) -> Deployment:
    fields: dict[str, object] = {
        "chain_id": 31337,
        "network": "ethereum:local:foundry",
        "deployer": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "block_number": 7,
        "addresses": dict(ADDRESSES),
        "parameters": {"voting_period": 20, "task": {"quorum_bps": 6667}},
    }
    fields.update(overrides)
    return Deployment(**fields)  # type: ignore[arg-type]


def test_write_then_load__round_trips(tmp_path: Path) -> None:
    deployment = make_deployment()
    path = write_deployment(deployment, tmp_path)
    assert path == tmp_path / "31337.json" == deployment_path(31337, tmp_path)
    assert load_deployment(31337, tmp_path) == deployment
    assert not list(tmp_path.glob("*.tmp"))


def test_write__is_stable_sorted_json(tmp_path: Path) -> None:
    path = write_deployment(make_deployment(), tmp_path)
    text = path.read_text()
    assert text.endswith("\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_write__creates_directory_and_overwrites(tmp_path: Path) -> None:
    directory = tmp_path / "nested" / "deployments"
    write_deployment(make_deployment(block_number=1), directory)
    write_deployment(make_deployment(block_number=2), directory)
    assert load_deployment(31337, directory).block_number == 2


def test_write__missing_contract__raises(tmp_path: Path) -> None:
    addresses = dict(ADDRESSES)
    del addresses["FedGovernor"]
    with pytest.raises(ValueError, match="missing FedGovernor"):
        write_deployment(make_deployment(addresses=addresses), tmp_path)


def test_load__no_file__raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(DeploymentNotFoundError, match="no fedledger deployment for chain 1328"):
        load_deployment(1328, tmp_path)


def test_read__not_a_deployment__raises_value_error(tmp_path: Path) -> None:
    path = tmp_path / "31337.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a fedledger deployments file"):
        read_deployment(path)
    path.write_text(json.dumps({"chain_id": 1}))
    with pytest.raises(ValueError, match="not a fedledger deployments file"):
        read_deployment(path)


def test_address__unknown_contract__names_chain() -> None:
    deployment = make_deployment()
    assert deployment.address("FedToken") == ADDRESSES["FedToken"]
    with pytest.raises(KeyError, match="chain 31337 has no Nope"):
        deployment.address("Nope")
