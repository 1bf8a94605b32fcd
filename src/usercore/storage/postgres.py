"""``PostgresStore``: the PostgreSQL adapter (psycopg 3 and psycopg-pool).

Several servers, one database.  The SQL and the repositories are those of
:mod:`usercore.storage._sql`, shared with SQLite; this module adds what only
PostgreSQL needs:

- A connection pool.  A unit of work holds one pooled connection from its
  first line to its end; a nested ``transaction()`` in the same thread joins
  it as a savepoint.
- ``READ COMMITTED`` write transactions, with row locks where the services
  read, then write what they read: a write transaction reads users, refresh
  and one-time tokens, API keys, login throttles and meta values ``FOR NO KEY
  UPDATE``, so that two servers counting failed logins, rotating one refresh
  token or bumping a token version queue instead of losing an update.  A read
  that finds no row (a login throttle or meta value about to be created, a
  role about to be seeded) takes a transaction-scoped advisory lock on the key
  and reads again, and reading the whole role graph locks the role version
  row, so that role checks and role writes run one at a time.
- Read-only units of work run ``REPEATABLE READ READ ONLY``: one consistent
  snapshot (a page and its total agree), no locks, no write possible.
- A single read (``transaction(single_read=True)``: authenticating a token,
  a user by id or email) is one statement on its own, in autocommit: no
  ``BEGIN``/``COMMIT``, one round trip instead of three.  One statement sees
  one snapshot (``READ COMMITTED`` takes it per statement), which is all one
  read needs.  A second statement in it is refused (``RuntimeError``).
  The token check's read can also be awaited on an event loop
  (:meth:`PostgresStore.read_for_token`, on ``AsyncConnection`` objects of
  the store's own, apart from the pool).
- PostgreSQL aborts the whole transaction on a failed statement, so every
  statement that can violate a constraint runs inside a savepoint: a
  ``ConflictError`` leaves the unit of work usable, as the ports promise.
- Text is stored as is: the ports promise valid Unicode without NUL
  (PostgreSQL ``text`` cannot hold NUL), and the shared repositories refuse
  other text with a ``ValidationError``, so ``psql`` shows what was stored.
- Migrations are applied on open, in one transaction, under an advisory lock
  keyed on the schema, so servers starting together migrate once.

Transient failures: taking a connection and starting the transaction are
retried (a pooled connection that the server or network dropped is discarded
and the pool checked); a single read, which starts no transaction, runs its
statement once more on a fresh connection when the pooled one turns out
dropped (it is idempotent, and nothing else ran in its unit of work).  A
failure *inside* a unit of work cannot be replayed (the block is the
caller's code): a deadlock, a serialization failure, a lock
timeout or a lost connection rolls the unit of work back and raises
:class:`~usercore.errors.UsercoreError` with ``details["retryable"] = True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, cast

import attrs

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.pq import TransactionStatus
    from psycopg.rows import TupleRow
    from psycopg.types.string import TextLoader
    from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "usercore.storage.postgres needs psycopg 3 and psycopg-pool: "
        "pip install 'usercore[postgres]'",
        name=exc.name,
    ) from exc

from usercore.custom_fields import CustomField
from usercore.domain import Permission, Role, User
from usercore.errors import NotFoundError, UsercoreError
from usercore.ports import LoginAttempts
from usercore.storage._codec import storable
from usercore.storage._faults import Incidents
from usercore.storage._postgres_schema import (
    LATEST_VERSION,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    OUR_TABLES,
    TRIGRAM_INDEXES,
)
from usercore.storage._schema import (
    ROLES_VERSION_KEY,
    UNIQUE_RULES,
    custom_index_conflict,
    sql_identifier,
)
from usercore.storage._sql import (
    Cursor,
    Dialect,
    SqlLoginAttemptRepository,
    SqlMetaRepository,
    SqlPermissionRepository,
    SqlRoleRepository,
    SqlUnitOfWork,
    ensure_custom_indexes,
    token_result,
    token_statement,
    user_params,
)
from usercore.storage._transaction import Transaction, TransactionHooks

__all__ = ["PostgresStore"]

logger = logging.getLogger("usercore.storage.postgres")

ATTEMPTS = 3
"""How many times taking a connection and starting a transaction is tried."""

# -- dialect ---------------------------------------------------------------------

# Reads a write transaction makes FOR NO KEY UPDATE: the services read these
# rows, then write them back (counters, versions, spent flags).  NO KEY: the
# lock does not block inserting a token that references the user.
_LOCKED_READS = (
    "user_by_id",
    "user_by_email",
    "user_by_username",
    "user_version_roles",
    "refresh_get",
    "api_key_get",
    "api_key_by_prefix",
    "one_time_get",
    "login_get",
    "meta_get",
)

# unique constraint name -> the rule it keeps
_UNIQUE_RULES = {rule.constraint: rule for rule in UNIQUE_RULES}

_NEXT_USER_IDS = "SELECT nextval(pg_get_serial_sequence('users', 'id')) FROM generate_series(1, %s)"
# A transaction-scoped lock on one key of one table, in this schema: a row that
# does not exist yet cannot be locked, its future key can.
_KEY_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended("
    "'usercore:' || current_schema() || ':' || %s || ':' || %s, 0))"
)
_FOR_NO_KEY_UPDATE = " FOR NO KEY UPDATE"
_LOCK_ROLES_VERSION = "SELECT value FROM meta WHERE key = %s FOR NO KEY UPDATE"
_MIGRATION_LOCK = (
    "SELECT pg_advisory_lock(hashtextextended('usercore:migrate:' || current_schema(), 0))"
)
_MIGRATION_UNLOCK = (
    "SELECT pg_advisory_unlock(hashtextextended('usercore:migrate:' || current_schema(), 0))"
)
# PostgreSQL does not carry "r.user_id > $n" over the join to users.id, so a
# merge join would walk the users' primary key from its start to the page: a
# deep page would cost its depth.  A nested loop over the (role, user_id) index,
# one primary-key probe per row, costs the page size at any depth, like SQLite's
# plan; OFFSET 0 keeps the planner from flattening it back into a join.
_ROLE_LOOP = "user_roles r CROSS JOIN LATERAL (SELECT * FROM users WHERE id = r.user_id OFFSET 0) u"
_ROLE_HOLDERS = (
    "SELECT u.id, u.roles FROM user_roles r "
    "CROSS JOIN LATERAL (SELECT id, roles FROM users WHERE id = r.user_id OFFSET 0) u "
    "WHERE r.role = %s AND r.user_id > %s ORDER BY r.user_id LIMIT %s"
)
# Bulk loads: COPY streams rows twice as fast as executemany (20,000 users).
_COPY_USERS = (
    "COPY users (id, email, email_key, username, username_key, name, name_key, roles, "
    "status, email_verified, created_at, updated_at, last_login_at, password_hash, "
    "failed_logins, locked_until, token_version, version, custom_fields) FROM STDIN"
)
_COPY_USER_ROLES = "COPY user_roles (user_id, role) FROM STDIN"
# What to do about a schema or database usercore cannot use.
_HINT_SCHEMA = "CREATE SCHEMA …"
_HINT_UTF8 = "CREATE DATABASE … ENCODING 'UTF8'"
_HINT_OWN_SCHEMA = "CREATE SCHEMA usercore; then ?options=-csearch_path%3Dusercore in the URL"
_BEGIN_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE"
_BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"


class PostgresDialect(Dialect):
    """The PostgreSQL side of the shared SQL.

    ``locking`` builds the statements of write transactions, whose
    read-modify-write reads lock the rows they return.
    """

    integrity_error = psycopg.IntegrityError
    counters = True
    revoked_upsert = (
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES (%s, %s) ON CONFLICT (jti) "
        "DO UPDATE SET expires_at = greatest(revoked_tokens.expires_at, excluded.expires_at)"
    )

    def __init__(self, *, locking: bool, indexed_search: bool) -> None:
        super().__init__()
        self.indexed_search = indexed_search
        self.role_walk = _ROLE_LOOP
        self.locking = locking
        changes = {
            "user_roles_holders": _ROLE_HOLDERS,
            # RFC 7396 merge of the custom fields: || sets, then nulls go.
            "user_update": self.statements.user_update.replace(
                "json_patch(custom_fields, %s)", "jsonb_strip_nulls(custom_fields || %s::jsonb)"
            ),
        }
        if locking:
            changes.update(
                (name, getattr(self.statements, name) + _FOR_NO_KEY_UPDATE)
                for name in _LOCKED_READS
            )
        self.statements = attrs.evolve(self.statements, **changes)
        sql = self.statements
        self._returning = {
            sql.user_insert: sql.user_insert + " RETURNING id",
            sql.api_key_insert: sql.api_key_insert + " RETURNING id",
        }
        self.guarded = frozenset(
            {
                sql.user_update,
                sql.role_insert,
                sql.permission_insert,
                sql.refresh_insert,
                sql.one_time_insert,
                *self._returning.values(),
            }
        )
        """Statements that can violate a constraint: they run inside a savepoint."""

    def prepare(self, sql: str) -> str:
        # psycopg reads "%" as the start of a placeholder: double literal ones.
        return sql.replace("%", "%%").replace("?", "%s")

    def contains(self, column: str) -> str:
        # strpos(), not LIKE: no wildcards to escape, so "%" finds a literal "%".
        return f"strpos({column}, ?) > 0"

    def search_method(self, needle: str) -> str:
        # pg_trgm answers LIKE '%needle%' from its GIN indexes when the needle
        # has a trigram (three characters); a shorter one scans with strpos().
        return "index" if self.indexed_search and len(needle) >= 3 else "scan"

    def search_condition(self, method: str) -> str:
        if method != "index":
            return super().search_condition(method)
        return "(u.email_key LIKE ? OR u.username_key LIKE ? OR u.name_key LIKE ?)"

    def search_params(self, method: str, needle: str) -> list[Any]:
        if method != "index":
            return super().search_params(method, needle)
        # The needle's own wildcards and the escape character are escaped
        # (backslash is LIKE's default escape), so it matches literally.
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        return [pattern, pattern, pattern]

    custom_indexes = (
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'users' AND left(indexname, 13) = 'users_custom_'"
    )
    # Servers opening together with one declaration: one creates the indexes.
    custom_lock = (
        "SELECT pg_advisory_xact_lock("
        "hashtextextended('usercore:custom_fields:' || current_schema(), 0))"
    )

    def custom_field(self, name: str, table: str = "u.") -> str:
        # jsonb, not ->> text: equality is type-exact ("1" is not 1, true is not 1).
        return f"({table}custom_fields -> '{sql_identifier(name)}')"

    def custom_params(self, value: Any) -> list[Any]:
        return [json.dumps(value, ensure_ascii=False)]

    def custom_condition(self, name: str) -> str:
        return f"{self.custom_field(name)} = ?::jsonb"

    def custom_type(self, name: str) -> str:
        # SQLite's json_type names (STORED_TYPES); jsonb keeps a number's
        # text, so 2.0 is real as in SQLite and as Python's json reads it.
        value = self.custom_field(name)
        return (
            f"CASE jsonb_typeof({value}) "
            f"WHEN 'string' THEN 'text' "
            f"WHEN 'boolean' THEN {value}::text "
            f"WHEN 'number' THEN CASE WHEN {value}::text ~ '^[-0-9]+$' "
            f"THEN 'integer' ELSE 'real' END "
            f"ELSE 'null' END"
        )

    def translate(self, exc: Exception) -> Exception | None:
        if isinstance(exc, pg_errors.UniqueViolation):
            constraint = exc.diag.constraint_name or ""
            rule = _UNIQUE_RULES.get(constraint)
            if rule is not None:
                return rule.error()
            custom = custom_index_conflict(constraint)
            if custom is not None:
                return custom
        elif isinstance(exc, pg_errors.ForeignKeyViolation):
            return NotFoundError("the user does not exist")
        return None

    def insert_returning_id(self, uow: SqlUnitOfWork, sql: str, params: Sequence[Any]) -> int:
        assert isinstance(uow, _PostgresUnitOfWork)
        statement = self._returning.get(sql) or sql + " RETURNING id"
        row = uow.guarded(statement, params).fetchone()
        return int(row[0])

    def next_user_ids(self, uow: SqlUnitOfWork, count: int) -> list[int]:
        # nextval() calls of concurrent sessions interleave, so the ids are
        # increasing, not consecutive; a consecutive range would block every
        # other insert.
        return [int(row[0]) for row in uow.execute(_NEXT_USER_IDS, (count,)).fetchall()]

    def insert_users(self, uow: SqlUnitOfWork, users: Sequence[User]) -> list[User]:
        assert isinstance(uow, _PostgresUnitOfWork)
        ids = self.next_user_ids(uow, len(users))
        stored = [
            attrs.evolve(user, id=user_id, version=1)
            for user_id, user in zip(ids, users, strict=True)
        ]
        try:
            uow.copy(_COPY_USERS, ((user.id, *user_params(user, 1)) for user in stored))
            uow.copy(_COPY_USER_ROLES, ((user.id, role) for user in stored for role in user.roles))
        except psycopg.IntegrityError as exc:
            raise uow.translated(exc) from None
        return stored

    def schema_version(self, uow: SqlUnitOfWork) -> int:
        sql = f"SELECT coalesce(max(version), 0) FROM {MIGRATIONS_TABLE}"  # noqa: S608 - constant
        return int(uow.execute(sql).fetchone()[0])


# (reading, writing) dialects, without and with the trigram indexes.
_DIALECTS = {
    indexed: (
        PostgresDialect(locking=False, indexed_search=indexed),
        PostgresDialect(locking=True, indexed_search=indexed),
    )
    for indexed in (False, True)
}


# -- unit of work and the repositories that differ -----------------------------------


class _PostgresUnitOfWork(SqlUnitOfWork):
    """A unit of work on one pooled connection, for one top-level transaction.

    Statements run on one cursor; savepoints on a second one (made when first
    needed), so that the first still holds a statement's result (its
    rowcount, its returned id) after the savepoint is released.

    A single read (``single_read_of`` its store) runs its one statement in
    autocommit, through :meth:`_read_once`.
    """

    def __init__(
        self,
        dialect: PostgresDialect,
        connection: psycopg.Connection[TupleRow],
        single_read_of: PostgresStore | None = None,
    ) -> None:
        data = connection.cursor()

        def execute(sql: str, params: Sequence[Any] = ()) -> Cursor:
            # Always pass parameters, even none: psycopg only turns "%%" back
            # into "%" when it parses the statement for placeholders.
            return cast(Cursor, data.execute(sql, params))

        super().__init__(dialect, execute, data.executemany)
        self.connection = connection
        self.returned = False
        self._control: psycopg.Cursor[TupleRow] | None = None
        self.locking = dialect.locking
        self._data = data
        self._guarded = dialect.guarded
        self._store = single_read_of
        self.statements = 0
        self.kept = False
        """Kept with its connection for the next single read: not closed at the end."""
        if single_read_of is not None:
            self.execute = self._read_once
        self.roles = _PostgresRoleRepository(self)
        self.permissions = _PostgresPermissionRepository(self)
        self.login_attempts = _PostgresLoginAttemptRepository(self)
        self.meta = _PostgresMetaRepository(self)

    @property
    def control(self) -> psycopg.Cursor[TupleRow]:
        """The cursor for savepoints."""
        if self._control is None:
            self._control = self.connection.cursor()
        return self._control

    def _read_once(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """A single read's statement, in autocommit.

        A pooled connection the server or the network dropped fails here
        (there was no ``BEGIN`` to find out earlier): it is discarded and the
        statement runs once more on a fresh connection, which is safe because
        it only reads and nothing else ran in this unit of work.
        """
        if self.statements:
            raise RuntimeError("a single-read unit of work runs one statement")
        self.statements = 1
        try:
            return cast(Cursor, self._data.execute(sql, params))
        except psycopg.OperationalError as exc:
            if not self.connection.broken or self._store is None:
                raise
            logger.warning("discarding a dropped PostgreSQL connection: %s", exc)
        self._reconnect(self._store)
        return cast(Cursor, self._data.execute(sql, params))

    def _reconnect(self, store: PostgresStore) -> None:
        """Give the dropped connection back (the pool discards it) and take another."""
        self.close()
        self.kept = False  # it stays with the dropped connection, which goes
        self.returned = True
        store._pool.putconn(self.connection)
        store._pool.check()
        connection = store._connection()  # StoreUnavailable when none comes
        self.connection, self.returned = connection, False
        self._data = connection.cursor()

    def write(self, sql: str, params: Sequence[Any]) -> Cursor:
        if sql not in self._guarded:
            return super().write(sql, params)
        self.writing()
        try:
            return self.guarded(sql, params)
        except psycopg.IntegrityError as exc:
            raise self.translated(exc) from None

    def guarded(self, sql: str, params: Sequence[Any]) -> Cursor:
        """Run one statement inside a savepoint: if it fails, the transaction is still usable."""
        control = self.control
        control.execute("SAVEPOINT usercore_statement")
        try:
            cursor = self.execute(sql, params)
        except BaseException:
            if not self.connection.broken:
                # If even this fails, the error in flight says more, and the
                # unit of work rolls back as a whole.
                with contextlib.suppress(psycopg.Error):
                    control.execute("ROLLBACK TO SAVEPOINT usercore_statement")
                    control.execute("RELEASE SAVEPOINT usercore_statement")
            raise
        control.execute("RELEASE SAVEPOINT usercore_statement")
        return cursor

    def copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Stream ``rows`` into a ``COPY … FROM STDIN``."""
        with self._data.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)

    def lock_key(self, table: str, key: str) -> bool:
        """Wait for (then hold until the end of the transaction) the lock on ``key``.

        False, without locking, for a key no row can have (see ``storable``).
        """
        if not storable(key):
            return False
        self.execute(_KEY_LOCK, (table, key))
        return True

    def close(self) -> None:
        self._data.close()
        if self._control is not None:
            self._control.close()
            self._control = None


