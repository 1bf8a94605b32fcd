"""``MemoryStore``: a complete store in process memory.

A real adapter, not a test double: the same uniqueness rules (case-insensitive
keys), cascades, id sequences and transaction semantics as
:class:`~usercore.storage.sqlite.SQLiteStore`, checked by the same
:class:`usercore.testing.StoreContract` and by a stateful test that runs both
side by side.  Good for tests, demos and single-process apps that need no
persistence.

Transactions are serialized by one lock held from the outermost transaction's
start to its end, so the store is thread-safe; nesting, read-only checks and
use-after-close errors are the state machine all stores share
(``_transaction.py``).  Every write appends its inverse to
an undo log; a rollback replays the log backwards to the transaction's (or
savepoint's) mark, which restores the previous state exactly, and a commit
just forgets the log.  Entities are frozen, so the log holds references, not
copies.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, TypeVar, cast

import attrs

from usercore.custom_fields import (
    CUSTOM_FIELD_NAME,
    CustomField,
    from_stored,
    read_value,
    same_value,
)
from usercore.domain import (
    ApiKey,
    OneTimeToken,
    Permission,
    RefreshToken,
    RevokedToken,
    Role,
    User,
)
from usercore.errors import ConflictError, NotFoundError
from usercore.ports import (
    ApiKeyRepository,
    LoginAttemptRepository,
    LoginAttempts,
    MetaRepository,
    OneTimeTokenRepository,
    PermissionRepository,
    RefreshTokenRepository,
    RevokedTokenRepository,
    RoleRepository,
    UserFilter,
    UserRepository,
)
from usercore.storage._codec import (
    check_text,
    in_utc,
    optional_utc,
    search_key,
    utc,
    with_declared,
)
from usercore.storage._schema import ROLES_VERSION_KEY, conflict, custom_conflict
from usercore.storage._transaction import Transaction, TransactionHooks, UnitOfWorkState

__all__ = ["MemoryStore"]

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()
# The data model of the SQL stores' latest migration (3: users.email may be
# None; 4: custom fields; 5: the permissions table), so that the stores report
# the same version for the same model.
_SCHEMA_VERSION = 5


def _restore(table: MutableMapping[K, V], key: K, old: object) -> None:
    if old is _MISSING:
        del table[key]
    else:
        table[key] = cast(V, old)


class MemoryStore:
    """A :class:`usercore.ports.Store` that keeps everything in memory.

    Nothing survives the process.  ``close()`` drops the data.
    """

    #: Reads are in process: the web adapters may run a credential check and
    #: one read on the event loop instead of a worker thread.
    inline_reads = True

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant: close() from inside a transaction
        self._owner: int | None = None
        self._closed = False
        self._undo: list[Callable[[], object]] = []
        # The tables, and the indexes a SQL store would keep.
        self._sequences: dict[str, int] = {"users": 0, "api_keys": 0}
        self._users: dict[int, User] = {}
        self._user_ids: list[int] = []  # sorted: the keyset order
        self._emails: dict[str, int] = {}
        self._usernames: dict[str, int] = {}
        self._roles: dict[str, Role] = {}
        self._permissions: dict[str, Permission] = {}
        self._refresh_tokens: dict[bytes, RefreshToken] = {}
        self._revoked_tokens: dict[str, datetime] = {}
        self._api_keys: dict[int, ApiKey] = {}
        self._prefixes: dict[str, int] = {}
        self._one_time_tokens: dict[bytes, OneTimeToken] = {}
        self._login_attempts: dict[str, LoginAttempts] = {}
        self._meta: dict[str, str] = {ROLES_VERSION_KEY: "0"}
        self._custom_fields: tuple[CustomField, ...] = ()
        self._uow = _MemoryUnitOfWork(self)
        self._transactions = _MemoryTransactions(self)

    def transaction(
        self, *, readonly: bool = False, single_read: bool = False
    ) -> Transaction[_MemoryUnitOfWork]:
        """Open a unit of work (see :meth:`usercore.ports.Store.transaction`).

        Transactions of all threads run one at a time, so a single read is
        any read-only one here.
        """
        return Transaction(self._transactions, readonly, single_read)

    def declare_custom_fields(self, fields: Sequence[CustomField]) -> None:
        """Adopt the custom field declaration (see
        :meth:`usercore.ports.Store.declare_custom_fields`).

        Users keep every custom value ever written (like the SQL stores' JSON
        column) and are read through the declaration; a unique field is
        checked by a scan, the memory store's stand-in for an index.
        """
        declared = tuple(fields)
        with self._lock:
            for field in declared:
                if field.unique:
                    seen: set[tuple[type, object]] = set()
                    for user in self._users.values():
                        value = _visible(user, declared).custom_fields[field.name]
                        if value is not None:
                            if (type(value), value) in seen:
                                raise custom_conflict(field.name)
                            seen.add((type(value), value))
            self._custom_fields = declared

    def close(self) -> None:
        """Drop the data; the store is unusable afterwards."""
        with self._lock:
            self._closed = True
            self._clear_tables()

    def _clear_tables(self) -> None:
        for table in (
            self._users,
            self._emails,
            self._usernames,
            self._roles,
            self._permissions,
            self._refresh_tokens,
            self._revoked_tokens,
            self._api_keys,
            self._prefixes,
            self._one_time_tokens,
            self._login_attempts,
        ):
            table.clear()
        self._user_ids.clear()
        self._undo.clear()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MemoryStore(users={len(self._users)})"

    # -- used by the repositories ------------------------------------------

    def _reading(self) -> None:
        if self._owner != threading.get_ident():
            raise RuntimeError("this unit of work is used outside its transaction")
        self._uow.check_reading()

    def _writing(self) -> None:
        self._reading()
        self._uow.check_writing()

    def _put(self, table: MutableMapping[K, V], key: K, value: V) -> None:
        old = table.get(key, _MISSING)
        table[key] = value
        self._undo.append(partial(_restore, table, key, old))

    def _pop(self, table: MutableMapping[K, V], key: K) -> None:
        old = table.pop(key)
        self._undo.append(partial(_restore, table, key, old))

    def _next_id(self, sequence: str) -> int:
        value = self._sequences[sequence] + 1
        self._put(self._sequences, sequence, value)
        return value

    def _insert_user_id(self, user_id: int) -> None:
        index = bisect.bisect_left(self._user_ids, user_id)
        self._user_ids.insert(index, user_id)
        self._undo.append(partial(self._user_ids.pop, index))

    def _remove_user_id(self, user_id: int) -> None:
        index = bisect.bisect_left(self._user_ids, user_id)
        del self._user_ids[index]
        self._undo.append(partial(self._user_ids.insert, index, user_id))

    def _rollback_to(self, mark: int) -> None:
        undo = self._undo
        while len(undo) > mark:
            undo.pop()()


class _MemoryTransactions(TransactionHooks["_MemoryUnitOfWork"]):
    """The memory store's steps of the shared transaction state machine: one
    lock held from the outermost ``begin`` to ``finish``, undo-log marks as
    savepoints."""

    __slots__ = ("_store",)

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def current(self) -> _MemoryUnitOfWork | None:
        store = self._store
        # Only this thread sets _owner to its own id, so the unlocked read is sound.
        return store._uow if store._owner == threading.get_ident() else None

    def begin(self, readonly: bool, single_read: bool = False) -> _MemoryUnitOfWork:
        store = self._store
        store._lock.acquire()
        if store._closed:
            store._lock.release()
            raise RuntimeError("the store is closed")
        store._owner = threading.get_ident()
        return store._uow

    def finish(self, uow: _MemoryUnitOfWork, exc: BaseException | None) -> None:
        store = self._store
        try:
            if exc is not None:
                store._rollback_to(0)
            store._undo.clear()
        finally:
            store._owner = None
            store._lock.release()

    def savepoint(self, uow: _MemoryUnitOfWork, readonly: bool) -> int:
        return len(self._store._undo)

    def end_savepoint(self, uow: _MemoryUnitOfWork, savepoint: object, failed: bool) -> None:
        if failed:
            assert isinstance(savepoint, int)
            self._store._rollback_to(savepoint)


class _MemoryUnitOfWork(UnitOfWorkState):
    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self.users: UserRepository = _Users(store)
        self.roles: RoleRepository = _Roles(store)
        self.permissions: PermissionRepository = _Permissions(store)
        self.refresh_tokens: RefreshTokenRepository = _RefreshTokens(store)
        self.revoked_tokens: RevokedTokenRepository = _RevokedTokens(store)
        self.api_keys: ApiKeyRepository = _ApiKeys(store)
        self.one_time_tokens: OneTimeTokenRepository = _OneTimeTokens(store)
        self.login_attempts: LoginAttemptRepository = _LoginAttempts(store)
        self.meta: MetaRepository = _Meta(store)


TokenT = TypeVar("TokenT", RefreshToken, OneTimeToken)


class _Repository:
    __slots__ = ("_s",)

    def __init__(self, store: MemoryStore) -> None:
        self._s = store

    def _add_token(self, table: dict[bytes, TokenT], token: TokenT) -> None:
        """Insert a hashed token owned by a user (refresh and one-time tokens alike)."""
        s = self._s
        s._writing()
        check_text(token)
        token = in_utc(token)
        if token.token_hash in table:
            raise conflict("refresh_tokens", "token_hash")
        if token.user_id not in s._users:
            raise NotFoundError("the user does not exist")
        s._put(table, token.token_hash, token)

    def _owned_by(self, table: dict[bytes, TokenT], user_id: int) -> list[TokenT]:
        """A user's tokens, by ``created_at`` then ``token_hash`` (as the SQL stores)."""
        self._s._reading()
        owned = [token for token in table.values() if token.user_id == user_id]
        return sorted(owned, key=lambda token: (token.created_at, token.token_hash))

    def _spend(self, table: dict[bytes, TokenT], token_hash: bytes, at: datetime) -> bool:
        """Set ``used_at`` if unset; True only for the call that set it."""
        s = self._s
        s._writing()
        at = utc(at)
        token = table.get(token_hash)
        if token is None or token.used_at is not None:
            return False
        s._put(table, token_hash, attrs.evolve(token, used_at=at))
        return True


