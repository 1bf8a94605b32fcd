"""``SQLiteStore``: the stdlib ``sqlite3`` adapter.

One file, many threads and processes:

- WAL journal, so readers never block the writer nor the writer readers;
  ``synchronous=FULL``, so an acknowledged commit survives a crash or power
  loss (WAL with ``NORMAL`` may lose the last commits on power loss).
- ``foreign_keys=ON`` (off by default in SQLite, per connection): deleting a
  user cascades to its roles, tokens and keys.
- Write transactions start with ``BEGIN IMMEDIATE``: they take the write lock
  up front, so two writers queue instead of both reading, then failing to
  upgrade with ``SQLITE_BUSY`` (which no busy handler can wait out).
- Writers of one process queue on an in-process lock (one per file) in front
  of ``BEGIN IMMEDIATE``: they wake in turn the moment the previous writer
  commits, instead of sleeping in SQLite's busy handler, whose back-off grows
  to 100 ms per try and made p99 latency grow with the thread count.  The
  busy timeout still makes writers of *other* processes wait.
- Transient faults (the database locked past ``timeout``, a full disk, a
  read-only file, an I/O error) raise :class:`~usercore.errors.StoreUnavailable`,
  logged once per incident.  A fault on starting a read-only transaction is
  retried once on a fresh connection.
- The database file is created with mode 0600 (owner only); SQLite gives its
  WAL and shared-memory files the mode of the database file.
- One connection per thread (sqlite3 connections are not shareable across
  threads mid-transaction); ``close()`` closes all of them.
- Migrations run on open, in one ``BEGIN IMMEDIATE`` transaction, and are
  recorded in ``PRAGMA user_version``; a file written by a newer usercore is
  refused.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from usercore.custom_fields import CustomField
from usercore.errors import NotFoundError, UsercoreError
from usercore.storage._faults import Incidents
from usercore.storage._schema import UNIQUE_RULES, custom_index_conflict, sql_identifier
from usercore.storage._sql import (
    Dialect,
    SqlUnitOfWork,
    ensure_custom_indexes,
)
from usercore.storage._sqlite_schema import (
    APPLICATION_ID,
    LATEST_VERSION,
    MIGRATIONS,
    SEARCH_INDEX,
)
from usercore.storage._transaction import Transaction, TransactionHooks

__all__ = ["SQLiteStore"]

T = TypeVar("T")

logger = logging.getLogger("usercore.storage.sqlite")

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
# Faults that go away when the operator frees disk space, fixes permissions or
# the other process commits: the store is unavailable, not broken.
_TRANSIENT = {
    _SQLITE_BUSY: "the database stayed locked past the busy timeout",
    _SQLITE_LOCKED: "the database stayed locked past the busy timeout",
    8: "the database is read-only",  # SQLITE_READONLY
    10: "an I/O error",  # SQLITE_IOERR
    13: "the disk is full",  # SQLITE_FULL
    14: "the database file cannot be opened",  # SQLITE_CANTOPEN
}

# "UNIQUE constraint failed: <table>.<column>" -> the rule it breaks
_UNIQUE_RULES = {f"{rule.table}.{rule.column}": rule for rule in UNIQUE_RULES}


def _json_type(value: Any) -> str:
    """What SQLite's json_type() answers for ``value`` stored as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "integer"
    return "real" if isinstance(value, float) else "text"


def _parameters_per_statement() -> int:
    """The bound parameters one statement may hold in the linked SQLite (32,766
    by default since 3.32; builds may set another limit), or 999 where Python
    (< 3.11) cannot ask."""
    limit = getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", None)  # Python 3.11+
    if limit is None:
        return Dialect.parameters_per_statement
    probe = sqlite3.connect(":memory:")
    try:
        return int(probe.getlimit(limit))  # type: ignore[attr-defined,unused-ignore]
    finally:
        probe.close()


