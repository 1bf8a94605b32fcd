"""Checked by ``mypy --strict`` (tests/aio/test_typing.py), never run.

Each ``assert_type`` pins a signature the async API derives from the sync one;
each ``type: ignore[code]`` must be needed (strict mode reports unused
ignores), so it proves that mypy rejects the call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from typing_extensions import assert_type

from usercore import ApiKey, Page, Principal, Role, TokenPair, User
from usercore.aio import AsyncUserCore, authenticate
from usercore.aio import _AsyncService as AsyncService
from usercore.aio import _InPool as InPool
from usercore.web.fastapi import AsyncAuth


async def services(core: AsyncUserCore, actor: Principal) -> None:
    assert_type(await core.users.register(email="a@example.com", password="p"), User)
    assert_type(await core.users.get(actor, 1), User)
    assert_type(await core.users.update(actor, 1, name="Ada"), User)
    assert_type(await core.users.list(actor, per_page=10), Page[User])
    assert_type(core.users.iter_all(actor, batch=10), AsyncIterator[User])
    assert_type(await core.auth.login("ada", "p"), TokenPair)
    assert_type(await core.auth.authenticate("token"), Principal)
    assert_type(await core.auth.logout("access", "refresh"), None)
    assert_type(await core.auth.request_password_reset("a@example.com"), str | None)
    assert_type(await core.roles.create(actor, "analyst", permissions=["x:read"]), Role)
    assert_type(await core.roles.list(actor), list[Role])
    assert_type(await core.api_keys.create(actor, 1, name="cron"), tuple[ApiKey, str])
    assert_type(await core.purge_expired(), int)
    assert_type(core.policy.is_allowed(actor, "x:read"), bool)
    assert_type(await core.run(len, "abc"), int)
    assert_type(await authenticate(core, {"authorization": "Bearer x"}), Principal | None)


async def rejected(core: AsyncUserCore, actor: Principal) -> None:
    await core.users.get(actor, "1")  # type: ignore[arg-type]
    await core.auth.login("ada")  # type: ignore[call-arg]
    await core.users.register(email="a@example.com", password="p", nickname="x")  # type: ignore[call-arg]
    await core.roles.delete(actor, "analyst", force="yes")  # type: ignore[arg-type]
    token: str = await core.auth.login("ada", "p")  # type: ignore[assignment]
    unawaited = core.auth.login("ada", "p").access_token  # type: ignore[attr-defined]
    await core.run(len, 3)  # type: ignore[arg-type]
    await authenticate(core.sync, {})  # type: ignore[arg-type]
    await authenticate(core, 42)  # type: ignore[arg-type]
    del token, unawaited


def dependencies(core: AsyncUserCore) -> None:
    auth = AsyncAuth(core, prefix="/api", sessions=None)
    assert_type(auth.core, AsyncUserCore)
    assert_type(auth.principal, Callable[..., Awaitable[Principal]])
    assert_type(auth.optional_principal, Callable[..., Awaitable[Principal | None]])
    assert_type(auth.require("x:read", owner="user_id"), Callable[..., Awaitable[Principal]])
    auth.require("x:read", owner=lambda params: int(params["user_id"]))
    AsyncAuth(core.sync)  # type: ignore[arg-type]
    auth.require("x:read", owner=3)  # type: ignore[arg-type]


class Greeter:
    """A service whose method gains a keyword argument: its twin follows unedited."""

    def greet(self, name: str, *, loud: bool = False) -> str:
        return name.upper() if loud else name


class AsyncGreeter(AsyncService[Greeter]):
    greet = InPool(Greeter.greet)


async def derived(greeter: AsyncGreeter) -> None:
    assert_type(await greeter.greet("ada", loud=True), str)
    await greeter.greet("ada", loud="yes")  # type: ignore[arg-type]
    await greeter.greet("ada", quiet=True)  # type: ignore[call-arg]
