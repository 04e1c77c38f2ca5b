"""Attack simulation: every protocol-level attack is rejected by the real verification path with
its expected reason; statistical attacks give valid files whose tensors differ as intended;
seeded attacks are reproducible; the trainer applies the hooks (and nothing else without one)."""

from __future__ import annotations

import pickletools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from eth_account import Account
from fakes import FakeIpfs

from fedledger.aggregator.verification import Commit, Verdict, update_binding, verify
from fedledger.arrays import Array
from fedledger.attacks import (
    ATTACK_NAMES,
    EXPECTED_REASON,
    Attack,
    AttackContext,
    CopyOther,
    GaussianNoise,
    LabelFlip,
    Malformed,
    NonFiniteValues,
    PicklePayload,
    ResubmitGlobal,
    Scaling,
    SignFlip,
    Submission,
    WrongBinding,
    Zeros,
    attack_from_name,
    attack_parameters,
)
from fedledger.chain.cid import cid_v1_raw
from fedledger.chain.params import AggregationRule, RejectionReason
from fedledger.chain.rounds import Opening, RoundConfig
from fedledger.learning.data import Dataset
from fedledger.learning.model import build_model, get_weights, model_spec, set_weights
from fedledger.learning.train import TrainConfig, train_local
from fedledger.storage.codec import MAX_ABS_VALUE, Binding, InvalidUpdateError, decode, encode
from fedledger.storage.digests import sha256
from fedledger.storage.schema import ModelSpec
from fedledger.trainer.trainer import Trainer
from tests.mnist_app import mnist_app

SPEC = model_spec()
CHAIN_ID = 31337
TASK = "0x" + "11" * 20
ROUND = 3
SAMPLES = 120
ACCOUNT = Account.from_key("0x" + "01" * 32)
TRAINER = str(ACCOUNT.address)
PEER = "0x" + "22" * 20

PROTOCOL_ATTACKS = [name for name in ATTACK_NAMES if EXPECTED_REASON[name] is not None]
STATISTICAL_ATTACKS = [name for name in ATTACK_NAMES if EXPECTED_REASON[name] is None]


def binding_of(trainer: str = TRAINER, round_: int = ROUND, samples: int = SAMPLES) -> Binding:
    draft = Commit(trainer=trainer, digest=b"", cid="", num_samples=samples)
    return update_binding(draft, chain_id=CHAIN_ID, task=TASK, round_number=round_, spec=SPEC)


@pytest.fixture(scope="module")
def global_weights() -> dict[str, Array]:
    return get_weights(build_model(seed=0))


@pytest.fixture(scope="module")
def trained(global_weights: dict[str, Array]) -> dict[str, Array]:
    rng = np.random.default_rng(7)
    return {
        name: (value + rng.normal(0.0, 0.01, value.shape)).astype(np.float32)
        for name, value in global_weights.items()
    }


def submit(
    attack: Attack,
    trained: dict[str, Array],
    global_weights: dict[str, Array],
    ipfs: FakeIpfs | None = None,
) -> tuple[Submission, Verdict]:
    """Runs the weight and submission hooks as the trainer does, then an aggregator's verification."""
    ipfs = ipfs or FakeIpfs()
    bound = attack.bind(AttackContext(trainer=TRAINER))
    binding = binding_of()
    data = encode(bound.poison_weights(trained, global_weights, ROUND), binding, SPEC)
    submission = bound.tamper_submission(data, binding, sha256(data))
    cid = submission.cid
    if submission.data is not None:
        cid = cid or ipfs.put(submission.data)
    assert cid is not None
    commit = Commit(trainer=TRAINER, digest=submission.digest, cid=cid, num_samples=SAMPLES)
    return submission, verify(commit, ipfs.fetch, SPEC, binding)


def tensors_of(submission: Submission) -> dict[str, Array]:
    assert submission.data is not None
    return decode(submission.data, SPEC, binding_of())


# ------------------------------------------------------------------ registry


def test_registry__every_name_builds_its_attack_and_has_an_expected_reason() -> None:
    assert set(EXPECTED_REASON) == set(ATTACK_NAMES)
    assert len(ATTACK_NAMES) == 17
    for name in ATTACK_NAMES:
        assert attack_from_name(name).name == name


