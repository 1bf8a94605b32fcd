"""The ``usercore[bcrypt]`` extra: a bcrypt hash met without bcrypt installed is logged once."""

from __future__ import annotations

import logging
import sys
import threading
from importlib import metadata

import argon2
import pytest

from usercore import passwords as passwords_module
from usercore.passwords import BCRYPT_MISSING_MESSAGE, PasswordHasher

PASSWORD = "correct horse battery staple"
# bcrypt.hashpw(PASSWORD, gensalt(rounds=4)): a real hash, so no bcrypt is needed to have one.
BCRYPT_HASH = "$2b$04$cIIDZFG2cMiNc7EddLyOAugMDAybHPc2M3wW8ZLdfREz4Di/zXh6K"


@pytest.fixture
def without_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a machine without bcrypt, and a process that has not warned yet."""
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # makes "import bcrypt" fail
    monkeypatch.setattr(passwords_module, "_bcrypt_missing_logged", threading.Lock())


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "usercore.passwords" and record.levelno == logging.WARNING
    ]


@pytest.mark.usefixtures("without_bcrypt")
def test_a_bcrypt_hash_without_bcrypt_logs_one_warning_naming_the_extra(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hasher = PasswordHasher(argon2.profiles.CHEAPEST)
    caplog.set_level(logging.DEBUG, logger="usercore.passwords")

    for _ in range(3):
        assert (False, None) == hasher.verify(BCRYPT_HASH, PASSWORD)

    warnings = _warnings(caplog)
    assert 1 == len(warnings)
    assert BCRYPT_MISSING_MESSAGE == warnings[0].getMessage()
    assert "usercore[bcrypt]" in BCRYPT_MISSING_MESSAGE
    # Neither the password nor the hash is ever logged.
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert PASSWORD not in logged
    assert BCRYPT_HASH[7:] not in logged


@pytest.mark.usefixtures("without_bcrypt")
def test_the_warning_is_logged_once_across_threads(caplog: pytest.LogCaptureFixture) -> None:
    hasher = PasswordHasher(argon2.profiles.CHEAPEST)
    caplog.set_level(logging.WARNING, logger="usercore.passwords")
    threads = [
        threading.Thread(target=hasher.verify, args=(BCRYPT_HASH, PASSWORD)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert 1 == len(_warnings(caplog))


def test_other_hashes_never_log_the_bcrypt_warning(
    without_bcrypt: None, caplog: pytest.LogCaptureFixture
) -> None:
    hasher = PasswordHasher(argon2.profiles.CHEAPEST)
    caplog.set_level(logging.WARNING, logger="usercore.passwords")

    assert hasher.verify(hasher.hash(PASSWORD), PASSWORD)[0]
    assert (False, None) == hasher.verify("not a hash", PASSWORD)

    assert [] == _warnings(caplog)


def test_with_bcrypt_installed_the_hash_verifies_and_nothing_is_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("bcrypt")
    monkeypatch.setattr(passwords_module, "_bcrypt_missing_logged", threading.Lock())
    caplog.set_level(logging.WARNING, logger="usercore.passwords")

    matched, upgrade = PasswordHasher(argon2.profiles.CHEAPEST).verify(BCRYPT_HASH, PASSWORD)

    assert matched
    assert upgrade is not None
    assert upgrade.startswith("$argon2id$")
    assert [] == _warnings(caplog)


def test_the_bcrypt_extra_is_declared() -> None:
    requirements = metadata.requires("usercore") or []
    assert any(req.startswith("bcrypt>=4.1") and "extra == 'bcrypt'" in req for req in requirements)


@pytest.mark.usefixtures("without_bcrypt")
def test_importing_a_bcrypt_hash_without_bcrypt_fails_that_record_naming_the_extra() -> None:
    """Stored, such a hash would fail every login of its user; the import says why instead."""
    from usercore import SYSTEM, Settings, UserCore

    settings = Settings(secret_key="k" * 32, argon2_profile=argon2.profiles.CHEAPEST)
    with UserCore.open("memory://", settings=settings) as core:
        report = core.users.import_users(
            SYSTEM,
            [
                {"email": "ada@example.com", "password_hash": BCRYPT_HASH},
                {"email": "bob@example.com", "password": PASSWORD},
            ],
        )
        assert (1, [0]) == (report.created, [index for index, _ in report.errors])
        assert [
            "usercore[bcrypt]" in message for message in report.errors[0][1].errors["password_hash"]
        ] == [True]
        assert [user.email for user in core.users.iter_all(SYSTEM)] == ["bob@example.com"]


def test_with_bcrypt_installed_the_same_import_keeps_the_hash() -> None:
    pytest.importorskip("bcrypt")
    from usercore import SYSTEM, Settings, UserCore

    settings = Settings(secret_key="k" * 32, argon2_profile=argon2.profiles.CHEAPEST)
    with UserCore.open("memory://", settings=settings) as core:
        report = core.users.import_users(
            SYSTEM, [{"email": "ada@example.com", "password_hash": BCRYPT_HASH}]
        )
        assert (1, []) == (report.created, report.errors)
        assert core.auth.login("ada@example.com", PASSWORD).access_token
