"""Parsing of typed-in values, shared by the ape scripts and the CLI."""

from __future__ import annotations

import pytest

from fedledger.chain.params import TOKEN, AggregationRule
from fedledger.chain.values import UINT256_MAX, format_token, format_token_rounded, parse_bytes32, parse_uint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("10_000", 10_000),
        ("0x2710", 10_000),
        ("1e18", TOKEN),
        ("100FED", 100 * TOKEN),
        ("0.5 fed", TOKEN // 2),
        (str(UINT256_MAX), UINT256_MAX),
    ],
)
def test_parse_uint__accepted_spellings(text: str, expected: int) -> None:
    assert parse_uint(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "abc", "1.5", "1e-3", "0x", str(UINT256_MAX + 1), "1e-19FED"])
def test_parse_uint__rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_uint(text)


def test_parse_uint__enum_names_and_values() -> None:
    assert parse_uint("median", enum=AggregationRule) == AggregationRule.MEDIAN
    assert parse_uint("TRIMMED-MEAN", enum=AggregationRule) == AggregationRule.TRIMMED_MEAN
    assert parse_uint("3", enum=AggregationRule) == AggregationRule.MULTI_KRUM
    with pytest.raises(ValueError, match="not a valid AggregationRule"):
        parse_uint("9", enum=AggregationRule)
    with pytest.raises(ValueError, match="FEDAVG"):
        parse_uint("mean", enum=AggregationRule)


def test_parse_bytes32() -> None:
    assert parse_bytes32("0x" + "ab" * 32) == bytes([0xAB]) * 32
    for bad in ("ab" * 32, "0x" + "ab" * 31, "0x" + "zz" * 32):
        with pytest.raises(ValueError):
            parse_bytes32(bad)


def test_format_token() -> None:
    assert format_token(1_500 * TOKEN) == "1,500 FED"
    assert format_token(TOKEN + TOKEN // 4) == "1.25 FED"
    assert format_token(1) == "0.000000000000000001 FED"


def test_format_token_rounded() -> None:
    assert format_token_rounded(1_500 * TOKEN) == "1,500 FED"
    assert format_token_rounded(900 * TOKEN // 7) == "128.5714 FED"
    assert format_token_rounded(TOKEN + TOKEN // 4) == "1.25 FED"
    assert format_token_rounded(18_750_000_000_000_000) == "0.0188 FED"
    assert format_token_rounded(1) == "0 FED"
    assert format_token_rounded(1, places=18) == "0.000000000000000001 FED"
