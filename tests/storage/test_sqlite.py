"""SQLiteStore: the storage contract, plus its file, schema and SQL guarantees."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest

from usercore.domain import Permission, Role, UserStatus
from usercore.errors import StoreUnavailable, UsercoreError
from usercore.ports import LoginAttempts, UserFilter
from usercore.storage import SQLiteStore, sqlite
from usercore.storage._sql import _USER_WRITE_COLUMNS
from usercore.storage._sqlite_schema import (
    APPLICATION_ID,
    LATEST_VERSION,
    MIGRATIONS,
    TRIGRAM_AVAILABLE,
)
from usercore.testing import StoreContract
from usercore.testing.contract import (
    HOSTILE_STRINGS,
    T0,
    a_one_time_token,
    a_refresh_token,
    a_user,
    an_api_key,
    present,
)

EVERYONE = UserFilter()


class TestSQLiteStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def make_store(self) -> SQLiteStore:
        return SQLiteStore(self.directory / f"{uuid.uuid4().hex}.db")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "users.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(path) as store:
        yield store


def connection_of(store: SQLiteStore) -> sqlite3.Connection:
    """The calling thread's connection (white-box: pragmas are per connection)."""
    return store._thread_connection().connection


# -- the file ---------------------------------------------------------------


def test_connections_use_wal_full_sync_foreign_keys_and_a_busy_timeout(
    store: SQLiteStore,
) -> None:
    connection = connection_of(store)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_opening_a_new_file_migrates_it_to_the_latest_version(
    store: SQLiteStore, path: Path
) -> None:
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    with store.transaction(readonly=True) as tx:
        assert tx.meta.schema_version() == LATEST_VERSION


def test_reopening_a_file_keeps_its_data(path: Path) -> None:
    with SQLiteStore(path) as store, store.transaction() as tx:
        user = tx.users.add(a_user("ada@example.com", roles={"admin"}))
        tx.roles.add(Role(name="admin", permissions={"*"}))
    with SQLiteStore(path) as store, store.transaction(readonly=True) as tx:
        assert tx.users.get(user.id) == user
        assert tx.roles.version() == 1


def test_a_version_1_file_upgrades_to_optional_emails_keeping_every_row(path: Path) -> None:
    # A database written before accounts could go without an email.
    with sqlite3.connect(path, isolation_level=None) as raw:
        raw.execute("PRAGMA foreign_keys = ON")
        for statement in MIGRATIONS[0]:
            raw.execute(statement)
        raw.execute(
            "INSERT INTO users (email, email_key, status, created_at, updated_at)"
            " VALUES ('Ada@example.com', 'ada@example.com', 'active', 0, 0)"
        )
        raw.execute("PRAGMA user_version = 1")
    with SQLiteStore(path) as store:
        with store.transaction() as tx:
            bob = tx.users.add(a_user(None, username="bob"))
            tx.refresh_tokens.add(a_refresh_token(b"\x01" * 32, 1))
        with store.transaction(readonly=True) as tx:
            ada = tx.users.get_by_email("ada@example.com")
            assert ada is not None
            assert (ada.id, ada.email) == (1, "Ada@example.com")
            assert tx.users.get(bob.id) == bob
            assert tx.users.get_by_username("bob") == bob
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("SELECT count(*) FROM refresh_tokens").fetchone()[0] == 1


GRANTS = json.dumps(
    sorted({"*", "docs:*", "docs:*:own", "notes:edit:own", "reports:read", "users:read"})
)


def test_a_file_at_the_previous_version_upgrades_to_stored_permissions(path: Path) -> None:
    """The migration that adds the permissions table keeps every row and stores the
    application permissions the roles grant (registered in each process before)."""
    with sqlite3.connect(path, isolation_level=None) as raw:
        for statements in MIGRATIONS[:-1]:
            for statement in statements:
                raw.execute(statement)
        raw.execute(
            "INSERT INTO roles (name, permissions, inherits, description)"
            " VALUES ('analyst', ?, '[]', '')",
            (GRANTS,),
        )
        raw.execute(f"PRAGMA user_version = {LATEST_VERSION - 1}")
    with SQLiteStore(path) as store:
        with store.transaction(readonly=True) as tx:
            assert LATEST_VERSION == tx.meta.schema_version()
            assert ["notes:edit", "reports:read"] == [p.name for p in tx.permissions.list()]
            assert json.loads(GRANTS) == sorted(present(tx.roles.get("analyst")).permissions)
        with store.transaction() as tx:
            tx.permissions.add(Permission(name="reports:export", created_at=T0))
    with SQLiteStore(path) as store, store.transaction(readonly=True) as tx:
        assert 3 == len(tx.permissions.list())


