"""The whole auth scenario through ``AsyncUserCore``, with the errors the sync core raises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.services.conftest import ADMIN_PASSWORD, PASSWORD
from usercore import (
    SYSTEM,
    AccountLocked,
    ConflictError,
    InvalidCredentials,
    NotFoundError,
    PermissionDenied,
    TokenError,
    UsercoreError,
    ValidationError,
)
from usercore.aio import AsyncUserCore

pytestmark = pytest.mark.anyio


def _shape(exc: UsercoreError) -> tuple[type[UsercoreError], dict[str, Any], str]:
    return type(exc), exc.to_dict(), str(exc)


async def raises_as_sync(
    expected: type[UsercoreError],
    call_async: Callable[[], Awaitable[object]],
    call_sync: Callable[[], object],
) -> UsercoreError:
    """The awaited call raises exactly what the synchronous call raises (class, code,
    message, details), and that is ``expected``."""
    with pytest.raises(expected) as sync_error:
        call_sync()
    with pytest.raises(expected) as async_error:
        await call_async()
    assert _shape(sync_error.value) == _shape(async_error.value)
    return async_error.value


async def test_the_auth_scenario_runs_end_to_end(acore: AsyncUserCore) -> None:
    sync = acore.sync
    ada = await acore.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    assert ada.roles == frozenset({"user"})

    await raises_as_sync(
        ConflictError,
        lambda: acore.users.register(email="ada@example.com", password=PASSWORD),
        lambda: sync.users.register(email="ada@example.com", password=PASSWORD),
    )
    invalid = await raises_as_sync(
        ValidationError,
        lambda: acore.users.register(email="not an email", password="short"),
        lambda: sync.users.register(email="not an email", password="short"),
    )
    assert set(invalid.to_dict()["details"]) >= {"email", "password"}

    pair = await acore.auth.login("ada", PASSWORD)
    principal = await acore.auth.authenticate(pair.access_token)
    assert principal.user_id == ada.id
    await raises_as_sync(
        InvalidCredentials,
        lambda: acore.auth.login("ada", "wrong password, quite long"),
        lambda: sync.auth.login("ada", "wrong password, quite long"),
    )
    await raises_as_sync(
        InvalidCredentials,
        lambda: acore.auth.login("nobody@example.com", PASSWORD),
        lambda: sync.auth.login("nobody@example.com", PASSWORD),
    )
    await raises_as_sync(
        TokenError,
        lambda: acore.auth.authenticate("not.a.token"),
        lambda: sync.auth.authenticate("not.a.token"),
    )

    me = await acore.users.get(principal, ada.id)
    assert me.email == "ada@example.com"
    renamed = await acore.users.update(principal, ada.id, name="Ada Lovelace")
    assert renamed.name == "Ada Lovelace"
    assert (await acore.users.get(principal, ada.id)).name == "Ada Lovelace"
    await raises_as_sync(
        PermissionDenied,
        lambda: acore.users.get(principal, ada.id + 1000),
        lambda: sync.users.get(principal, ada.id + 1000),
    )
    await raises_as_sync(
        NotFoundError,
        lambda: acore.users.get(SYSTEM, ada.id + 1000),
        lambda: sync.users.get(SYSTEM, ada.id + 1000),
    )

    renewed = await acore.auth.refresh(pair.refresh_token)
    assert renewed.refresh_token != pair.refresh_token
    # The spent refresh token is a replay now; the sync core says the same.
    await raises_as_sync(
        TokenError,
        lambda: acore.auth.refresh(pair.refresh_token),
        lambda: sync.auth.refresh(pair.refresh_token),
    )

    await acore.auth.logout(renewed.access_token, renewed.refresh_token)
    await raises_as_sync(
        TokenError,
        lambda: acore.auth.authenticate(renewed.access_token),
        lambda: sync.auth.authenticate(renewed.access_token),
    )


async def test_roles_permissions_and_api_keys(acore: AsyncUserCore) -> None:
    sync = acore.sync
    await acore.users.create(
        SYSTEM, email="root@example.com", password=ADMIN_PASSWORD, roles=["admin"]
    )
    admin = await acore.auth.authenticate(
        (await acore.auth.login("root@example.com", ADMIN_PASSWORD)).access_token
    )
    ada = await acore.users.register(email="ada@example.com", password=PASSWORD)
    ada_p = await acore.auth.authenticate(
        (await acore.auth.login("ada@example.com", PASSWORD)).access_token
    )

    permission = await acore.permissions.register("reports:read", "Read the reports")
    assert permission.name in {p.name for p in await acore.permissions.list()}
    role = await acore.roles.create(admin, "analyst", permissions=["reports:read"])
    assert role.permissions == frozenset({"reports:read"})
    assert "analyst" in {r.name for r in await acore.roles.list(admin)}
    await raises_as_sync(
        ConflictError,
        lambda: acore.roles.create(admin, "analyst"),
        lambda: sync.roles.create(admin, "analyst"),
    )
    await raises_as_sync(
        PermissionDenied,
        lambda: acore.roles.create(ada_p, "mine"),
        lambda: sync.roles.create(ada_p, "mine"),
    )

    assert not acore.policy.is_allowed(ada_p, "reports:read")
    await acore.users.assign_roles(admin, ada.id, ["user", "analyst"])
    analyst = await acore.auth.authenticate(
        (await acore.auth.login("ada@example.com", PASSWORD)).access_token
    )
    assert acore.policy.is_allowed(analyst, "reports:read")

    record, key = await acore.api_keys.create(analyst, ada.id, name="cron", scopes=["reports:read"])
    by_key = await acore.auth.authenticate_api_key(key)
    assert by_key.user_id == ada.id
    assert by_key.scopes == frozenset({"reports:read"})
    assert [k.id for k in await acore.api_keys.list(analyst, ada.id)] == [record.id]
    await raises_as_sync(
        ValidationError,
        lambda: acore.api_keys.create(analyst, ada.id, name=""),
        lambda: sync.api_keys.create(analyst, ada.id, name=""),
    )
    await acore.api_keys.revoke(analyst, record.id)
    await raises_as_sync(
        TokenError,
        lambda: acore.auth.authenticate_api_key(key),
        lambda: sync.auth.authenticate_api_key(key),
    )

    await acore.roles.set_permissions(admin, "analyst", [])
    assert not acore.policy.is_allowed(analyst, "reports:read")
    await acore.roles.delete(admin, "analyst", force=True)
    await raises_as_sync(
        NotFoundError,
        lambda: acore.roles.get(admin, "analyst"),
        lambda: sync.roles.get(admin, "analyst"),
    )


async def test_a_lock_is_the_same_error_as_in_the_sync_core(acore: AsyncUserCore) -> None:
    await acore.users.register(email="ada@example.com", password=PASSWORD)
    for _ in range(acore.settings.lockout_threshold):
        with pytest.raises(InvalidCredentials):
            await acore.auth.login("ada@example.com", "wrong password, quite long")
    locked = await raises_as_sync(
        AccountLocked,
        lambda: acore.auth.login("ada@example.com", PASSWORD),
        lambda: acore.sync.auth.login("ada@example.com", PASSWORD),
    )
    assert locked.to_dict()["details"]["retry_after"] > 0


async def test_iter_all_is_an_async_iterator_over_every_user(acore: AsyncUserCore) -> None:
    emails = [f"user{i}@example.com" for i in range(205)]
    await acore.users.import_users(SYSTEM, [{"email": e, "password": PASSWORD} for e in emails])
    seen = [user.email async for user in acore.users.iter_all(SYSTEM, batch=7)]
    assert seen == [u.email for u in acore.sync.users.iter_all(SYSTEM)]
    assert set(emails) <= set(seen)


async def test_leaving_iter_all_early_closes_the_sync_generator(acore: AsyncUserCore) -> None:
    for i in range(3):
        await acore.users.register(email=f"u{i}@example.com", password=PASSWORD)
    iterator = acore.users.iter_all(SYSTEM)
    first = await iterator.__anext__()
    await iterator.aclose()
    assert first.email == "u0@example.com"


async def test_events_and_purge_pass_through(acore: AsyncUserCore) -> None:
    seen: list[str] = []
    unsubscribe = acore.events.subscribe(lambda event: seen.append(event.name))
    await acore.users.register(email="ada@example.com", password=PASSWORD)
    unsubscribe()
    assert seen == ["user.registered"]
    assert await acore.purge_expired() >= 0