def test_attack_from_name__converts_command_line_strings() -> None:
    assert attack_from_name("scaling", lam="5") == Scaling(lam=5.0)
    assert attack_from_name("noise", sigma="0.5", seed="3") == GaussianNoise(sigma=0.5, seed=3)
    flip = attack_from_name("label-flip", permutation="1,2,3,4,5,6,7,8,9,0")
    assert isinstance(flip, LabelFlip) and flip.permutation == (1, 2, 3, 4, 5, 6, 7, 8, 9, 0)
    assert attack_from_name("wrong-binding", target="trainer") == WrongBinding(target="trainer")
    assert set(attack_parameters("free-ride-copy")) == {"victim"}  # the source is the trainer's


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("no-such-attack", {}),
        ("scaling", {"lambda": 2}),
        ("scaling", {"lam": "much"}),
        ("sign-flip", {"lam": -1}),
        ("noise", {"sigma": -1}),
        ("label-flip", {"permutation": "0,0,1"}),
        ("nan", {"value": 1.0}),
        ("wrong-binding", {"target": "task"}),
        ("free-ride-copy", {"source": print}),
    ],
)
def test_attack_from_name__bad_names_and_parameters__value_error(name: str, params: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        attack_from_name(name, **params)


# ------------------------------------------------------------------ protocol-level attacks


DETAIL = {
    "nan": "NaN or infinity",
    "wrong-shape": "shape",
    "wrong-dtype": "dtype F64",
    "truncated": "safetensors refused",
    "wrong-binding": '"round":4',
}


@pytest.mark.parametrize("name", PROTOCOL_ATTACKS)
def test_protocol_attack__rejected_by_verification_with_its_reason(
    name: str, trained: dict[str, Array], global_weights: dict[str, Array], tmp_path: Path
) -> None:
    params = {"marker": str(tmp_path / "marker")} if name == "pickle" else {}
    submission, verdict = submit(attack_from_name(name, **params), trained, global_weights)
    assert verdict.reason == EXPECTED_REASON[name], verdict.detail
    assert verdict.tensors is None
    assert DETAIL.get(name, "") in verdict.detail
    if name not in ("digest-mismatch", "unavailable"):
        # The commitment matches the pinned bytes: the file itself is what fails.
        assert submission.data is not None and submission.digest == sha256(submission.data)


def test_digest_mismatch__pins_the_honest_file(
    trained: dict[str, Array], global_weights: dict[str, Array]
) -> None:
    submission, _ = submit(attack_from_name("digest-mismatch"), trained, global_weights)
    assert submission.data == encode(trained, binding_of(), SPEC)
    assert submission.digest != sha256(submission.data)


def test_unavailable__pins_nothing_and_commits_a_wellformed_cid(
    trained: dict[str, Array], global_weights: dict[str, Array]
) -> None:
    submission, _ = submit(attack_from_name("unavailable"), trained, global_weights)
    honest = encode(trained, binding_of(), SPEC)
    assert submission.data is None and submission.digest == sha256(honest)
    assert submission.cid is not None and submission.cid.startswith("bafkrei") and len(submission.cid) == 59
    assert submission.cid != cid_v1_raw(honest)


def test_nan__infinity_too__and_only_the_value_check_fails(
    trained: dict[str, Array], global_weights: dict[str, Array]
) -> None:
    submission, verdict = submit(NonFiniteValues(value=float("-inf")), trained, global_weights)
    assert verdict.reason == RejectionReason.NON_FINITE
    # Schema, binding and canonical layout pass: swapping the bad value back gives the honest file.
    assert submission.data is not None
    honest = encode(trained, binding_of(), SPEC)
    assert len(submission.data) == len(honest)
    assert sum(a != b for a, b in zip(submission.data, honest, strict=True)) <= 4


def test_wrong_binding__another_trainer(trained: dict[str, Array], global_weights: dict[str, Array]) -> None:
    _, verdict = submit(WrongBinding(target="trainer"), trained, global_weights)
    assert verdict.reason == RejectionReason.WRONG_BINDING
    submission, verdict = submit(WrongBinding(target="trainer", other_trainer=PEER), trained, global_weights)
    assert verdict.reason == RejectionReason.WRONG_BINDING
    assert submission.data is not None
    assert decode(submission.data, SPEC, binding_of(trainer=PEER)).keys() == trained.keys()


def test_pickle__rejected_without_ever_running_its_payload(
    trained: dict[str, Array], global_weights: dict[str, Array], tmp_path: Path
) -> None:
    marker = tmp_path / "pickle-ran"
    submission, verdict = submit(PicklePayload(marker=str(marker)), trained, global_weights)
    assert verdict.reason == RejectionReason.MALFORMED
    assert not marker.exists()
    # It really is a payload: disassembled (never loaded), it calls open(marker, "w") on load.
    assert submission.data is not None and submission.data[:2] == b"\x80\x04"
    arguments = [arg for _, arg, _ in pickletools.genops(submission.data)]
    assert "open" in arguments and str(marker) in arguments and "w" in arguments
    assert any(op.name == "REDUCE" for op, _, _ in pickletools.genops(submission.data))
    assert not marker.exists()


def test_malformed__seeded_per_trainer_and_round(trained: dict[str, Array]) -> None:
    data = encode(trained, binding_of(), SPEC)
    attack = Malformed(seed=1)
    first = attack.tamper_submission(data, binding_of(), sha256(data)).data
    assert first == attack.tamper_submission(data, binding_of(), sha256(data)).data
    assert first is not None and len(first) == len(data) and first != data
    for other in (binding_of(round_=ROUND + 1), binding_of(trainer=PEER)):
        assert attack.tamper_submission(data, other, sha256(data)).data != first
    assert Malformed(seed=2).tamper_submission(data, binding_of(), sha256(data)).data != first


# ------------------------------------------------------------------ statistical attacks


@pytest.mark.parametrize("name", STATISTICAL_ATTACKS)
def test_statistical_attack__valid_file_accepted(
    name: str, trained: dict[str, Array], global_weights: dict[str, Array]
) -> None:
    attack = attack_from_name(name)
    if isinstance(attack, CopyOther):
        attack = CopyOther(source=lambda round_, victim: global_weights)
    submission, verdict = submit(attack, trained, global_weights)
    assert verdict.accepted, verdict.detail
    assert submission.data is not None and submission.digest == sha256(submission.data)


def delta(a: dict[str, Array], b: dict[str, Array], name: str) -> Array:
    return np.asarray(a[name], np.float64) - np.asarray(b[name], np.float64)


def test_sign_flip__reverses_the_update(trained: dict[str, Array], global_weights: dict[str, Array]) -> None:
    for lam in (1.0, 2.5):
        result = tensors_of(submit(SignFlip(lam=lam), trained, global_weights)[0])
        for name in trained:
            np.testing.assert_allclose(
                delta(result, global_weights, name), -lam * delta(trained, global_weights, name), atol=1e-6
            )


def test_scaling__multiplies_the_update(trained: dict[str, Array], global_weights: dict[str, Array]) -> None:
    result = tensors_of(submit(Scaling(lam=3.0), trained, global_weights)[0])
    for name in trained:
        np.testing.assert_allclose(
            delta(result, global_weights, name), 3.0 * delta(trained, global_weights, name), atol=1e-6
        )


def test_scaling__huge_factor__clipped_to_the_codec_range(
    trained: dict[str, Array], global_weights: dict[str, Array]
) -> None:
    submission, verdict = submit(Scaling(lam=1e300), trained, global_weights)
    assert verdict.accepted
    peak = max(float(np.max(np.abs(v))) for v in tensors_of(submission).values())
    assert peak == MAX_ABS_VALUE


def test_noise__global_plus_gaussian_seeded_per_trainer_and_round(
    trained: dict[str, Array], global_weights: dict[str, Array]
) -> None:
    attack = GaussianNoise(sigma=0.5, seed=4).bind(AttackContext(trainer=TRAINER))
    result = attack.poison_weights(trained, global_weights, ROUND)
    noise = np.concatenate([delta(result, global_weights, name).ravel() for name in sorted(result)])
    assert abs(noise.std() - 0.5) < 0.01 and abs(noise.mean()) < 0.01
    again = GaussianNoise(sigma=0.5, seed=4).bind(AttackContext(trainer=TRAINER.lower()))
    assert all(
        np.array_equal(result[n], again.poison_weights(trained, global_weights, ROUND)[n]) for n in result
    )
    others = [
        attack.poison_weights(trained, global_weights, ROUND + 1),
        GaussianNoise(sigma=0.5, seed=4)
        .bind(AttackContext(trainer=PEER))
        .poison_weights(trained, global_weights, ROUND),
        GaussianNoise(sigma=0.5, seed=5)
        .bind(AttackContext(trainer=TRAINER))
        .poison_weights(trained, global_weights, ROUND),
    ]
    for other in others:
        assert not np.array_equal(other["fc1.weight"], result["fc1.weight"])


def test_free_riders__zeros_and_the_global_model(
    trained: dict[str, Array], global_weights: dict[str, Array]
) -> None:
    zeros = tensors_of(submit(Zeros(), trained, global_weights)[0])
    assert all(not v.any() for v in zeros.values())
    resubmitted = tensors_of(submit(ResubmitGlobal(), trained, global_weights)[0])
    assert all(np.array_equal(resubmitted[n], global_weights[n]) for n in global_weights)


def test_copy_other__copies_the_peer_tensors_under_its_own_binding(
    trained: dict[str, Array], global_weights: dict[str, Array]
) -> None:
    peer_tensors = {n: (v * 0.5).astype(np.float32) for n, v in trained.items()}
    asked: list[tuple[int, str | None]] = []

    def source(round_: int, victim: str | None) -> dict[str, Array]:
        asked.append((round_, victim))
        return peer_tensors

    submission, verdict = submit(CopyOther(victim=PEER, source=source), trained, global_weights)
    assert verdict.accepted and asked == [(ROUND, PEER)]
    assert all(np.array_equal(tensors_of(submission)[n], peer_tensors[n]) for n in peer_tensors)
    assert submission.data != encode(peer_tensors, binding_of(trainer=PEER), SPEC)
    # Nothing to copy: the global model; no source at all: a configuration error.
    fallback = tensors_of(submit(CopyOther(source=lambda r, v: None), trained, global_weights)[0])
    assert all(np.array_equal(fallback[n], global_weights[n]) for n in global_weights)
    with pytest.raises(RuntimeError):
        CopyOther().poison_weights(trained, global_weights, ROUND)


def test_label_flip__reversed_permuted_or_partial() -> None:
    rng = np.random.default_rng(0)
    data = Dataset(rng.random((1000, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 1000))
    flipped = LabelFlip().poison_data(data, ROUND)
    np.testing.assert_array_equal(flipped.labels, 9 - data.labels)
    assert flipped.images is data.images and flipped.labels.dtype == data.labels.dtype
    shifted = LabelFlip(permutation=(1, 2, 3, 4, 5, 6, 7, 8, 9, 0)).poison_data(data, ROUND)
    np.testing.assert_array_equal(shifted.labels, (data.labels + 1) % 10)
    half = LabelFlip(fraction=0.5).bind(AttackContext(trainer=TRAINER))
    partial = half.poison_data(data, ROUND)
    changed = partial.labels != data.labels
    assert 400 < changed.sum() < 600
    np.testing.assert_array_equal(partial.labels[changed], 9 - data.labels[changed])
    np.testing.assert_array_equal(half.poison_data(data, ROUND).labels, partial.labels)
    assert not np.array_equal(half.poison_data(data, ROUND + 1).labels, partial.labels)


# ------------------------------------------------------------------ the trainer's hooks


class FakeRounds:
    """The chain as the trainer sees it during one round's commit and reveal."""

    def __init__(self, peers: list[Commit] | None = None) -> None:
        self.seals: list[tuple[int, bytes]] = []
        self.committed: list[tuple[int, bytes, str, int]] = []  # what the reveals opened
        self.peers = peers or []

    def last_committed_round(self, trainer: str) -> int | None:
        return None

    def trainer_active_since(self, trainer: str) -> int:
        return 1

    def opened_state(self, round_: int) -> SimpleNamespace:
        return SimpleNamespace(opened_at=1)

    def revealed(self, round_: int) -> list[Commit]:
        return self.peers

    def config(self, round_: int) -> RoundConfig:  # no differential privacy
        return RoundConfig(0, 0, 0, 1, 6_667, 0, 0, 0, AggregationRule.FEDAVG, 0, 0, 0, 0)

    def commit_update(self, account: Any, round_: int, seal: bytes) -> Any:
        self.seals.append((round_, seal))
        return SimpleNamespace(gas_used=50_000)

    def reveal_update(self, account: Any, round_: int, opening: Opening) -> Any:
        # The contract's check: the opening must reproduce the trainer's committed seal.
        assert (round_, opening.seal) in self.seals and opening.trainer == TRAINER
        self.committed.append((round_, opening.digest, opening.cid, opening.num_samples))
        return SimpleNamespace(gas_used=40_000)


def commit_and_reveal(trainer: Trainer, round_: int = ROUND) -> bool:
    """The trainer's commit, then its reveal once the (fake) commit window has closed."""
    if not trainer.train_and_commit(round_):
        return False
    return trainer.reveal(round_)


DATA = Dataset(
    np.random.default_rng(1).random((24, 1, 28, 28), dtype=np.float32),
    np.random.default_rng(2).integers(0, 10, 24),
)
CONFIG = TrainConfig(epochs=1, batch_size=8, seed=5)


def make_trainer(
    global_weights: dict[str, Array], ipfs: FakeIpfs, rounds: FakeRounds, attack: Attack | None = None
) -> Trainer:
    ledger: Any = SimpleNamespace(
        chain_id=CHAIN_ID, task=SimpleNamespace(address=TASK), sender=SimpleNamespace(call=None)
    )
    trainer = Trainer(
        ledger=ledger,
        ipfs=ipfs,  # type: ignore[arg-type]
        account=ACCOUNT,
        data=DATA,
        spec=SPEC,
        **mnist_app(CONFIG),
        poll_interval=0.01,
        attack=attack,
    )
    trainer.rounds = rounds  # type: ignore[assignment]
    trainer._global_weights = lambda: global_weights  # type: ignore[method-assign]
    return trainer


def honest_bytes(global_weights: dict[str, Array]) -> bytes:
    """The update the trainer encoded before attacks existed, computed independently."""
    model = build_model()
    set_weights(model, global_weights)
    config = TrainConfig(epochs=1, batch_size=8, seed=CONFIG.seed * 1_000_003 + ROUND)
    result = train_local(model, DATA, config)
    return encode(get_weights(model), binding_of(samples=result.num_samples), SPEC)


def test_trainer__no_attack__pins_and_commits_exactly_the_honest_update(
    global_weights: dict[str, Array],
) -> None:
    ipfs, rounds = FakeIpfs(), FakeRounds()
    assert commit_and_reveal(make_trainer(global_weights, ipfs, rounds))
    expected = honest_bytes(global_weights)
    assert list(ipfs.files.values()) == [expected]
    assert rounds.committed == [(ROUND, sha256(expected), cid_v1_raw(expected), len(DATA))]


def test_trainer__commit__publishes_nothing_until_the_reveal(global_weights: dict[str, Array]) -> None:
    ipfs, rounds = FakeIpfs(), FakeRounds()
    trainer = make_trainer(global_weights, ipfs, rounds)

    assert trainer.train_and_commit(ROUND)

    # Only the seal is public during the commit window: no file, no digest, no CID.
    expected = honest_bytes(global_weights)
    assert ipfs.files == {} and rounds.committed == []
    [(round_, seal)] = rounds.seals
    assert round_ == ROUND and sha256(expected) not in seal
    assert trainer.reveal(ROUND)
    assert list(ipfs.files.values()) == [expected]
    # A second seal of the same file has another salt: the seal does not identify the update.
    again = make_trainer(global_weights, FakeIpfs(), FakeRounds())
    again.train_and_commit(ROUND)
    assert again.rounds.seals[0][1] != seal  # type: ignore[attr-defined]


class Recorder(Attack):
    """Records what each hook receives and changes nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def poison_data(self, data: Dataset, round_: int) -> Dataset:
        self.calls.append(("data", (data, round_)))
        return data

    def poison_weights(
        self, trained: dict[str, Array], global_weights: dict[str, Array], round_: int
    ) -> dict[str, Array]:
        self.calls.append(("weights", (trained, global_weights, round_)))
        return trained

    def tamper_submission(self, data: bytes, binding: Binding, digest: bytes) -> Submission:
        self.calls.append(("submission", (data, binding, digest)))
        return Submission(data=data, digest=digest)


def test_trainer__hooks_called_in_order_with_the_round_state(global_weights: dict[str, Array]) -> None:
    recorder = Recorder()
    ipfs, rounds = FakeIpfs(), FakeRounds()
    assert commit_and_reveal(make_trainer(global_weights, ipfs, rounds, recorder))
    assert [kind for kind, _ in recorder.calls] == ["data", "weights", "submission"]
    assert recorder.calls[0][1] == (DATA, ROUND)
    expected = honest_bytes(global_weights)
    trained, received_global, round_ = recorder.calls[1][1]
    assert round_ == ROUND and received_global is global_weights
    assert encode(trained, binding_of(samples=len(DATA)), SPEC) == expected
    assert recorder.calls[2][1] == (expected, binding_of(samples=len(DATA)), sha256(expected))
    assert rounds.committed == [(ROUND, sha256(expected), cid_v1_raw(expected), len(DATA))]


def test_trainer__submission_hook_decides_what_is_pinned_and_committed(
    global_weights: dict[str, Array],
) -> None:
    expected = honest_bytes(global_weights)
    ipfs, rounds = FakeIpfs(), FakeRounds()
    assert commit_and_reveal(make_trainer(global_weights, ipfs, rounds, attack_from_name("digest-mismatch")))
    assert list(ipfs.files.values()) == [expected]
    assert rounds.committed == [(ROUND, sha256(expected + b"tampered"), cid_v1_raw(expected), len(DATA))]

    ipfs, rounds = FakeIpfs(), FakeRounds()
    assert commit_and_reveal(make_trainer(global_weights, ipfs, rounds, attack_from_name("unavailable")))
    assert ipfs.files == {}
    [(_, digest, cid, _)] = rounds.committed
    assert digest == sha256(expected) and cid.startswith("bafkrei")


def test_trainer__label_flip_changes_what_it_learns(global_weights: dict[str, Array]) -> None:
    ipfs, rounds = FakeIpfs(), FakeRounds()
    assert commit_and_reveal(make_trainer(global_weights, ipfs, rounds, LabelFlip()))
    [poisoned] = ipfs.files.values()
    assert poisoned != honest_bytes(global_weights)
    assert decode(poisoned, SPEC, binding_of(samples=len(DATA)))  # still a valid file


def test_trainer__copy_other_fetches_a_verified_peer_update(global_weights: dict[str, Array]) -> None:
    ipfs = FakeIpfs()
    peer_tensors = {n: (v * 0.5).astype(np.float32) for n, v in global_weights.items()}
    peer_file = encode(peer_tensors, binding_of(trainer=PEER, samples=40), SPEC)
    # A peer whose file is broken comes first by address and is skipped.
    broken = "0x" + "00" * 19 + "01"
    peers = [
        Commit(trainer=PEER, digest=sha256(peer_file), cid=ipfs.put(peer_file), num_samples=40),
        Commit(trainer=broken, digest=sha256(b"junk"), cid=ipfs.put(b"junk"), num_samples=40),
        Commit(trainer=TRAINER, digest=b"\1" * 32, cid="mine", num_samples=len(DATA)),
    ]
    rounds = FakeRounds(peers)
    assert commit_and_reveal(make_trainer(global_weights, ipfs, rounds, CopyOther()))
    [(_, digest, cid, _)] = rounds.committed
    copied = decode(ipfs.files[cid], SPEC, binding_of(samples=len(DATA)))  # its own binding
    assert digest == sha256(ipfs.files[cid]) and digest != sha256(peer_file)
    assert all(np.array_equal(copied[n], peer_tensors[n]) for n in peer_tensors)

    # Only an invalid peer: it resubmits the global model.
    ipfs_alone = FakeIpfs()
    rounds = FakeRounds(
        [Commit(trainer=broken, digest=sha256(b"junk"), cid=ipfs_alone.put(b"junk"), num_samples=1)]
    )
    assert commit_and_reveal(make_trainer(global_weights, ipfs_alone, rounds, CopyOther()))
    [(_, _, cid, _)] = rounds.committed
    fallback = decode(ipfs_alone.files[cid], SPEC, binding_of(samples=len(DATA)))
    assert all(np.array_equal(fallback[n], global_weights[n]) for n in global_weights)


def test_trainer__copy_other_during_commit_window__finds_nothing_and_resubmits_global(
    global_weights: dict[str, Array],
) -> None:
    looks: list[int] = []

    class NothingRevealedYet(FakeRounds):
        def revealed(self, round_: int) -> list[Commit]:
            looks.append(round_)
            return []

    ipfs, rounds = FakeIpfs(), NothingRevealedYet()
    assert commit_and_reveal(make_trainer(global_weights, ipfs, rounds, CopyOther(victim=PEER)))

    # One look, no waiting out the commit window: the fallback is the global model.
    assert looks == [ROUND]
    [(_, _, cid, _)] = rounds.committed
    fallback = decode(ipfs.files[cid], SPEC, binding_of(samples=len(DATA)))
    assert all(np.array_equal(fallback[n], global_weights[n]) for n in global_weights)


def test_cli_attack_choices__same_as_the_registry() -> None:
    from fedledger.cli import ATTACK_CHOICES

    assert tuple(ATTACK_CHOICES) == tuple(ATTACK_NAMES)


# --- models with half-precision weights and integer buffers -------------------------------------


def mixed_model(seed: int) -> dict[str, Array]:
    rng = np.random.default_rng(seed)
    return {
        "bn.num_batches_tracked": np.array(40 + seed, np.int64),
        "fc.bias": rng.standard_normal(4).astype(np.float16),
        "fc.weight": rng.standard_normal((4, 3)).astype(ml_dtypes.bfloat16),
        "mask": np.array([True, False, True]),
    }


MIXED_SPEC = ModelSpec.from_arrays("mixed", mixed_model(0))


@pytest.mark.parametrize(
    "attack",
    [SignFlip(lam=3.0), Scaling(lam=1e6), GaussianNoise(sigma=0.5, seed=1), Zeros(), ResubmitGlobal()],
)
def test_statistical_attacks__mixed_dtypes__floats_poisoned_in_their_dtype_buffers_untouched(
    attack: Attack,
) -> None:
    trained, global_weights = mixed_model(1), mixed_model(2)
    poisoned = attack.bind(AttackContext(trainer="0x" + "ab" * 20)).poison_weights(trained, global_weights, 3)
    assert {n: v.dtype for n, v in poisoned.items()} == {n: v.dtype for n, v in trained.items()}
    binding = Binding(
        kind="update",
        chain_id=1,
        task="0x" + "11" * 20,
        round=3,
        model_spec=MIXED_SPEC.hash().hex(),
        trainer="0x" + "ab" * 20,
        num_samples=5,
    )
    decode(encode(poisoned, binding, MIXED_SPEC), MIXED_SPEC, binding)  # a valid file
    if isinstance(attack, SignFlip | Scaling | GaussianNoise):
        assert int(poisoned["bn.num_batches_tracked"]) == int(trained["bn.num_batches_tracked"])
        np.testing.assert_array_equal(poisoned["mask"], trained["mask"])
        assert poisoned["fc.bias"].tobytes() != trained["fc.bias"].tobytes()


def test_nan__mixed_dtypes__goes_into_the_first_float_tensor_in_its_dtype() -> None:
    trained = mixed_model(1)
    binding = Binding(
        kind="update",
        chain_id=1,
        task="0x" + "11" * 20,
        round=3,
        model_spec=MIXED_SPEC.hash().hex(),
        trainer="0x" + "ab" * 20,
        num_samples=5,
    )
    submission = NonFiniteValues().tamper_submission(encode(trained, binding, MIXED_SPEC), binding, b"")
    assert submission.data is not None
    with pytest.raises(InvalidUpdateError) as info:
        decode(submission.data, MIXED_SPEC, binding)
    assert info.value.reason == RejectionReason.NON_FINITE and "fc.bias" in info.value.detail