class _PostgresRoleRepository(SqlRoleRepository):
    __slots__ = ()

    def add(self, role: Role) -> Role:
        uow = cast(_PostgresUnitOfWork, self._uow)
        if uow.locking:
            uow.writing()
            uow.lock_key("roles", role.name)
        return super().add(role)

    def get(self, name: str) -> Role | None:
        role = super().get(name)
        uow = cast(_PostgresUnitOfWork, self._uow)
        # Two servers seeding the built-in roles: the second waits for the first
        # to commit, then finds the role instead of a ConflictError.
        if role is None and uow.locking and uow.lock_key("roles", name):
            role = super().get(name)
        return role

    def list(self) -> list[Role]:
        uow = cast(_PostgresUnitOfWork, self._uow)
        if uow.locking:
            # A write transaction that reads every role validates a role write
            # against them (inheritance cycles): one such transaction at a time.
            uow.reading()(_LOCK_ROLES_VERSION, (ROLES_VERSION_KEY,))
        return super().list()


class _PostgresPermissionRepository(SqlPermissionRepository):
    __slots__ = ()

    def get(self, name: str) -> Permission | None:
        permission = super().get(name)
        uow = cast(_PostgresUnitOfWork, self._uow)
        # Servers registering one permission at once (every worker of `usercore
        # serve --permissions`): the second waits for the first to commit, then
        # finds it instead of a ConflictError.
        if permission is None and uow.locking and uow.lock_key("permissions", name):
            permission = super().get(name)
        return permission


