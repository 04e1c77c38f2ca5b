"""Renders docs/GAS.md from bench/results/gas.json (written by `make gas`)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "gas.json"
DOC = ROOT / "docs" / "GAS.md"

CALLS = [
    ("register", "StakingRegistry.register (first stake, self-delegation, task sync)"),
    ("addStake", "StakingRegistry.addStake"),
    ("requestUnstake", "StakingRegistry.requestUnstake"),
    ("withdraw", "StakingRegistry.withdraw (after unbonding)"),
    ("start", "FederatedTask.start (opens round 0)"),
    ("commitUpdate", "FederatedTask.commitUpdate (the seal)"),
    ("revealUpdate", "FederatedTask.revealUpdate (digest, CID, samples)"),
    ("attest", "FederatedTask.attest (below quorum)"),
    ("attest_finalizing", "FederatedTask.attest (reaches quorum: finalizes, pays, opens next round)"),
    ("claimReward", "FederatedTask.claimReward"),
    ("withdrawFees", "FederatedTask.withdrawFees"),
    ("propose", "FedGovernor.propose"),
    ("castVote", "FedGovernor.castVote"),
    ("queue", "FedGovernor.queue"),
    ("execute", "FedGovernor.execute (timelock runs setParameter)"),
]


def main() -> None:
    gas = json.loads(RESULTS.read_text())
    rows = "\n".join(f"| `{key}` | {what} | {gas[key]:,} |" for key, what in CALLS if key in gas)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(
        f"""# Gas per user-facing call

Measured on Anvil 1.7.1 (hardfork cancun, solc 0.8.28 with the optimizer at 200 runs) by
`tests/contracts/test_gas.py`; regenerate with `make gas` (writes `bench/results/gas.json`
and this page). Figures are `gasUsed` of one transaction in a deployment with four trainers
and three aggregators; the test also fails if `commitUpdate` exceeds 60,000. Stake changes
(`register`, `addStake`, `requestUnstake`) write vote checkpoints for the account and the
total; each is measured in a second of its own, the usual case, where both checkpoints take a
new storage slot (in the same second as an earlier change they cost ~44,000 less).

| key | call | gas |
| --- | --- | ---: |
{rows}

`commitUpdate` target: at most 60,000. Floor: about 46,000 — the 21,000 base transaction,
~1,000 of calldata, one new storage slot (22,100) and the `UpdateCommitted` event (~1,800).
The rest is the round's first slot (read and update: ~5,000) and the trainer's eligibility
(one cold slot in the task, 2,100). The registry pushes every trainer status change into the
task (`syncTrainer`) so a commit needs no call into the registry (a cold call cost ~5,000
more). Every field a commit reads sits in the round state's first slot; the second slot is
written only by reveals.

Commit-reveal costs a second transaction per trainer and round: `revealUpdate` checks the
opening against the seal, overwrites the same commitment slot (no new slot) with
keccak256(digest, samples) and emits the CID. Before commit-reveal a single commit carrying
digest and CID cost 58,254; now commit + reveal cost the sum of the two rows above.

A finalizing attestation costs more because it settles the round: it records rejections and
slashes, credits the aggregators' fees, moves the global model and opens the next round.
"""
    )


if __name__ == "__main__":
    main()
