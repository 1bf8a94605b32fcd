"""The SQL adapters' shared core: statements, row mapping and repositories.

Everything here is dialect-neutral SQL that SQLite and PostgreSQL both accept,
written with ``?`` placeholders; a :class:`Dialect` supplies what differs
(its placeholder style, the upsert that keeps the later expiry, how ids are
handed out, substring search, how constraint violations are recognized and
the schema version is read).  Transactions are the store's business: the
repositories only run statements on the unit of work they are given.

Every statement is a constant or assembled from constant fragments; values
only ever travel as bound parameters.
"""

# S608 flags every f-string that looks like SQL; here they only join the
# constant column lists and fragments above, never a value.
# ruff: noqa: S608

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

import attrs

from usercore.custom_fields import CUSTOM_FIELD_NAME, CustomField
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
    custom_fields_from_db,
    custom_fields_to_db,
    in_utc,
    optional_time_from_db,
    optional_time_to_db,
    search_key,
    set_from_db,
    set_to_db,
    storable,
    time_from_db,
    time_to_db,
    with_declared,
)
from usercore.storage._schema import ROLES_VERSION_KEY, custom_index_name, sql_identifier
from usercore.storage._transaction import UnitOfWorkState

__all__ = [
    "BATCH_SIZE",
    "Cursor",
    "Dialect",
    "SqlPermissionRepository",
    "SqlUnitOfWork",
    "Statements",
]

T = TypeVar("T")

BATCH_SIZE = 1000
"""Rows per ``executemany`` call and per keyset batch of internal scans."""
_KEYS_PER_LOOKUP = 500
_PARAMETERS_PER_STATEMENT = 999
"""Bound parameters per multi-row INSERT unless a dialect knows better: SQLite's
lowest limit (SQLITE_MAX_VARIABLE_NUMBER was 999 before 3.32)."""
_ROWS_PER_STATEMENT = 512
"""Rows per multi-row INSERT at most (see :func:`_statement_sizes`)."""