def _visible(user: User, declared: Sequence[CustomField]) -> User:
    """A stored user (holding every custom value written) as the declaration reads it."""
    if not declared and not user.custom_fields:
        return user
    return attrs.evolve(user, custom_fields=from_stored(declared, user.custom_fields))


def _read(field: CustomField | None, stored: object) -> object:
    """A stored value as a filter compares it: as the declaration reads it (no
    stored value is the default), or as stored for an undeclared name."""
    return stored if field is None else read_value(field, stored)


def _kept(user: User, before: Mapping[str, Any] | None = None) -> User:
    """``user`` (read through the declaration) as stored: its set custom values
    merged into ``before`` (what was stored), unset ones removed."""
    merged = dict(before or {})
    for name, value in user.custom_fields.stored().items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return attrs.evolve(user, custom_fields=merged)


def _matches(user: User, needle: str) -> bool:
    username_key = user.username_key
    email_key = user.email_key
    return (
        (email_key is not None and needle in email_key)
        or (username_key is not None and needle in username_key)
        or (user.name is not None and needle in search_key(user.name))
    )


class _Users(_Repository):
    __slots__ = ()

    def _read(self, user: User | None) -> User | None:
        return None if user is None else _visible(user, self._s._custom_fields)

    def add(self, user: User) -> User:
        s = self._s
        s._writing()
        check_text(user)
        user = with_declared(in_utc(user), s._custom_fields)
        self._check_unique(user, user_id=None)
        stored = attrs.evolve(user, id=s._next_id("users"), version=1)
        s._put(s._users, stored.id, _kept(stored))
        s._insert_user_id(stored.id)
        if stored.email_key is not None:
            s._put(s._emails, stored.email_key, stored.id)
        if stored.username_key is not None:
            s._put(s._usernames, stored.username_key, stored.id)
        return stored

    def add_many(self, users: Sequence[User]) -> list[User]:
        s = self._s
        s._writing()
        mark = len(s._undo)
        try:
            return [self.add(user) for user in users]
        except BaseException:
            s._rollback_to(mark)  # all or nothing, like the SQL savepoint
            raise

    def get(self, user_id: int) -> User | None:
        self._s._reading()
        return self._read(self._s._users.get(user_id))

    def get_for_token(self, user_id: int, jti: str) -> tuple[User | None, bool]:
        s = self._s
        s._reading()
        return self._read(s._users.get(user_id)), jti in s._revoked_tokens

    def get_by_email(self, email_key: str) -> User | None:
        s = self._s
        s._reading()
        user_id = s._emails.get(email_key)
        return None if user_id is None else self._read(s._users[user_id])

    def get_by_username(self, username_key: str) -> User | None:
        s = self._s
        s._reading()
        user_id = s._usernames.get(username_key)
        return None if user_id is None else self._read(s._users[user_id])

    def taken_keys(
        self, email_keys: Iterable[str], username_keys: Iterable[str]
    ) -> tuple[set[str], set[str]]:
        s = self._s
        s._reading()
        return (
            {key for key in email_keys if key in s._emails},
            {key for key in username_keys if key in s._usernames},
        )

    def update(self, user: User) -> User:
        s = self._s
        s._writing()
        check_text(user)
        user = with_declared(in_utc(user), s._custom_fields)
        current = s._users.get(user.id)
        if current is None:
            raise NotFoundError("the user does not exist")
        if current.version != user.version:
            raise ConflictError("the user was changed by another write", field="version")
        self._check_unique(user, user_id=user.id)
        stored = attrs.evolve(user, version=user.version + 1)
        kept = _kept(stored, current.custom_fields)
        if current.email_key != stored.email_key:
            if current.email_key is not None:
                s._pop(s._emails, current.email_key)
            if stored.email_key is not None:
                s._put(s._emails, stored.email_key, stored.id)
        if current.username_key != stored.username_key:
            if current.username_key is not None:
                s._pop(s._usernames, current.username_key)
            if stored.username_key is not None:
                s._put(s._usernames, stored.username_key, stored.id)
        s._put(s._users, stored.id, kept)
        return stored

    def delete(self, user_id: int) -> bool:
        s = self._s
        s._writing()
        user = s._users.get(user_id)
        if user is None:
            return False
        s._pop(s._users, user_id)
        s._remove_user_id(user_id)
        if user.email_key is not None:
            s._pop(s._emails, user.email_key)
        if user.username_key is not None:
            s._pop(s._usernames, user.username_key)
        # The cascades a SQL store's foreign keys perform.
        for token_hash in [h for h, t in s._refresh_tokens.items() if t.user_id == user_id]:
            s._pop(s._refresh_tokens, token_hash)
        for token_hash in [h for h, t in s._one_time_tokens.items() if t.user_id == user_id]:
            s._pop(s._one_time_tokens, token_hash)
        for key in [k for k in s._api_keys.values() if k.user_id == user_id]:
            s._pop(s._api_keys, key.id)
            s._pop(s._prefixes, key.prefix)
        return True

    def list(
        self, *, after: int | None, limit: int, filter: UserFilter, offset: int = 0
    ) -> list[User]:
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        self._s._reading()
        page = itertools.islice(self._matching(after, filter), offset, offset + limit)
        return [_visible(user, self._s._custom_fields) for user in page]

    def count(self, *, filter: UserFilter) -> int:
        s = self._s
        s._reading()
        if filter == UserFilter():
            return len(s._users)
        return sum(1 for _ in self._matching(None, filter))

    def count_with_role(self, role: str) -> int:
        self._s._reading()
        return sum(1 for user in self._s._users.values() if role in user.roles)

    def remove_role(self, role: str) -> int:
        s = self._s
        s._writing()
        holders = [user for user in s._users.values() if role in user.roles]
        for user in holders:
            changed = attrs.evolve(user, roles=user.roles - {role}, version=user.version + 1)
            s._put(s._users, user.id, changed)
        return len(holders)

    def _matching(self, after: int | None, filter: UserFilter) -> Iterator[User]:
        s = self._s
        ids = s._user_ids
        start = 0 if after is None else bisect.bisect_right(ids, after)
        needle = search_key(filter.search) if filter.search else None
        role, status, custom = filter.role, filter.status, filter.custom_fields
        for name, _ in custom:
            if not CUSTOM_FIELD_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a custom field name")
        declared = {field.name: field for field in s._custom_fields}
        for index in range(start, len(ids)):
            user = s._users[ids[index]]
            if role is not None and role not in user.roles:
                continue
            if status is not None and user.status is not status:
                continue
            if needle is not None and not _matches(user, needle):
                continue
            if custom and not all(
                same_value(_read(declared.get(name), user.custom_fields.get(name)), value)
                for name, value in custom
            ):
                continue
            yield user

    def _check_unique(self, user: User, *, user_id: int | None) -> None:
        # Email first: the order SQLite checks its unique indexes in.
        email_key = user.email_key
        owner = None if email_key is None else self._s._emails.get(email_key)
        if owner is not None and owner != user_id:
            raise conflict("users", "email_key")
        username_key = user.username_key
        if username_key is not None:
            owner = self._s._usernames.get(username_key)
            if owner is not None and owner != user_id:
                raise conflict("users", "username_key")
        for field in self._s._custom_fields:
            value = user.custom_fields.get(field.name)
            if field.unique and value is not None:
                for other in self._s._users.values():
                    if other.id != user_id and same_value(
                        other.custom_fields.get(field.name), value
                    ):
                        raise custom_conflict(field.name)