class SQLiteDialect(Dialect):
    """``indexed_search``: the file has the trigram index (``SEARCH_INDEX``);
    needles of three or more characters use it, shorter ones scan."""

    integrity_error = sqlite3.IntegrityError
    counters = True
    # A multi-row INSERT holds as many rows as SQLite allows (up to 512): FTS5
    # writes one search index segment per statement, and every segment is one
    # more b-tree a search probes per trigram until FTS5's merges fold it in.
    parameters_per_statement = _parameters_per_statement()
    revoked_upsert = (
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) "
        "ON CONFLICT (jti) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)"
    )

    def __init__(self, *, indexed_search: bool) -> None:
        super().__init__()
        self.indexed_search = indexed_search

    def contains(self, column: str) -> str:
        # instr(), not LIKE: it has no wildcards to escape (a search for "%"
        # finds a literal "%") and, unlike LIKE, does not stop at a NUL.
        return f"instr({column}, ?) > 0"

    def search_method(self, needle: str) -> str:
        # A trigram index answers needles of three characters or more; a
        # shorter one has no trigram and scans (it is also one that matches
        # many rows, so the LIMIT of a page stops the scan early).
        return "index" if self.indexed_search and len(needle) >= 3 else "scan"

    def search_condition(self, method: str) -> str:
        if method != "index":
            return super().search_condition(method)
        # SEARCH_INDEX is our own constant table name.
        return f"u.id IN (SELECT rowid FROM {SEARCH_INDEX} WHERE {SEARCH_INDEX} MATCH ?)"  # noqa: S608

    def search_params(self, method: str, needle: str) -> list[Any]:
        if method != "index":
            return super().search_params(method, needle)
        # One FTS5 phrase: inside double quotes every character is literal but
        # the quote itself, written twice.  With the trigram tokenizer a
        # phrase matches exactly the columns that contain it as a substring.
        return ['"' + needle.replace('"', '""') + '"']

    custom_indexes = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users' "
        "AND substr(name, 1, 13) = 'users_custom_'"  # CUSTOM_INDEX_PREFIX
    )

    def custom_field(self, name: str, table: str = "u.") -> str:
        # json_extract gives SQL values of the JSON types: TEXT, INTEGER, REAL,
        # and 1/0 for true/false; the index is on this very expression.
        return f"json_extract({table}custom_fields, '$.{sql_identifier(name)}')"

    def custom_condition(self, name: str) -> str:
        # json_extract reads true as 1: json_type keeps the match type-exact.
        return (
            f"{self.custom_field(name)} = ? "
            f"AND json_type(u.custom_fields, '$.{sql_identifier(name)}') = ?"
        )

    def custom_params(self, value: Any) -> list[Any]:
        return [value, _json_type(value)]

    def custom_type(self, name: str) -> str:
        return f"coalesce(json_type(u.custom_fields, '$.{sql_identifier(name)}'), 'null')"

    def translate(self, exc: Exception) -> Exception | None:
        message = str(exc)
        if message.startswith("UNIQUE constraint failed: "):
            failed = message.removeprefix("UNIQUE constraint failed: ")
            rule = _UNIQUE_RULES.get(failed)
            if rule is not None:
                return rule.error()
            # An expression index reports its name: "index 'users_custom_x_key'".
            custom = custom_index_conflict(failed.removeprefix("index ").strip("'"))
            if custom is not None:
                return custom
        if message.startswith("FOREIGN KEY constraint failed"):
            return NotFoundError("the user does not exist")
        return None

    def insert_returning_id(self, uow: SqlUnitOfWork, sql: str, params: Sequence[Any]) -> int:
        new_id = uow.execute(sql, params).lastrowid
        assert new_id is not None  # an INSERT into a rowid table always sets it
        return new_id

    def next_user_ids(self, uow: SqlUnitOfWork, count: int) -> range:
        # Under BEGIN IMMEDIATE nobody else inserts; explicit ids above both the
        # AUTOINCREMENT high-water mark and the current maximum keep ids unique
        # and never reused (SQLite raises the high-water mark to the ids used).
        row = uow.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'users'), 0), "
            "coalesce((SELECT max(id) FROM users), 0))"
        ).fetchone()
        first = int(row[0]) + 1
        return range(first, first + count)

    def schema_version(self, uow: SqlUnitOfWork) -> int:
        return int(uow.execute("PRAGMA user_version").fetchone()[0])


