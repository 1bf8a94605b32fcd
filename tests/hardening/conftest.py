"""Fixtures of the hardening suite: the facade fixtures of ``tests/services``
(one ``UserCore`` per test on each store, a fake clock, cheap argon2) and a
populated ``world`` to aim arbitrary input at."""

from __future__ import annotations

import attrs
import pytest

from tests.services.conftest import *  # noqa: F403
from tests.services.conftest import ADMIN_PASSWORD, PASSWORD
from usercore import SYSTEM, Principal, User, UserCore


@pytest.fixture(params=["memory", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The property suites run on the two in-process stores (DESIGN's issue asks
    memory and SQLite); PostgreSQL runs the contract and facade suites."""
    return str(request.param)


@attrs.frozen(kw_only=True)
class World:
    """A store with a few accounts, a custom role, live and spent secrets."""

    core: UserCore
    store_kind: str
    ada: User
    admin: User
    principals: tuple[Principal, ...]
    user_ids: tuple[int, ...]
    key_ids: tuple[int, ...]
    role_names: tuple[str, ...]
    emails: tuple[str, ...]
    passwords: tuple[str, ...]
    tokens: tuple[str, ...]


@pytest.fixture
def world(core: UserCore, store_kind: str) -> World:
    ada = core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    admin = core.users.create(
        SYSTEM, email="root@example.com", password=ADMIN_PASSWORD, roles=["admin"]
    )
    gone = core.users.register(email="gone@example.com", password=PASSWORD)
    core.users.delete(SYSTEM, gone.id)
    core.roles.create(SYSTEM, "editor", permissions=["users:read"], inherits=["user"])
    admin_pair = core.auth.login("root@example.com", ADMIN_PASSWORD)
    first = core.auth.login("ada", PASSWORD)
    second = core.auth.refresh(first.refresh_token)  # first.refresh_token is now spent
    key, key_text = core.api_keys.create(SYSTEM, ada.id, name="ci", scopes=["users:read:own"])
    reset = core.auth.request_password_reset("ada@example.com")
    verify = core.auth.request_email_verification(SYSTEM, ada.id)
    assert reset is not None
    principals = (
        SYSTEM,
        core.auth.authenticate(admin_pair.access_token),
        core.auth.authenticate(second.access_token),
        core.auth.authenticate_api_key(key_text),
    )
    return World(
        core=core,
        store_kind=store_kind,
        ada=ada,
        admin=admin,
        principals=principals,
        user_ids=(ada.id, admin.id, gone.id),
        key_ids=(key.id,),
        role_names=("admin", "user", "editor"),
        emails=("ada@example.com", "ADA@Example.COM", "root@example.com", "gone@example.com"),
        passwords=(PASSWORD, ADMIN_PASSWORD),
        tokens=(
            admin_pair.access_token,
            first.access_token,
            first.refresh_token,
            second.access_token,
            second.refresh_token,
            key_text,
            reset,
            verify,
        ),
    )
