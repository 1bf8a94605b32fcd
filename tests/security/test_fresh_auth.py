"""Sensitive changes need fresh authentication (issue 12 items 4 and 8).

OWASP ASVS 4.0.3 V3.7.1: changing one's own email or password, creating API
keys and changing other accounts' roles need a login within
``Settings.fresh_auth_window`` (the access token's ``auth_time``) or the
current password.  A refreshed token is not fresh, an API key never is, so a
stolen token or key cannot take the account over (reproduction: PATCH the
email, then reset, confirm and log in), and keys cannot mint keys.
"""

from __future__ import annotations

import jwt
import pytest

from usercore import (
    SYSTEM,
    AccountLocked,
    PermissionDenied,
    Principal,
    User,
    UserCore,
    ValidationError,
)
from usercore.errors import ReauthenticationRequired
from usercore.services.events import Event

from ..services.conftest import PASSWORD, FakeClock, login_principal
from ..web.clients import Client, Outbox

STALE = 6  # minutes: past the default five-minute window


def test_a_stale_session_cannot_change_its_own_email(
    core: UserCore, ada: User, ada_p: Principal, clock: FakeClock
) -> None:
    clock.advance(minutes=STALE)
    with pytest.raises(ReauthenticationRequired) as raised:
        core.users.update(ada_p, ada.id, email="attacker@evil.example")
    assert "reauthentication_required" == raised.value.code
    assert 403 == raised.value.http_status
    assert ada.email == core.users.get(SYSTEM, ada.id).email
    # Other profile fields, and the unchanged address sent back, need none.
    assert "Ada L." == core.users.update(ada_p, ada.id, name="Ada L.", email=ada.email).name


def test_the_current_password_makes_a_change_fresh(
    core: UserCore, ada: User, ada_p: Principal, clock: FakeClock
) -> None:
    clock.advance(minutes=STALE)
    saved = core.users.update(ada_p, ada.id, email="ada@new.example", current_password=PASSWORD)
    assert "ada@new.example" == saved.email


def test_a_recent_login_is_fresh(core: UserCore, ada: User, clock: FakeClock) -> None:
    principal = login_principal(core, "ada")
    clock.advance(minutes=4)
    assert "ada@new.example" == core.users.update(principal, ada.id, email="ada@new.example").email


def test_a_wrong_current_password_is_refused_and_counts_toward_lockout(
    core: UserCore, ada: User, ada_p: Principal, clock: FakeClock
) -> None:
    clock.advance(minutes=STALE)
    for _ in range(core.settings.lockout_threshold):
        with pytest.raises(ValidationError) as raised:
            core.users.update(ada_p, ada.id, email="x@evil.example", current_password="guess!")
        assert "current_password" in raised.value.errors
    with pytest.raises(AccountLocked):
        core.users.update(ada_p, ada.id, email="x@evil.example", current_password=PASSWORD)


def test_a_refreshed_token_is_not_fresh(core: UserCore, ada: User, clock: FakeClock) -> None:
    pair = core.auth.login("ada", PASSWORD)
    claims = jwt.decode(pair.access_token, options={"verify_signature": False})
    assert isinstance(claims["auth_time"], int)
    refreshed = core.auth.refresh(pair.refresh_token)
    assert "auth_time" not in jwt.decode(
        refreshed.access_token, options={"verify_signature": False}
    )
    principal = core.auth.authenticate(refreshed.access_token)
    assert principal.auth_time is None
    with pytest.raises(ReauthenticationRequired):
        core.users.update(principal, ada.id, email="ada@new.example")


def test_api_key_creation_needs_fresh_authentication(
    core: UserCore, ada: User, ada_p: Principal, clock: FakeClock
) -> None:
    clock.advance(minutes=STALE)
    with pytest.raises(ReauthenticationRequired):
        core.api_keys.create(ada_p, ada.id, name="ci")
    record, _ = core.api_keys.create(ada_p, ada.id, name="ci", current_password=PASSWORD)
    assert "ci" == record.name


def test_role_changes_of_others_need_fresh_authentication(
    core: UserCore, admin: Principal, ada: User, clock: FakeClock
) -> None:
    clock.advance(minutes=STALE)
    with pytest.raises(ReauthenticationRequired):
        core.users.assign_roles(admin, ada.id, ["user", "admin"])
    assert "admin" not in core.users.get(SYSTEM, ada.id).roles


def test_an_api_key_is_never_fresh_and_cannot_mint_keys(
    core: UserCore, ada: User, ada_p: Principal
) -> None:
    """Item 8: a key with only apikeys:create:own cannot create a broader key (or any)."""
    _, key = core.api_keys.create(
        ada_p, ada.id, name="narrow", scopes=["apikeys:create:own", "users:update:own"]
    )
    principal = core.auth.authenticate_api_key(key)
    with pytest.raises(ReauthenticationRequired):
        core.api_keys.create(principal, ada.id, name="broader")
    with pytest.raises(ReauthenticationRequired):
        core.api_keys.create(principal, ada.id, name="broader", current_password=PASSWORD)
    with pytest.raises(ReauthenticationRequired):
        core.users.update(principal, ada.id, email="x@evil.example", current_password=PASSWORD)
    assert ["narrow"] == [record.name for record in core.api_keys.list(SYSTEM, ada.id)]


def test_a_scoped_principal_never_mints_an_unrestricted_key(
    core: UserCore, ada: User, ada_p: Principal
) -> None:
    """Item 8: a key's keys are bounded by its scopes (None means "its own scopes")."""
    scoped = Principal(
        user_id=ada.id,
        roles=ada_p.roles,
        scopes=frozenset({"apikeys:create:own", "users:read:own"}),
        auth_time=ada_p.auth_time,
    )
    record, _ = core.api_keys.create(scoped, ada.id, name="child")
    assert {"apikeys:create:own", "users:read:own"} == record.scopes
    with pytest.raises(PermissionDenied):
        core.api_keys.create(scoped, ada.id, name="wider", scopes=["users:update:own"])


def test_an_email_change_tells_the_old_address(
    core: UserCore, ada: User, ada_p: Principal, events: list[Event]
) -> None:
    core.users.update(ada_p, ada.id, email="ada@new.example")
    changed = [event for event in events if event.name == "user.email_changed"]
    assert 1 == len(changed)
    assert {"old_email": "ada@example.com", "new_email": "ada@new.example"} == dict(changed[0].data)


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("update_user", {"email": "attacker@evil.example"}),
        ("create_api_key", {"name": "backdoor"}),
    ],
)
def test_http_takes_the_current_password_for_a_stale_session(
    core: UserCore, ada: User, clock: FakeClock, operation: str, body: dict[str, str]
) -> None:
    """The reproduction over HTTP: PATCH /users/{id} {"email"} with a stolen,
    stale token is refused; the owner passing current_password gets through."""
    token = core.auth.login("ada", PASSWORD).access_token
    clock.advance(minutes=STALE)
    client = Client("flask", core, Outbox())

    def call(extra: dict[str, str]) -> int:
        path = f"/users/{ada.id}" + ("/api-keys" if operation == "create_api_key" else "")
        method = "POST" if operation == "create_api_key" else "PATCH"
        return client.request(method, path, json={**body, **extra}, token=token).status

    assert 403 == call({})
    assert call({"current_password": PASSWORD}) in (200, 201)