class _PostgresLoginAttemptRepository(SqlLoginAttemptRepository):
    __slots__ = ()

    def get(self, key: str) -> LoginAttempts | None:
        attempts = super().get(key)
        uow = cast(_PostgresUnitOfWork, self._uow)
        # Concurrent first failures for one unknown identifier count as two.
        if attempts is None and uow.locking and uow.lock_key("login_attempts", key):
            attempts = super().get(key)
        return attempts


class _PostgresMetaRepository(SqlMetaRepository):
    __slots__ = ()

    def get(self, key: str) -> str | None:
        value = super().get(key)
        uow = cast(_PostgresUnitOfWork, self._uow)
        if value is None and uow.locking and uow.lock_key("meta", key):
            value = super().get(key)
        return value


# -- the store ---------------------------------------------------------------------


def _where(url: str) -> str:
    """Where ``url`` points, for messages: never its password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable connection string"
    host = params.get("host") or params.get("hostaddr") or "the default host"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or params.get("user") or ""
    return f"{host}:{port}/{dbname}"


_AnyConnection = psycopg.Connection[Any] | psycopg.AsyncConnection[Any]


def _is_transient(exc: BaseException, connection: _AnyConnection) -> bool:
    """Whether running the same unit of work again may well succeed."""
    if isinstance(
        exc,
        (pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.LockNotAvailable),
    ):
        return True
    return isinstance(exc, psycopg.OperationalError) and connection.broken


# Server-side faults an operator fixes (space, a standby promoted, a restart):
# class 53 insufficient resources (disk full, too many connections), class 57
# operator intervention (shutdown, cannot connect now), a read-only server.
_UNAVAILABLE = (
    pg_errors.InsufficientResources,
    pg_errors.AdminShutdown,
    pg_errors.CrashShutdown,
    pg_errors.CannotConnectNow,
    pg_errors.ReadOnlySqlTransaction,
)


def _unavailable_reason(exc: BaseException, connection: _AnyConnection) -> str | None:
    """Why ``exc`` means the store is unavailable (a transient fault), or ``None``."""
    if isinstance(exc, psycopg.OperationalError) and connection.broken:
        return "the connection to PostgreSQL was lost"
    if isinstance(exc, _UNAVAILABLE):
        return f"PostgreSQL refused the work ({type(exc).__name__})"
    return None


def _retryable(message: str) -> UsercoreError:
    return UsercoreError(message, details={"retryable": True})


def _is_dropped(exc: BaseException, connection: _AnyConnection) -> bool:
    """Whether ``exc`` says the server or the network dropped ``connection``
    (a statement on another connection may well succeed)."""
    return connection.broken and _unavailable_reason(exc, connection) is not None


def _failure(
    incidents: Incidents, exc: BaseException, connection: _AnyConnection
) -> UsercoreError | None:
    """What a failed unit of work or single read raises for ``exc``: a
    transient fault is ``StoreUnavailable`` (a new incident logged), an aborted
    transaction a retryable ``UsercoreError``; ``None``: ``exc`` itself.
    Judged on ``connection`` as the failure left it."""
    reason = _unavailable_reason(exc, connection)
    if reason is not None:
        return incidents.unavailable(reason, exc)
    if _is_transient(exc, connection):
        return _retryable(
            f"PostgreSQL aborted a transaction ({type(exc).__name__}); it was "
            "rolled back, the operation may be retried"
        )
    return None


class _PostgresTransactions(TransactionHooks[_PostgresUnitOfWork]):
    """PostgreSQL's steps of the shared transaction state machine (``_transaction.py``):
    a pooled connection per top-level unit of work, every nested one a savepoint
    (read-only ones too: a failed statement must not abort the outer one)."""

    __slots__ = ("_store",)

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def current(self) -> _PostgresUnitOfWork | None:
        uow: _PostgresUnitOfWork | None = getattr(self._store._local, "uow", None)
        return uow

    def begin(self, readonly: bool, single_read: bool = False) -> _PostgresUnitOfWork:
        store = self._store
        if store._closed:
            raise RuntimeError("the store is closed")
        if single_read:
            # No transaction: the statement runs in autocommit.
            connection = store._connection()
            uow = _single_read_on(store, connection)
            store._local.uow = uow
            return uow
        connection = store._begin(readonly)
        try:
            uow = _PostgresUnitOfWork(store._dialects[0 if readonly else 1], connection)
            uow.custom_fields = store._custom_fields
        except BaseException:
            store._rollback(connection)
            store._pool.putconn(connection)
            raise
        store._local.uow = uow
        return uow

    def finish(self, uow: _PostgresUnitOfWork, exc: BaseException | None) -> None:
        self._store._local.uow = None
        self._store._finish(uow, exc)

    def savepoint(self, uow: _PostgresUnitOfWork, readonly: bool) -> str:
        name = f"usercore_{uow.depth:d}"
        uow.control.execute(f"SAVEPOINT {name}")
        return name

    def end_savepoint(self, uow: _PostgresUnitOfWork, savepoint: object, failed: bool) -> None:
        if uow.connection.broken:
            return  # the outer transaction reports the lost connection
        if failed:
            try:
                uow.control.execute(f"ROLLBACK TO SAVEPOINT usercore_{uow.depth:d}")
            except psycopg.Error:
                return  # the exception in flight says more; the outer block rolls back
        uow.control.execute(f"RELEASE SAVEPOINT usercore_{uow.depth:d}")


# The attribute under which a pooled connection keeps its single-read unit of work.
_SINGLE_READ = "_usercore_single_read"


def _single_read_on(
    store: PostgresStore, connection: psycopg.Connection[TupleRow]
) -> _PostgresUnitOfWork:
    """The connection's single-read unit of work, made on its first one and
    kept with it (repositories and cursor), so the hot reads build nothing."""
    uow: _PostgresUnitOfWork | None = getattr(connection, _SINGLE_READ, None)
    if uow is None or uow.connection is not connection:
        uow = _PostgresUnitOfWork(store._dialects[0], connection, store)
        uow.kept = True
        setattr(connection, _SINGLE_READ, uow)
    else:
        uow.returned = False
        uow.statements = 0
    # The declaration may change after the connection's first single read
    # (declare_custom_fields at open): read rows with the current one.
    uow.custom_fields = store._custom_fields
    return uow


class _AwaitedReads:
    """The connections of the single reads awaited on an event loop
    (:meth:`PostgresStore.read_for_token`): psycopg ``AsyncConnection`` objects,
    at most ``max_size`` of them, each idle between two reads.

    Not psycopg-pool's ``AsyncConnectionPool``: it runs tasks on the event loop
    that opened it, and a store serves any loop (a server's, each test
    client's); an idle connection here belongs to none.  When every connection
    is busy, :meth:`fetch_one` answers ``None`` and the caller reads through
    the blocking pool (in a thread of the store's own), whose wait is bounded
    by the store's ``timeout``.
    """

    __slots__ = ("_idle", "_lock", "_max_size", "_open", "_store")

    def __init__(self, store: PostgresStore, max_size: int) -> None:
        self._store = store
        self._max_size = max_size
        self._lock = threading.Lock()  # several loops (threads) may share the store
        self._idle: list[tuple[psycopg.AsyncConnection[TupleRow], psycopg.AsyncCursor[TupleRow]]]
        self._idle = []
        self._open = 0
        """Connections that exist or are being made, idle or in use."""

    async def fetch_one(self, sql: str, params: Sequence[Any]) -> Sequence[Any] | None:
        """The first row of ``sql``, run in autocommit; ``None`` when every
        connection is busy (nothing was run).

        A connection the server or the network dropped while it was idle fails
        here: it is discarded and the statement runs once more on a fresh one
        (it only reads).  A lost server raises ``StoreUnavailable``.
        """
        with self._lock:
            if self._idle:
                taken = self._idle.pop()
            elif self._open < self._max_size:
                taken = None
                self._open += 1
            else:
                return None
        store = self._store
        for retry in (False, True):
            if taken is None:
                taken = await self._connect()
            connection, cursor = taken
            try:
                await cursor.execute(sql, params)
                row = await cursor.fetchone()
            except BaseException as exc:
                # Judged before the discard below, which leaves any connection
                # broken: a statement the server cancelled is no lost connection.
                replay = not retry and _is_dropped(exc, connection)
                failure = None if replay else _failure(store._incidents, exc, connection)
                # Cancelled, or failed: whatever the connection is doing, it goes.
                self._discard(connection)
                if replay:
                    logger.warning("discarding a dropped PostgreSQL connection: %s", exc)
                    with self._lock:
                        self._open += 1
                    taken = None
                    continue
                if failure is None:
                    raise
                raise failure from exc
            store._incidents.recovered()
            self._give_back(connection, cursor)
            return row
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect(
        self,
    ) -> tuple[psycopg.AsyncConnection[TupleRow], psycopg.AsyncCursor[TupleRow]]:
        """A new connection, within the store's ``timeout``; its slot is taken."""
        store = self._store
        try:
            connection = await asyncio.wait_for(
                psycopg.AsyncConnection.connect(store._url, **store._connect_kwargs),
                store._timeout,
            )
        except BaseException as exc:
            with self._lock:
                self._open -= 1
            if isinstance(exc, asyncio.TimeoutError):
                reason = f"no connection was made within {store._timeout:g} s"
            elif isinstance(exc, psycopg.OperationalError):
                reason = "cannot connect to PostgreSQL"
            else:
                raise
            raise store._incidents.unavailable(reason, exc) from exc
        # The custom fields (jsonb) as text: a user read decodes them only when
        # fields are declared (``custom_fields_from_db``), not in the driver.
        connection.adapters.register_loader("jsonb", TextLoader)
        return connection, connection.cursor()

    def _give_back(
        self, connection: psycopg.AsyncConnection[TupleRow], cursor: psycopg.AsyncCursor[TupleRow]
    ) -> None:
        with self._lock:
            if not self._store._closed:
                self._idle.append((connection, cursor))
                return
        self._discard(connection)  # the store closed during the read

    def _discard(self, connection: psycopg.AsyncConnection[TupleRow]) -> None:
        with self._lock:
            self._open -= 1
        # AsyncConnection.close() only calls this: no await, so no loop needed.
        connection.pgconn.finish()

    def close(self) -> None:
        """Close the idle connections (those in use close when their read ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            self._discard(connection)


class PostgresStore:
    """A :class:`usercore.ports.Store` in a PostgreSQL database, shared by any
    number of processes and servers.

    ``url`` is a libpq connection string (``postgresql://user:pw@host:5432/db``);
    its ``options`` may pick a schema: ``…/db?options=-csearch_path%3Dusercore``
    (the schema must exist; the tables go into the first one of the search
    path).  The store keeps a pool of ``min_size`` to ``max_size`` connections;
    a unit of work holds one, and waits up to ``timeout`` seconds (default 2)
    for one when all are busy or the server is down, then raises
    :class:`~usercore.errors.StoreUnavailable`: a stopped server fails requests
    fast instead of piling them up.  A new connection gives up after
    ``connect_timeout`` seconds (libpq's, at least 2).  Opening applies the
    missing migrations.

    Raises ``ValueError`` for a malformed URL, and ``UsercoreError`` when the
    server cannot be reached, the schema was migrated by a newer usercore or
    holds another application's tables of the same names, or the database does
    not use UTF-8.
    """

    #: Reads are network round trips: the web adapters run a request that
    #: reads in a worker thread, never blocking the event loop; a token check
    #: awaits :meth:`read_for_token` on the loop instead.
    inline_reads = False

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 2.0,
        connect_timeout: int = 5,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError("the PostgreSQL URL must be a string")
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"not a PostgreSQL connection URL: {str(exc).strip()}") from None
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError("need 0 <= min_size <= max_size and max_size >= 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if connect_timeout < 2:
            raise ValueError("connect_timeout must be at least 2 (libpq's minimum)")
        self._url = url
        self._where = _where(url)
        self._timeout = timeout
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "client_encoding": "utf8",
            "connect_timeout": connect_timeout,
        }
        self._incidents = Incidents(logger, self._where)
        self._transactions = _PostgresTransactions(self)
        self._awaited = _AwaitedReads(self, max_size)
        # The awaited reads' overflow, in threads of the store's own (made as
        # needed), not the loop's default executor: at most max_size of them
        # can hold a pooled connection (a stuck read holds its thread), so
        # the others always wait at most ``timeout`` for one, whatever the
        # size of the loop's executor (on two cores: six threads).
        self._overflow = ThreadPoolExecutor(2 * max_size, thread_name_prefix="usercore-pg-read")
        self._local = threading.local()
        self._closed = False
        self._dialects = _DIALECTS[False]
        self._custom_fields: tuple[CustomField, ...] = ()
        self._migrate()
        self._pool: ConnectionPool[psycopg.Connection[TupleRow]] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs=self._connect_kwargs,
            timeout=timeout,
            name="usercore",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise UsercoreError(
                f"cannot open {min_size} connections to PostgreSQL at {self._where} "
                f"within {timeout:g} s"
            ) from exc

    def transaction(
        self, *, readonly: bool = False, single_read: bool = False
    ) -> Transaction[_PostgresUnitOfWork]:
        """Open a unit of work (see :meth:`usercore.ports.Store.transaction`).

        It holds one pooled connection until it ends: keep it short, and do
        slow work (hashing a password) before opening it.  A deadlock, a
        serialization failure or a lost connection inside it rolls it back and
        raises ``UsercoreError`` with ``details["retryable"]``; the caller may
        run the whole operation again.  ``single_read=True`` runs the block's
        one statement in autocommit (one round trip; see the module notes).
        """
        return Transaction(self._transactions, readonly, single_read)

    async def read_for_token(self, user_id: int, jti: str) -> tuple[User | None, bool]:
        """``users.get_for_token`` as a single read awaited on the running event
        loop: the user and whether ``jti`` is revoked, in one statement on an
        ``AsyncConnection``, with no worker thread (see the module notes).

        What a blocking single read promises, it promises: a dropped idle
        connection is replaced and the statement run once more; a server that
        is lost (the connection reset or closed) or unreachable raises
        ``StoreUnavailable``, a new connection within ``timeout``.  Nor does
        it promise more: a statement sent to a server that then stops
        answering (a network hang, no reset) waits like a blocking read's,
        until the operating system reports the connection lost.
        When ``max_size`` awaited reads already run, it reads through the
        blocking pool in a worker thread of the store's own (up to twice
        ``max_size``: more than the pool's connections, so a read waits at
        most ``timeout`` for one even while every pooled connection is
        stuck).  ``RuntimeError`` once closed.
        """
        if self._closed:
            raise RuntimeError("the store is closed")
        row = await self._awaited.fetch_one(
            *token_statement(self._dialects[0].statements, user_id, jti)
        )
        if row is None:  # every awaited connection is busy
            return await asyncio.get_running_loop().run_in_executor(
                self._overflow, self._read_for_token, user_id, jti
            )
        return token_result(row, self._custom_fields)

    def _read_for_token(self, user_id: int, jti: str) -> tuple[User | None, bool]:
        with self.transaction(single_read=True) as tx:
            return tx.users.get_for_token(user_id, jti)

    def declare_custom_fields(self, fields: Sequence[CustomField]) -> None:
        """Adopt the custom field declaration (see
        :meth:`usercore.ports.Store.declare_custom_fields`): expression indexes
        on ``(custom_fields -> '<name>')``, made under an advisory lock."""
        declared = tuple(fields)
        ensure_custom_indexes(self.transaction, declared)
        self._custom_fields = declared

    def close(self) -> None:
        """Close the pool; the store is unusable afterwards.

        Call it when no transaction is running.
        """
        self._closed = True
        self._pool.close()
        self._awaited.close()
        self._overflow.shutdown(wait=False)

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r})"

    # -- connections and transactions ----------------------------------------------

    def _begin(self, readonly: bool) -> psycopg.Connection[TupleRow]:
        """A pooled connection inside a new transaction.

        A connection the server or the network dropped while it sat in the pool
        fails on BEGIN: it is discarded, the pool's other idle connections are
        checked, and the next one is tried.
        """
        begin = _BEGIN_READ if readonly else _BEGIN_WRITE
        failure: psycopg.OperationalError | None = None
        for attempt in range(ATTEMPTS):
            if attempt > 1:
                time.sleep(0.05 * attempt * (0.5 + random.random()))  # noqa: S311 - jitter
            connection = self._connection()
            try:
                connection.execute(begin)
            except BaseException as exc:
                self._pool.putconn(connection)  # a broken connection is discarded
                if not (isinstance(exc, psycopg.OperationalError) and connection.broken):
                    raise
                failure = exc
                logger.warning("discarding a dropped PostgreSQL connection: %s", exc)
                self._pool.check()
                continue
            return connection
        assert failure is not None
        reason = f"could not start a transaction after {ATTEMPTS} attempts"
        raise self._incidents.unavailable(reason, failure) from failure

    def _connection(self) -> psycopg.Connection[TupleRow]:
        """A pooled connection, waiting at most ``timeout`` for one."""
        try:
            return self._pool.getconn(timeout=self._timeout)
        except PoolTimeout as exc:
            reason = f"no connection became free within {self._timeout:g} s (all busy, or down)"
            raise self._incidents.unavailable(reason, exc) from exc
        except PoolClosed:
            raise RuntimeError("the store is closed") from None

    def _finish(self, uow: _PostgresUnitOfWork, exc: BaseException | None) -> None:
        """Commit or roll back a top-level unit of work and return its connection.

        A single read ran in autocommit: there is nothing to commit or roll back.
        """
        connection = uow.connection
        try:
            if exc is None:
                if not uow.single_read:
                    self._commit(connection)
                self._incidents.recovered()
            else:
                if not uow.single_read:
                    self._rollback(connection)
                failure = _failure(self._incidents, exc, connection)
                if failure is not None:
                    raise failure from exc
        finally:
            if not uow.kept:
                uow.close()
            if not uow.returned:
                self._pool.putconn(connection)

    def _commit(self, connection: psycopg.Connection[TupleRow]) -> None:
        if connection.info.transaction_status == TransactionStatus.INERROR:
            # COMMIT would quietly roll back: a statement failed and the caller
            # caught its error without a savepoint around it.
            self._rollback(connection)
            raise UsercoreError(
                "a statement failed inside the unit of work, so PostgreSQL aborted the "
                "transaction; it was rolled back"
            )
        try:
            connection.execute("COMMIT")
        except psycopg.OperationalError as exc:
            reason = _unavailable_reason(exc, connection)
            if reason is None:
                raise
            # Lost while committing: the transaction may or may not be applied.
            raise self._incidents.unavailable(reason + " (while committing)", exc) from exc

    @staticmethod
    def _rollback(connection: psycopg.Connection[TupleRow]) -> None:
        if connection.broken or connection.closed:
            return  # the server rolled back when the connection went
        try:
            connection.execute("ROLLBACK")
        except psycopg.Error as exc:
            logger.warning("ROLLBACK failed; closing the connection: %s", exc)
            connection.close()

    # -- migrations -------------------------------------------------------------------

    def _migrate(self) -> None:
        """Bring the schema to ``LATEST_VERSION``, retrying transient failures.

        A direct connection rather than the pool, so that an unreachable
        server or a refused login is reported at once, with libpq's reason.
        """
        failure: BaseException | None = None
        for _ in range(ATTEMPTS):
            try:
                connection = psycopg.connect(self._url, **self._connect_kwargs)
            except psycopg.OperationalError as exc:
                raise UsercoreError(
                    f"cannot connect to PostgreSQL at {self._where}: {exc}"
                ) from exc
            try:
                self._migrate_on(connection)
                self._dialects = _DIALECTS[self._has_trigram_indexes(connection)]
                return
            except psycopg.Error as exc:
                if not _is_transient(exc, connection):
                    # Missing rights, a full disk...: the reason, without a traceback.
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                    raise UsercoreError(
                        f"cannot open the usercore schema at {self._where}: {reason}"
                    ) from exc
                failure = exc
            finally:
                connection.close()
        raise _retryable(
            f"could not migrate the PostgreSQL schema at {self._where} after {ATTEMPTS} "
            f"attempts: {failure}"
        ) from failure

    def _migrate_on(self, connection: psycopg.Connection[TupleRow]) -> None:
        if self._check_schema(connection) == LATEST_VERSION:
            return
        # Servers starting together: the first migrates, the others wait here,
        # then find the work done.  A session lock, and a new transaction after
        # it: a transaction that looked the table up before the wait would keep
        # its cached "no such table" and miss the migration committed meanwhile.
        connection.execute(_MIGRATION_LOCK)
        try:
            connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            try:
                version = self._check_schema(connection)
                schema = self._schema(connection)
                if version is None:
                    self._refuse_foreign_tables(connection, schema)
                    version = 0
                for number, (description, statements) in enumerate(
                    MIGRATIONS[version:], start=version + 1
                ):
                    for statement in statements:
                        connection.execute(statement)
                    connection.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (version, description) "  # noqa: S608
                        "VALUES (%s, %s)",
                        (number, description),
                    )
                    logger.info("migrated %s to schema version %d", self._where, number)
                connection.execute("COMMIT")
            except BaseException:
                self._rollback(connection)
                raise
        finally:
            if not connection.broken:
                connection.execute(_MIGRATION_UNLOCK)

    def _schema(self, connection: psycopg.Connection[TupleRow]) -> str:
        row = connection.execute("SELECT current_schema()").fetchone()
        if row is None or row[0] is None:
            raise UsercoreError(
                f"no schema of the search path exists in the database at {self._where}, or "
                f"the role lacks USAGE on it; create it first ({_HINT_SCHEMA})"
            )
        return str(row[0])

    @staticmethod
    def _has_trigram_indexes(connection: psycopg.Connection[TupleRow]) -> bool:
        row = connection.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname = ANY(%s)",
            (list(TRIGRAM_INDEXES),),
        ).fetchone()
        return row is not None and row[0] == len(TRIGRAM_INDEXES)

    def _check_schema(self, connection: psycopg.Connection[TupleRow]) -> int | None:
        """The installed schema version (``None``: not installed), after checking
        that the database and the version are ones this usercore can use."""
        row = connection.execute("SHOW server_encoding").fetchone()
        encoding = None if row is None else str(row[0])
        if encoding is None or encoding.upper() not in ("UTF8", "UTF-8"):
            raise UsercoreError(
                f"the database at {self._where} uses the encoding {encoding}; usercore "
                f"needs UTF8 ({_HINT_UTF8})"
            )
        schema = self._schema(connection)
        version = self._installed_version(connection)
        if version is not None and version > LATEST_VERSION:
            raise UsercoreError(
                f"the schema {schema!r} at {self._where} has schema version {version}, "
                f"newer than the {LATEST_VERSION} this usercore knows; upgrade usercore"
            )
        return version

    @staticmethod
    def _installed_version(connection: psycopg.Connection[TupleRow]) -> int | None:
        """The schema version, or ``None`` when this schema has no migrations table."""
        row = connection.execute(
            "SELECT to_regclass(quote_ident(current_schema()) || '.' || %s) IS NOT NULL",
            (MIGRATIONS_TABLE,),
        ).fetchone()
        if row is None or not row[0]:
            return None
        sql = f"SELECT coalesce(max(version), 0) FROM {MIGRATIONS_TABLE}"  # noqa: S608 - constant
        version = connection.execute(sql).fetchone()
        return 0 if version is None else int(version[0])

    def _refuse_foreign_tables(self, connection: psycopg.Connection[TupleRow], schema: str) -> None:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
        clashes = sorted({str(row[0]) for row in rows} & set(OUR_TABLES))
        if clashes:
            raise UsercoreError(
                f"the schema {schema!r} at {self._where} already has tables usercore did not "
                f"create ({', '.join(clashes)}); give usercore a schema of its own "
                f"({_HINT_OWN_SCHEMA})"
            )