class _Roles(_Repository):
    __slots__ = ()

    def add(self, role: Role) -> Role:
        s = self._s
        s._writing()
        check_text(role)
        if role.name in s._roles:
            raise conflict("roles", "name")
        s._put(s._roles, role.name, role)
        self._bump()
        return role

    def get(self, name: str) -> Role | None:
        self._s._reading()
        return self._s._roles.get(name)

    def list(self) -> list[Role]:
        self._s._reading()
        return [self._s._roles[name] for name in sorted(self._s._roles)]

    def update(self, role: Role) -> Role:
        s = self._s
        s._writing()
        check_text(role)
        if role.name not in s._roles:
            raise NotFoundError("the role does not exist")
        s._put(s._roles, role.name, role)
        self._bump()
        return role

    def delete(self, name: str) -> bool:
        s = self._s
        s._writing()
        if name not in s._roles:
            return False
        s._pop(s._roles, name)
        self._bump()
        return True

    def version(self) -> int:
        self._s._reading()
        return int(self._s._meta[ROLES_VERSION_KEY])

    def _bump(self) -> None:
        s = self._s
        s._put(s._meta, ROLES_VERSION_KEY, str(int(s._meta[ROLES_VERSION_KEY]) + 1))


class _Permissions(_Repository):
    __slots__ = ()

    def add(self, permission: Permission) -> Permission:
        s = self._s
        s._writing()
        if permission.created_at is None:
            raise ValueError("a stored permission needs its created_at")
        check_text(permission)
        permission = in_utc(permission)
        if permission.name in s._permissions:
            raise conflict("permissions", "name")
        s._put(s._permissions, permission.name, permission)
        return permission

    def get(self, name: str) -> Permission | None:
        self._s._reading()
        return self._s._permissions.get(name)

    def list(self) -> list[Permission]:
        self._s._reading()
        permissions = self._s._permissions
        return [permissions[name] for name in sorted(permissions)]


