"""tools/export_abi.py: ABI files from ape's build, and `--check` catching stale ones."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def export_abi() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_abi", ROOT / "tools" / "export_abi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["export_abi"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def build_file(tmp_path: Path, export_abi: ModuleType) -> Path:
    contract_types = {
        name: {"abi": [{"type": "function", "name": "f", "inputs": [], "outputs": []}]}
        for name in export_abi.CONTRACTS
    }
    path = tmp_path / "__local__.json"
    path.write_text(json.dumps({"contractTypes": contract_types}))
    return path


def test_export_then_check(export_abi: ModuleType, build_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "abi"
    assert export_abi.main(["--build-file", str(build_file), "--out", str(out), "--check"]) == 1
    assert export_abi.main(["--build-file", str(build_file), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.json" for n in export_abi.CONTRACTS)
    text = (out / "FedToken.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert export_abi.main(["--build-file", str(build_file), "--out", str(out), "--check"]) == 0


def test_check__stale_file__fails_naming_it(
    export_abi: ModuleType, build_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "abi"
    export_abi.main(["--build-file", str(build_file), "--out", str(out)])
    (out / "FedGovernor.json").write_text("[]\n")
    assert export_abi.main(["--build-file", str(build_file), "--out", str(out), "--check"]) == 1
    assert "FedGovernor.json" in capsys.readouterr().err


def test_missing_build__clear_error(export_abi: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="ape compile"):
        export_abi.main(["--build-file", str(tmp_path / "none.json"), "--out", str(tmp_path)])
