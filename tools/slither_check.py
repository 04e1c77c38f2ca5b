#!/usr/bin/env python3
"""Runs Slither over the fedledger contracts and fails on untriaged High or Medium findings.

Slither compiles through crytic-compile's `solc-json` platform: this tool writes a solc
standard-JSON input from ape-config.yaml (compiler version, EVM version, optimizer, the
OpenZeppelin remapping resolved to node_modules) and hands it, with the project's own solc
wrapper ($SOLCX_BINARY_PATH/solc-v<version>, which only speaks --standard-json), to Slither.

Only findings that touch the project's contracts count (contracts/**/*.sol; test mocks live
under tests/); findings entirely inside OpenZeppelin are OpenZeppelin's. A High
or Medium finding fails the run unless tools/slither-triage.json accepts it: an entry names the
detector (`check`), the contract element the finding is about (`element`, e.g.
"FederatedTask._finalize") and a written `reason`. Low and informational findings are counted.

Usage:
    python tools/slither_check.py                 # analyze, list, exit 1 on untriaged High/Medium
    python tools/slither_check.py --json out.json # also keep Slither's raw JSON report
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
# ape's dependency cache: OpenZeppelin's copy when the project sits in a temporary directory.
DEPENDENCY_CACHE = CONTRACTS / ".cache"
TRIAGE_FILE = ROOT / "tools" / "slither-triage.json"
FAILING_IMPACTS = ("High", "Medium")
OUTPUT_SELECTION = ["abi", "metadata", "devdoc", "userdoc", "evm.bytecode", "evm.deployedBytecode"]


@dataclass(frozen=True)
class Finding:
    """One Slither result that touches the project's contracts."""

    check: str
    impact: str
    confidence: str
    element: str
    description: str


@dataclass(frozen=True)
class Accepted:
    """A triaged finding: the detector, the element it is about and why it is safe."""

    check: str
    element: str
    reason: str

    def matches(self, finding: Finding) -> bool:
        return (self.check, self.element) == (finding.check, finding.element)


def contract_sources() -> list[Path]:
    """The project's Solidity files."""
    return sorted(path for path in CONTRACTS.rglob("*.sol") if not path.is_relative_to(DEPENDENCY_CACHE))


def npm_remappings(config: dict[str, Any]) -> list[str]:
    """ape's import remappings with each npm dependency resolved to its node_modules folder."""
    folders: dict[str, Path] = {}
    for dependency in config.get("dependencies", []):
        if "npm" not in dependency:
            continue
        folder = ROOT / "node_modules" / dependency["npm"]
        installed = json.loads((folder / "package.json").read_text())["version"]
        if installed != str(dependency["version"]):
            raise SystemExit(
                f"slither_check: {folder} is {installed}, ape-config.yaml pins {dependency['version']}"
            )
        folders[f"{dependency['name']}/{dependency['version']}"] = folder
    remappings = []
    for remapping in config["solidity"].get("import_remapping", []):
        prefix, _, target = remapping.partition("=")
        if target not in folders:
            raise SystemExit(f"slither_check: no npm dependency for remapping {remapping!r}")
        remappings.append(f"{prefix.rstrip('/')}/={folders[target].relative_to(ROOT)}/")
    return remappings


def standard_json_input(config: dict[str, Any], sources: list[Path]) -> dict[str, Any]:
    """The solc standard-JSON input ape compiles with, for `sources`."""
    solidity = config["solidity"]
    return {
        "language": "Solidity",
        "sources": {str(path.relative_to(ROOT)): {"content": path.read_text()} for path in sources},
        "settings": {
            "evmVersion": solidity["evm_version"],
            "optimizer": {"enabled": bool(solidity["optimize"]), "runs": int(solidity["optimization_runs"])},
            "remappings": npm_remappings(config),
            "outputSelection": {"*": {"*": OUTPUT_SELECTION, "": ["ast"]}},
        },
    }


def solc_binary(version: str) -> Path:
    """The solc wrapper ape-solidity uses: $SOLCX_BINARY_PATH/solc-v<version>."""
    folder = Path(os.environ.get("SOLCX_BINARY_PATH", ROOT / ".solcx"))
    binary = folder / f"solc-v{version}"
    if not binary.exists():
        raise SystemExit(f"slither_check: {binary} is missing: run `make setup`")
    return binary


