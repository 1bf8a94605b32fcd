"""The facade users import: :class:`UserCore` wires a store to every service."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import attrs

from usercore.domain import Permission, Role
from usercore.passwords import PasswordHasher
from usercore.policy import PermissionRegistry, Policy
from usercore.ports import Clock, Store, system_clock
from usercore.services._context import Context
from usercore.services.api_keys import ApiKeyService
from usercore.services.auth import AuthService
from usercore.services.events import EventBus
from usercore.services.roles import PermissionService, RoleService, seed_builtin_roles
from usercore.services.sessions import SessionService
from usercore.services.users import UserService
from usercore.settings import Settings

__all__ = ["SUPPORTED_SCHEMES", "UserCore", "open_store"]

SUPPORTED_SCHEMES = ("memory://", "sqlite:///", "postgresql://")


def open_store(url: str) -> Store:
    """The store a URL names: ``memory://``, ``sqlite:///relative/path``,
    ``sqlite:////absolute/path`` or ``postgresql://user@host/db``."""
    if not isinstance(url, str):
        raise TypeError("the store URL must be a string")
    if url == "memory://":
        from usercore.storage.memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise ValueError("sqlite:/// needs a path, e.g. sqlite:///users.db")
        from usercore.storage.sqlite import SQLiteStore

        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        import importlib

        try:
            postgres = importlib.import_module("usercore.storage.postgres")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("psycopg"):
                raise ImportError(
                    "PostgreSQL support needs psycopg: pip install 'usercore[postgres]'"
                ) from exc
            raise
        store: Store = postgres.PostgresStore(url)
        return store
    raise ValueError(
        f"unsupported store URL {url.split(':', 1)[0]!r}: use one of {', '.join(SUPPORTED_SCHEMES)}"
    )


class UserCore:
    """User management on one store: ``core.users``, ``core.roles``,
    ``core.permissions``, ``core.auth``, ``core.api_keys``, ``core.policy``,
    ``core.events``.

    Build one per process with :meth:`open` (or from any :class:`Store`), share
    it between threads, and :meth:`close` it (or use it as a context manager).
    The built-in roles ``admin`` and ``user`` are created on first open.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
    ):
        settings = settings if settings is not None else Settings()
        if settings.secret_key is None and not settings.signing_keys:
            raise ValueError(
                "Settings.secret_key is required (at least 32 bytes; e.g. "
                "secrets.token_urlsafe(32)); only memory:// makes one up"
            )
        self.settings = settings
        self.store = store
        self.clock: Clock = clock if clock is not None else system_clock
        self.events = EventBus(self.clock)
        self.policy = Policy(
            self._load_roles,
            version_probe=self._role_version,
            refresh_interval=settings.policy_refresh_interval,
        )
        registry = PermissionRegistry(loader=self._load_permissions)
        hasher = PasswordHasher.from_settings(settings)
        # Make the dummy hash now, so the first unknown-account login does not
        # pay for it and stand out by its timing.
        hasher.dummy_verify("")
        ctx = Context(
            store=store,
            settings=settings,
            clock=self.clock,
            hasher=hasher,
            policy=self.policy,
            registry=registry,
            events=self.events,
            sessions=SessionService(store, settings, self.clock, hasher),
        )
        self._ctx = ctx
        if settings.custom_fields:
            # Indexes of the unique and indexed custom fields: made (or
            # dropped) here, from the declaration, so adding a field needs no
            # migration.  A process declaring none (the command line, a bare
            # server) leaves the custom fields and their indexes alone.
            store.declare_custom_fields(settings.custom_fields)
        self.users = UserService(ctx)
        self.roles = RoleService(ctx)
        self.permissions = PermissionService(ctx)
        self.auth = AuthService(ctx)
        self.api_keys = ApiKeyService(ctx)
        with store.transaction(readonly=True) as tx:
            missing = any(tx.roles.get(name) is None for name in ("admin", "user"))
        if missing:
            with store.transaction() as tx:
                seed_builtin_roles(tx)
        registry.reload()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
    ) -> UserCore:
        """Open a store by URL (see :func:`open_store`) and build the facade on it.

        ``memory://`` invents a random secret key when none is given (tests,
        demos); persistent stores require ``settings.secret_key`` (or
        ``signing_keys``).  An unknown scheme raises ``ValueError`` listing the
        supported ones.
        """
        settings = settings if settings is not None else Settings()
        if url == "memory://" and settings.secret_key is None and not settings.signing_keys:
            settings = attrs.evolve(settings, secret_key=secrets.token_urlsafe(32))
        if settings.secret_key is None and not settings.signing_keys:
            raise ValueError(
                "Settings.secret_key is required for a persistent store (at least 32 bytes; "
                "e.g. secrets.token_urlsafe(32))"
            )
        store = open_store(url)
        try:
            return cls(store, settings, clock=clock)
        except BaseException:
            store.close()
            raise

    def _load_roles(self) -> tuple[int, Sequence[Role]]:
        with self.store.transaction(readonly=True) as tx:
            return tx.roles.version(), tx.roles.list()

    def _load_permissions(self) -> Sequence[Permission]:
        with self.store.transaction(readonly=True) as tx:
            return tx.permissions.list()

    def _role_version(self) -> int:
        with self.store.transaction(single_read=True) as tx:
            return tx.roles.version()

    def purge_expired(self) -> int:
        """Forget expired revocations, refresh and one-time tokens and stale
        login throttles; returns how many records went.  Run it periodically."""
        return self._ctx.sessions.purge_expired()

    def close(self) -> None:
        """Close the store; the facade is unusable afterwards."""
        self.store.close()

    def __enter__(self) -> UserCore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"UserCore(store={type(self.store).__name__})"

    def __getstate__(self) -> Any:
        raise TypeError("UserCore cannot be pickled (it holds connections and keys)")
