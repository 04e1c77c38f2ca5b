"""The measured workloads: what `run_workload` sends, built for a `Federation`.

`transfers`: 1 wei from each sender to the next one (the raw Anvil baseline). `commits`:
`commitUpdate(0, seal)` from each trainer, once each, in the open round 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from eth_account.signers.local import LocalAccount

from chainload.federation import Federation
from chainload.harness import TRANSFER_GAS, Call, Workload
from fedledger.chain.rounds import seal_of


def transfer_workload(federation: Federation, senders: Sequence[LocalAccount]) -> Workload:
    """1 wei from each sender to the next one: the raw Anvil baseline."""
    calls = [
        Call(sender, senders[(i + 1) % len(senders)].address, value=1, gas=TRANSFER_GAS)
        for i, sender in enumerate(senders)
    ]
    return Workload("transfers", calls)


def commit_seal(trainer: str, index: int) -> bytes:
    digest = hashlib.sha256(b"update" + index.to_bytes(4, "big")).digest()
    salt = hashlib.sha256(b"salt" + trainer.encode()).digest()
    return seal_of(trainer, digest, 1_000 + index, salt)


def commit_workload(federation: Federation, trainers: Sequence[LocalAccount]) -> Workload:
    """`commitUpdate(0, seal)` from each trainer, with a distinct seal each."""
    task = federation.ledger.task
    calls = [
        Call(
            trainer,
            task.address,
            task.encode_abi("commitUpdate", args=[0, commit_seal(trainer.address, i)]),
            gas=federation.commit_gas,
        )
        for i, trainer in enumerate(trainers)
    ]
    return Workload("commits", calls, commits=len(calls))


WorkloadFactory = Callable[[Federation, Sequence[LocalAccount]], Workload]
# The measured workloads, by name.
WORKLOADS: dict[str, WorkloadFactory] = {"transfers": transfer_workload, "commits": commit_workload}