_SCANNING = SQLiteDialect(indexed_search=False)
_INDEXED = SQLiteDialect(indexed_search=True)


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return int(code) & 0xFF
    message = str(exc)
    if "database is locked" in message or "database is busy" in message:
        return _SQLITE_BUSY
    if "readonly database" in message:
        return 8
    if "database or disk is full" in message:
        return 13
    if "disk I/O error" in message:
        return 10
    return None


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return _primary_code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED)


def _transient_reason(exc: BaseException) -> str | None:
    """Why ``exc`` is a transient fault (see ``_TRANSIENT``), or ``None``."""
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        code = _primary_code(exc)
        return None if code is None else _TRANSIENT.get(code)
    return None


# One writer lock per database file and process: writers queue on it rather
# than in SQLite's sleeping busy handler.  Keyed by the real path, so two
# stores on one file share it.
_writer_locks: dict[str, threading.Lock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(path: str) -> threading.Lock:
    key = os.path.realpath(path)
    with _writer_locks_guard:
        lock = _writer_locks.get(key)
        if lock is None:
            lock = _writer_locks[key] = threading.Lock()
        return lock


def _create_private(path: str) -> None:
    """Create ``path`` empty with mode 0600 if missing (SQLite would use 0644).

    An empty file is a valid empty database; the WAL and shared-memory files
    SQLite creates next to it take its mode (OWASP ASVS 4.0.3 V8.3.x, data
    at rest: credentials hashes readable by the owner only).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # an unwritable directory: sqlite3 reports it in its own words
    os.close(fd)


IDLE_CONNECTIONS = 16
"""How many connections of ended threads a store keeps for new threads (beyond
the one a new thread adopts); the rest are closed."""


class _Connection:
    """A thread's connection and the unit of work bound to it."""

    __slots__ = ("connection", "thread", "uow", "writer")

    def __init__(
        self, connection: sqlite3.Connection, thread: threading.Thread, dialect: SQLiteDialect
    ) -> None:
        self.connection = connection
        self.thread = weakref.ref(thread)
        self.uow = SqlUnitOfWork(dialect, connection.execute, connection.executemany)
        self.writer: threading.Lock | None = None
        """The process's writer lock, while this connection's write transaction holds it."""


class SQLiteStore:
    """A :class:`usercore.ports.Store` in one SQLite file.

    ``path`` is a filesystem path; the file is created (mode 0600) and
    migrated when missing.  ``timeout`` (seconds) bounds how long a
    transaction waits for the write lock before
    :class:`~usercore.errors.StoreUnavailable` is raised.
    ``connection_class`` is passed to ``sqlite3.connect`` as its ``factory``
    (a ``sqlite3.Connection`` subclass, e.g. to trace statements).

    ``":memory:"`` is refused: every thread has its own connection, and an
    in-memory SQLite database lives and dies with one connection.  Use
    :class:`usercore.storage.MemoryStore`, or a file in a temporary directory.

    Raises ``UsercoreError`` when the file was migrated by a newer usercore, or
    is another application's database.
    """

    #: Reads are in process (an indexed WAL read takes ~20 µs, and readers never
    #: wait for the writer): the web adapters may run a credential check and
    #: one read on the event loop instead of a worker thread.
    inline_reads = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        connection_class: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> None:
        path = os.fspath(path)
        if path == ":memory:" or path.startswith("file:") or not path:
            raise ValueError(
                f"SQLiteStore needs a file path, not {path!r}: each thread has its own "
                "connection and an in-memory SQLite database is private to one "
                "connection; use MemoryStore, or a file in a temporary directory"
            )
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._path = path
        self._timeout = timeout
        self._connection_class = connection_class
        self._incidents = Incidents(logger, repr(path))
        self._transactions = _SQLiteTransactions(self)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._closed = False
        self._dialect = _SCANNING
        self._custom_fields: tuple[CustomField, ...] = ()
        _track_for_fork(self)
        try:
            _create_private(path)
            self._writer = _writer_lock(path)
            entry = self._thread_connection()
            self._migrate(entry.connection)
            if self._has_search_index(entry.connection):
                self._dialect = _INDEXED
                entry.uow.dialect = _INDEXED
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> str:
        return self._path

    def transaction(
        self, *, readonly: bool = False, single_read: bool = False
    ) -> Transaction[SqlUnitOfWork]:
        """Open a unit of work (see :meth:`usercore.ports.Store.transaction`).

        A write transaction holds the database's write lock from its first
        line to its end: keep it short, and do slow work (hashing a password)
        before opening it.  A single read is an ordinary read-only transaction
        here: in process, ``BEGIN`` and ``COMMIT`` cost no round trip.
        """
        return Transaction(self._transactions, readonly, single_read)

    def declare_custom_fields(self, fields: Sequence[CustomField]) -> None:
        """Adopt the custom field declaration (see
        :meth:`usercore.ports.Store.declare_custom_fields`): expression indexes
        on ``json_extract(custom_fields, '$.<name>')``, made under the write lock."""
        declared = tuple(fields)
        ensure_custom_indexes(self.transaction, declared)
        with self._lock:
            self._custom_fields = declared
            for entry in self._connections:
                entry.uow.custom_fields = declared

    def close(self) -> None:
        """Close every thread's connection; the store is unusable afterwards.

        Call it when no transaction is running.
        """
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for entry in connections:
            entry.connection.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    # -- connections -------------------------------------------------------

    def _thread_connection(self) -> _Connection:
        try:
            entry: _Connection = self._local.entry
        except AttributeError:
            entry = self._open_thread_connection()
        if self._closed:
            raise RuntimeError("the store is closed")
        return entry

    def _open_thread_connection(self) -> _Connection:
        if self._closed:
            raise RuntimeError("the store is closed")
        current = threading.current_thread()
        with self._lock:
            entry = self._adopt_idle_connection(current)
        if entry is None:
            connection = self._connect()
            entry = _Connection(connection, current, self._dialect)
            entry.uow.custom_fields = self._custom_fields
            with self._lock:
                if self._closed:
                    connection.close()
                    raise RuntimeError("the store is closed")
                self._connections.append(entry)
        self._local.entry = entry
        return entry

    def _adopt_idle_connection(self, current: threading.Thread) -> _Connection | None:
        """Hand ``current`` the connection of a thread that has ended, if any.

        Servers that start a thread per request (werkzeug's threaded server)
        would otherwise open and configure a connection for every request.
        Up to :data:`IDLE_CONNECTIONS` more connections of ended threads are
        kept for the next new threads: with several connections served at once,
        threads end in bursts, and closing all but one made the next threads
        open new ones.  Connections left inside a transaction are closed, never
        reused.  Call with ``self._lock`` held.
        """
        if self._closed:
            raise RuntimeError("the store is closed")
        adopted = None
        kept = 0
        alive = []
        for other in self._connections:
            thread = other.thread()
            if thread is not None and thread.is_alive():
                alive.append(other)
                continue
            reusable = other.uow.depth == 0 and not other.connection.in_transaction
            if reusable and adopted is None:
                other.thread = weakref.ref(current)
                adopted = other
                alive.append(other)
            elif reusable and kept < IDLE_CONNECTIONS:
                kept += 1
                alive.append(other)
            else:
                other.connection.close()
        self._connections = alive
        return adopted

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._path,
            timeout=self._timeout,  # sets the busy timeout
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # only so that close() may close it from any thread
            cached_statements=256,
            factory=self._connection_class,
        )
        try:
            # Switching to WAL needs a moment of exclusive access, which a
            # concurrent first open may hold: retry like a transaction.
            mode = self._retry_busy(
                lambda: connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            )
            if str(mode).lower() != "wal":
                raise UsercoreError(
                    f"SQLite refused WAL mode for {self._path!r} (got {mode!r}); "
                    "is it on a network filesystem?"
                )
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            connection.close()
            raise
        return connection

    def _migrate(self, connection: sqlite3.Connection) -> None:
        # The check reads the version, the application id and the table count;
        # in one read transaction they come from one snapshot, so a migration
        # that another process commits meanwhile is seen whole or not at all.
        connection.execute("BEGIN")
        try:
            current = self._schema_is_current(connection)
        finally:
            connection.execute("ROLLBACK")
        if current:
            return
        with self._writer:
            self._migrate_locked(connection)

    def _migrate_locked(self, connection: sqlite3.Connection) -> None:
        self._retry_busy(lambda: connection.execute("BEGIN IMMEDIATE"))
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            if not self._schema_is_current(connection):
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                for statements in MIGRATIONS[version:]:
                    for statement in statements:
                        connection.execute(statement)
                # PRAGMA takes no parameters; LATEST_VERSION is our own integer.
                connection.execute(f"PRAGMA user_version = {LATEST_VERSION:d}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    @staticmethod
    def _has_search_index(connection: sqlite3.Connection) -> bool:
        row = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SEARCH_INDEX,)
        ).fetchone()
        return row is not None

    def _schema_is_current(self, connection: sqlite3.Connection) -> bool:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        if application_id not in (0, APPLICATION_ID):
            raise UsercoreError(
                f"{self._path!r} is not a usercore database (application_id {application_id:#x})"
            )
        if version > LATEST_VERSION:
            raise UsercoreError(
                f"{self._path!r} has schema version {version}, newer than the {LATEST_VERSION} "
                "this usercore knows; upgrade usercore to open it"
            )
        if version == 0 and application_id == 0:
            tables = connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
            if tables:
                raise UsercoreError(f"{self._path!r} is not a usercore database")
        return bool(version == LATEST_VERSION)

    def _retry_busy(self, action: Callable[[], T]) -> T:
        """Run ``action``, retrying while the database is busy, until ``timeout``.

        The busy timeout makes SQLite itself wait in most cases; this covers
        the ones where it returns ``SQLITE_BUSY`` at once (a lock held during
        WAL recovery or a journal-mode change).
        """
        deadline = time.monotonic() + self._timeout
        delay = 0.001
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            # Jitter, so that processes woken together do not collide again.
            time.sleep(delay * (0.5 + random.random()))  # noqa: S311 - not security relevant
            delay = min(delay * 2, 0.05)

    # -- transactions -------------------------------------------------------

    def _thread_connection_or_unavailable(self) -> _Connection:
        try:
            return self._thread_connection()
        except sqlite3.Error as exc:
            self._raise_if_transient(exc)
            raise

    def _begin_read(self, entry: _Connection) -> _Connection:
        """Start a read-only transaction; a fault is retried once on a fresh connection."""
        try:
            entry.connection.execute("BEGIN")
        except sqlite3.Error as exc:
            if _transient_reason(exc) is None:
                raise
            self._discard(entry)
            entry = self._thread_connection_or_unavailable()
            try:
                entry.connection.execute("BEGIN")
            except sqlite3.Error as again:
                self._raise_if_transient(again)
                raise
        return entry

    def _begin_write(self, entry: _Connection) -> threading.Lock:
        """Queue on this process's writer lock, then ``BEGIN IMMEDIATE``; returns the
        lock, held until the transaction ends."""
        writer = self._writer
        if not writer.acquire(timeout=self._timeout):
            reason = _TRANSIENT[_SQLITE_BUSY]
            waited = TimeoutError(f"no writer lock within {self._timeout:g} s")
            raise self._incidents.unavailable(reason, waited) from None
        try:
            connection = entry.connection
            self._retry_busy(lambda: connection.execute("BEGIN IMMEDIATE"))
        except BaseException as exc:
            writer.release()
            self._raise_if_transient(exc)
            raise
        return writer

    def _rollback(self, entry: _Connection) -> None:
        connection = entry.connection
        if not connection.in_transaction:
            return
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            # Never reuse a connection that may still be inside a transaction.
            self._discard(entry)

    def _discard(self, entry: _Connection) -> None:
        """Close this thread's connection; the next transaction opens a new one."""
        with self._lock:
            if entry in self._connections:
                self._connections.remove(entry)
        if getattr(self._local, "entry", None) is entry:
            del self._local.entry
        entry.connection.close()

    def _raise_if_transient(self, exc: BaseException) -> None:
        """Raise :class:`StoreUnavailable` from ``exc`` if it is a transient fault."""
        reason = _transient_reason(exc)
        if reason is not None:
            raise self._incidents.unavailable(reason, exc) from exc

    def _after_fork(self) -> None:
        # A child process must not touch the parent's connections (closing
        # them would even drop the parent's POSIX locks): forget them.  A
        # writer lock another parent thread held would never be released.
        self._local = threading.local()
        self._connections = []
        self._lock = threading.Lock()
        self._writer = _writer_lock(self._path)


