"""Issue 12 item 1: a huge password or identifier costs no more than a normal one.

CPython's NFKC normalization is quadratic on long runs of combining marks: a
400 KB password held the GIL for ~30 s at login.  Every path that normalizes
or hashes a password must refuse an over-long one on its raw size, *before*
normalizing it (CWE-400; OWASP ASVS 4.0.3 V2.1.2 bounds the length), and
login must still spend the dummy verification and answer ``invalid_credentials``
(OWASP Authentication Cheat Sheet: same answer, same work).

Time-free: a spy on ``unicodedata.normalize`` records the size of everything
normalized, and the argon2 verifications are counted.
"""

from __future__ import annotations

import unicodedata

import argon2
import pytest

from usercore import (
    SYSTEM,
    AccountLocked,
    InvalidCredentials,
    Principal,
    User,
    UserCore,
    ValidationError,
)
from usercore.validation import password_within_bounds

from ..services.conftest import PASSWORD

# The reproduction: 200,001 code points, 400 KB of UTF-8.
HUGE = "a" + "\u0301\u0316" * 100_000
# The bound every path applies: 4 x password_max_length (default 1024).
BOUND = 4 * 1024


@pytest.fixture
def normalized(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every string normalized from now on (any form, any module)."""
    sizes: list[int] = []
    original = unicodedata.normalize

    def spy(form: str, text: str) -> str:
        sizes.append(len(text))
        return original(form, text)

    monkeypatch.setattr(unicodedata, "normalize", spy)
    return sizes


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of the secret of every argon2 verification, real or dummy."""
    sizes: list[int] = []
    original = argon2.PasswordHasher.verify

    def counting(self: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        sizes.append(len(password))
        return original(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting)
    return sizes


def test_bound_counts_code_points_and_utf8_bytes_on_the_raw_text() -> None:
    assert password_within_bounds("a" * 4096, max_length=1024)
    assert not password_within_bounds("a" * 4097, max_length=1024)
    # 1,100 four-byte code points: few characters, too many bytes.
    assert not password_within_bounds("\U0001f600" * 1100, max_length=1024)
    assert password_within_bounds("\U0001f600" * 1024, max_length=1024)
    assert not password_within_bounds(HUGE, max_length=1024)


@pytest.mark.parametrize("identifier", ["ada", "nobody@example.com"])
def test_login_with_a_huge_password_is_refused_unnormalized_after_one_dummy_verify(
    core: UserCore,
    ada: User,
    normalized: list[int],
    verifications: list[int],
    identifier: str,
) -> None:
    with pytest.raises(InvalidCredentials) as info:
        core.auth.login(identifier, HUGE)
    assert "invalid_credentials" == info.value.code
    assert all(size <= BOUND for size in normalized), max(normalized)
    assert 1 == len(verifications)  # the dummy work is still spent
    assert verifications[0] < 64  # ...on a constant, not on the huge input


def test_huge_password_logins_count_as_failures(core: UserCore, ada: User) -> None:
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            core.auth.login("ada", HUGE)
    with pytest.raises(AccountLocked):
        core.auth.login("ada", PASSWORD)


def test_huge_identifier_is_never_normalized(
    core: UserCore, normalized: list[int], verifications: list[int]
) -> None:
    with pytest.raises(InvalidCredentials):
        core.auth.login(HUGE, "a password of normal size")
    with pytest.raises(InvalidCredentials):
        core.auth.login(HUGE + "@example.com", "a password of normal size")
    assert core.auth.request_password_reset(HUGE + "@example.com") is None
    assert all(size <= 320 for size in normalized), max(normalized)
    assert 2 == len(verifications)


def test_change_password_with_a_huge_current_password_is_refused_and_counted(
    core: UserCore, ada: User, ada_p: Principal, normalized: list[int]
) -> None:
    for _ in range(5):
        with pytest.raises(ValidationError) as info:
            core.users.change_password(
                ada_p, ada.id, current_password=HUGE, new_password="another long passphrase"
            )
        assert {"current_password": ["is incorrect"]} == info.value.details
    assert all(size <= BOUND for size in normalized), max(normalized)
    with pytest.raises(AccountLocked):
        core.users.change_password(
            ada_p, ada.id, current_password=PASSWORD, new_password="another long passphrase"
        )


def test_every_path_that_sets_a_password_refuses_a_huge_one_before_normalizing(
    core: UserCore, ada: User, ada_p: Principal, admin: Principal, normalized: list[int]
) -> None:
    too_long = {"must be at most 1024 characters"}

    def refused(call: object, field: str) -> None:
        assert callable(call)
        with pytest.raises(ValidationError) as info:
            call()
        assert too_long == set(info.value.details[field])

    refused(lambda: core.users.register(email="new@example.com", password=HUGE), "password")
    refused(lambda: core.users.create(SYSTEM, email="new@example.com", password=HUGE), "password")
    refused(lambda: core.users.set_password(admin, ada.id, HUGE), "new_password")
    refused(
        lambda: core.users.change_password(
            ada_p, ada.id, current_password=PASSWORD, new_password=HUGE
        ),
        "new_password",
    )
    token = core.auth.request_password_reset("ada@example.com")
    assert token is not None
    refused(lambda: core.auth.reset_password(token, HUGE), "new_password")
    report = core.users.import_users(SYSTEM, [{"email": "imp@example.com", "password": HUGE}])
    assert 1 == len(report.errors)
    assert all(size <= BOUND for size in normalized), max(normalized)
