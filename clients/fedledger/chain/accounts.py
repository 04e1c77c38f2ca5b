"""Signing accounts for the web3 client. Keys stay in memory and are never printed.

- Devnet: the keys Anvil funds by default, derived from its public test mnemonic. Only for a
  local Anvil: anyone knows these keys.
- Elsewhere: a private key read from an environment variable, or an encrypted JSON keystore
  (its password from an environment variable or typed in).

An account spec names one of these on the command line: `dev:N` (or just `N`), `env:VAR`,
`keystore:PATH`. `new_keystore` creates a keystore with a fresh random key. No message here
quotes key material: a spec that looks like a pasted private key is refused without echoing it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedledger.chain.errors import FedledgerError

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_HD_PATH = "m/44'/60'/0'/0/{index}"
KEYSTORE_PASSWORD_ENV = "FEDLEDGER_KEYSTORE_PASSWORD"
KEYSTORE_MODE = 0o600
_KEY_LIKE = re.compile(r"(0[xX])?[0-9a-fA-F]{56,}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Account.enable_unaudited_hdwallet_features()


class AccountError(FedledgerError, ValueError):
    """An account spec that cannot be resolved (bad syntax, missing key, wrong password)."""


@dataclass(frozen=True)
class AccountSpec:
    """A parsed account spec: `kind` is `dev`, `env` or `keystore`."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def devnet_account(index: int) -> LocalAccount:
    """Anvil's default account `index` (0 is Anvil's and ape's first test account)."""
    if index < 0:
        raise AccountError(f"devnet account index must be >= 0, got {index}")
    account: LocalAccount = Account.from_mnemonic(
        ANVIL_MNEMONIC, account_path=ANVIL_HD_PATH.format(index=index)
    )
    return account


def devnet_accounts(count: int) -> list[LocalAccount]:
    """Anvil's first `count` default accounts."""
    return [devnet_account(i) for i in range(count)]


def parse_account_spec(text: str) -> AccountSpec:
    """Parses `dev:N`, `N`, `env:VAR` or `keystore:PATH`."""
    raw = text.strip()
    if raw.isdigit():
        return AccountSpec("dev", raw)
    kind, sep, value = raw.partition(":")
    if _KEY_LIKE.fullmatch(raw) or _KEY_LIKE.fullmatch(value):
        raise AccountError(
            "bad account: it looks like a private key. Never pass a key on the command line; "
            "use env:VAR (the key in environment variable VAR) or keystore:PATH"
        )
    if not sep or kind not in ("dev", "env", "keystore") or not value:
        raise AccountError(
            f"bad account {text!r}: use dev:N (Anvil test key N, devnets only), env:VAR "
            "(private key in environment variable VAR) or keystore:PATH"
        )
    if kind == "dev" and not value.isdigit():
        raise AccountError(f"bad account {text!r}: dev:N needs a number, e.g. dev:1")
    if kind == "env" and not _ENV_NAME.fullmatch(value):
        raise AccountError("bad account: env:VAR needs the name of an environment variable, e.g. env:FED_KEY")
    return AccountSpec(kind, value)


def account_from_env(variable: str) -> LocalAccount:
    """The account whose hex private key is in environment variable `variable`."""
    key = os.environ.get(variable)
    if not key:
        raise AccountError(f"environment variable {variable} is not set (it should hold a private key)")
    try:
        account: LocalAccount = Account.from_key(key.strip())
    except Exception:  # whatever it is, its message may quote the key
        raise AccountError(f"environment variable {variable} does not hold a valid private key") from None
    return account


def account_from_keystore(path: Path, password: str) -> LocalAccount:
    """The account in the encrypted JSON keystore at `path`."""
    try:
        encrypted = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AccountError(f"cannot read keystore {path}: {exc}") from None
    try:
        key = Account.decrypt(encrypted, password)
    except (ValueError, TypeError, KeyError):
        raise AccountError(f"cannot decrypt keystore {path}: wrong password or not a keystore") from None
    account: LocalAccount = Account.from_key(key)
    return account


def new_keystore(path: Path, password: str) -> str:
    """Creates a fresh random account in an encrypted keystore at `path`; returns its address.

    The file is created with mode 0600 and never replaces an existing one.
    """
    if not password:
        raise AccountError("the keystore password must not be empty")
    if path.exists() or path.is_symlink():
        raise AccountError(f"{path} already exists; not overwriting it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEYSTORE_MODE)
    except FileExistsError:
        raise AccountError(f"{path} already exists; not overwriting it") from None
    except OSError as exc:
        raise AccountError(f"cannot create keystore {path}: {exc.strerror}") from None
    account: LocalAccount = Account.create()
    try:
        with os.fdopen(fd, "w") as file:
            os.fchmod(file.fileno(), KEYSTORE_MODE)  # whatever the umask
            json.dump(Account.encrypt(account.key, password), file)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return str(account.address)


def resolve_account(
    spec: AccountSpec | str,
    *,
    allow_devnet: bool,
    password: Callable[[], str] | None = None,
) -> LocalAccount:
    """The signing account for `spec`.

    `allow_devnet`: whether `dev:N` keys may be used (only on a local Anvil).
    `password`: asked for a keystore password when `FEDLEDGER_KEYSTORE_PASSWORD` is unset.
    """
    parsed = parse_account_spec(spec) if isinstance(spec, str) else spec
    if parsed.kind == "dev":
        if not allow_devnet:
            raise AccountError(
                f"{parsed} is a public Anvil test key; it is only accepted on a local Anvil devnet. "
                "Use env:VAR or keystore:PATH"
            )
        return devnet_account(int(parsed.value))
    if parsed.kind == "env":
        return account_from_env(parsed.value)
    secret = os.environ.get(KEYSTORE_PASSWORD_ENV)
    if secret is None:
        if password is None:
            raise AccountError(f"set {KEYSTORE_PASSWORD_ENV} to unlock keystore {parsed.value}")
        secret = password()
    return account_from_keystore(Path(parsed.value).expanduser(), secret)
