"""Session termination.

OWASP ASVS 4.0.3 V3.3.1 (logout invalidates the session), V3.3.3 (an option to
end every other session after a password change; we end all of them), V3.3.4
(users can see and end their sessions: ``logout_all``), and V2.5.x: an
administrator's reset, deactivation and deletion end every session and key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from usercore import Principal, TokenError, TokenPair, User, UserCore

from ..services.conftest import PASSWORD


def sessions(core: UserCore, n: int = 2) -> list[TokenPair]:
    return [core.auth.login("ada", PASSWORD) for _ in range(n)]


def assert_all_dead(core: UserCore, pairs: list[TokenPair], keys: Sequence[str] = ()) -> None:
    for pair in pairs:
        with pytest.raises(TokenError):
            core.auth.authenticate(pair.access_token)
        with pytest.raises(TokenError):
            core.auth.refresh(pair.refresh_token)
    for key in keys:
        with pytest.raises(TokenError):
            core.auth.authenticate_api_key(key)


def test_logout_ends_that_session_and_only_that_one(core: UserCore, ada: User) -> None:
    mine, other = sessions(core)
    core.auth.logout(mine.access_token, mine.refresh_token)
    assert_all_dead(core, [mine])
    assert ada.id == core.auth.authenticate(other.access_token).user_id


TERMINATIONS: dict[str, Callable[[UserCore, User, Principal, Principal], None]] = {
    "password change": lambda core, ada, me, admin: core.users.change_password(
        me, ada.id, current_password=PASSWORD, new_password="a different passphrase"
    ),
    "admin password reset": lambda core, ada, me, admin: core.users.set_password(
        admin, ada.id, "set by an administrator"
    ),
    "deactivation": lambda core, ada, me, admin: core.users.set_status(admin, ada.id, "inactive"),
    "deletion": lambda core, ada, me, admin: core.users.delete(admin, ada.id),
    "logout everywhere": lambda core, ada, me, admin: core.auth.logout_all(me, ada.id),
}


@pytest.mark.parametrize("how", sorted(TERMINATIONS))
def test_every_session_ends(core: UserCore, ada: User, admin: Principal, how: str) -> None:
    pairs = sessions(core, 3)
    me = core.auth.authenticate(pairs[0].access_token)
    TERMINATIONS[how](core, ada, me, admin)
    assert_all_dead(core, pairs)


@pytest.mark.parametrize("how", ["deactivation", "deletion"])
def test_api_keys_die_with_the_account(
    core: UserCore, ada: User, ada_p: Principal, admin: Principal, how: str
) -> None:
    _, key = core.api_keys.create(ada_p, ada.id, name="ci")
    TERMINATIONS[how](core, ada, ada_p, admin)
    assert_all_dead(core, [], [key])


def test_a_password_reset_by_token_ends_every_session(core: UserCore, ada: User) -> None:
    pairs = sessions(core, 2)
    token = core.auth.request_password_reset("ada@example.com")
    assert token is not None
    core.auth.reset_password(token, "a fresh new passphrase")
    assert_all_dead(core, pairs)
