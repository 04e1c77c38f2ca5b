"""Protocol overhead in the demo: everything but local training as a share of round wall time.

Runs `fedledger demo` (the README's main job, on its defaults unless told otherwise), reads its
JSON summary and writes bench/results/overhead.json. The demo measures each round's wall time
between the finalizations its watcher sees, and the slowest trainer's local training time from
the trainers' logs; the share is 1 - training / wall, and the figure is its median over rounds.

    python bench/overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "overhead.json"


def run_demo(rounds: int) -> dict[str, Any]:
    """Runs the demo in a fresh run directory and returns its JSON summary (the last line)."""
    with tempfile.TemporaryDirectory(prefix="fedledger-overhead-") as run_dir:
        command = [sys.executable, "-m", "fedledger", "--run-dir", run_dir, "demo", "--rounds", str(rounds)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"the demo failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    started = time.monotonic()
    summary = run_demo(args.rounds)
    result = {
        "benchmark": "overhead",
        "command": f"python bench/overhead.py --rounds {args.rounds}",
        "figures": {
            "protocol_overhead_share": summary.get("protocol_overhead_share"),
            "protocol_seconds_per_round": summary.get("protocol_seconds"),
            "demo_seconds": summary.get("seconds"),
            "demo_final_accuracy": summary.get("final_accuracy"),
        },
        "setup": {
            "rounds": summary.get("rounds"),
            "trainers": summary.get("trainers"),
            "aggregators": summary.get("aggregators"),
        },
        "notes": [
            "wall time of round r: between the watcher's first sight of finalizations r-1 and r "
            "(polled every 0.1 s); training: the slowest trainer's train_local time in round r",
        ],
        "seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["figures"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