class _SQLiteTransactions(TransactionHooks[SqlUnitOfWork]):
    """SQLite's steps of the shared transaction state machine (see ``_transaction.py``)."""

    __slots__ = ("_store",)

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def current(self) -> SqlUnitOfWork | None:
        uow = self._store._thread_connection_or_unavailable().uow
        return uow if uow.depth else None

    def begin(self, readonly: bool, single_read: bool = False) -> SqlUnitOfWork:
        store = self._store
        entry = store._thread_connection_or_unavailable()
        if single_read:
            # Its one statement runs in autocommit: SQLite gives a statement a
            # read snapshot of its own, so BEGIN and COMMIT would add two
            # statements (and, in a threaded server, two more GIL hand-offs).
            return entry.uow
        if readonly:
            entry = store._begin_read(entry)
        else:
            entry.writer = store._begin_write(entry)
        return entry.uow

    def finish(self, uow: SqlUnitOfWork, exc: BaseException | None) -> None:
        store = self._store
        entry: _Connection = store._local.entry
        writer, entry.writer = entry.writer, None
        try:
            if exc is None and uow.single_read:
                store._incidents.recovered()  # autocommit: nothing to commit
            elif exc is None:
                try:
                    entry.connection.execute("COMMIT")
                except BaseException as failure:
                    store._rollback(entry)
                    store._raise_if_transient(failure)
                    raise
                store._incidents.recovered()
            else:
                store._rollback(entry)  # some errors (disk full) already rolled back
                store._raise_if_transient(exc)
        finally:
            if writer is not None:
                writer.release()

    def savepoint(self, uow: SqlUnitOfWork, readonly: bool) -> str | None:
        if readonly:
            return None  # a read-only transaction writes nothing to undo
        name = f"usercore_{uow.depth:d}"
        uow.execute(f"SAVEPOINT {name}")
        return name

    def end_savepoint(self, uow: SqlUnitOfWork, savepoint: object, failed: bool) -> None:
        entry: _Connection = self._store._local.entry
        if not entry.connection.in_transaction:
            return  # a full disk ends the whole transaction, savepoints included
        if failed:
            uow.execute(f"ROLLBACK TO SAVEPOINT usercore_{uow.depth:d}")
        uow.execute(f"RELEASE SAVEPOINT usercore_{uow.depth:d}")


_stores: weakref.WeakSet[SQLiteStore] | None = None


def _track_for_fork(store: SQLiteStore) -> None:
    global _stores  # one registry per process, created on first use
    if _stores is None:
        _stores = weakref.WeakSet()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_connections_after_fork)
    _stores.add(store)


def _forget_connections_after_fork() -> None:
    global _writer_locks_guard
    _writer_locks_guard = threading.Lock()
    _writer_locks.clear()
    for store in list(_stores or ()):
        store._after_fork()
