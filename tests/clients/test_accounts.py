"""Signing accounts: Anvil's test keys on devnets only, env keys, keystores; keys never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from fedledger.chain.accounts import (
    AccountError,
    AccountSpec,
    devnet_account,
    devnet_accounts,
    parse_account_spec,
    resolve_account,
)

# Anvil's (and ape's) first default accounts.
ANVIL_ADDRESSES = [
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
]
KEY = "0x" + "11" * 32


def test_devnet_accounts__match_anvil_defaults() -> None:
    assert [a.address for a in devnet_accounts(3)] == ANVIL_ADDRESSES
    with pytest.raises(AccountError):
        devnet_account(-1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", AccountSpec("dev", "3")),
        ("dev:1", AccountSpec("dev", "1")),
        ("env:MY_KEY", AccountSpec("env", "MY_KEY")),
        ("keystore:/tmp/k.json", AccountSpec("keystore", "/tmp/k.json")),
    ],
)
def test_parse_account_spec(text: str, expected: AccountSpec) -> None:
    assert parse_account_spec(text) == expected


@pytest.mark.parametrize("text", ["", "alice", "dev:x", "env:", "ledger:0"])
def test_parse_account_spec__errors(text: str) -> None:
    with pytest.raises(AccountError, match="account"):
        parse_account_spec(text)


def test_resolve__devnet_keys_only_on_devnets() -> None:
    assert resolve_account("dev:1", allow_devnet=True).address == ANVIL_ADDRESSES[1]
    with pytest.raises(AccountError, match="public Anvil test key"):
        resolve_account("dev:1", allow_devnet=False)


def test_resolve__env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDLEDGER_TEST_KEY", KEY)
    account = resolve_account("env:FEDLEDGER_TEST_KEY", allow_devnet=False)
    assert account.address == Account.from_key(KEY).address
    monkeypatch.setenv("FEDLEDGER_TEST_KEY", "0x1234")
    with pytest.raises(AccountError) as excinfo:
        resolve_account("env:FEDLEDGER_TEST_KEY", allow_devnet=False)
    assert "0x1234" not in str(excinfo.value)  # never echo key material
    monkeypatch.delenv("FEDLEDGER_TEST_KEY")
    with pytest.raises(AccountError, match="not set"):
        resolve_account("env:FEDLEDGER_TEST_KEY", allow_devnet=False)


def test_resolve__keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(Account.encrypt(KEY, "secret", iterations=2)))
    monkeypatch.delenv("FEDLEDGER_KEYSTORE_PASSWORD", raising=False)
    account = resolve_account(f"keystore:{path}", allow_devnet=False, password=lambda: "secret")
    assert account.address == Account.from_key(KEY).address
    monkeypatch.setenv("FEDLEDGER_KEYSTORE_PASSWORD", "wrong")
    with pytest.raises(AccountError, match="wrong password"):
        resolve_account(f"keystore:{path}", allow_devnet=False)
    monkeypatch.delenv("FEDLEDGER_KEYSTORE_PASSWORD")
    with pytest.raises(AccountError, match="FEDLEDGER_KEYSTORE_PASSWORD"):
        resolve_account(f"keystore:{path}", allow_devnet=False)