def run_slither(config: dict[str, Any], report: Path) -> dict[str, Any]:
    """Runs Slither on the standard-JSON input and returns its parsed JSON report."""
    with tempfile.TemporaryDirectory(prefix="slither-") as tmp:
        input_file = Path(tmp) / "input.json"
        input_file.write_text(json.dumps(standard_json_input(config, contract_sources())))
        command = [
            sys.executable,
            "-m",
            "slither",
            str(input_file),
            "--compile-force-framework",
            "solc-json",
            "--solc",
            str(solc_binary(str(config["solidity"]["version"]))),
            "--json",
            str(report),
            "--disable-color",
        ]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if not report.exists():
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"slither_check: slither wrote no report (exit {done.returncode})")
    output: dict[str, Any] = json.loads(report.read_text())
    if not output.get("success"):
        raise SystemExit(f"slither_check: slither failed: {output.get('error')}")
    return output


def _is_ours(element: dict[str, Any]) -> bool:
    filename = element.get("source_mapping", {}).get("filename_relative", "")
    return filename.startswith("contracts/") and not filename.startswith("contracts/.cache/")


def _element_name(element: dict[str, Any]) -> str:
    """Dotted path from the contract, e.g. `FederatedTask._finalize`; a statement (node) is named
    by the function it is in, so line numbers never enter the name."""
    if element["type"] == "node":
        element = element["type_specific_fields"]["parent"]
    name = str(element["name"])
    parent = element.get("type_specific_fields", {}).get("parent")
    return f"{_element_name(parent)}.{name}" if isinstance(parent, dict) and "name" in parent else name


def findings(output: dict[str, Any]) -> list[Finding]:
    """The results that have at least one element in the project's contracts."""
    found = []
    for result in output.get("results", {}).get("detectors", []):
        elements = result.get("elements", [])
        ours = [element for element in elements if _is_ours(element)]
        if not ours:
            continue
        found.append(
            Finding(
                check=result["check"],
                impact=result["impact"],
                confidence=result["confidence"],
                element=_element_name(ours[0]),
                description=result["description"].strip(),
            )
        )
    return found


def load_triage(path: Path) -> list[Accepted]:
    """The accepted findings; every one must carry a reason."""
    entries = json.loads(path.read_text())["accepted"]
    accepted = []
    for entry in entries:
        reason = " ".join(entry.get("reason", "").split())
        if not reason:
            raise SystemExit(f"slither_check: {path.name}: {entry.get('check')} has no reason")
        accepted.append(Accepted(check=entry["check"], element=entry["element"], reason=reason))
    return accepted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="keep Slither's raw JSON report here")
    parser.add_argument("--triage", type=Path, default=TRIAGE_FILE, help="accepted findings")
    args = parser.parse_args(argv)

    config = yaml.safe_load((ROOT / "ape-config.yaml").read_text())
    accepted = load_triage(args.triage)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="slither-report-") as tmp:
        report = args.json.resolve() if args.json else Path(tmp) / "report.json"
        report.unlink(missing_ok=True)
        results = findings(run_slither(config, report))
    elapsed = time.monotonic() - started

    blocking = [f for f in results if f.impact in FAILING_IMPACTS]
    untriaged = [f for f in blocking if not any(a.matches(f) for a in accepted)]
    unused = [a for a in accepted if not any(a.matches(f) for f in blocking)]
    counts = Counter(f.impact for f in results)
    summary = ", ".join(
        f"{counts[i]} {i}" for i in ("High", "Medium", "Low", "Informational", "Optimization")
    )
    print(f"slither: {len(contract_sources())} contract files, {elapsed:.1f} s: {summary}")
    print(f"slither: {len(blocking) - len(untriaged)} High/Medium accepted in {args.triage.name}")
    for entry in unused:
        print(f"slither: warning: accepted {entry.check} in {entry.element} no longer occurs")
    for finding in untriaged:
        print(f"\n[{finding.impact}/{finding.confidence}] {finding.check} in {finding.element}")
        print(finding.description)
    if untriaged:
        print(
            f"\nslither: {len(untriaged)} untriaged High/Medium finding(s): fix them, or accept them with a reason in {args.triage}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