class _RefreshTokens(_Repository):
    __slots__ = ()

    def add(self, token: RefreshToken) -> None:
        self._add_token(self._s._refresh_tokens, token)

    def get(self, token_hash: bytes) -> RefreshToken | None:
        self._s._reading()
        return self._s._refresh_tokens.get(token_hash)

    def list_for_user(self, user_id: int) -> list[RefreshToken]:
        return self._owned_by(self._s._refresh_tokens, user_id)

    def mark_used(self, token_hash: bytes, at: datetime) -> bool:
        return self._spend(self._s._refresh_tokens, token_hash, at)

    def revoke_family(self, family_id: str, at: datetime) -> int:
        return self._revoke(lambda token: token.family_id == family_id, at)

    def revoke_user(self, user_id: int, at: datetime) -> int:
        return self._revoke(lambda token: token.user_id == user_id, at)

    def purge_expired(self, now: datetime) -> int:
        s = self._s
        s._writing()
        now = utc(now)
        expired = [h for h, t in s._refresh_tokens.items() if t.expires_at <= now]
        for token_hash in expired:
            s._pop(s._refresh_tokens, token_hash)
        return len(expired)

    def _revoke(self, selects: Callable[[RefreshToken], bool], at: datetime) -> int:
        s = self._s
        s._writing()
        at = utc(at)
        chosen = [t for t in s._refresh_tokens.values() if t.revoked_at is None and selects(t)]
        for token in chosen:
            s._put(s._refresh_tokens, token.token_hash, attrs.evolve(token, revoked_at=at))
        return len(chosen)


