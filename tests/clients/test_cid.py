"""CIDv1 raw-leaves strings computed locally."""

from __future__ import annotations

import hashlib

import pytest

from fedledger.chain.cid import RAW_BLOCK_LIMIT, cid_v1_raw, cid_v1_raw_from_digest


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # `ipfs add --cid-version=1 --raw-leaves` of these exact bytes.
        (b"", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
        (b"hello world", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
    ],
)
def test_cid_v1_raw__known_vectors(data: bytes, expected: str) -> None:
    assert cid_v1_raw(data) == expected


def test_cid_v1_raw__wraps_the_sha256() -> None:
    data = b"fedledger" * 100
    cid = cid_v1_raw(data)
    assert cid.startswith("bafkrei")  # multibase b, CIDv1, raw, sha2-256, 32 bytes
    assert cid == cid_v1_raw_from_digest(hashlib.sha256(data).digest())
    assert cid == cid.lower() and "=" not in cid
    assert len(cid) == 59


def test_cid_v1_raw__matches_py_cid_when_available() -> None:
    cid_module = pytest.importorskip("cid")
    multihash = pytest.importorskip("multihash")
    data = b"cross-check"
    encoded = multihash.Multihash(multihash.Func.sha2_256, hashlib.sha256(data).digest()).encode()
    expected = cid_module.make_cid(1, "raw", encoded).encode("base32").decode()
    assert cid_v1_raw(data) == expected


def test_cid_v1_raw__larger_than_one_block__raises() -> None:
    with pytest.raises(ValueError, match="exceed one raw block"):
        cid_v1_raw(b"\0" * (RAW_BLOCK_LIMIT + 1))


def test_cid_v1_raw_from_digest__wrong_length__raises() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        cid_v1_raw_from_digest(b"\x01" * 31)
