"""Storage ports: what the services need from a store, as ``typing.Protocol``s.

A :class:`Store` opens units of work::

    with store.transaction() as tx:
        user = tx.users.add(new_user)

The unit of work commits when the block exits cleanly and rolls back when it
raises.  Repositories are reached only through a unit of work, so every
read-modify-write happens inside one transaction.  Uniqueness is enforced by
the store itself (unique indexes), never by check-then-insert, and a broken
uniqueness rule raises :class:`~usercore.errors.ConflictError` naming the field.

Rules every adapter keeps (``StoreContract`` checks them):

- Every repository method is atomic: when it raises, it has changed nothing,
  and the surrounding transaction is still usable.
- A transaction opened while the same thread already has one open joins it as
  a savepoint: its own exception undoes only its own writes.
- Writing inside ``transaction(readonly=True)``, or through a unit of work
  after its block has ended, raises ``RuntimeError`` (a programming error).
- Datetimes go in aware (a naive one raises ``ValueError``) and come back as
  equal aware UTC datetimes, to the microsecond.
- A record that names a user (refresh and one-time tokens, API keys) needs
  that user to exist, else ``NotFoundError``; deleting the user deletes them.
- Ids are never reused, even after the row is deleted.
- Text is valid Unicode without NUL: a write of text holding NUL or a lone
  surrogate raises :class:`~usercore.errors.ValidationError` naming each such
  field and changes nothing; a lookup, search or delete by such text finds
  nothing.  (Validation never lets either into a field; PostgreSQL ``text``
  cannot hold NUL and UTF-8 cannot encode a lone surrogate.)
- A transient fault (connection lost, no pooled connection in time, the
  database locked past the timeout, disk full, read-only database) raises
  :class:`~usercore.errors.StoreUnavailable`; the unit of work is rolled back.

Adapters: :class:`usercore.storage.memory.MemoryStore`,
:class:`usercore.storage.sqlite.SQLiteStore`,
:class:`usercore.storage.postgres.PostgresStore`; every adapter passes
:class:`usercore.testing.StoreContract`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any, Protocol

import attrs

from usercore.custom_fields import CustomField
from usercore.domain import (
    ApiKey,
    OneTimeToken,
    Permission,
    RefreshToken,
    RevokedToken,
    Role,
    User,
    UserStatus,
)

__all__ = [
    "ApiKeyRepository",
    "AwaitedTokenReads",
    "Clock",
    "LoginAttemptRepository",
    "LoginAttempts",
    "MetaRepository",
    "OneTimeTokenRepository",
    "PermissionRepository",
    "RefreshTokenRepository",
    "RevokedTokenRepository",
    "RoleRepository",
    "Store",
    "UnitOfWork",
    "UserFilter",
    "UserRepository",
    "system_clock",
]

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime; injected so tests can move time."""


def system_clock() -> datetime:
    """The default :data:`Clock`: the system's time, in UTC.

    Code that only needs seconds since the epoch may read ``time.time()``
    instead when it is given this clock (the same instant, without building
    a datetime); the token codec does, on every check.
    """
    return datetime.now(timezone.utc)


def _custom_pairs(
    values: Mapping[str, Any] | Iterable[tuple[str, Any]],
) -> tuple[tuple[str, Any], ...]:
    items = values.items() if isinstance(values, Mapping) else values
    return tuple(sorted(items, key=lambda item: item[0]))


@attrs.frozen(kw_only=True)
class UserFilter:
    """Filters of a user listing; ``search`` matches a substring of email, username or
    name, case-insensitively; ``custom_fields`` (name, value) pairs match custom
    fields by exact, type-exact value as the declaration reads them (an unset
    field reads as its default); names of declared fields only, values not
    ``None``."""

    role: str | None = None
    status: UserStatus | None = None
    search: str | None = None
    custom_fields: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=_custom_pairs)


@attrs.frozen(kw_only=True)
class LoginAttempts:
    """Failed-login state for an identifier that matches no account.

    Unknown identifiers are throttled exactly like accounts, so a lock tells
    nothing about whether an account exists (OWASP ASVS 4.0.3 V2.2.1).
    """

    key: str
    failures: int
    locked_until: datetime | None
    updated_at: datetime


