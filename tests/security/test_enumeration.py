"""Account enumeration: every login failure looks and costs the same.

OWASP ASVS 4.0.3 V2.2.1 / V3 (generic authentication errors), OWASP
Authentication Cheat Sheet ("same response, same time"), DESIGN §3."""

from __future__ import annotations

import argon2
import pytest

from usercore import InvalidCredentials, Principal, User, UserCore

from ..services.conftest import PASSWORD


@pytest.fixture
def argon2_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 verification in the process, real or dummy."""
    calls: list[str] = []
    original = argon2.PasswordHasher.verify

    def counting(self: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        calls.append("verify")
        return original(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting)
    return calls


# -- login ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["unknown account", "wrong password", "inactive account", "no password"]
)
def test_every_login_failure_is_the_same_error_after_one_hash_verification(
    core: UserCore,
    ada: User,
    admin: Principal,
    argon2_verifications: list[str],
    case: str,
) -> None:
    """OWASP ASVS 4.0.3 V2.2 / V3: no account enumeration through login."""
    identifier, password = "ada", PASSWORD
    if case == "unknown account":
        identifier = "nobody@example.com"
    elif case == "wrong password":
        password = "not the password at all"
    elif case == "inactive account":
        core.users.set_status(admin, ada.id, "inactive")
    else:
        core.users.create(admin, email="nopass@example.com", username="nopass")
        identifier = "nopass"
    argon2_verifications.clear()
    with pytest.raises(InvalidCredentials) as info:
        core.auth.login(identifier, password)
    assert ("invalid_credentials", "Invalid credentials.", {}) == (
        info.value.code,
        info.value.message,
        info.value.details,
    )
    assert ["verify"] == argon2_verifications