class _RevokedTokens(_Repository):
    __slots__ = ()

    def add(self, jti: str, expires_at: datetime) -> None:
        s = self._s
        s._writing()
        check_text(jti=jti)
        expires_at = utc(expires_at)
        current = s._revoked_tokens.get(jti)
        if current is None or current < expires_at:
            s._put(s._revoked_tokens, jti, expires_at)

    def is_revoked(self, jti: str) -> bool:
        self._s._reading()
        return jti in self._s._revoked_tokens

    def list(self) -> list[RevokedToken]:
        self._s._reading()
        revoked = self._s._revoked_tokens
        return [RevokedToken(jti=jti, expires_at=revoked[jti]) for jti in sorted(revoked)]

    def purge_expired(self, now: datetime) -> int:
        s = self._s
        s._writing()
        now = utc(now)
        expired = [jti for jti, expires_at in s._revoked_tokens.items() if expires_at <= now]
        for jti in expired:
            s._pop(s._revoked_tokens, jti)
        return len(expired)


class _ApiKeys(_Repository):
    __slots__ = ()

    def add(self, key: ApiKey) -> ApiKey:
        s = self._s
        s._writing()
        check_text(key)
        key = in_utc(key)
        if key.prefix in s._prefixes:
            raise conflict("api_keys", "prefix")
        if key.user_id not in s._users:
            raise NotFoundError("the user does not exist")
        stored = attrs.evolve(key, id=s._next_id("api_keys"))
        s._put(s._api_keys, stored.id, stored)
        s._put(s._prefixes, stored.prefix, stored.id)
        return stored

    def get(self, key_id: int) -> ApiKey | None:
        self._s._reading()
        return self._s._api_keys.get(key_id)

    def get_by_prefix(self, prefix: str) -> ApiKey | None:
        s = self._s
        s._reading()
        key_id = s._prefixes.get(prefix)
        return None if key_id is None else s._api_keys[key_id]

    def list_for_user(self, user_id: int) -> list[ApiKey]:
        self._s._reading()
        keys = [key for key in self._s._api_keys.values() if key.user_id == user_id]
        return sorted(keys, key=lambda key: key.id)

    def update(self, key: ApiKey) -> ApiKey:
        s = self._s
        s._writing()
        check_text(key)
        key = in_utc(key)
        current = s._api_keys.get(key.id)
        if current is None:
            raise NotFoundError("the API key does not exist")
        stored = attrs.evolve(
            current,
            name=key.name,
            scopes=key.scopes,
            expires_at=key.expires_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )
        s._put(s._api_keys, stored.id, stored)
        return stored

    def revoke_user(self, user_id: int, at: datetime) -> int:
        s = self._s
        s._writing()
        at = utc(at)
        chosen = [k for k in s._api_keys.values() if k.user_id == user_id and k.revoked_at is None]
        for key in chosen:
            s._put(s._api_keys, key.id, attrs.evolve(key, revoked_at=at))
        return len(chosen)