class UserRepository(Protocol):
    def add(self, user: User) -> User:
        """Insert ``user`` (its ``id`` is ignored) and return it with its new id and version 1.

        Raises ``ConflictError(field="email" | "username")`` on a duplicate key.
        """

    def add_many(self, users: Sequence[User]) -> list[User]:
        """Insert many users in batches; any duplicate raises ``ConflictError``
        (and the surrounding transaction rolls the whole batch back)."""

    def get(self, user_id: int) -> User | None: ...

    def get_for_token(self, user_id: int, jti: str) -> tuple[User | None, bool]:
        """The user ``user_id`` (or ``None``) and whether ``jti`` is revoked: what
        checking an access token reads, in one statement on the SQL stores (one
        round trip on PostgreSQL instead of two)."""

    def get_by_email(self, email_key: str) -> User | None:
        """Look up by the case-insensitive key (:func:`usercore.domain.email_key`)."""

    def get_by_username(self, username_key: str) -> User | None:
        """Look up by the case-insensitive key (:func:`usercore.domain.username_key`)."""

    def taken_keys(
        self, email_keys: Iterable[str], username_keys: Iterable[str]
    ) -> tuple[set[str], set[str]]:
        """The email keys and the username keys among those given that stored
        users hold: what a bulk write (an import) checks for a whole batch in a
        few statements instead of two look-ups per record."""

    def update(self, user: User) -> User:
        """Write every field of ``user`` if the stored version equals ``user.version``.

        Returns the user with ``version + 1``.  Raises ``NotFoundError`` when the
        user is gone, ``ConflictError(field="version")`` when another write got
        there first, ``ConflictError(field=...)`` on a duplicate key.
        """

    def delete(self, user_id: int) -> bool:
        """Delete a user (and its roles, tokens and keys); True if it existed."""

    def list(
        self, *, after: int | None, limit: int, filter: UserFilter, offset: int = 0
    ) -> list[User]:
        """Up to ``limit`` users with ``id > after``, in ascending id order (keyset
        paging), skipping the first ``offset`` of them.

        A walk that passes each page's last id as the next ``after`` visits every
        user that exists throughout the walk exactly once, whatever is inserted
        or deleted meanwhile, and costs the same at any depth.  ``offset`` serves
        page numbers (``offset=(page - 1) * per_page``): the skipped users are
        stepped over in index order, never loaded, but the cost grows with it.
        A negative ``limit`` or ``offset`` raises ``ValueError``.
        """

    def count(self, *, filter: UserFilter) -> int: ...

    def count_with_role(self, role: str) -> int:
        """How many users hold ``role``."""

    def remove_role(self, role: str) -> int:
        """Take ``role`` from every user holding it (bumping their ``version``);
        returns how many were changed."""


class RoleRepository(Protocol):
    """Roles are configuration, few in number; listing all of them is fine.

    Every write bumps :meth:`version` in the same transaction, which other
    processes poll to know their compiled policy is stale.
    """

    def add(self, role: Role) -> Role:
        """Raises ``ConflictError(field="name")`` when the name exists."""

    def get(self, name: str) -> Role | None: ...

    def list(self) -> list[Role]:
        """All roles, ordered by name."""

    def update(self, role: Role) -> Role:
        """Replace a role by name; raises ``NotFoundError`` when it does not exist."""

    def delete(self, name: str) -> bool: ...

    def version(self) -> int:
        """A counter that grows with every role write."""


class PermissionRepository(Protocol):
    """The application permissions registered at run time, shared by every process
    on the store (the built-in ones are not stored).  Few in number; listing all
    of them is fine.  A permission is never changed once stored.
    """

    def add(self, permission: Permission) -> Permission:
        """Insert ``permission`` (``created_at`` is required: ``ValueError`` when
        ``None`` or naive) and return it as stored.

        Raises ``ConflictError(field="name")`` when the name exists.
        """

    def get(self, name: str) -> Permission | None: ...

    def list(self) -> list[Permission]:
        """Every stored permission, ordered by name."""


class RefreshTokenRepository(Protocol):
    def add(self, token: RefreshToken) -> None:
        """Raises ``ConflictError(field="token_hash")`` on a duplicate digest."""

    def get(self, token_hash: bytes) -> RefreshToken | None: ...

    def list_for_user(self, user_id: int) -> list[RefreshToken]:
        """The user's tokens, spent and revoked ones included, by ``created_at``
        then ``token_hash``."""

    def mark_used(self, token_hash: bytes, at: datetime) -> bool:
        """Set ``used_at`` if it is unset; True only for the call that set it
        (an atomic compare-and-set, so two concurrent refreshes cannot both win)."""

    def revoke_family(self, family_id: str, at: datetime) -> int:
        """Set ``revoked_at`` on the family's unrevoked tokens; returns how many."""

    def revoke_user(self, user_id: int, at: datetime) -> int:
        """Set ``revoked_at`` on the user's unrevoked tokens; returns how many."""

    def purge_expired(self, now: datetime) -> int:
        """Delete tokens with ``expires_at <= now``; returns how many."""


class RevokedTokenRepository(Protocol):
    def add(self, jti: str, expires_at: datetime) -> None:
        """Refuse ``jti`` until ``expires_at``; adding it again keeps the later expiry."""

    def is_revoked(self, jti: str) -> bool: ...

    def list(self) -> list[RevokedToken]:
        """Every revocation, by ``jti``."""

    def purge_expired(self, now: datetime) -> int:
        """Forget revocations whose token would have expired anyway."""


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey) -> ApiKey:
        """Insert (``id`` ignored) and return it with its id.

        A duplicate prefix raises ``ConflictError``.
        """

    def get(self, key_id: int) -> ApiKey | None: ...

    def get_by_prefix(self, prefix: str) -> ApiKey | None: ...

    def list_for_user(self, user_id: int) -> list[ApiKey]:
        """The user's keys, revoked ones included, in id order."""

    def update(self, key: ApiKey) -> ApiKey:
        """Write ``last_used_at``, ``revoked_at``, ``name``, ``scopes``, ``expires_at``.

        Returns the stored key; raises ``NotFoundError`` when it does not exist.
        """

    def revoke_user(self, user_id: int, at: datetime) -> int:
        """Set ``revoked_at`` on the user's unrevoked keys; returns how many."""


