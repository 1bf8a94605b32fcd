"""Adversarial tests of account recovery (OWASP ASVS 4.0.3 V2.5; OWASP Forgot
Password Cheat Sheet).

Deactivating an account is the administrator's answer to a compromise: it
revokes every session and API key, and ``request_password_reset`` issues no
token for an inactive account.  But a reset token issued *before* the
deactivation still worked: whoever read the reset mail set a password on the
deactivated account, and that password was the account's when it was
reactivated.
"""

from __future__ import annotations

import pytest

from usercore import SYSTEM, InvalidCredentials, TokenError, User, UserCore

from ..services.conftest import PASSWORD, login_principal

ATTACKER = "the attacker's chosen passphrase"


def test_a_reset_token_dies_with_the_deactivation(core: UserCore, ada: User) -> None:
    token = core.auth.request_password_reset(ada.email)
    assert token is not None
    core.users.set_status(SYSTEM, ada.id, "inactive")
    with pytest.raises(TokenError):
        core.auth.reset_password(token, ATTACKER)
    core.users.set_status(SYSTEM, ada.id, "active")
    with pytest.raises(TokenError):  # and stays dead after the reactivation
        core.auth.reset_password(token, ATTACKER)
    with pytest.raises(InvalidCredentials):
        core.auth.login("ada", ATTACKER)
    assert login_principal(core, "ada", PASSWORD).user_id == ada.id