class _OneTimeTokens(_Repository):
    __slots__ = ()

    def add(self, token: OneTimeToken) -> None:
        self._add_token(self._s._one_time_tokens, token)

    def get(self, token_hash: bytes) -> OneTimeToken | None:
        self._s._reading()
        return self._s._one_time_tokens.get(token_hash)

    def list_for_user(self, user_id: int) -> list[OneTimeToken]:
        return self._owned_by(self._s._one_time_tokens, user_id)

    def consume(self, token_hash: bytes, at: datetime) -> bool:
        return self._spend(self._s._one_time_tokens, token_hash, at)

    def delete_for_user(self, user_id: int, purpose: str | None = None) -> int:
        s = self._s
        s._writing()
        chosen = [
            token.token_hash
            for token in s._one_time_tokens.values()
            if token.user_id == user_id and (purpose is None or token.purpose == purpose)
        ]
        for token_hash in chosen:
            s._pop(s._one_time_tokens, token_hash)
        return len(chosen)

    def purge_expired(self, now: datetime) -> int:
        s = self._s
        s._writing()
        now = utc(now)
        expired = [h for h, t in s._one_time_tokens.items() if t.expires_at <= now]
        for token_hash in expired:
            s._pop(s._one_time_tokens, token_hash)
        return len(expired)


