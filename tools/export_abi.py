#!/usr/bin/env python3
"""Exports the contract ABIs from ape's build into clients/fedledger/chain/abi/.

The off-chain clients (web3.py, no ape at run time) load these files. They are committed, so
`--check` (run by `make test`) fails when they no longer match the compiled contracts.

Usage:
    python tools/export_abi.py            # write clients/fedledger/chain/abi/<Contract>.json
    python tools/export_abi.py --check    # exit 1 if a committed file differs from the build
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUILD_FILE = ROOT / ".build" / "__local__.json"
ABI_DIR = ROOT / "clients" / "fedledger" / "chain" / "abi"
CONTRACTS = ("FedToken", "FedTimelock", "StakingRegistry", "FederatedTask", "FedGovernor")


def render(abi: list[Any]) -> str:
    """The canonical text of an ABI file: sorted keys, two-space indent, trailing newline."""
    return json.dumps(abi, indent=2, sort_keys=True) + "\n"


def load_abis(build_file: Path) -> dict[str, str]:
    """Contract name to rendered ABI, read from ape's build manifest."""
    if not build_file.exists():
        raise SystemExit(f"export_abi: {build_file} is missing: run `ape compile` first")
    contract_types = json.loads(build_file.read_text()).get("contractTypes", {})
    missing = [name for name in CONTRACTS if name not in contract_types]
    if missing:
        raise SystemExit(f"export_abi: {build_file} has no {', '.join(missing)}: run `ape compile`")
    return {name: render(contract_types[name]["abi"]) for name in CONTRACTS}


def stale_files(abis: dict[str, str], abi_dir: Path) -> list[str]:
    """Names of the ABI files that are missing or differ from `abis`."""
    stale = []
    for name, text in abis.items():
        path = abi_dir / f"{name}.json"
        if not path.exists() or path.read_text() != text:
            stale.append(path.name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when files are stale")
    parser.add_argument("--build-file", type=Path, default=BUILD_FILE, help="ape build manifest")
    parser.add_argument("--out", type=Path, default=ABI_DIR, help="ABI directory")
    args = parser.parse_args(argv)

    abis = load_abis(args.build_file)
    stale = stale_files(abis, args.out)
    if args.check:
        if stale:
            print(
                f"export_abi: ABI files out of date with the build: {', '.join(stale)} in {args.out}.\n"
                "Run `make abi` (python tools/export_abi.py) and commit the result.",
                file=sys.stderr,
            )
            return 1
        print(f"export_abi: {len(abis)} ABI files match the build")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in abis.items():
        (args.out / f"{name}.json").write_text(text)
    print(f"export_abi: wrote {len(abis)} ABI files to {args.out} ({len(stale)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
