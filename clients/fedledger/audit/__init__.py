"""Read-only audits of a deployment: `fedledger verify` and `fedledger status`.

Both read only public data: contract views, events and IPFS. `verify_round` recomputes a
finalized round's global model exactly as an aggregator would and compares it with what the
chain recorded; `federation_status` summarizes the federation's state.
"""

from fedledger.audit.verify import (
    AuditError,
    ChainView,
    RoundNotFinalizedError,
    RoundReads,
    VerifyReport,
    verify_round,
)

__all__ = [
    "AuditError",
    "ChainView",
    "RoundNotFinalizedError",
    "RoundReads",
    "VerifyReport",
    "verify_round",
]