class _LoginAttempts(_Repository):
    __slots__ = ()

    def get(self, key: str) -> LoginAttempts | None:
        self._s._reading()
        return self._s._login_attempts.get(key)

    def put(self, attempts: LoginAttempts) -> None:
        s = self._s
        s._writing()
        check_text(attempts)
        attempts = attrs.evolve(
            attempts,
            locked_until=optional_utc(attempts.locked_until),
            updated_at=utc(attempts.updated_at),
        )
        s._put(s._login_attempts, attempts.key, attempts)

    def delete(self, key: str) -> None:
        s = self._s
        s._writing()
        if key in s._login_attempts:
            s._pop(s._login_attempts, key)

    def list(self) -> list[LoginAttempts]:
        self._s._reading()
        attempts = self._s._login_attempts
        return [attempts[key] for key in sorted(attempts)]

    def purge_expired(self, now: datetime) -> int:
        s = self._s
        s._writing()
        now = utc(now)
        stale = [
            key
            for key, attempts in s._login_attempts.items()
            if attempts.locked_until is None or attempts.locked_until <= now
        ]
        for key in stale:
            s._pop(s._login_attempts, key)
        return len(stale)


class _Meta(_Repository):
    __slots__ = ()

    def get(self, key: str) -> str | None:
        self._s._reading()
        return self._s._meta.get(key)

    def set(self, key: str, value: str) -> None:
        s = self._s
        s._writing()
        check_text(key=key, value=value)
        s._put(s._meta, key, value)

    def items(self) -> dict[str, str]:
        self._s._reading()
        return dict(sorted(self._s._meta.items()))

    def schema_version(self) -> int:
        self._s._reading()
        # Memory has no schema to migrate: it always holds the latest data model.
        return _SCHEMA_VERSION
