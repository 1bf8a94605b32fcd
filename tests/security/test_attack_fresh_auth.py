"""Adversarial tests of fresh authentication (OWASP ASVS 4.0.3 V3.7.1).

SECURITY.md promises that changing one's *own* password needs a fresh login
or the current password, and that an API key "cannot change the account's
email or password".  ``change_password`` keeps that promise, but an
administrator's ``set_password`` (``PUT /users/{id}/password`` without
``current_password``) also reaches the administrator's own account: a stolen,
stale administrator token, or any administrator API key, set the
administrator's password and locked the owner out of the account.
"""

from __future__ import annotations

import pytest

from usercore import SYSTEM, Principal, User, UserCore
from usercore.errors import ReauthenticationRequired

from ..services.conftest import ADMIN_PASSWORD, FakeClock, login_principal

STALE = 6  # minutes: past the default five-minute window
TAKEN = "the attacker's own passphrase"


def test_a_stale_session_cannot_set_its_own_password(
    core: UserCore, admin: Principal, admin_user: User, clock: FakeClock
) -> None:
    clock.advance(minutes=STALE)
    with pytest.raises(ReauthenticationRequired):
        core.users.set_password(admin, admin_user.id, TAKEN)
    assert login_principal(core, admin_user.email, ADMIN_PASSWORD).user_id == admin_user.id


def test_an_api_key_cannot_set_its_own_accounts_password(
    core: UserCore, admin: Principal, admin_user: User
) -> None:
    _, key = core.api_keys.create(admin, admin_user.id, name="ci")
    as_key = core.auth.authenticate_api_key(key)
    with pytest.raises(ReauthenticationRequired):
        core.users.set_password(as_key, admin_user.id, TAKEN)
    assert login_principal(core, admin_user.email, ADMIN_PASSWORD).user_id == admin_user.id


def test_a_fresh_administrator_still_sets_passwords(
    core: UserCore, admin: Principal, admin_user: User, ada: User, clock: FakeClock
) -> None:
    core.users.set_password(admin, admin_user.id, "a brand new admin passphrase")
    # Someone else's password stays an administrator's job, fresh or not.
    clock.advance(minutes=STALE)
    core.users.set_password(admin, ada.id, "reset by the administrator")
    assert core.users.get(SYSTEM, ada.id).id == ada.id
