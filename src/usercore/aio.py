"""The async API: :class:`AsyncUserCore` runs the synchronous core in a bounded worker pool.

Every service method of :class:`~usercore.UserCore` has an ``async`` twin of
the same name, parameters, return value and errors::

    core = await AsyncUserCore.open("sqlite:///users.db", settings=settings)
    pair = await core.auth.login("ada@example.com", password)
    principal = await core.auth.authenticate(pair.access_token)

A call hands the synchronous method to a worker thread (``anyio.to_thread``)
limited by one :class:`anyio.CapacityLimiter` per facade, so password hashing
and store I/O never block the event loop and at most ``max_workers`` of them
run at once.  Policy checks (``core.policy``) and ``core.events`` stay
synchronous and run inline: see ``docs/async.md`` for which and why.

Needs ``anyio`` (it comes with FastAPI and Starlette; otherwise
``pip install 'usercore[async]'``).  ``import usercore`` never imports it.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

try:
    import anyio
    import anyio.to_thread
except ModuleNotFoundError as exc:
    if exc.name is not None and exc.name.split(".")[0] == "anyio":
        raise ImportError(
            "usercore.aio needs anyio: pip install 'usercore[async]' "
            "(FastAPI and Starlette already bring it)"
        ) from exc
    raise

from usercore.domain import Principal, User
from usercore.policy import Policy
from usercore.ports import Clock, Store
from usercore.services import UserCore
from usercore.services.api_keys import ApiKeyService
from usercore.services.auth import AuthService
from usercore.services.events import EventBus
from usercore.services.roles import PermissionService, RoleService
from usercore.services.users import MAX_PER_PAGE, UserChanges, UserService
from usercore.settings import Settings
from usercore.web._core import authenticate as _authenticate_headers

if TYPE_CHECKING:
    # typing.Unpack is Python 3.11+; it appears in annotations only.
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_MAX_WORKERS",
    "AsyncApiKeyService",
    "AsyncAuthService",
    "AsyncPermissionService",
    "AsyncRoleService",
    "AsyncUserCore",
    "AsyncUserService",
    "authenticate",
]

# The sizing rule of concurrent.futures.ThreadPoolExecutor: enough threads to
# keep every core busy hashing (argon2 releases the GIL) plus a few waiting on
# the store, capped so argon2's memory (64 MiB a hash with the default
# RFC 9106 low-memory profile) stays bounded: 32 x 64 MiB = 2 GiB at most.
DEFAULT_MAX_WORKERS = min(32, (os.cpu_count() or 1) + 4)

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class _WorkerPool:
    """One capacity limiter shared by every call of one facade."""

    def __init__(self, max_workers: int) -> None:
        if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
            raise ValueError("max_workers must be a positive integer")
        self.max_workers = max_workers
        # Made on first use, inside the event loop: older anyio releases cannot
        # build a limiter outside one.
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_workers)
        return self._limiter

    async def run(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        # abandon_on_cancel stays False: a cancelled caller waits until the
        # thread finishes, so the synchronous call (one transaction) either
        # commits whole or rolls back, and the worker slot is returned.
        return await anyio.to_thread.run_sync(
            functools.partial(func, *args, **kwargs), limiter=self.limiter
        )


class _AsyncService(Generic[S]):
    """An async face on one synchronous service; ``sync`` is the service itself."""

    def __init__(self, sync: S, pool: _WorkerPool) -> None:
        self.sync = sync
        self._pool = pool

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sync!r})"


class _Twin(Generic[S, P, R]):
    """What an async twin of a synchronous method knows: the method, typed.

    Typed from the method itself, so a parameter added on the synchronous side
    is accepted (and checked by mypy) by the twin without an edit.  The twin
    calls the method looked up on the wrapped instance, so subclasses and
    overrides are honoured.
    """

    def __init__(self, method: Callable[Concatenate[S, P], R]) -> None:
        self._name: str = getattr(method, "__name__", "")
        self.__doc__ = method.__doc__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        if name != self._name:
            raise TypeError(f"{owner.__name__}.{name} mirrors {self._name!r}: use the same name")

    def _method_of(self, obj: _AsyncService[S]) -> Callable[P, R]:
        method: Callable[P, R] = getattr(obj.sync, self._name)
        return method

    def _keep(self, obj: _AsyncService[S], twin: Any) -> None:
        # Bound once: the instance attribute now shadows this (non-data) descriptor.
        obj.__dict__[self._name] = twin


class _InPool(_Twin[S, P, R]):
    """``name = _InPool(Service.name)``: a coroutine function running the method in the pool."""

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> _InPool[S, P, R]: ...

    @overload
    def __get__(
        self, obj: _AsyncService[S], owner: type[Any] | None = None
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    def __get__(
        self, obj: _AsyncService[S] | None, owner: type[Any] | None = None
    ) -> _InPool[S, P, R] | Callable[P, Coroutine[Any, Any, R]]:
        if obj is None:
            return self
        method = self._method_of(obj)
        pool = obj._pool

        @functools.wraps(method)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return await pool.run(method, *args, **kwargs)

        self._keep(obj, call)
        return call


class _IterInPool(_Twin[S, P, Iterator[T]]):
    """``name = _IterInPool(Service.name)``: a synchronous generator as an async iterator.

    The synchronous iterator advances in the worker pool, ``MAX_PER_PAGE``
    items per trip, so the loop never waits on the store.
    """

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> _IterInPool[S, P, T]: ...

    @overload
    def __get__(
        self, obj: _AsyncService[S], owner: type[Any] | None = None
    ) -> Callable[P, AsyncIterator[T]]: ...

    def __get__(
        self, obj: _AsyncService[S] | None, owner: type[Any] | None = None
    ) -> _IterInPool[S, P, T] | Callable[P, AsyncIterator[T]]:
        if obj is None:
            return self
        method = self._method_of(obj)
        pool = obj._pool

        @functools.wraps(method)
        async def iterate(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            # Building the generator runs none of its body: no I/O here.
            items = method(*args, **kwargs)
            try:
                while True:
                    chunk = await pool.run(_take, items, MAX_PER_PAGE)
                    for item in chunk:
                        yield item
                    if len(chunk) < MAX_PER_PAGE:
                        return
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()  # a suspended generator closes without I/O

        self._keep(obj, iterate)
        return iterate


def _take(items: Iterator[T], count: int) -> list[T]:
    return list(itertools.islice(items, count))


class AsyncUserService(_AsyncService[UserService]):
    """``core.users`` of :class:`AsyncUserCore`: :class:`UserService`, awaited."""

    register = _InPool(UserService.register)
    invite = _InPool(UserService.invite)
    create = _InPool(UserService.create)
    get = _InPool(UserService.get)
    get_by_email = _InPool(UserService.get_by_email)
    list = _InPool(UserService.list)
    iter_all = _IterInPool(UserService.iter_all)

    async def update(
        self,
        actor: Principal,
        user_id: int,
        *,
        current_password: str | None = None,
        client: str | None = None,
        **changes: Unpack[UserChanges],
    ) -> User:
        # Spelled out: with ``**changes`` and a ``self`` that is not
        # positional-only, mypy cannot split ``self`` off with Concatenate.
        # The twin test fails when this drifts from UserService.update.
        return await self._pool.run(
            self.sync.update,
            actor,
            user_id,
            current_password=current_password,
            client=client,
            **changes,
        )

    update.__doc__ = UserService.update.__doc__

    change_password = _InPool(UserService.change_password)
    set_password = _InPool(UserService.set_password)
    set_status = _InPool(UserService.set_status)
    assign_roles = _InPool(UserService.assign_roles)
    delete = _InPool(UserService.delete)
    import_users = _InPool(UserService.import_users)


class AsyncRoleService(_AsyncService[RoleService]):
    """``core.roles`` of :class:`AsyncUserCore`: :class:`RoleService`, awaited."""

    create = _InPool(RoleService.create)
    get = _InPool(RoleService.get)
    list = _InPool(RoleService.list)
    update = _InPool(RoleService.update)
    set_permissions = _InPool(RoleService.set_permissions)
    delete = _InPool(RoleService.delete)


class AsyncPermissionService(_AsyncService[PermissionService]):
    """``core.permissions`` of :class:`AsyncUserCore`: :class:`PermissionService`, awaited."""

    list = _InPool(PermissionService.list)
    register = _InPool(PermissionService.register)


class AsyncAuthService(_AsyncService[AuthService]):
    """``core.auth`` of :class:`AsyncUserCore`: :class:`AuthService`, awaited."""

    login = _InPool(AuthService.login)
    authenticate = _InPool(AuthService.authenticate)
    authenticate_api_key = _InPool(AuthService.authenticate_api_key)
    refresh = _InPool(AuthService.refresh)
    logout = _InPool(AuthService.logout)
    logout_all = _InPool(AuthService.logout_all)
    request_password_reset = _InPool(AuthService.request_password_reset)
    reset_password = _InPool(AuthService.reset_password)
    request_email_verification = _InPool(AuthService.request_email_verification)
    verify_email = _InPool(AuthService.verify_email)
    reset_recipient = _InPool(AuthService.reset_recipient)
    may_resend_verification = _InPool(AuthService.may_resend_verification)


class AsyncApiKeyService(_AsyncService[ApiKeyService]):
    """``core.api_keys`` of :class:`AsyncUserCore`: :class:`ApiKeyService`, awaited."""

    create = _InPool(ApiKeyService.create)
    list = _InPool(ApiKeyService.list)
    revoke = _InPool(ApiKeyService.revoke)


class AsyncUserCore(_AsyncService[UserCore]):
    """:class:`~usercore.UserCore` for ``async`` code: ``core.users``, ``core.roles``,
    ``core.permissions``, ``core.auth``, ``core.api_keys`` (awaitable),
    ``core.policy`` and ``core.events`` (the synchronous ones, inline).

    Build it with ``await AsyncUserCore.open(url, settings=...)`` or around an
    existing facade, ``AsyncUserCore(core)``; ``await core.aclose()`` (or
    ``async with``) closes the wrapped facade.  ``max_workers`` bounds how many
    calls run at once (default :data:`DEFAULT_MAX_WORKERS`); further calls wait
    for a free worker without blocking the loop.  ``core.sync`` is the wrapped
    :class:`~usercore.UserCore`, for code that runs in a thread already.
    """

    def __init__(self, core: UserCore, *, max_workers: int | None = None) -> None:
        if not isinstance(core, UserCore):
            raise TypeError("AsyncUserCore wraps a UserCore; use AsyncUserCore.open(url) for a URL")
        super().__init__(
            core, _WorkerPool(DEFAULT_MAX_WORKERS if max_workers is None else max_workers)
        )
        self.users = AsyncUserService(core.users, self._pool)
        self.roles = AsyncRoleService(core.roles, self._pool)
        self.permissions = AsyncPermissionService(core.permissions, self._pool)
        self.auth = AsyncAuthService(core.auth, self._pool)
        self.api_keys = AsyncApiKeyService(core.api_keys, self._pool)
        # Inline on purpose: a check reads an immutable compiled table in
        # microseconds; see docs/async.md for the one store probe it may make.
        self.policy: Policy = core.policy
        self.events: EventBus = core.events

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        max_workers: int | None = None,
    ) -> AsyncUserCore:
        """Open a store by URL (as :meth:`UserCore.open`, in a worker thread: opening
        connects, creates tables and hashes once) and wrap the facade."""
        pool = _WorkerPool(DEFAULT_MAX_WORKERS if max_workers is None else max_workers)
        core = await pool.run(UserCore.open, url, settings=settings, clock=clock)
        return cls(core, max_workers=pool.max_workers)

    @property
    def settings(self) -> Settings:
        return self.sync.settings

    @property
    def store(self) -> Store:
        return self.sync.store

    @property
    def max_workers(self) -> int:
        """How many synchronous calls may run at once."""
        return self._pool.max_workers

    async def run(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``await core.run(func, *args, **kwargs)``: any synchronous callable in this
        facade's worker pool (e.g. a batch of calls on ``core.sync`` that should
        share one trip to a thread)."""
        return await self._pool.run(func, *args, **kwargs)

    purge_expired = _InPool(UserCore.purge_expired)

    async def aclose(self) -> None:
        """Close the wrapped facade (its store) in a worker thread."""
        await self._pool.run(self.sync.close)

    async def __aenter__(self) -> AsyncUserCore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncUserCore({self.sync!r}, max_workers={self.max_workers})"

    def __getstate__(self) -> Any:
        raise TypeError("AsyncUserCore cannot be pickled (it holds connections and keys)")


def _on_core(
    func: Callable[Concatenate[UserCore, P], R],
) -> Callable[Concatenate[AsyncUserCore, P], Coroutine[Any, Any, R]]:
    """``f(core, ...)`` on a :class:`UserCore` as ``await f(acore, ...)`` in the
    pool, typed from ``func`` so its parameters flow through unedited."""

    async def call(core: AsyncUserCore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await core.run(func, core.sync, *args, **kwargs)

    call.__name__ = call.__qualname__ = func.__name__
    return call


authenticate = _on_core(_authenticate_headers)
authenticate.__doc__ = """``await authenticate(core, headers)``: the principal a request's
credentials stand for, ``None`` when it has none; the web layer's ``authenticate``
run in the worker pool (a token check reads the store for revocations).

``Authorization: Bearer <jwt>`` is an access token; ``Bearer uc_…`` and
``X-API-Key`` are API keys.  Raises ``AuthenticationError`` for a malformed
header and ``TokenError`` for credentials that are present but not valid,
exactly as the synchronous function does.  The building block of async web
dependencies: ``await authenticate(core, request.headers)``.
"""