class OneTimeTokenRepository(Protocol):
    def add(self, token: OneTimeToken) -> None:
        """Raises ``ConflictError(field="token_hash")`` on a duplicate digest."""

    def get(self, token_hash: bytes) -> OneTimeToken | None: ...

    def list_for_user(self, user_id: int) -> list[OneTimeToken]:
        """The user's tokens, used ones included, by ``created_at`` then ``token_hash``."""

    def consume(self, token_hash: bytes, at: datetime) -> bool:
        """Mark used if unused; True only for the call that did (single use)."""

    def delete_for_user(self, user_id: int, purpose: str | None = None) -> int:
        """Delete the user's tokens (of one ``purpose``, or all); returns how many."""

    def purge_expired(self, now: datetime) -> int:
        """Delete tokens with ``expires_at <= now``; returns how many."""


class LoginAttemptRepository(Protocol):
    def get(self, key: str) -> LoginAttempts | None: ...

    def put(self, attempts: LoginAttempts) -> None:
        """Insert or replace the entry for ``attempts.key``."""

    def delete(self, key: str) -> None: ...

    def list(self) -> list[LoginAttempts]:
        """Every entry, by ``key``."""

    def purge_expired(self, now: datetime) -> int:
        """Forget entries that are not locked at ``now`` (``locked_until`` unset or
        ``<= now``); returns how many."""


class MetaRepository(Protocol):
    """Small key/value settings of the store itself.

    Keys starting with ``usercore.`` are reserved for the library.
    """

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def items(self) -> dict[str, str]:
        """Every key and its value, in key order."""

    def schema_version(self) -> int:
        """The version of the schema the store runs (SQLite: ``PRAGMA user_version``;
        PostgreSQL: the latest row of ``usercore_migrations``; memory: the latest
        migration's, whose data model it holds)."""


class UnitOfWork(Protocol):
    users: UserRepository
    roles: RoleRepository
    permissions: PermissionRepository
    refresh_tokens: RefreshTokenRepository
    revoked_tokens: RevokedTokenRepository
    api_keys: ApiKeyRepository
    one_time_tokens: OneTimeTokenRepository
    login_attempts: LoginAttemptRepository
    meta: MetaRepository


class Store(Protocol):
    def transaction(
        self, *, readonly: bool = False, single_read: bool = False
    ) -> AbstractContextManager[UnitOfWork]:
        """Open a unit of work: commit on clean exit, roll back on any exception.

        ``readonly=True`` lets an adapter skip write locks; writing inside one
        raises ``RuntimeError``.  Opened while this thread already has a
        transaction, it joins it as a savepoint.

        ``single_read=True`` (read-only too) promises that the block makes one
        repository read, which the adapter answers with one statement: a
        database server may then run it on its own (autocommit), without
        ``BEGIN`` and ``COMMIT`` around it, which is one round trip instead of
        three.  One statement sees one snapshot of committed data, so the read
        is as consistent as in a transaction.  An adapter may refuse a second
        statement with ``RuntimeError``; one that gains nothing from the
        promise may ignore it.  Joining an open transaction, it reads in that
        transaction like any nested one; opening another transaction inside
        it raises ``RuntimeError``.
        """

    def declare_custom_fields(self, fields: Sequence[CustomField]) -> None:
        """Adopt the application's custom field declaration (``Settings.custom_fields``).

        Users read back carry every declared field (keys no longer declared
        are dropped; a field with no stored value, or one of another type,
        reads as its default, ``None`` without one, and is written back as
        unset: the default is never stored by a write that did not set it).
        A listing filter by a field's default also keeps the users that read
        as the default, so filters agree with what is read.  Unique fields
        are kept unique (``ConflictError(field=name)``) and indexed ones
        indexed, by indexes created here, idempotently, and dropped once no
        longer declared: adding a field needs no migration.
        Raises ``ConflictError`` when stored accounts already share a value of
        a field newly declared unique.  :class:`~usercore.UserCore` calls it.
        """

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""


class AwaitedTokenReads(Protocol):
    """What a store behind a network socket may add (PostgreSQL does): the read
    that authenticates an access token, awaited on the running event loop, so
    that an async server checks a token without a worker thread."""

    async def read_for_token(self, user_id: int, jti: str) -> tuple[User | None, bool]:
        """``UserRepository.get_for_token`` as a single read: the user
        (``None`` when none) and whether ``jti`` is revoked, in one statement,
        with the store's fault handling (``StoreUnavailable``)."""
        ...