def test_the_memory_store_reports_the_latest_sql_schema_version() -> None:
    """Same data model, same version: the memory store follows the SQL migrations."""
    from usercore.storage import MemoryStore
    from usercore.storage._postgres_schema import LATEST_VERSION as POSTGRES_LATEST

    with MemoryStore() as store, store.transaction(readonly=True) as tx:
        assert LATEST_VERSION == POSTGRES_LATEST == tx.meta.schema_version()


def test_a_file_from_a_newer_usercore_is_refused(path: Path) -> None:
    SQLiteStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    with pytest.raises(UsercoreError, match="newer"):
        SQLiteStore(path)


def test_another_applications_database_is_refused(path: Path) -> None:
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    with pytest.raises(UsercoreError, match="not a usercore database"):
        SQLiteStore(path)
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA application_id = 42")
    with pytest.raises(UsercoreError, match="not a usercore database"):
        SQLiteStore(path)


class MigratedMeanwhile(sqlite3.Connection):
    """Lets another store migrate the file between two reads of the schema check."""

    path = ""
    fired = False

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        cursor = super().execute(sql, parameters)
        if sql == "PRAGMA application_id" and not MigratedMeanwhile.fired:
            MigratedMeanwhile.fired = True
            SQLiteStore(MigratedMeanwhile.path).close()
        return cursor


def test_a_migration_committed_during_the_schema_check_is_seen_whole(path: Path) -> None:
    """Two processes open a new file at once: the later one must not mistake the
    first one's freshly created tables for somebody else's database."""

    MigratedMeanwhile.path, MigratedMeanwhile.fired = str(path), False
    with (
        SQLiteStore(path, connection_class=MigratedMeanwhile) as store,
        store.transaction(readonly=True) as tx,
    ):
        assert tx.meta.schema_version() == LATEST_VERSION
    assert MigratedMeanwhile.fired


@pytest.mark.parametrize("name", [":memory:", "", "file::memory:?cache=shared"])
def test_in_memory_databases_are_refused_with_a_pointer_to_memory_store(name: str) -> None:
    with pytest.raises(ValueError, match="MemoryStore"):
        SQLiteStore(name)


def test_datetimes_are_stored_as_integer_microseconds(store: SQLiteStore) -> None:
    with store.transaction() as tx:
        tx.users.add(a_user("ada@example.com"))
    row = (
        connection_of(store).execute("SELECT typeof(created_at), created_at FROM users").fetchone()
    )
    assert row == ("integer", 1_715_938_215_123_456)


# -- threads and connections --------------------------------------------------


def test_each_thread_has_its_own_connection_and_close_closes_them_all(
    store: SQLiteStore,
) -> None:
    seen: list[sqlite3.Connection] = []
    gate = threading.Barrier(3)

    def work() -> None:
        with store.transaction(readonly=True) as tx:
            tx.users.count(filter=EVERYONE)
        seen.append(connection_of(store))
        gate.wait()  # keep the threads alive until all have connected

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    gate.wait()
    for thread in threads:
        thread.join()
    mine = connection_of(store)
    assert len({id(connection) for connection in [*seen, mine]}) == 3
    store.close()
    for connection in [*seen, mine]:
        with pytest.raises(sqlite3.ProgrammingError):
            connection.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        store.transaction().__enter__()


def test_connections_of_finished_threads_are_closed(store: SQLiteStore) -> None:
    def read() -> None:
        with store.transaction(readonly=True) as tx:
            tx.users.count(filter=EVERYONE)

    for _ in range(10):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    # Each new thread's connection prunes those of threads that have ended.
    assert len(store._connections) <= 2


def test_a_writer_waits_for_the_lock_instead_of_failing(store: SQLiteStore, path: Path) -> None:
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    outcome: list[object] = []

    def write() -> None:
        try:
            with store.transaction() as tx:
                outcome.append(tx.users.add(a_user("ada@example.com")).id)
        except Exception as exc:  # pragma: no cover - reported by the assertion
            outcome.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(timeout=0.3)  # the writer is now waiting on the busy timeout
    blocker.execute("COMMIT")
    blocker.close()
    writer.join()
    assert outcome == [1]


