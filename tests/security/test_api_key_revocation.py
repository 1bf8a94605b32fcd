"""API keys die with the sessions on every credential change (issue 12 item 9).

A key minted with a stolen token must not survive the owner's recovery:
sign-out everywhere, password reset, an administrator's ``set_password``,
deactivation (and later reactivation) and a voluntary password change all
revoke the user's API keys (OWASP ASVS 4.0.3 V3.3.3, V2.5.x; RFC 9700 §4.14).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from usercore import SYSTEM, Principal, TokenError, User, UserCore

from ..services.conftest import PASSWORD

NEW = "a completely new passphrase"


def _reset(core: UserCore, ada: User, admin: Principal) -> None:
    token = core.auth.request_password_reset(ada.email)
    assert token is not None
    core.auth.reset_password(token, NEW)


def _deactivate_and_back(core: UserCore, ada: User, admin: Principal) -> None:
    core.users.set_status(admin, ada.id, "inactive")
    core.users.set_status(admin, ada.id, "active")


CHANGES: dict[str, Callable[[UserCore, User, Principal], None]] = {
    "logout_all": lambda core, ada, admin: core.auth.logout_all(admin, ada.id),
    "password reset": _reset,
    "admin set_password": lambda core, ada, admin: core.users.set_password(admin, ada.id, NEW),
    "deactivation then reactivation": _deactivate_and_back,
    "voluntary password change": lambda core, ada, admin: core.users.change_password(
        SYSTEM, ada.id, current_password=PASSWORD, new_password=NEW
    ),
}


@pytest.mark.parametrize("how", sorted(CHANGES))
def test_a_credential_change_revokes_every_api_key(
    core: UserCore, ada: User, admin: Principal, how: str
) -> None:
    _, key = core.api_keys.create(SYSTEM, ada.id, name="minted with a stolen token")
    assert ada.id == core.auth.authenticate_api_key(key).user_id
    CHANGES[how](core, ada, admin)
    with pytest.raises(TokenError):
        core.auth.authenticate_api_key(key)
    assert all(record.revoked_at is not None for record in core.api_keys.list(SYSTEM, ada.id))
