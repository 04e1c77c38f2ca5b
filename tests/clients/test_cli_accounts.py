"""`fedledger account new|show`, and keys and passwords never reaching output or logs.

Every run captures stdout, stderr and all log records at DEBUG; `assert_no_secret` looks for
the private key (with and without 0x, either case) and the password in all of them. The paths
that talk to a chain (reverts, services) are in tests/e2e/test_node_failures.py.
"""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from eth_account import Account

from fedledger.chain.accounts import AccountError, new_keystore, parse_account_spec
from fedledger.cli import cli

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple 7"
KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ADDRESS = Account.from_key(KEY).address


def secrets_of(key: str, *passwords: str) -> list[str]:
    bare = key.removeprefix("0x")
    return [bare, bare.upper(), "0x" + bare, bare[:32], bare[32:], *passwords]


def assert_no_secret(result: Result, caplog: pytest.LogCaptureFixture, secrets: list[str]) -> None:
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    for where, text in (("stdout", result.stdout), ("stderr", result.stderr), ("logs", logged)):
        for secret in secrets:
            assert secret not in text, f"{where} shows a secret"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[CliRunner]:
    for variable in ("FEDLEDGER_KEYSTORE_PASSWORD", "FEDLEDGER_ACCOUNT", "FEDLEDGER_ALLOW_REMOTE"):
        monkeypatch.delenv(variable, raising=False)
    caplog.set_level(logging.DEBUG)
    yield CliRunner(mix_stderr=False)


def fedledger(runner: CliRunner, *args: str, **kwargs: object) -> Result:
    return runner.invoke(cli, ["--project-dir", str(ROOT), *args], **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """KEY encrypted with PASSWORD (cheap KDF: these tests are about output, not strength)."""
    path = tmp_path_factory.mktemp("keys") / "key.json"
    path.write_text(json.dumps(Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=2)))
    return path


