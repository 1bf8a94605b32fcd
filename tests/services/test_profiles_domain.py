"""What the API documents need of the domain (issue 15 item 2), on every store:
accounts identified by their username alone, and a password set through an
ordinary user update."""

from __future__ import annotations

import pytest

from usercore import (
    SYSTEM,
    InvalidCredentials,
    PermissionDenied,
    Principal,
    TokenError,
    User,
    UserCore,
    ValidationError,
)
from usercore.errors import ReauthenticationRequired
from usercore.services.events import Event

from .conftest import ADMIN_PASSWORD, PASSWORD, FakeClock, login_principal

NEW_PASSWORD = "a brand new passphrase 7"


def test_an_account_needs_no_email_when_it_has_a_username(core: UserCore) -> None:
    user = core.users.register(username="grace", password=PASSWORD)
    assert user.email is None
    assert user.to_public()["email"] is None
    assert core.auth.login("GRACE", PASSWORD).access_token
    # Many accounts without an email: a missing address is nobody's duplicate.
    assert core.users.register(username="linus", password=PASSWORD).email is None


def test_an_account_needs_an_email_or_a_username(core: UserCore) -> None:
    with pytest.raises(ValidationError) as raised:
        core.users.register(password=PASSWORD)
    assert {"email": ["is required"]} == raised.value.errors
    with pytest.raises(ValidationError):
        core.users.create(SYSTEM, password=PASSWORD, username=None)
    assert core.users.list(SYSTEM, page=1).total == 0


def test_an_administrator_creates_a_username_only_account(core: UserCore, admin: Principal) -> None:
    user = core.users.create(admin, username="svc-report", password=PASSWORD, roles=["user"])
    assert (user.email, user.username) == (None, "svc-report")
    assert core.users.get(admin, user.id) == user


def test_an_administrator_sets_a_password_with_an_update(
    core: UserCore, admin: Principal, ada: User, events: list[Event]
) -> None:
    session = core.auth.login("ada", PASSWORD)
    saved = core.users.update(admin, ada.id, name="Ada", password=NEW_PASSWORD)
    assert saved.name == "Ada"
    assert core.auth.login("ada", NEW_PASSWORD).access_token
    with pytest.raises(InvalidCredentials):
        core.auth.login("ada", PASSWORD)
    with pytest.raises(TokenError):  # every session of the account ended
        core.auth.authenticate(session.access_token)
    assert "password.reset" in [event.name for event in events]


def test_a_refused_password_changes_nothing(core: UserCore, admin: Principal, ada: User) -> None:
    with pytest.raises(ValidationError) as raised:
        core.users.update(admin, ada.id, name="Ada", password="short")
    assert "password" in raised.value.errors
    stored = core.users.get(SYSTEM, ada.id)
    assert (stored.name, stored.password_hash) == (ada.name, ada.password_hash)


def test_users_set_no_one_elses_password(
    core: UserCore, ada_p: Principal, bob: User, admin_user: User
) -> None:
    with pytest.raises(PermissionDenied):
        core.users.update(ada_p, bob.id, password=NEW_PASSWORD)
    assert core.auth.login("bob", PASSWORD).access_token


def test_an_update_cannot_set_a_more_privileged_accounts_password(
    core: UserCore, admin_user: User, ada: User
) -> None:
    # The delegation rule of set_password: users:update reaches peers, not the admin.
    core.roles.create(SYSTEM, "helpdesk", permissions=["users:update"])
    core.users.create(SYSTEM, username="helpdesk", password=PASSWORD, roles=["user", "helpdesk"])
    helpdesk = login_principal(core, "helpdesk")
    with pytest.raises(PermissionDenied):
        core.users.update(helpdesk, admin_user.id, password=NEW_PASSWORD)
    assert core.auth.login("root@example.com", ADMIN_PASSWORD).access_token
    core.users.update(helpdesk, ada.id, password=NEW_PASSWORD)  # a peer is fine
    assert core.auth.login("ada", NEW_PASSWORD).access_token


def test_ones_own_password_needs_fresh_authentication(
    core: UserCore, ada: User, ada_p: Principal, clock: FakeClock
) -> None:
    clock.advance(minutes=6)  # past the default five-minute window
    with pytest.raises(ReauthenticationRequired):
        core.users.update(ada_p, ada.id, password=NEW_PASSWORD)
    core.users.update(ada_p, ada.id, password=NEW_PASSWORD, current_password=PASSWORD)
    assert core.auth.login("ada", NEW_PASSWORD).access_token


def test_an_account_without_an_email_gets_no_verification_token(core: UserCore) -> None:
    core.users.register(username="grace", password=PASSWORD)
    grace = login_principal(core, "grace")
    assert grace.user_id is not None
    with pytest.raises(ValidationError) as raised:
        core.auth.request_email_verification(grace, grace.user_id)
    assert "email" in raised.value.errors
