"""`fedledger verify`/`status` logic with fakes: a dict-backed IPFS and stand-in chain reads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import FakeIpfs

from fedledger.aggregator.round_result import RoundContext, compute_round
from fedledger.aggregator.verification import Commit, update_binding
from fedledger.audit.status import (
    CurrentRound,
    ModelInfo,
    ParticipantSummary,
    RoundSummary,
    StatusReport,
    render_status,
    show_parameter,
    status_to_json,
)
from fedledger.audit.verify import (
    AuditError,
    ChainView,
    RoundNotFinalizedError,
    VerifyReport,
    initial_model_digest,
    render_verify,
    verify_round,
    verify_to_json,
)
from fedledger.chain.contracts import RoundState
from fedledger.chain.params import TOKEN, AggregationRule, Phase, RejectionReason, RoundStatus
from fedledger.chain.rounds import Finalization, RoundConfig, RoundResult
from fedledger.cli import cli
from fedledger.storage.codec import encode
from fedledger.storage.models import global_model_binding
from fedledger.storage.schema import ModelSpec, TensorSpec

SPEC = ModelSpec("tiny", (TensorSpec("w", (4,)),))
CHAIN_ID = 31337
TASK = "0x" + "11" * 20
INITIAL = hashlib.sha256(b"initial model").digest()
ROUND = 2
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeReads:
    """Stand-in for `Rounds`: what the chain would answer for one task."""

    current: int = ROUND + 1
    phases: dict[int, Phase] = field(default_factory=dict)
    commit_events: dict[int, list[Commit]] = field(default_factory=dict)
    results: dict[int, RoundResult] = field(default_factory=dict)
    finals: list[Finalization] = field(default_factory=list)
    rejected: dict[int, dict[str, RejectionReason]] = field(default_factory=dict)
    rule: AggregationRule = AggregationRule.FEDAVG
    sample_cap: int = 100

    def current_round(self) -> int:
        return self.current

    def phase(self, round_: int) -> Phase:
        return self.phases.get(round_, Phase.INACTIVE)

    def state(self, round_: int) -> RoundState:
        return RoundState(0, 0, 0, 0, 0, 0, RoundStatus.FINALIZED, 0, self.sample_cap, 0)

    def config(self, round_: int) -> RoundConfig:
        return RoundConfig(0, 0, 0, 1, 6_667, 0, 0, 0, self.rule, 0, 0, 0, 0)

    def result(self, round_: int) -> RoundResult:
        return self.results[round_]

    def revealed(self, round_: int) -> list[Commit]:
        return list(self.commit_events.get(round_, []))

    def finalizations(self) -> list[Finalization]:
        return list(self.finals)

    def rejections(self, round_: int) -> dict[str, RejectionReason]:
        return dict(self.rejected.get(round_, {}))


def trainer(i: int) -> str:
    return "0x" + f"{i:040x}"


def honest_commit(ipfs: FakeIpfs, i: int, value: float, samples: int = 10, round_: int = ROUND) -> Commit:
    draft = Commit(trainer=trainer(i), digest=b"", cid="", num_samples=samples)
    binding = update_binding(draft, chain_id=CHAIN_ID, task=TASK, round_number=round_, spec=SPEC)
    data = encode({"w": np.full(4, value, np.float32)}, binding, SPEC)
    return replace(draft, digest=hashlib.sha256(data).digest(), cid=ipfs.put(data))


def finalization(round_: int, digest: bytes) -> Finalization:
    return Finalization(round_, digest, f"cid-r{round_}", 1, 0, 0, 100 + round_, "0x")


def model_finalization(ipfs: FakeIpfs, round_: int) -> Finalization:
    """Round `round_` finalized with a real model file (version round_ + 1) on the fake IPFS."""
    binding = global_model_binding(chain_id=CHAIN_ID, task=TASK, version=round_ + 1, spec=SPEC)
    data = encode({"w": np.full(4, 0.01 * (round_ + 1), np.float32)}, binding, SPEC)
    return Finalization(round_, hashlib.sha256(data).digest(), ipfs.put(data), 1, 0, 0, 100 + round_, "0x")


def honest_round(ipfs: FakeIpfs, commits: list[Commit], *, earlier: int = 1) -> FakeReads:
    """A chain whose round ROUND was finalized honestly after `earlier` finalized rounds."""
    finals = [model_finalization(ipfs, r) for r in range(earlier)]
    context = RoundContext(
        chain_id=CHAIN_ID,
        task=TASK,
        round_number=ROUND,
        model_version=earlier + 1,
        sample_cap=100,
        rule=AggregationRule.FEDAVG,
        rule_param=0,
    )
    outcome = compute_round(commits, ipfs.cat, SPEC, context)
    if outcome.model_bytes is not None:
        digest, cid = hashlib.sha256(outcome.model_bytes).digest(), ipfs.put(outcome.model_bytes)
    else:
        digest, cid = (finals[-1].model_digest if finals else INITIAL), "cid-previous"
    rejected = {v.commit.trainer: v.reason for v in outcome.rejected}
    return FakeReads(
        phases={r: Phase.FINALIZED for r in range(ROUND + 1)},
        commit_events={ROUND: commits},
        results={ROUND: RoundResult(b"k" * 32, digest, 100 * TOKEN, 20, len(rejected), cid)},
        finals=[*finals, finalization(ROUND, digest)],
        rejected={ROUND: rejected},
    )


def view(reads: FakeReads) -> ChainView:
    return ChainView(
        chain_id=CHAIN_ID, task=TASK, reads=reads, initial_model_digest=INITIAL, model_spec_hash=SPEC.hash()
    )


# ---------------------------------------------------------------- verify


def test_verify__honest_round__matches() -> None:
    ipfs = FakeIpfs()
    garbage = b"not safetensors"
    bad = Commit(
        trainer=trainer(3), digest=hashlib.sha256(garbage).digest(), cid=ipfs.put(garbage), num_samples=5
    )
    commits = [honest_commit(ipfs, 1, 1.0), honest_commit(ipfs, 2, 3.0), bad]
    reads = honest_round(ipfs, commits)

    report = verify_round(view(reads), ipfs, ROUND, SPEC, workers=2)

    assert report.matches and report.digest_match and report.cid_bytes_match and report.rejections_match
    assert report.problems == []
    assert report.recomputed_digest == report.onchain_digest == "0x" + reads.results[ROUND].model_digest.hex()
    assert report.accepted == [trainer(1), trainer(2)]
    assert report.rejected == {trainer(3): "MALFORMED"} == report.onchain_rejected
    assert report.model_version == 2 and report.rule == "FEDAVG"
    assert json.loads(json.dumps(verify_to_json(report)))["matches"] is True
    assert "MATCHES the chain" in render_verify(report)


def test_verify__model_version_counts_only_earlier_finalizations() -> None:
    """With no earlier finalization (rounds 0 and 1 stale), round 2 produces version 1."""
    ipfs = FakeIpfs()
    reads = honest_round(ipfs, [honest_commit(ipfs, 1, 1.0), honest_commit(ipfs, 2, 2.0)], earlier=0)
    report = verify_round(view(reads), ipfs, ROUND, SPEC)
    assert report.matches and report.model_version == 1
    # A later finalization must not shift the version of round 2's output.
    reads.finals.append(finalization(ROUND + 1, b"\x09" * 32))
    assert verify_round(view(reads), ipfs, ROUND, SPEC).matches


def test_verify__onchain_digest_differs__mismatch_detected() -> None:
    ipfs = FakeIpfs()
    reads = honest_round(ipfs, [honest_commit(ipfs, 1, 1.0), honest_commit(ipfs, 2, 3.0)])
    forged = b"forged global model"
    reads.results[ROUND] = replace(
        reads.results[ROUND], model_digest=hashlib.sha256(forged).digest(), model_cid=ipfs.put(forged)
    )

    report = verify_round(view(reads), ipfs, ROUND, SPEC)

    assert not report.matches and not report.digest_match
    assert report.recomputed_digest != report.onchain_digest
    assert report.cid_bytes_match  # the forged file does hash to the forged digest
    assert report.rejections_match
    assert any(p.startswith("model digest: recomputed") for p in report.problems)
    assert "DOES NOT MATCH" in render_verify(report)


def test_verify__cid_bytes_do_not_hash_to_onchain_digest() -> None:
    ipfs = FakeIpfs()
    reads = honest_round(ipfs, [honest_commit(ipfs, 1, 1.0), honest_commit(ipfs, 2, 3.0)])
    reads.results[ROUND] = replace(reads.results[ROUND], model_cid=ipfs.put(b"something else"))
    report = verify_round(view(reads), ipfs, ROUND, SPEC)
    assert report.digest_match and not report.cid_bytes_match and not report.matches
    assert any("hash to" in p for p in report.problems)


def test_verify__chain_rejection_not_reproduced__mismatch_detected() -> None:
    ipfs = FakeIpfs()
    reads = honest_round(ipfs, [honest_commit(ipfs, 1, 1.0), honest_commit(ipfs, 2, 3.0)])
    # The chain slashed trainer 2 as NON_FINITE, but its update is valid.
    reads.rejected[ROUND] = {trainer(2): RejectionReason.NON_FINITE}

    report = verify_round(view(reads), ipfs, ROUND, SPEC)

    assert not report.matches and not report.rejections_match
    assert report.rejected == {}
    assert report.onchain_rejected == {trainer(2): "NON_FINITE"}
    assert report.problems == [f"{trainer(2)}: the chain recorded NON_FINITE, recomputation gives accepted"]


def test_verify__recomputation_rejects_what_chain_accepted() -> None:
    ipfs = FakeIpfs()
    commits = [honest_commit(ipfs, 1, 1.0), honest_commit(ipfs, 2, 3.0)]
    reads = honest_round(ipfs, commits)
    del ipfs.files[commits[1].cid]  # unpinned since the round
    report = verify_round(view(reads), ipfs, ROUND, SPEC)
    assert not report.matches and not report.rejections_match and not report.digest_match
    assert report.rejected == {trainer(2): "UNAVAILABLE"}
    assert any("availability on IPFS may have changed" in p for p in report.problems)


def test_verify__nothing_accepted__previous_model_reencoded_as_the_new_version() -> None:
    ipfs = FakeIpfs()
    tensors = {"w": np.full(4, 0.5, np.float32)}

    def model_file(version: int) -> bytes:
        binding = global_model_binding(chain_id=CHAIN_ID, task=TASK, version=version, spec=SPEC)
        return encode(tensors, binding, SPEC)

    previous, expected = model_file(1), model_file(2)
    previous_cid, expected_cid = ipfs.put(previous), ipfs.put(expected)
    unavailable = Commit(trainer=trainer(1), digest=b"\1" * 32, cid="cid-missing", num_samples=5)
    reads = FakeReads(
        phases={r: Phase.FINALIZED for r in range(ROUND + 1)},
        commit_events={ROUND: [unavailable]},
        results={ROUND: RoundResult(b"k" * 32, hashlib.sha256(expected).digest(), 0, 0, 1, expected_cid)},
        finals=[
            Finalization(0, hashlib.sha256(previous).digest(), previous_cid, 1, 0, 0, 100, "0x"),
            finalization(ROUND, hashlib.sha256(expected).digest()),
        ],
        rejected={ROUND: {trainer(1): RejectionReason.UNAVAILABLE}},
    )
    report = verify_round(view(reads), ipfs, ROUND, SPEC)
    assert report.matches and report.accepted == [] and report.model_version == 2

    # A chain that kept the old file (bound to version 1) does not match the protocol.
    reads.results[ROUND] = replace(
        reads.results[ROUND], model_digest=hashlib.sha256(previous).digest(), model_cid=previous_cid
    )
    assert not verify_round(view(reads), ipfs, ROUND, SPEC).matches


@pytest.mark.parametrize(
    ("phase", "message"),
    [
        (Phase.COMMIT, "round 2 is not finalized: it is in phase COMMIT"),
        (Phase.AGGREGATION, "round 2 is not finalized: it is in phase AGGREGATION"),
        (Phase.STALE, "phase STALE"),
        (Phase.CLOSED, "phase CLOSED; it was closed without a result"),
    ],
)
def test_verify__round_not_finalized__clear_error(phase: Phase, message: str) -> None:
    reads = FakeReads(current=ROUND, phases={ROUND: phase})
    with pytest.raises(RoundNotFinalizedError, match=message) as caught:
        verify_round(view(reads), FakeIpfs(), ROUND, SPEC)
    assert caught.value.phase == phase


def test_verify__round_does_not_exist__clear_error() -> None:
    reads = FakeReads(current=1, phases={0: Phase.FINALIZED, 1: Phase.COMMIT})
    with pytest.raises(AuditError, match="round 7 does not exist: the current round is 1"):
        verify_round(view(reads), FakeIpfs(), 7, SPEC)


def test_verify__wrong_model_spec__named_as_a_problem() -> None:
    ipfs = FakeIpfs()
    reads = honest_round(ipfs, [honest_commit(ipfs, 1, 1.0), honest_commit(ipfs, 2, 3.0)])
    chain = replace(view(reads), model_spec_hash=b"\7" * 32)
    report = verify_round(chain, ipfs, ROUND, SPEC)
    assert any("is not the task's" in p for p in report.problems)


def test_initial_model_digest__from_deployment_parameters() -> None:
    assert initial_model_digest({"initial_model_digest": "0x" + INITIAL.hex()}) == INITIAL
    assert initial_model_digest({}) is None
    assert initial_model_digest({"initial_model_digest": "0x12"}) is None


# ---------------------------------------------------------------- status


def sample_status() -> StatusReport:
    return StatusReport(
        chain_id=CHAIN_ID,
        task=TASK,
        chain_time=1_700_000_000,
        current_round=CurrentRound(
            number=3,
            phase="COMMIT",
            opened_at=1_700_000_000,
            commit_deadline=1_700_000_120,
            reveal_deadline=1_700_000_180,
            aggregation_deadline=1_700_000_300,
            commits=1,
            expected_commits=4,
            reveals=0,
        ),
        global_model=ModelInfo(
            version=3,
            digest="0x" + "ab" * 32,
            cid="bafy-model",
            spec_hash="0x" + "ef" * 32,
            spec_cid="bafy-spec",
        ),
        rounds=[
            RoundSummary(
                round=0,
                accepted=4,
                rejected=0,
                trainer_reward=100 * TOKEN,
                model_digest="0x" + "cd" * 32,
                model_cid="bafy-0",
                model_file_version=1,
                accuracy=0.9123,
            )
        ],
        participants=[
            ParticipantSummary(
                address=trainer(1),
                role="TRAINER",
                registered=True,
                active=True,
                stake=100 * TOKEN,
                rewards_claimed=25 * TOKEN,
                fees_credited=0,
                fees_unwithdrawn=0,
                slashed=10 * TOKEN,
            )
        ],
        task_parameters={"AGGREGATION_RULE": 1, "QUORUM_BPS": 6_667, "COMMIT_WINDOW": 120},
        registry_parameters={"MIN_TRAINER_STAKE": 100 * TOKEN},
        warnings=["round 1: model not evaluated: gone"],
    )


def test_render_status__readable_table_and_json() -> None:
    report = sample_status()
    text = render_status(report)
    assert "round 3: COMMIT (1/4 commits, 0 revealed)" in text
    assert "global model v3" in text
    assert f"model spec: sha256 0x{'ef' * 32} bafy-spec" in text
    assert "0.9123" in text and "25 FED" in text and "10 FED" in text
    assert "AGGREGATION_RULE=MEDIAN" in text and "QUORUM_BPS=66.67%" in text
    assert "warning: round 1: model not evaluated" in text
    data = json.loads(json.dumps(status_to_json(report)))
    assert data["rounds"][0]["accuracy"] == 0.9123
    assert data["participants"][0]["slashed"] == 10 * TOKEN
    assert data["current_round"]["phase"] == "COMMIT"


def test_render_status__round_not_started__no_deadlines() -> None:
    report = sample_status()
    report = replace(
        report,
        current_round=replace(
            report.current_round,
            number=0,
            phase="INACTIVE",
            opened_at=0,
            commit_deadline=0,
            reveal_deadline=0,
            aggregation_deadline=0,
        ),
    )
    text = render_status(report)
    assert "round 0: INACTIVE (not started)" in text
    assert "deadline" not in text and "1970" not in text


# ---------------------------------------------------------------- CLI


@pytest.mark.parametrize("command", [["status"], ["verify"]])
def test_cli__help(command: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--project-dir", str(ROOT), "--run-dir", str(tmp_path), *command, "--help"]
    )
    assert result.exit_code == 0 and "--rpc-url" in result.output and "--ipfs-api" in result.output


def test_cli__no_devnet__usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDLEDGER_RPC_URL", raising=False)
    base = ["--project-dir", str(ROOT), "--run-dir", str(tmp_path)]
    for command in (["status"], ["verify", "0"]):
        result = CliRunner().invoke(cli, [*base, *command])
        assert result.exit_code == 2 and "no devnet is running" in result.output
    result = CliRunner().invoke(cli, [*base, "verify", "-1"])
    assert result.exit_code == 2


def test_verify_report__digest_match_needs_a_recomputed_digest() -> None:
    report = VerifyReport(
        round=0,
        matches=False,
        onchain_digest="0x00",
        recomputed_digest=None,
        cid_bytes_match=True,
        accepted=[],
        rejected={},
        rejections_match=True,
        problems=[],
    )
    assert not report.digest_match
    assert "(unknown)" in render_verify(report)


def test_show_parameter__as_people_read_them() -> None:
    assert show_parameter("AGGREGATION_RULE", 1) == "MEDIAN"
    assert show_parameter("REWARD_PER_ROUND", 150 * TOKEN) == "150 FED"
    assert show_parameter("MIN_TRAINER_STAKE", 100 * TOKEN) == "100 FED"
    assert show_parameter("QUORUM_BPS", 6_666) == "66.66%"
    assert show_parameter("COMMIT_WINDOW", 120) == "120s"
    assert show_parameter("CLIP_NORM", 0) == "off"
    assert show_parameter("CLIP_NORM", 2_500_000) == "2.5"
    assert show_parameter("SAMPLE_CAP", 10_000) == "10000"
    assert show_parameter("DP_NOISE_MULTIPLIER", 1_100_000) == "1.1"
    assert show_parameter("DP_NOISE_MULTIPLIER", 0) == "off"
    assert show_parameter("DP_CLIP_NORM", 500_000) == "0.5"
    assert show_parameter("DP_DELTA", 10_000_000) == "1e-05"