class Cursor(Protocol):
    """The part of a DB-API cursor the repositories use."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


_USER_COLUMNS = (
    "u.id, u.email, u.username, u.name, u.roles, u.status, u.email_verified, "
    "u.created_at, u.updated_at, u.last_login_at, u.password_hash, u.failed_logins, "
    "u.locked_until, u.token_version, u.version, u.custom_fields"
)
_USER_WRITE_COLUMNS = (
    "email, email_key, username, username_key, name, name_key, roles, status, "
    "email_verified, created_at, updated_at, last_login_at, password_hash, "
    "failed_logins, locked_until, token_version, version, custom_fields"
)
# An update merges custom_fields (RFC 7396, json_patch): the fields this
# process does not declare stay as stored (PostgresDialect has its own merge).
_USER_SET = ", ".join(
    f"{column} = json_patch(custom_fields, ?)" if column == "custom_fields" else f"{column} = ?"
    for column in _USER_WRITE_COLUMNS.split(", ")
)
_REFRESH_COLUMNS = (
    "token_hash, family_id, user_id, token_version, created_at, expires_at, used_at, revoked_at"
)
_API_KEY_COLUMNS = (
    "id, user_id, name, prefix, scopes, secret_hash, created_at, expires_at, "
    "last_used_at, revoked_at"
)
_ROLE_JOIN = "user_roles r JOIN users u ON u.id = r.user_id"
_ONE_TIME_COLUMNS = "token_hash, purpose, user_id, binding, created_at, expires_at, used_at"


@attrs.frozen
class Statements:
    """Every fixed statement, in ``?`` style; :meth:`translated` converts them all."""

    user_insert: str = f"INSERT INTO users ({_USER_WRITE_COLUMNS}) VALUES ({', '.join('?' * 18)})"
    user_by_id: str = f"SELECT {_USER_COLUMNS} FROM users u WHERE u.id = ?"
    user_by_email: str = f"SELECT {_USER_COLUMNS} FROM users u WHERE u.email_key = ?"
    user_by_username: str = f"SELECT {_USER_COLUMNS} FROM users u WHERE u.username_key = ?"
    user_for_token: str = (
        "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?), "
        f"{_USER_COLUMNS} FROM (SELECT 1) AS one LEFT JOIN users u ON u.id = ?"
    )
    # The same row for a jti no row can hold (see ``storable``): never revoked.
    user_for_token_unstorable: str = (
        f"SELECT false, {_USER_COLUMNS} FROM (SELECT 1) AS one LEFT JOIN users u ON u.id = ?"
    )
    user_counts_sum: str = "SELECT coalesce(sum(n), 0) FROM user_counts WHERE key IN (?, ?)"
    user_version_roles: str = "SELECT version, roles FROM users WHERE id = ?"
    user_update: str = f"UPDATE users SET {_USER_SET} WHERE id = ? AND version = ?"
    user_delete: str = "DELETE FROM users WHERE id = ?"
    user_set_roles: str = "UPDATE users SET roles = ?, version = version + 1 WHERE id = ?"
    user_roles_insert: str = "INSERT INTO user_roles (user_id, role) VALUES (?, ?)"
    user_roles_clear: str = "DELETE FROM user_roles WHERE user_id = ?"
    user_roles_holders: str = (
        "SELECT u.id, u.roles FROM user_roles r JOIN users u ON u.id = r.user_id "
        "WHERE r.role = ? AND r.user_id > ? ORDER BY r.user_id LIMIT ?"
    )
    user_roles_remove: str = "DELETE FROM user_roles WHERE role = ?"

    role_insert: str = (
        "INSERT INTO roles (name, permissions, inherits, description) VALUES (?, ?, ?, ?)"
    )
    role_get: str = "SELECT name, permissions, inherits, description FROM roles WHERE name = ?"
    role_list: str = "SELECT name, permissions, inherits, description FROM roles ORDER BY name"
    role_update: str = (
        "UPDATE roles SET permissions = ?, inherits = ?, description = ? WHERE name = ?"
    )
    role_delete: str = "DELETE FROM roles WHERE name = ?"
    roles_version: str = "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?"
    roles_version_bump: str = (
        "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = ?"
    )

    permission_insert: str = (
        "INSERT INTO permissions (name, description, created_at) VALUES (?, ?, ?)"
    )
    permission_get: str = "SELECT name, description, created_at FROM permissions WHERE name = ?"
    permission_list: str = "SELECT name, description, created_at FROM permissions ORDER BY name"

    refresh_insert: str = (
        f"INSERT INTO refresh_tokens ({_REFRESH_COLUMNS}) VALUES ({', '.join('?' * 8)})"
    )
    refresh_get: str = f"SELECT {_REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = ?"
    refresh_for_user: str = (
        f"SELECT {_REFRESH_COLUMNS} FROM refresh_tokens WHERE user_id = ? "
        "ORDER BY created_at, token_hash"
    )
    refresh_mark_used: str = (
        "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
    )
    refresh_revoke_family: str = (
        "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL"
    )
    refresh_revoke_user: str = (
        "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"
    )
    refresh_purge: str = "DELETE FROM refresh_tokens WHERE expires_at <= ?"

    revoked_exists: str = "SELECT 1 FROM revoked_tokens WHERE jti = ?"
    revoked_list: str = "SELECT jti, expires_at FROM revoked_tokens ORDER BY jti"
    revoked_purge: str = "DELETE FROM revoked_tokens WHERE expires_at <= ?"

    api_key_insert: str = (
        "INSERT INTO api_keys (user_id, name, prefix, scopes, secret_hash, created_at, "
        "expires_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    api_key_get: str = f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE id = ?"
    api_key_by_prefix: str = f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE prefix = ?"
    api_key_for_user: str = f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE user_id = ? ORDER BY id"
    api_key_update: str = (
        "UPDATE api_keys SET name = ?, scopes = ?, expires_at = ?, last_used_at = ?, "
        "revoked_at = ? WHERE id = ?"
    )
    api_key_revoke_user: str = (
        "UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"
    )

    one_time_insert: str = (
        f"INSERT INTO one_time_tokens ({_ONE_TIME_COLUMNS}) VALUES ({', '.join('?' * 7)})"
    )
    one_time_get: str = f"SELECT {_ONE_TIME_COLUMNS} FROM one_time_tokens WHERE token_hash = ?"
    one_time_for_user: str = (
        f"SELECT {_ONE_TIME_COLUMNS} FROM one_time_tokens WHERE user_id = ? "
        "ORDER BY created_at, token_hash"
    )
    one_time_consume: str = (
        "UPDATE one_time_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
    )
    one_time_delete_user: str = "DELETE FROM one_time_tokens WHERE user_id = ?"
    one_time_delete_user_purpose: str = (
        "DELETE FROM one_time_tokens WHERE user_id = ? AND purpose = ?"
    )
    one_time_purge: str = "DELETE FROM one_time_tokens WHERE expires_at <= ?"

    login_get: str = (
        "SELECT key, failures, locked_until, updated_at FROM login_attempts WHERE key = ?"
    )
    login_put: str = (
        "INSERT INTO login_attempts (key, failures, locked_until, updated_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, "
        "locked_until = excluded.locked_until, updated_at = excluded.updated_at"
    )
    login_delete: str = "DELETE FROM login_attempts WHERE key = ?"
    login_list: str = (
        "SELECT key, failures, locked_until, updated_at FROM login_attempts ORDER BY key"
    )
    login_purge: str = "DELETE FROM login_attempts WHERE locked_until IS NULL OR locked_until <= ?"

    meta_get: str = "SELECT value FROM meta WHERE key = ?"
    meta_items: str = "SELECT key, value FROM meta ORDER BY key"
    meta_set: str = (
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )

    def translated(self, convert: Callable[[str], str]) -> Statements:
        """Every statement passed through ``convert`` (e.g. ``?`` to ``%s``)."""
        return Statements(
            **{field.name: convert(getattr(self, field.name)) for field in attrs.fields(Statements)}
        )


class Dialect:
    """What differs between SQL databases; subclassed once per adapter.

    Subclasses set ``integrity_error`` and ``revoked_upsert`` and override the
    methods that raise ``NotImplementedError``; the rest is what SQLite and
    PostgreSQL share.  A database that aborts the whole transaction on a failed
    statement (PostgreSQL) must run each write in a savepoint, so that a
    ``ConflictError`` leaves the transaction usable as the ports promise.
    """

    integrity_error: type[Exception] = Exception
    revoked_upsert: str = ""
    """Insert a ``(jti, expires_at)``; on a duplicate keep the later expiry."""
    counters: bool = False
    """The schema keeps ``user_counts`` (users per status and per role) up to date."""
    parameters_per_statement: int = _PARAMETERS_PER_STATEMENT
    """Bound parameters one multi-row INSERT may hold (:meth:`SqlUnitOfWork.write_rows`)."""

    def __init__(self) -> None:
        self.role_walk = _ROLE_JOIN
        """The ``FROM`` of a page of users filtered by role, walked in ``r.user_id`` order."""
        self.statements = Statements().translated(self.prepare)
        self._user_queries: dict[
            tuple[str, bool, bool, bool, str, tuple[tuple[str, bool], ...]], str
        ] = {}

    def prepare(self, sql: str) -> str:
        """Convert ``?`` placeholders to this dialect's style."""
        return sql

    def contains(self, column: str) -> str:
        """A condition true when the bound needle is a substring of ``column``."""
        raise NotImplementedError

    def search_method(self, needle: str) -> str:
        """How to find users whose keys contain ``needle`` (case-folded, non-empty):
        ``"scan"`` (the default: :meth:`contains` on each row) or a name the
        dialect's :meth:`search_condition` knows."""
        return "scan"

    def search_condition(self, method: str) -> str:
        """The condition for ``method`` (see :meth:`search_method`), with the
        placeholders that :meth:`search_params` fills."""
        return (
            f"({self.contains('u.email_key')} OR {self.contains('u.username_key')}"
            f" OR {self.contains('u.name_key')})"
        )

    def search_params(self, method: str, needle: str) -> list[Any]:
        return [needle, needle, needle]

    def translate(self, exc: Exception) -> Exception | None:
        """The usercore error for a constraint violation, or ``None`` to re-raise it."""
        raise NotImplementedError

    # -- custom fields: names are declared identifiers (CUSTOM_FIELD_NAME),
    # checked again here before they are written into SQL; values are parameters.

    custom_indexes: str = ""
    """Lists the names of the users table's custom field indexes."""
    custom_lock: str = ""
    """Serializes the stores adopting a declaration (empty: the write lock does)."""

    def custom_field(self, name: str, table: str = "u.") -> str:
        """The SQL expression of custom field ``name`` (the one its index is on)."""
        raise NotImplementedError

    def custom_condition(self, name: str) -> str:
        """The condition "custom field ``name`` equals the bound value(s)"."""
        raise NotImplementedError

    def custom_params(self, value: Any) -> list[Any]:
        """The parameters of :meth:`custom_condition` for ``value``."""
        raise NotImplementedError

    def custom_type(self, name: str) -> str:
        """The SQL expression naming the JSON type of custom field ``name``'s
        stored value as :data:`STORED_TYPES` does (``'null'`` when unset)."""
        raise NotImplementedError

    def custom_index(self, field: CustomField) -> str:
        """The statement creating the index of ``field`` when missing."""
        unique = "UNIQUE " if field.unique else ""
        return (
            f"CREATE {unique}INDEX IF NOT EXISTS {sql_identifier(custom_index_name(field))} "
            f"ON users ({self.custom_field(sql_identifier(field.name), table='')})"
        )

    def insert_returning_id(self, uow: SqlUnitOfWork, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT into a table with an integer ``id`` and return the new id."""
        raise NotImplementedError

    def insert_users(self, uow: SqlUnitOfWork, users: Sequence[User]) -> list[User]:
        """Insert ``users`` (in UTC, checked) with new ids, inside the caller's
        savepoint; returns them as stored (``id`` set, ``version`` 1).

        This default runs multi-row ``INSERT`` statements
        (:meth:`SqlUnitOfWork.write_rows`) with ids taken by
        :meth:`next_user_ids`; a dialect may load the rows faster its own way.
        """
        ids = self.next_user_ids(uow, len(users))
        stored = [
            attrs.evolve(user, id=user_id, version=1)
            for user_id, user in zip(ids, users, strict=True)
        ]
        uow.write_rows(users_insert_rows, [(user.id, *user_params(user, 1)) for user in stored])
        uow.write_rows(
            user_roles_insert_rows, [(user.id, role) for user in stored for role in user.roles]
        )
        return stored

    def next_user_ids(self, uow: SqlUnitOfWork, count: int) -> Sequence[int]:
        """``count`` new, increasing user ids, never handed out before."""
        raise NotImplementedError

    def schema_version(self, uow: SqlUnitOfWork) -> int:
        raise NotImplementedError

    def user_query(
        self,
        kind: Literal["list", "count"],
        *,
        after: bool,
        filter: UserFilter,
        declared: Sequence[CustomField] = (),
    ) -> str:
        """The listing statement ``kind`` (``list`` or ``count``) for a filter shape.

        ``declared``: the custom field declaration, by which a filter for a
        field's default also keeps the accounts with no value of its type.

        Built from constant fragments only and cached per shape; its parameters
        come from :func:`user_query_params`, in the same order.
        """
        role, status = filter.role is not None, filter.status is not None
        search = self.search_method(search_key(filter.search)) if filter.search else ""
        unset = _unset_matches(filter, declared)
        custom = tuple((_declared_name(name), name in unset) for name, _ in filter.custom_fields)
        shape = (kind, after, role, status, search, custom)
        sql = self._user_queries.get(shape)
        if sql is None:
            sql = self.prepare(self._build_user_query(*shape))
            self._user_queries[shape] = sql
        return sql

    def _build_user_query(
        self,
        kind: str,
        after: bool,
        role: bool,
        status: bool,
        search: str,
        custom: tuple[tuple[str, bool], ...],
    ) -> str:
        # With a role filter the walk is driven by the user_roles (role, user_id)
        # index, in id order; without one by the users primary key (or the
        # (status, id) index).  Either way LIMIT stops the scan early.
        order = "r.user_id" if role else "u.id"
        source = (self.role_walk if kind == "list" else _ROLE_JOIN) if role else "users u"
        conditions = []
        if role:
            conditions.append("r.role = ?")
        if after:
            conditions.append(f"{order} > ?")
        if status:
            conditions.append("u.status = ?")
        if search:
            conditions.append(
                self.search_condition("index")
                if search == "index"
                else self.search_condition("scan")
            )
        for name, or_unset in custom:
            condition = self.custom_condition(sql_identifier(name))
            if or_unset:  # an account without a value of the field's type reads as the default
                unset = f"{self.custom_type(sql_identifier(name))} NOT IN (?, ?)"
                condition = f"({condition} OR {unset})"
            conditions.append(condition)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        if kind == "count":
            return f"SELECT count(*) FROM {source}{where}"
        return f"SELECT {_USER_COLUMNS} FROM {source}{where} ORDER BY {order} LIMIT ? OFFSET ?"

    def user_query_params(
        self, after: int | None, filter: UserFilter, declared: Sequence[CustomField] = ()
    ) -> list[Any]:
        """Parameters for :meth:`user_query`, in its placeholder order."""
        params: list[Any] = []
        if filter.role is not None:
            params.append(filter.role)
        if after is not None:
            params.append(after)
        if filter.status is not None:
            params.append(filter.status.value)
        if filter.search:
            needle = search_key(filter.search)
            params += self.search_params(self.search_method(needle), needle)
        unset = _unset_matches(filter, declared)
        for name, value in filter.custom_fields:
            params += self.custom_params(value)
            if name in unset:
                params += STORED_TYPES[unset[name].type]
        return params

    def counter_keys(self, filter: UserFilter) -> tuple[str, str] | None:
        """The ``user_counts`` rows whose sum is ``count(filter)``, or ``None`` when
        the counters do not answer it (no counters; a search; role and status
        together): then the rows are counted."""
        if (
            not self.counters
            or filter.search
            or filter.custom_fields
            or (filter.role and filter.status)
        ):
            return None
        if filter.role is not None:
            key = f"role:{filter.role}"
            return key, key
        if filter.status is not None:
            key = f"status:{filter.status.value}"
            return key, key
        return "status:active", "status:inactive"


def _matches_nothing(filter: UserFilter) -> bool:
    """A filter on text no row can hold (see :func:`storable`)."""
    return (
        (filter.role is not None and not storable(filter.role))
        or bool(filter.search and not storable(filter.search))
        or any(
            value is None or (isinstance(value, str) and not storable(value))
            for _, value in filter.custom_fields
        )
    )


STORED_TYPES: dict[type, tuple[str, str]] = {
    str: ("text", "text"),
    int: ("integer", "integer"),
    float: ("integer", "real"),
    bool: ("true", "false"),
}
"""The JSON types (SQLite's ``json_type`` names) a field of each type reads
(``CustomField.accepts_stored``); any other stored value reads as unset."""


def _unset_matches(filter: UserFilter, declared: Sequence[CustomField]) -> dict[str, CustomField]:
    """The fields of ``filter`` whose value is their default: such a filter also
    keeps the accounts that read as the default (``CustomField.matches_unset``)."""
    by_name = {field.name: field for field in declared}
    return {
        name: by_name[name]
        for name, value in filter.custom_fields
        if name in by_name and by_name[name].matches_unset(value)
    }


def _declared_name(name: str) -> str:
    """``name`` if it is a custom field name: nothing else ever reaches the SQL text."""
    if not isinstance(name, str) or not CUSTOM_FIELD_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a custom field name")
    return name


class SqlUnitOfWork(UnitOfWorkState):
    """One connection's unit of work: the repositories and the transaction state
    they check.

    The store keeps one per connection and reuses it across transactions;
    ``depth`` counts the open (nested) transactions and ``readonly`` says
    whether the innermost one may write.
    """

    def __init__(
        self,
        dialect: Dialect,
        execute: Callable[..., Cursor],
        executemany: Callable[[str, Iterable[Sequence[Any]]], object],
    ) -> None:
        super().__init__()
        self.dialect = dialect
        self.sql = dialect.statements
        self.execute = execute
        self.executemany = executemany
        self.users: UserRepository = SqlUserRepository(self)
        self.roles: RoleRepository = SqlRoleRepository(self)
        self.permissions: PermissionRepository = SqlPermissionRepository(self)
        self.refresh_tokens: RefreshTokenRepository = SqlRefreshTokenRepository(self)
        self.revoked_tokens: RevokedTokenRepository = SqlRevokedTokenRepository(self)
        self.api_keys: ApiKeyRepository = SqlApiKeyRepository(self)
        self.one_time_tokens: OneTimeTokenRepository = SqlOneTimeTokenRepository(self)
        self.login_attempts: LoginAttemptRepository = SqlLoginAttemptRepository(self)
        self.meta: MetaRepository = SqlMetaRepository(self)
        self.custom_fields: tuple[CustomField, ...] = ()
        """The store's custom field declaration, which reads of users follow."""

    def reading(self) -> Callable[..., Cursor]:
        """``execute``, after checking that a transaction is open."""
        self.check_reading()
        return self.execute

    def writing(self) -> Callable[..., Cursor]:
        """``execute``, after checking that a writable transaction is open."""
        self.check_writing()
        return self.execute

    def write(self, sql: str, params: Sequence[Any]) -> Cursor:
        """Run one writing statement, turning constraint violations into usercore errors."""
        execute = self.writing()
        try:
            return execute(sql, params)
        except self.dialect.integrity_error as exc:
            raise self.translated(exc) from None

    def write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.writing()
        for batch in _batches(rows, BATCH_SIZE):
            try:
                self.executemany(sql, batch)
            except self.dialect.integrity_error as exc:
                raise self.translated(exc) from None

    def write_rows(self, insert: Callable[[int], str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` many per statement, ``insert(n)`` being the statement
        that inserts ``n`` of them.

        Not ``executemany``: SQLite runs each row of that as its own statement,
        and FTS5 flushes its pending index data to a new segment at the end of
        every statement, so a bulk insert wrote one tiny segment of the search
        index per user (and merged them again later): several times the cost
        of the rows themselves.  Up to ``_ROWS_PER_STATEMENT`` rows, as the
        dialect's ``parameters_per_statement`` allows: fewer, larger segments.
        """
        self.writing()
        if not rows:
            return
        most = min(_ROWS_PER_STATEMENT, self.dialect.parameters_per_statement // len(rows[0]))
        start = 0
        for size in _statement_sizes(len(rows), max(1, most)):
            batch = rows[start : start + size]
            start += size
            try:
                self.execute(
                    self.dialect.prepare(insert(len(batch))), [v for row in batch for v in row]
                )
            except self.dialect.integrity_error as exc:
                raise self.translated(exc) from None

    def translated(self, exc: Exception) -> Exception:
        """The usercore error for a constraint violation; re-raises ``exc`` if there is none."""
        translated = self.dialect.translate(exc)
        if translated is None:
            raise exc
        return translated

    def savepoint(self) -> _Savepoint:
        """A savepoint around a multi-statement write, so that it is all-or-nothing."""
        return _Savepoint(self)


class _Savepoint:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def __enter__(self) -> None:
        self._uow.writing()("SAVEPOINT usercore_atomic")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._uow.execute("RELEASE SAVEPOINT usercore_atomic")
            return
        try:
            self._uow.execute("ROLLBACK TO SAVEPOINT usercore_atomic")
            self._uow.execute("RELEASE SAVEPOINT usercore_atomic")
        except Exception:  # noqa: S110 - the error in flight says more
            # Some faults (a full disk, a lost connection) end the whole
            # transaction, savepoints included; the store rolls back the rest.
            pass


# One placeholder for the id and one per column of _USER_WRITE_COLUMNS.
_USER_ROW = "(" + ", ".join("?" * (1 + _USER_WRITE_COLUMNS.count(",") + 1)) + ")"
_ROLE_ROW = "(?, ?)"


@functools.lru_cache(maxsize=16)
def users_insert_rows(count: int) -> str:
    """The ``INSERT`` of ``count`` users, with their ids (``?`` placeholders)."""
    rows = ", ".join(_USER_ROW for _ in range(count))
    return f"INSERT INTO users (id, {_USER_WRITE_COLUMNS}) VALUES {rows}"


@functools.lru_cache(maxsize=16)
def user_roles_insert_rows(count: int) -> str:
    """The ``INSERT`` of ``count`` ``(user_id, role)`` rows (``?`` placeholders)."""
    rows = ", ".join(_ROLE_ROW for _ in range(count))
    return f"INSERT INTO user_roles (user_id, role) VALUES {rows}"


def _statement_sizes(count: int, most: int) -> Iterator[int]:
    """Rows per statement for ``count`` rows: ``most`` at a time, then the
    rest as powers of two, largest first (``1100, 512`` -> ``512, 512, 64, 8, 4``).

    So few statement shapes ever exist: the driver caches each prepared
    statement, and a multi-row INSERT of 512 users takes close to a megabyte
    in SQLite's statement cache; one shape per remainder would let the cache
    grow to hundreds of megabytes per connection."""
    full, rest = divmod(count, most)
    yield from itertools.repeat(most, full)
    while rest:
        size = 1 << (rest.bit_length() - 1)
        yield size
        rest -= size


def _batches(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# -- custom fields -------------------------------------------------------------


def _wanted_indexes(fields: Sequence[CustomField]) -> dict[str, CustomField]:
    return {custom_index_name(field): field for field in fields if field.is_indexed}


def ensure_custom_indexes(
    transaction: Callable[..., AbstractContextManager[SqlUnitOfWork]],
    fields: Sequence[CustomField],
) -> None:
    """Bring the custom field indexes in line with ``fields``: a read to find
    them current (every open after the first), else a write transaction that
    syncs them (:func:`sync_custom_indexes`)."""
    with transaction(readonly=True) as tx:
        if custom_indexes_current(tx, fields):
            return
    with transaction() as tx:
        sync_custom_indexes(tx, fields)


def custom_indexes_current(uow: SqlUnitOfWork, fields: Sequence[CustomField]) -> bool:
    """Whether the users table has exactly the custom field indexes ``fields`` ask for."""
    execute = uow.reading()
    existing = {row[0] for row in execute(uow.dialect.custom_indexes, ()).fetchall()}
    return existing == set(_wanted_indexes(fields))


def sync_custom_indexes(uow: SqlUnitOfWork, fields: Sequence[CustomField]) -> None:
    """Create the missing custom field indexes and drop those no longer declared,
    inside the caller's write transaction.  A unique index that stored accounts
    already break raises ``ConflictError`` naming the field (nothing changes)."""
    execute = uow.writing()
    dialect = uow.dialect
    if dialect.custom_lock:
        execute(dialect.custom_lock, ())
    wanted = _wanted_indexes(fields)
    existing = {row[0] for row in execute(dialect.custom_indexes, ()).fetchall()}
    for index in sorted(existing - set(wanted)):
        # Listed from the catalog under our prefix, so an identifier we made.
        execute(f"DROP INDEX IF EXISTS {sql_identifier(index)}", ())
    for index, field in sorted(wanted.items()):
        if index not in existing:
            _declared_name(field.name)
            try:
                execute(dialect.custom_index(field), ())
            except dialect.integrity_error as exc:
                raise uow.translated(exc) from None


# -- row mapping -------------------------------------------------------------


def user_from_row(row: Sequence[Any], declared: Sequence[CustomField] = ()) -> User:
    return User(
        id=row[0],
        email=row[1],
        username=row[2],
        name=row[3],
        roles=set_from_db(row[4]),
        status=row[5],
        email_verified=bool(row[6]),
        created_at=time_from_db(row[7]),
        updated_at=time_from_db(row[8]),
        last_login_at=optional_time_from_db(row[9]),
        password_hash=row[10],
        failed_logins=row[11],
        locked_until=optional_time_from_db(row[12]),
        token_version=row[13],
        version=row[14],
        custom_fields=custom_fields_from_db(row[15], declared),
    )


def user_params(user: User, version: int, *, update: bool = False) -> tuple[Any, ...]:
    """Values of ``_USER_WRITE_COLUMNS`` for ``user`` stored at ``version`` (for
    an ``update``: its custom fields as a merge patch)."""
    return (
        user.email,
        user.email_key,
        user.username,
        user.username_key,
        user.name,
        None if user.name is None else search_key(user.name),
        set_to_db(user.roles),
        user.status.value,
        user.email_verified,
        time_to_db(user.created_at),
        time_to_db(user.updated_at),
        optional_time_to_db(user.last_login_at),
        user.password_hash,
        user.failed_logins,
        optional_time_to_db(user.locked_until),
        user.token_version,
        version,
        custom_fields_to_db(user.custom_fields, patch=update),
    )


def role_from_row(row: Sequence[Any]) -> Role:
    return Role(
        name=row[0],
        permissions=set_from_db(row[1]),
        inherits=set_from_db(row[2]),
        description=row[3],
    )


def permission_from_row(row: Sequence[Any]) -> Permission:
    return Permission(name=row[0], description=row[1], created_at=time_from_db(row[2]))


def refresh_from_row(row: Sequence[Any]) -> RefreshToken:
    return RefreshToken(
        token_hash=bytes(row[0]),
        family_id=row[1],
        user_id=row[2],
        token_version=row[3],
        created_at=time_from_db(row[4]),
        expires_at=time_from_db(row[5]),
        used_at=optional_time_from_db(row[6]),
        revoked_at=optional_time_from_db(row[7]),
    )


def api_key_from_row(row: Sequence[Any]) -> ApiKey:
    return ApiKey(
        id=row[0],
        user_id=row[1],
        name=row[2],
        prefix=row[3],
        scopes=None if row[4] is None else set_from_db(row[4]),
        secret_hash=bytes(row[5]),
        created_at=time_from_db(row[6]),
        expires_at=optional_time_from_db(row[7]),
        last_used_at=optional_time_from_db(row[8]),
        revoked_at=optional_time_from_db(row[9]),
    )


def one_time_from_row(row: Sequence[Any]) -> OneTimeToken:
    return OneTimeToken(
        token_hash=bytes(row[0]),
        purpose=row[1],
        user_id=row[2],
        binding=row[3],
        created_at=time_from_db(row[4]),
        expires_at=time_from_db(row[5]),
        used_at=optional_time_from_db(row[6]),
    )


def token_statement(sql: Statements, user_id: int, jti: str) -> tuple[str, tuple[Any, ...]]:
    """The one statement of ``users.get_for_token`` and its parameters: one row,
    whether ``jti`` is revoked, then the user's columns (``NULL`` when none)."""
    if not storable(jti):
        return sql.user_for_token_unstorable, (user_id,)
    return sql.user_for_token, (jti, user_id)


def token_result(row: Sequence[Any], declared: Sequence[CustomField]) -> tuple[User | None, bool]:
    """``users.get_for_token``'s answer from the row of :func:`token_statement`."""
    return (None if row[1] is None else user_from_row(row[1:], declared)), bool(row[0])


# -- repositories --------------------------------------------------------------


class _Repository:
    __slots__ = ("_sql", "_uow")

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow
        self._sql = uow.sql


class SqlUserRepository(_Repository):
    __slots__ = ()

    def add(self, user: User) -> User:
        uow = self._uow
        uow.writing()
        check_text(user)
        user = with_declared(in_utc(user), uow.custom_fields)
        try:
            user_id = uow.dialect.insert_returning_id(
                uow, self._sql.user_insert, user_params(user, 1)
            )
        except uow.dialect.integrity_error as exc:
            raise uow.translated(exc) from None
        if user.roles:
            uow.executemany(self._sql.user_roles_insert, [(user_id, role) for role in user.roles])
        return attrs.evolve(user, id=user_id, version=1)

    def add_many(self, users: Sequence[User]) -> list[User]:
        uow = self._uow
        uow.writing()
        if not users:
            return []
        for user in users:
            check_text(user)
        stored = [with_declared(in_utc(user), uow.custom_fields) for user in users]
        with uow.savepoint():
            return uow.dialect.insert_users(uow, stored)

    def get(self, user_id: int) -> User | None:
        row = self._uow.reading()(self._sql.user_by_id, (user_id,)).fetchone()
        return None if row is None else user_from_row(row, self._uow.custom_fields)

    def get_for_token(self, user_id: int, jti: str) -> tuple[User | None, bool]:
        execute = self._uow.reading()
        row = execute(*token_statement(self._sql, user_id, jti)).fetchone()
        return token_result(row, self._uow.custom_fields)

    def get_by_email(self, email_key: str) -> User | None:
        if not storable(email_key):
            return None
        row = self._uow.reading()(self._sql.user_by_email, (email_key,)).fetchone()
        return None if row is None else user_from_row(row, self._uow.custom_fields)

    def get_by_username(self, username_key: str) -> User | None:
        if not storable(username_key):
            return None
        row = self._uow.reading()(self._sql.user_by_username, (username_key,)).fetchone()
        return None if row is None else user_from_row(row, self._uow.custom_fields)

    def taken_keys(
        self, email_keys: Iterable[str], username_keys: Iterable[str]
    ) -> tuple[set[str], set[str]]:
        execute = self._uow.reading()
        return (
            self._taken(execute, "email_key", email_keys),
            self._taken(execute, "username_key", username_keys),
        )

    def _taken(self, execute: Callable[..., Cursor], column: str, keys: Iterable[str]) -> set[str]:
        """The ``keys`` some user holds in ``column`` (one of our key columns)."""
        taken: set[str] = set()
        # Chunks stay under SQLite's oldest bound-parameter limit (999).
        for chunk in _batches({key for key in keys if storable(key)}, _KEYS_PER_LOOKUP):
            placeholders = ", ".join("?" * len(chunk))
            sql = self._uow.dialect.prepare(
                f"SELECT {column} FROM users WHERE {column} IN ({placeholders})"
            )
            taken.update(row[0] for row in execute(sql, chunk).fetchall())
        return taken

    def update(self, user: User) -> User:
        uow = self._uow
        execute = uow.writing()
        check_text(user)
        user = with_declared(in_utc(user), uow.custom_fields)
        current = execute(self._sql.user_version_roles, (user.id,)).fetchone()
        if current is None:
            raise NotFoundError("the user does not exist")
        if current[0] != user.version:
            raise ConflictError("the user was changed by another write", field="version")
        params = (*user_params(user, user.version + 1, update=True), user.id, user.version)
        cursor = uow.write(self._sql.user_update, params)
        if cursor.rowcount != 1:  # a concurrent writer won between the two statements
            raise ConflictError("the user was changed by another write", field="version")
        if user.roles != set_from_db(current[1]):
            execute(self._sql.user_roles_clear, (user.id,))
            uow.executemany(self._sql.user_roles_insert, [(user.id, role) for role in user.roles])
        return attrs.evolve(user, version=user.version + 1)

    def delete(self, user_id: int) -> bool:
        # ON DELETE CASCADE takes the roles, tokens and API keys along.
        return self._uow.write(self._sql.user_delete, (user_id,)).rowcount == 1

    def list(
        self, *, after: int | None, limit: int, filter: UserFilter, offset: int = 0
    ) -> list[User]:
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        execute = self._uow.reading()
        if _matches_nothing(filter):
            return []
        dialect = self._uow.dialect
        declared = self._uow.custom_fields
        sql = dialect.user_query("list", after=after is not None, filter=filter, declared=declared)
        params = dialect.user_query_params(after, filter, declared)
        params += (limit, offset)
        return [
            user_from_row(row, self._uow.custom_fields) for row in execute(sql, params).fetchall()
        ]

    def count(self, *, filter: UserFilter) -> int:
        execute = self._uow.reading()
        if _matches_nothing(filter):
            return 0
        dialect = self._uow.dialect
        keys = dialect.counter_keys(filter)
        if keys is not None:
            return int(execute(self._sql.user_counts_sum, keys).fetchone()[0])
        declared = self._uow.custom_fields
        sql = dialect.user_query("count", after=False, filter=filter, declared=declared)
        return int(execute(sql, dialect.user_query_params(None, filter, declared)).fetchone()[0])

    def count_with_role(self, role: str) -> int:
        return self.count(filter=UserFilter(role=role))

    def remove_role(self, role: str) -> int:
        uow = self._uow
        execute = uow.writing()
        if not storable(role):
            return 0
        changed = 0
        after = 0
        # Keyset batches: a role every user holds never loads the whole table.
        while rows := execute(self._sql.user_roles_holders, (role, after, BATCH_SIZE)).fetchall():
            uow.executemany(
                self._sql.user_set_roles,
                [(set_to_db(set_from_db(roles) - {role}), user_id) for user_id, roles in rows],
            )
            changed += len(rows)
            after = rows[-1][0]
        execute(self._sql.user_roles_remove, (role,))
        return changed


class SqlRoleRepository(_Repository):
    __slots__ = ()

    def add(self, role: Role) -> Role:
        check_text(role)
        self._uow.write(
            self._sql.role_insert,
            (role.name, set_to_db(role.permissions), set_to_db(role.inherits), role.description),
        )
        self._bump()
        return role

    def get(self, name: str) -> Role | None:
        if not storable(name):
            return None
        row = self._uow.reading()(self._sql.role_get, (name,)).fetchone()
        return None if row is None else role_from_row(row)

    def list(self) -> list[Role]:
        return [role_from_row(row) for row in self._uow.reading()(self._sql.role_list).fetchall()]

    def update(self, role: Role) -> Role:
        check_text(role)
        cursor = self._uow.write(
            self._sql.role_update,
            (set_to_db(role.permissions), set_to_db(role.inherits), role.description, role.name),
        )
        if cursor.rowcount != 1:
            raise NotFoundError("the role does not exist")
        self._bump()
        return role

    def delete(self, name: str) -> bool:
        self._uow.writing()
        if not storable(name) or self._uow.write(self._sql.role_delete, (name,)).rowcount != 1:
            return False
        self._bump()
        return True

    def version(self) -> int:
        row = self._uow.reading()(self._sql.roles_version, (ROLES_VERSION_KEY,)).fetchone()
        return 0 if row is None else int(row[0])

    def _bump(self) -> None:
        self._uow.execute(self._sql.roles_version_bump, (ROLES_VERSION_KEY,))


class SqlPermissionRepository(_Repository):
    __slots__ = ()

    def add(self, permission: Permission) -> Permission:
        created_at = permission.created_at
        if created_at is None:
            raise ValueError("a stored permission needs its created_at")
        check_text(permission)
        permission = in_utc(permission)
        self._uow.write(
            self._sql.permission_insert,
            (permission.name, permission.description, time_to_db(created_at)),
        )
        return permission

    def get(self, name: str) -> Permission | None:
        execute = self._uow.reading()
        if not storable(name):
            return None
        row = execute(self._sql.permission_get, (name,)).fetchone()
        return None if row is None else permission_from_row(row)

    def list(self) -> list[Permission]:
        rows = self._uow.reading()(self._sql.permission_list).fetchall()
        return [permission_from_row(row) for row in rows]


class SqlRefreshTokenRepository(_Repository):
    __slots__ = ()

    def add(self, token: RefreshToken) -> None:
        check_text(token)
        self._uow.write(
            self._sql.refresh_insert,
            (
                token.token_hash,
                token.family_id,
                token.user_id,
                token.token_version,
                time_to_db(token.created_at),
                time_to_db(token.expires_at),
                optional_time_to_db(token.used_at),
                optional_time_to_db(token.revoked_at),
            ),
        )

    def get(self, token_hash: bytes) -> RefreshToken | None:
        row = self._uow.reading()(self._sql.refresh_get, (token_hash,)).fetchone()
        return None if row is None else refresh_from_row(row)

    def list_for_user(self, user_id: int) -> list[RefreshToken]:
        rows = self._uow.reading()(self._sql.refresh_for_user, (user_id,)).fetchall()
        return [refresh_from_row(row) for row in rows]

    def mark_used(self, token_hash: bytes, at: datetime) -> bool:
        # Compare-and-set in one statement: of two concurrent refreshes with
        # the same token, exactly one sees rowcount 1.
        params = (time_to_db(at), token_hash)
        return self._uow.write(self._sql.refresh_mark_used, params).rowcount == 1

    def revoke_family(self, family_id: str, at: datetime) -> int:
        self._uow.writing()
        if not storable(family_id):
            return 0
        params = (time_to_db(at), family_id)
        return self._uow.write(self._sql.refresh_revoke_family, params).rowcount

    def revoke_user(self, user_id: int, at: datetime) -> int:
        params = (time_to_db(at), user_id)
        return self._uow.write(self._sql.refresh_revoke_user, params).rowcount

    def purge_expired(self, now: datetime) -> int:
        return self._uow.write(self._sql.refresh_purge, (time_to_db(now),)).rowcount


class SqlRevokedTokenRepository(_Repository):
    __slots__ = ()

    def add(self, jti: str, expires_at: datetime) -> None:
        check_text(jti=jti)
        self._uow.write(self._uow.dialect.revoked_upsert, (jti, time_to_db(expires_at)))

    def is_revoked(self, jti: str) -> bool:
        execute = self._uow.reading()
        return storable(jti) and execute(self._sql.revoked_exists, (jti,)).fetchone() is not None

    def list(self) -> list[RevokedToken]:
        rows = self._uow.reading()(self._sql.revoked_list).fetchall()
        return [RevokedToken(jti=row[0], expires_at=time_from_db(row[1])) for row in rows]

    def purge_expired(self, now: datetime) -> int:
        return self._uow.write(self._sql.revoked_purge, (time_to_db(now),)).rowcount


class SqlApiKeyRepository(_Repository):
    __slots__ = ()

    def add(self, key: ApiKey) -> ApiKey:
        uow = self._uow
        uow.writing()
        check_text(key)
        params = (
            key.user_id,
            key.name,
            key.prefix,
            None if key.scopes is None else set_to_db(key.scopes),
            key.secret_hash,
            time_to_db(key.created_at),
            optional_time_to_db(key.expires_at),
            optional_time_to_db(key.last_used_at),
            optional_time_to_db(key.revoked_at),
        )
        try:
            key_id = uow.dialect.insert_returning_id(uow, self._sql.api_key_insert, params)
        except uow.dialect.integrity_error as exc:
            raise uow.translated(exc) from None
        return self._fetch(key_id)

    def get(self, key_id: int) -> ApiKey | None:
        row = self._uow.reading()(self._sql.api_key_get, (key_id,)).fetchone()
        return None if row is None else api_key_from_row(row)

    def get_by_prefix(self, prefix: str) -> ApiKey | None:
        execute = self._uow.reading()
        if not storable(prefix):
            return None
        row = execute(self._sql.api_key_by_prefix, (prefix,)).fetchone()
        return None if row is None else api_key_from_row(row)

    def list_for_user(self, user_id: int) -> list[ApiKey]:
        rows = self._uow.reading()(self._sql.api_key_for_user, (user_id,)).fetchall()
        return [api_key_from_row(row) for row in rows]

    def update(self, key: ApiKey) -> ApiKey:
        check_text(key)
        params = (
            key.name,
            None if key.scopes is None else set_to_db(key.scopes),
            optional_time_to_db(key.expires_at),
            optional_time_to_db(key.last_used_at),
            optional_time_to_db(key.revoked_at),
            key.id,
        )
        if self._uow.write(self._sql.api_key_update, params).rowcount != 1:
            raise NotFoundError("the API key does not exist")
        return self._fetch(key.id)

    def revoke_user(self, user_id: int, at: datetime) -> int:
        params = (time_to_db(at), user_id)
        return self._uow.write(self._sql.api_key_revoke_user, params).rowcount

    def _fetch(self, key_id: int) -> ApiKey:
        return api_key_from_row(self._uow.execute(self._sql.api_key_get, (key_id,)).fetchone())


class SqlOneTimeTokenRepository(_Repository):
    __slots__ = ()

    def add(self, token: OneTimeToken) -> None:
        check_text(token)
        self._uow.write(
            self._sql.one_time_insert,
            (
                token.token_hash,
                token.purpose,
                token.user_id,
                token.binding,
                time_to_db(token.created_at),
                time_to_db(token.expires_at),
                optional_time_to_db(token.used_at),
            ),
        )

    def get(self, token_hash: bytes) -> OneTimeToken | None:
        row = self._uow.reading()(self._sql.one_time_get, (token_hash,)).fetchone()
        return None if row is None else one_time_from_row(row)

    def list_for_user(self, user_id: int) -> list[OneTimeToken]:
        rows = self._uow.reading()(self._sql.one_time_for_user, (user_id,)).fetchall()
        return [one_time_from_row(row) for row in rows]

    def consume(self, token_hash: bytes, at: datetime) -> bool:
        params = (time_to_db(at), token_hash)
        return self._uow.write(self._sql.one_time_consume, params).rowcount == 1

    def delete_for_user(self, user_id: int, purpose: str | None = None) -> int:
        if purpose is None:
            return self._uow.write(self._sql.one_time_delete_user, (user_id,)).rowcount
        if not storable(purpose):
            return 0
        params = (user_id, purpose)
        return self._uow.write(self._sql.one_time_delete_user_purpose, params).rowcount

    def purge_expired(self, now: datetime) -> int:
        return self._uow.write(self._sql.one_time_purge, (time_to_db(now),)).rowcount


class SqlLoginAttemptRepository(_Repository):
    __slots__ = ()

    def get(self, key: str) -> LoginAttempts | None:
        execute = self._uow.reading()
        if not storable(key):
            return None
        row = execute(self._sql.login_get, (key,)).fetchone()
        return None if row is None else _login_from_row(row)

    def list(self) -> list[LoginAttempts]:
        rows = self._uow.reading()(self._sql.login_list).fetchall()
        return [_login_from_row(row) for row in rows]

    def put(self, attempts: LoginAttempts) -> None:
        check_text(attempts)
        self._uow.write(
            self._sql.login_put,
            (
                attempts.key,
                attempts.failures,
                optional_time_to_db(attempts.locked_until),
                time_to_db(attempts.updated_at),
            ),
        )

    def delete(self, key: str) -> None:
        self._uow.writing()
        if storable(key):
            self._uow.write(self._sql.login_delete, (key,))

    def purge_expired(self, now: datetime) -> int:
        return self._uow.write(self._sql.login_purge, (time_to_db(now),)).rowcount


def _login_from_row(row: Sequence[Any]) -> LoginAttempts:
    return LoginAttempts(
        key=row[0],
        failures=row[1],
        locked_until=optional_time_from_db(row[2]),
        updated_at=time_from_db(row[3]),
    )


class SqlMetaRepository(_Repository):
    __slots__ = ()

    def get(self, key: str) -> str | None:
        execute = self._uow.reading()
        if not storable(key):
            return None
        row = execute(self._sql.meta_get, (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        check_text(key=key, value=value)
        self._uow.write(self._sql.meta_set, (key, value))

    def items(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._uow.reading()(self._sql.meta_items).fetchall()}

    def schema_version(self) -> int:
        self._uow.reading()
        return self._uow.dialect.schema_version(self._uow)