def test_account_new__prompted_twice__0600__prints_only_the_address(
    runner: CliRunner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys" / "trainer.json"
    result = fedledger(runner, "account", "new", "--keystore", str(path), input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    address = result.stdout.strip().splitlines()[-1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = Account.decrypt(json.loads(path.read_text()), PASSWORD)
    assert Account.from_key(key).address == address
    assert "new keystore password" in result.stdout and "Repeat for confirmation" in result.stdout
    assert result.stdout.replace("new keystore password: ", "").replace(
        "Repeat for confirmation: ", ""
    ).split() == [address]
    assert f"keystore written to {path}" in result.stderr
    assert_no_secret(result, caplog, secrets_of(key.hex(), PASSWORD))

    shown = fedledger(
        runner, "account", "show", f"keystore:{path}", env={"FEDLEDGER_KEYSTORE_PASSWORD": PASSWORD}
    )
    assert shown.exit_code == 0 and shown.stdout.strip() == address
    assert_no_secret(shown, caplog, secrets_of(key.hex(), PASSWORD))

    again = fedledger(runner, "account", "new", "--keystore", str(path), input=f"{PASSWORD}\n{PASSWORD}\n")
    assert again.exit_code == 1 and "already exists; not overwriting it" in again.stderr
    assert "password" not in again.stdout  # refused before asking
    assert Account.decrypt(json.loads(path.read_text()), PASSWORD) == key


def test_account_new__password_from_env__mismatch_and_empty_refused(
    runner: CliRunner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    by_env = fedledger(
        runner,
        "account",
        "new",
        "--keystore",
        str(tmp_path / "a.json"),
        env={"FEDLEDGER_KEYSTORE_PASSWORD": PASSWORD},
    )
    assert by_env.exit_code == 0 and "password" not in by_env.stdout
    assert by_env.stdout.strip().startswith("0x") and len(by_env.stdout.strip()) == 42
    assert_no_secret(by_env, caplog, [PASSWORD])

    retyped = tmp_path / "b.json"
    mismatch = fedledger(
        runner,
        "account",
        "new",
        "--keystore",
        str(retyped),
        input=f"first-Pw-1\nsecond-Pw-2\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert mismatch.exit_code == 0 and "The two entered values do not match" in mismatch.output
    Account.decrypt(json.loads(retyped.read_text()), PASSWORD)  # the second, matching pair
    assert_no_secret(mismatch, caplog, ["first-Pw-1", "second-Pw-2", PASSWORD])

    empty = fedledger(
        runner,
        "account",
        "new",
        "--keystore",
        str(tmp_path / "c.json"),
        env={"FEDLEDGER_KEYSTORE_PASSWORD": ""},
    )
    assert empty.exit_code == 1 and "must not be empty" in empty.stderr
    assert not (tmp_path / "c.json").exists()


def test_new_keystore__never_replaces_and_tightens_mode(tmp_path: Path) -> None:
    existing = tmp_path / "taken.json"
    existing.write_text("{}")
    with pytest.raises(AccountError, match="already exists"):
        new_keystore(existing, PASSWORD)
    assert existing.read_text() == "{}"
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(AccountError, match="already exists"):
        new_keystore(link, PASSWORD)
    assert not (tmp_path / "nowhere.json").exists()


def test_account_show__specs_print_the_address_only(
    runner: CliRunner, keystore: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dev = fedledger(runner, "account", "show", "dev:0")
    assert dev.stdout.strip() == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    by_env = fedledger(runner, "account", "show", "env:FED_TEST_KEY", env={"FED_TEST_KEY": KEY})
    assert by_env.exit_code == 0 and by_env.stdout.strip() == ADDRESS
    prompted = fedledger(runner, "account", "show", f"keystore:{keystore}", input=f"{PASSWORD}\n")
    assert prompted.exit_code == 0 and prompted.stdout.strip().endswith(ADDRESS)
    for result in (by_env, prompted):
        assert_no_secret(result, caplog, secrets_of(KEY, PASSWORD))


MALFORMED = {
    "typo": KEY[:-1] + "g",
    "short": KEY[:-2],
    "zero": "0x" + "00" * 32,
    "too big": "0x" + "ff" * 32,
    "quoted": f'"{KEY}"',
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_env_key__error_names_the_variable_not_the_value(
    kind: str, runner: CliRunner, caplog: pytest.LogCaptureFixture
) -> None:
    value = MALFORMED[kind]
    result = fedledger(runner, "account", "show", "env:FED_TEST_KEY", env={"FED_TEST_KEY": value})
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: environment variable FED_TEST_KEY does not hold a valid private key"
    )
    assert_no_secret(result, caplog, [*secrets_of(KEY), value, value.strip('"').removeprefix("0x")])


def test_wrong_keystore_password__env_or_prompt__not_shown(
    runner: CliRunner, keystore: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong password 42"
    by_env = fedledger(
        runner, "account", "show", f"keystore:{keystore}", env={"FEDLEDGER_KEYSTORE_PASSWORD": wrong}
    )
    prompted = fedledger(runner, "account", "show", f"keystore:{keystore}", input=f"{wrong}\n")
    for result in (by_env, prompted):
        assert result.exit_code == 1
        assert f"cannot decrypt keystore {keystore}: wrong password or not a keystore" in result.stderr
        assert_no_secret(result, caplog, [*secrets_of(KEY, PASSWORD), wrong])


@pytest.mark.parametrize("spec", [KEY, KEY.removeprefix("0x"), f"env:{KEY}", f"keystore:{KEY}", f"dev:{KEY}"])
def test_key_pasted_as_account__refused_without_echo(
    spec: str, runner: CliRunner, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(AccountError, match="looks like a private key"):
        parse_account_spec(spec)
    for args in (["account", "show", spec], ["gov", "vote", "1", "--support", "for", "--account", spec]):
        result = fedledger(runner, *args)
        assert result.exit_code == 2 and "looks like a private key" in result.stderr
        assert_no_secret(result, caplog, secrets_of(KEY))
    from_env = fedledger(runner, "gov", "queue", "1", env={"FEDLEDGER_ACCOUNT": spec})
    assert from_env.exit_code == 2 and "looks like a private key" in from_env.stderr
    assert_no_secret(from_env, caplog, secrets_of(KEY))


def test_env_spec__needs_a_variable_name() -> None:
    with pytest.raises(AccountError, match="needs the name of an environment variable"):
        parse_account_spec("env:MY-KEY")
    assert parse_account_spec("env:_FED_KEY_1").value == "_FED_KEY_1"