def test_a_lock_held_past_the_timeout_is_store_unavailable_logged_once(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    SQLiteStore(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with SQLiteStore(path, timeout=0.2) as store:
            for _ in range(3):
                with pytest.raises(StoreUnavailable) as caught, store.transaction():
                    pass
                assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
                assert caught.value.retry_after >= 1
                assert caught.value.to_dict()["code"] == "store_unavailable"
                assert "locked" not in caught.value.message  # generic for clients
            with store.transaction(readonly=True) as tx:  # readers are never blocked
                assert tx.users.count(filter=EVERYONE) == 0
            incidents = [r for r in caplog.records if "store unavailable" in r.getMessage()]
            assert [r.levelname for r in incidents] == ["WARNING"]  # once per incident
            assert "locked" in incidents[0].getMessage()
            blocker.execute("ROLLBACK")
            with store.transaction() as tx:  # recovered without reopening the store
                tx.users.add(a_user("back@example.com"))
            assert any("available again" in r.getMessage() for r in caplog.records)
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()


def test_a_full_disk_is_store_unavailable_and_rolls_back(path: Path) -> None:
    """``max_page_count`` caps the file, which SQLite reports as SQLITE_FULL."""

    class Capped(sqlite3.Connection):
        cap = False

        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            if Capped.cap and sql.startswith("BEGIN"):
                super().execute("PRAGMA max_page_count = 1")  # floors at the current size
            return super().execute(sql, parameters)

    with SQLiteStore(path, connection_class=Capped) as store:
        with store.transaction() as tx:
            tx.users.add(a_user("first@example.com"))
        Capped.cap = True
        with pytest.raises(StoreUnavailable) as caught, store.transaction() as tx:
            tx.users.add_many([a_user(f"u{i}@example.com", name="x" * 2000) for i in range(200)])
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        with store.transaction(readonly=True) as tx:  # reads still work, nothing half-written
            assert tx.users.count(filter=EVERYONE) == 1


def test_a_read_only_database_is_store_unavailable_for_writes_only(path: Path) -> None:
    with SQLiteStore(path) as store, store.transaction() as tx:
        tx.users.add(a_user("first@example.com"))

    class ReadOnly(sqlite3.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.execute("PRAGMA query_only = ON")  # what a read-only file looks like

    with SQLiteStore(path, connection_class=ReadOnly) as store:
        with pytest.raises(StoreUnavailable), store.transaction() as tx:
            tx.users.add(a_user("second@example.com"))
        with store.transaction(readonly=True) as tx:
            assert tx.users.count(filter=EVERYONE) == 1


@pytest.mark.parametrize("failures", [1, 2])
def test_a_read_that_cannot_start_is_retried_once_on_a_fresh_connection(
    path: Path, failures: int
) -> None:
    class Flaky(sqlite3.Connection):
        left = 0
        opened = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            Flaky.opened += 1

        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            if sql == "BEGIN" and Flaky.left:
                Flaky.left -= 1
                raise sqlite3.OperationalError("disk I/O error")
            return super().execute(sql, parameters)

    with SQLiteStore(path, connection_class=Flaky) as store:
        Flaky.left, opened = failures, Flaky.opened
        if failures == 1:
            with store.transaction(readonly=True) as tx:  # the retry succeeds
                assert tx.users.count(filter=EVERYONE) == 0
        else:
            with pytest.raises(StoreUnavailable), store.transaction(readonly=True):
                pass
        assert Flaky.opened == opened + 1  # one fresh connection, no more
        with store.transaction(readonly=True) as tx:
            assert tx.users.count(filter=EVERYONE) == 0


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
def test_a_read_only_file_is_store_unavailable(path: Path) -> None:
    with SQLiteStore(path) as store, store.transaction() as tx:
        tx.users.add(a_user("first@example.com"))
    path.chmod(0o400)
    with SQLiteStore(path) as store, pytest.raises(StoreUnavailable), store.transaction() as tx:
        tx.users.add(a_user("second@example.com"))


def test_database_wal_and_shm_files_are_private_to_the_owner(path: Path) -> None:
    """The file holds password hashes: mode 0600, whatever the umask allows."""
    previous = os.umask(0o022)
    try:
        with SQLiteStore(path) as store, store.transaction() as tx:
            tx.users.add(a_user("first@example.com"))
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(file.exists() for file in files)
            assert {stat.S_IMODE(file.stat().st_mode) for file in files} == {0o600}
    finally:
        os.umask(previous)


def test_writers_of_one_process_queue_on_a_lock_not_in_the_busy_handler(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight threads writing at once all succeed without SQLite's busy handler
    (turned off: busy_timeout 0) and without the retry loop ever sleeping."""
    sleeps: list[float] = []
    monkeypatch.setattr("usercore.storage.sqlite.time.sleep", sleeps.append)
    with SQLiteStore(path, timeout=5) as store:
        errors: list[BaseException] = []
        start = threading.Barrier(8)

        def write(number: int) -> None:
            try:
                store._thread_connection().connection.execute("PRAGMA busy_timeout = 0")
                start.wait()
                for i in range(30):
                    with store.transaction() as tx:
                        tx.users.add(a_user(f"w{number}-{i}@example.com"))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sleeps == []
        with store.transaction(readonly=True) as tx:
            assert tx.users.count(filter=EVERYONE) == 240


# -- SQL discipline -----------------------------------------------------------


class RecordingConnection(sqlite3.Connection):
    """Records the SQL text (never the parameters) of every statement."""

    statements: list[str]
    many: list[tuple[str, int]]

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        self.statements.append(sql)
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        rows = list(parameters)
        self.statements.append(sql)
        self.many.append((sql, len(rows)))
        return super().executemany(sql, rows)


RecordingConnection.statements = []
RecordingConnection.many = []


@pytest.fixture
def recorded(path: Path) -> Iterator[tuple[SQLiteStore, list[str], list[tuple[str, int]]]]:
    RecordingConnection.statements = statements = []
    RecordingConnection.many = many = []
    with SQLiteStore(path, connection_class=RecordingConnection) as store:
        yield store, statements, many


def test_no_value_is_ever_written_into_sql_text(
    recorded: tuple[SQLiteStore, list[str], list[tuple[str, int]]],
) -> None:
    """Every repository method runs with hostile strings; none reaches the SQL text."""
    store, statements, _ = recorded
    marker = "\u2603SNOWMAN'\"--"
    for number, text in enumerate(HOSTILE_STRINGS):
        value = f"{marker}{text}"
        with store.transaction() as tx:
            user = tx.users.add(
                a_user(f"{value}@example.com", username=value, name=value, roles={value})
            )
            tx.users.add_many([a_user(f"{number}{value}@bulk.example", roles={value})])
            tx.users.update(attrs.evolve(user, name=value + "2", roles={value, "x"}))
            tx.users.get_by_email(user.email_key)
            tx.users.get_by_username(value)
            for query in (
                UserFilter(role=value, status=UserStatus.ACTIVE, search=value),
                UserFilter(search=value),
            ):
                tx.users.list(after=0, limit=5, filter=query, offset=1)
                tx.users.count(filter=query)
            tx.users.count_with_role(value)
            tx.roles.add(Role(name=value, permissions={value}, inherits={value}, description=value))
            tx.roles.update(Role(name=value, description=value + value))
            tx.roles.get(value)
            tx.refresh_tokens.add(
                a_refresh_token(value.encode(), user.id, family_id=value, token_version=1)
            )
            tx.refresh_tokens.mark_used(value.encode(), T0)
            tx.refresh_tokens.revoke_family(value, T0)
            tx.revoked_tokens.add(value, T0)
            tx.revoked_tokens.is_revoked(value)
            key = tx.api_keys.add(an_api_key(value, user.id, name=value, scopes={value}))
            tx.api_keys.update(attrs.evolve(key, name=value + "!"))
            tx.api_keys.get_by_prefix(value)
            tx.one_time_tokens.add(
                a_one_time_token(value.encode(), user.id, purpose=value, binding=value)
            )
            tx.one_time_tokens.consume(value.encode(), T0)
            tx.one_time_tokens.delete_for_user(user.id, value)
            tx.login_attempts.put(
                LoginAttempts(key=value, failures=1, locked_until=None, updated_at=T0)
            )
            tx.login_attempts.get(value)
            tx.login_attempts.delete(value)
            tx.meta.set(value, value)
            tx.meta.get(value)
            tx.users.remove_role(value)
            tx.roles.delete(value)
            tx.users.delete(user.id)
    assert len(statements) > 40 * len(HOSTILE_STRINGS)
    assert [sql for sql in statements if "SNOWMAN" in sql or "\u2603" in sql] == []
    with store.transaction(readonly=True) as tx:
        assert tx.users.count(filter=EVERYONE) == len(HOSTILE_STRINGS)  # the bulk-added ones


def test_bulk_add_inserts_many_rows_per_statement(
    recorded: tuple[SQLiteStore, list[str], list[tuple[str, int]]],
) -> None:
    """Multi-row INSERTs of up to 512 rows, as the linked SQLite's parameter
    limit allows (999 where Python cannot ask it), not executemany: SQLite
    runs each row of that as a statement of its own, and FTS5 flushes its
    pending index data to a new segment at the end of every statement."""
    store, statements, many = recorded
    limit = getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", None)  # Python 3.11+
    allowed = 999 if limit is None else connection_of(store).getlimit(limit)
    with store.transaction() as tx:
        tx.users.add_many([a_user(f"u{n}@example.com", roles={"user"}) for n in range(2500)])

    def rows_per_statement(table: str) -> list[int]:
        return [
            sql.count("), (") + 1 for sql in statements if sql.startswith(f"INSERT INTO {table} ")
        ]

    assert sum(rows_per_statement("users")) == 2500
    width = 1 + len(_USER_WRITE_COLUMNS.split(", "))  # the id and every written column
    assert max(rows_per_statement("users")) == min(512, allowed // width)
    assert sum(rows_per_statement("user_roles")) == 2500
    assert max(rows_per_statement("user_roles")) == min(512, allowed // 2)
    assert not [
        sql for sql, _ in many if sql.startswith(("INSERT INTO users", "INSERT INTO user_roles"))
    ]


def test_bulk_adds_of_any_size_prepare_few_statement_shapes(
    recorded: tuple[SQLiteStore, list[str], list[tuple[str, int]]],
) -> None:
    """Full statements, then the rest in powers of two: the driver caches each
    prepared statement, and a multi-row INSERT of hundreds of users takes
    about a megabyte of it, so one shape per remainder would not do."""
    store, statements, _ = recorded
    with store.transaction() as tx:
        for count in range(1, 700, 7):
            tx.users.add_many([a_user(f"u{count}.{n}@example.com") for n in range(count)])
    shapes = {sql for sql in statements if sql.startswith("INSERT INTO users ")}
    assert len(shapes) <= 10  # 512 (or fewer) at a time, then 256, 128, ..., 1
    with store.transaction(readonly=True) as tx:
        assert tx.users.count(filter=EVERYONE) == sum(range(1, 700, 7))


# -- indexes and keyset paging ------------------------------------------------


def plan(store: SQLiteStore, sql: str, parameters: list[Any]) -> str:
    rows = connection_of(store).execute("EXPLAIN QUERY PLAN " + sql, parameters).fetchall()
    return " | ".join(row[3] for row in rows)


def test_every_lookup_searches_an_index(store: SQLiteStore) -> None:
    statements = store._thread_connection().uow.sql
    lookups = {
        statements.user_by_id: "INTEGER PRIMARY KEY",
        statements.user_by_email: "INDEX users_email_key",
        statements.user_by_username: "INDEX users_username_key",
        statements.user_counts_sum: "PRIMARY KEY",
        statements.user_for_token: "INTEGER PRIMARY KEY",
        statements.role_get: "PRIMARY KEY",
        statements.refresh_get: "PRIMARY KEY",
        statements.refresh_revoke_family: "INDEX refresh_tokens_family",
        statements.refresh_revoke_user: "INDEX refresh_tokens_user",
        statements.refresh_purge: "INDEX refresh_tokens_expires",
        statements.revoked_exists: "PRIMARY KEY",
        statements.revoked_purge: "INDEX revoked_tokens_expires",
        statements.api_key_get: "INTEGER PRIMARY KEY",
        statements.api_key_by_prefix: "INDEX api_keys_prefix",
        statements.api_key_for_user: "INDEX api_keys_user",
        statements.one_time_get: "PRIMARY KEY",
        statements.one_time_delete_user_purpose: "INDEX one_time_tokens_user",
        statements.one_time_purge: "INDEX one_time_tokens_expires",
        statements.login_get: "PRIMARY KEY",
        statements.login_purge: "INDEX login_attempts_locked",
        statements.meta_get: "PRIMARY KEY",
    }
    for sql, index in lookups.items():
        explained = plan(store, sql, [1] * sql.count("?"))
        assert "SEARCH" in explained, sql
        assert index in explained, sql


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (EVERYONE, "INTEGER PRIMARY KEY (rowid>?)"),
        (UserFilter(role="user"), "INDEX user_roles_role (role=? AND user_id>?)"),
        (UserFilter(status=UserStatus.ACTIVE), "INDEX users_status (status=? AND id>?)"),
        (
            UserFilter(role="user", status=UserStatus.INACTIVE),
            "INDEX user_roles_role (role=? AND user_id>?)",
        ),
        (UserFilter(search="ad"), "INTEGER PRIMARY KEY (rowid>?)"),
    ],
)
def test_keyset_pages_seek_an_index_in_id_order(
    store: SQLiteStore, query: UserFilter, index: str
) -> None:
    dialect = store._thread_connection().uow.dialect
    sql = dialect.user_query("list", after=True, filter=query)
    explained = plan(store, sql, [1] * sql.count("?"))
    assert index in explained
    assert "TEMP B-TREE" not in explained  # no sort: rows come out in id order


def vm_steps(store: SQLiteStore, action: Any) -> int:
    """How many SQLite VM instructions ``action`` runs: a cost measure without clocks."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    connection = connection_of(store)
    connection.set_progress_handler(count, 1)
    try:
        with store.transaction(readonly=True) as tx:
            action(tx)
    finally:
        connection.set_progress_handler(None, 1)
    return steps


def test_a_deep_keyset_page_costs_the_same_as_the_first(store: SQLiteStore) -> None:
    with store.transaction() as tx:
        added = tx.users.add_many(
            [a_user(f"u{n}@example.com", roles={"user"} if n % 3 else set()) for n in range(6000)]
        )
    deep = added[5000].id
    for query in (EVERYONE, UserFilter(role="user"), UserFilter(status=UserStatus.ACTIVE)):
        first = vm_steps(store, lambda tx, q=query: tx.users.list(after=None, limit=20, filter=q))
        later = vm_steps(store, lambda tx, q=query: tx.users.list(after=deep, limit=20, filter=q))
        by_offset = vm_steps(
            store, lambda tx, q=query: tx.users.list(after=None, limit=20, filter=q, offset=3000)
        )
        assert later <= first * 1.2, query
        assert by_offset > first * 10, "the measure tells a deep OFFSET from a seek"


def test_a_lookup_costs_the_same_in_a_large_table(store: SQLiteStore) -> None:
    with store.transaction() as tx:
        tx.users.add(a_user("ada@example.com"))
    small = vm_steps(store, lambda tx: tx.users.get_by_email("ada@example.com"))
    with store.transaction() as tx:
        tx.users.add_many([a_user(f"u{n}@example.com") for n in range(5000)])
    large = vm_steps(store, lambda tx: tx.users.get_by_email("ada@example.com"))
    assert large == small


def test_threads_that_come_and_go_reuse_one_connection(tmp_path: Path) -> None:
    """A thread-per-request server must not open a connection per request."""
    store = SQLiteStore(tmp_path / "reuse.db")
    seen: list[int] = []

    def work() -> None:
        with store.transaction(readonly=True) as tx:
            tx.roles.list()
        seen.append(id(store._thread_connection().connection))

    try:
        for _ in range(5):
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        assert 1 == len(set(seen))
        assert len(store._connections) <= 2  # the opening thread's and the reused one
    finally:
        store.close()


def test_a_single_read_in_autocommit_sees_what_another_connection_committed_since(
    store: SQLiteStore,
) -> None:
    """A single read runs without BEGIN/COMMIT: each one must still read the
    database as it is now (a statement left open would pin an old snapshot)."""
    with store.transaction() as tx:
        user = tx.users.add(a_user("ada@example.com"))

    def read() -> tuple[Any, bool]:
        with store.transaction(single_read=True) as tx:
            return tx.users.get_for_token(user.id, "jti-1")

    assert read()[1] is False
    done = threading.Event()

    def revoke_and_disable() -> None:
        with store.transaction() as tx:
            tx.revoked_tokens.add("jti-1", datetime.now(timezone.utc) + timedelta(hours=1))
            tx.users.update(attrs.evolve(tx.users.get(user.id), status=UserStatus.INACTIVE))
        done.set()

    other = threading.Thread(target=revoke_and_disable)
    other.start()
    other.join()
    assert done.is_set()
    seen, revoked = read()
    assert revoked is True
    assert seen is not None
    assert seen.status is UserStatus.INACTIVE
    assert not store._thread_connection().connection.in_transaction


def test_threads_that_end_together_leave_their_connections_to_the_next_ones(
    tmp_path: Path,
) -> None:
    """Eight requests served at once, thread per request: the next eight threads
    take over the eight connections instead of opening new ones (before, each
    new thread kept one and closed the others)."""
    opened: list[int] = []

    class Counting(sqlite3.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(1)

    store = SQLiteStore(tmp_path / "burst.db", connection_class=Counting)

    def burst() -> None:
        start = threading.Barrier(8)

        def work() -> None:
            with store.transaction(readonly=True) as tx:
                tx.roles.list()
            start.wait()  # all eight hold their connections at once

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    try:
        burst()
        first = len(opened)
        for _ in range(3):
            burst()
        assert len(opened) == first
        assert len(store._connections) <= 8 + 1 + sqlite.IDLE_CONNECTIONS
    finally:
        store.close()


@pytest.mark.skipif(not TRIGRAM_AVAILABLE, reason="this SQLite has no FTS5 trigram tokenizer")
@pytest.mark.parametrize("kind", ["list", "count"])
def test_a_search_of_three_characters_or_more_reads_the_trigram_index(
    store: SQLiteStore, kind: Literal["list", "count"]
) -> None:
    dialect = store._thread_connection().uow.dialect
    sql = dialect.user_query(kind, after=False, filter=UserFilter(search="ada"))
    explained = plan(store, sql, [1] * sql.count("?"))
    assert "SCAN users_search VIRTUAL TABLE" in explained
    assert "SEARCH u USING INTEGER PRIMARY KEY (rowid=?)" in explained  # no pass over users
    short = dialect.user_query(kind, after=False, filter=UserFilter(search="ad"))
    assert "users_search" not in short  # too short for a trigram: scanned


def test_the_user_for_a_token_is_one_statement_on_two_primary_keys(store: SQLiteStore) -> None:
    sql = store._thread_connection().uow.sql.user_for_token
    explained = plan(store, sql, [1] * sql.count("?"))
    assert "SEARCH u USING INTEGER PRIMARY KEY" in explained
    assert "SEARCH revoked_tokens USING PRIMARY KEY" in explained


def test_counts_read_the_counters_not_the_rows(store: SQLiteStore) -> None:
    with store.transaction() as tx:
        tx.users.add_many([a_user(f"u{n}@example.com", roles={"user"}) for n in range(30)])
        rows = dict(connection_of(store).execute("SELECT key, n FROM user_counts").fetchall())
    assert rows == {"status:active": 30, "role:user": 30}
    dialect = store._thread_connection().uow.dialect
    for query in (EVERYONE, UserFilter(role="user"), UserFilter(status=UserStatus.ACTIVE)):
        assert dialect.counter_keys(query) is not None, query
    assert dialect.counter_keys(UserFilter(role="user", status=UserStatus.ACTIVE)) is None
    assert dialect.counter_keys(UserFilter(search="u1")) is None


def test_a_version_1_file_gets_its_counters_and_search_index_on_open(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    connection = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        connection.execute(statement)
    connection.execute("PRAGMA user_version = 1")
    connection.execute(
        "INSERT INTO users (email, email_key, username, username_key, roles, status, "
        "created_at, updated_at) VALUES ('Ada@X.org', 'ada@x.org', 'Lovelace', 'lovelace', "
        "'[\"admin\"]', 'active', 0, 0)"
    )
    connection.execute("INSERT INTO user_roles (user_id, role) VALUES (1, 'admin')")
    connection.commit()
    connection.close()
    with SQLiteStore(path) as store, store.transaction(readonly=True) as tx:
        assert tx.users.count(filter=EVERYONE) == 1
        assert tx.users.count_with_role("admin") == 1
        assert [1] == [
            u.id for u in tx.users.list(after=None, limit=5, filter=UserFilter(search="LOVEL"))
        ]
