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
    ("commitUpdate", "FederatedTask.commitUpdate (the seal; every round after a trainer's first)"),
    ("commitUpdate_first", "FederatedTask.commitUpdate (a trainer's first round: creates its seal slot)"),
    ("revealUpdate", "FederatedTask.revealUpdate (digest, CID, samples; stores the round's commitment)"),
    ("commitBatch_per_update", "FederatedTask.commitBatch, 100 signed commitments by a relayer, per update"),
    ("revealBatch_per_update", "FederatedTask.revealBatch, 100 openings with Merkle proofs, per update"),
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
and three aggregators, plus a batch of 100 trainers for the batched path. Stake changes
(`register`, `addStake`, `requestUnstake`) write vote checkpoints for the account and the
total; each is measured in a second of its own, the usual case, where both checkpoints take a
new storage slot (in the same second as an earlier change they cost ~44,000 less).

| key | call | gas |
| --- | --- | ---: |
{rows}

`commitUpdate` target: at most 50,000 (the test fails above it). Floor: about 46,000 for a
commit that creates one storage slot. A commit here creates none after a trainer's first
round: it records the round in the trainer's own slot (read for eligibility anyway) and
overwrites the trainer's seal slot with keccak256(round, seal) — the round tag keeps an old
opening from ever fitting a later commit — and counts the commit in the round's first slot.
The per-round record, keccak256(digest, samples), which rejections and reward claims are
checked against, is written by the reveal, once the digest is known. The registry pushes
every trainer status change into the task (`syncTrainer`) so a commit needs no call into
the registry.

Batched path: a trainer signs an EIP-712 `Commitment(round, seal)`; a relayer submits many in
one `commitBatch`, which recovers each signer (ecrecover), records the round in its slot and
stores a single Merkle root for the batch; `revealBatch` proves each opening against the root.
Per update at a batch of 100 (`tests/contracts/test_gas.py`): see the two `Batch` rows.

A finalizing attestation costs more because it settles the round: it records rejections and
slashes, credits the aggregators' fees, moves the global model and opens the next round.
"""
    )


if __name__ == "__main__":
    main()
