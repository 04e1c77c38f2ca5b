"""Attack simulation for trainers: data poisoning, model poisoning, free riding and
protocol-level bad submissions, each a small seeded class hooked into the trainer loop
(`fedledger.trainer.trainer.Trainer(attack=...)`)."""

from fedledger.attacks.base import Attack, AttackContext, PeerUpdate, Submission
from fedledger.attacks.data_poisoning import LabelFlip
from fedledger.attacks.free_riding import CopyOther, ResubmitGlobal, Zeros
from fedledger.attacks.model_poisoning import GaussianNoise, Scaling, SignFlip
from fedledger.attacks.protocol import (
    DigestMismatch,
    Malformed,
    NonFiniteValues,
    Oversize,
    PicklePayload,
    Truncated,
    Unavailable,
    WrongBinding,
    WrongDtype,
    WrongShape,
)
from fedledger.attacks.registry import (
    ATTACK_NAMES,
    ATTACKS,
    EXPECTED_REASON,
    EXPECTED_ROUND_REASON,
    attack_from_name,
    attack_parameters,
)

__all__ = [
    "ATTACKS",
    "ATTACK_NAMES",
    "EXPECTED_REASON",
    "EXPECTED_ROUND_REASON",
    "Attack",
    "AttackContext",
    "CopyOther",
    "DigestMismatch",
    "GaussianNoise",
    "LabelFlip",
    "Malformed",
    "NonFiniteValues",
    "Oversize",
    "PeerUpdate",
    "PicklePayload",
    "ResubmitGlobal",
    "Scaling",
    "SignFlip",
    "Submission",
    "Truncated",
    "Unavailable",
    "WrongBinding",
    "WrongDtype",
    "WrongShape",
    "Zeros",
    "attack_from_name",
    "attack_parameters",
]
