"""PostgresStore: the storage contract, the same random operations as MemoryStore,
and what only a shared server can show (locks, pools, retries, migrations).

Runs against the server of ``USERCORE_TEST_POSTGRES_URL`` (default: the local
``postgres`` database); skipped, with the reason, when none answers.  Every
store lives in a schema of its own, dropped after the test.
"""

# The imports after importorskip need psycopg, so they come after it.
# ruff: noqa: E402

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import attrs
import pytest

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant

from tests.storage.postgres_support import (
    SchemaPerStore,
    configured_url,
    create_schema,
    drop_schema,
    schema_url,
    scratch_database,
    server_url,
    skip_reason,
)
from tests.storage.test_stateful import StoresAgree, snapshot
from usercore.domain import ApiKey, OneTimeToken, Permission, RefreshToken, Role, User, UserStatus
from usercore.errors import ConflictError, StoreUnavailable, UsercoreError, ValidationError
from usercore.ports import LoginAttempts, Store, UnitOfWork, UserFilter
from usercore.storage import MemoryStore
from usercore.storage._postgres_schema import LATEST_VERSION, MIGRATIONS, MIGRATIONS_TABLE
from usercore.storage.postgres import PostgresStore
from usercore.storage.postgres import _where as where
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

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

EVERYONE = UserFilter()


class TestPostgresStore(SchemaPerStore, StoreContract):
    def make_store(self) -> PostgresStore:
        return PostgresStore(self.fresh_url())


class PostgresAgreesWithMemory(StoresAgree):
    """The stateful comparison of ``test_stateful.py``, PostgreSQL against memory.

    One deliberate difference: a PostgreSQL sequence is not transactional, so
    an insert that fails or rolls back burns its id, where the other stores
    hand it out again (both keep the rule: an id is never reused once a row
    had it).  Records are therefore compared with every user id replaced by
    that user's email key (unique) and every API-key id by its prefix (unique);
    lists stay in id order, so the order of ids is still compared.
    """

    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        self.directory = tempfile.mkdtemp(prefix="usercore-stateful-")  # teardown removes it
        self.schema, url = create_schema()
        self.stores = (MemoryStore(), PostgresStore(url))

    def teardown(self) -> None:
        super().teardown()
        drop_schema(self.schema)

    def on_both(self, run: Callable[[Store], Any]) -> None:
        memory, postgres = (without_ids(store, run(store)) for store in self.stores)
        assert memory == postgres

    @invariant()
    def everything_readable_agrees(self) -> None:
        memory, postgres = (without_ids(store, snapshot(store)) for store in self.stores)
        assert memory == postgres


def without_ids(store: Store, value: Any) -> Any:
    """``value`` with user and API-key ids replaced by the keys that name them."""
    emails: dict[int, str] = {}
    keys: dict[int, str] = {}

    def collect(item: Any) -> None:
        if isinstance(item, User):
            emails[item.id] = item.email_key
        elif isinstance(item, ApiKey):
            keys[item.id] = item.prefix
        elif isinstance(item, (list, tuple)):
            for part in item:
                collect(part)
        elif isinstance(item, dict):
            for part in item.values():
                collect(part)

    def replace(item: Any) -> Any:
        if isinstance(item, (User, ApiKey, RefreshToken, OneTimeToken)):
            fields = attrs.asdict(item, recurse=False)
            if "id" in fields:
                fields["id"] = (emails if isinstance(item, User) else keys).get(item.id, "?")
            if "user_id" in fields:
                fields["user_id"] = emails.get(fields["user_id"], "no such user")
            return (type(item).__name__, fields)
        if isinstance(item, list):
            return [replace(part) for part in item]
        if isinstance(item, tuple):
            return tuple(replace(part) for part in item)
        if isinstance(item, dict):
            return {name: replace(part) for name, part in item.items()}
        return item

    with store.transaction(readonly=True) as tx:
        collect(tx.users.list(after=None, limit=1000, filter=EVERYONE))
    collect(value)
    return replace(value)


PostgresAgreesWithMemory.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPostgresAgreesWithMemory = PostgresAgreesWithMemory.TestCase


# -- fixtures and helpers ----------------------------------------------------------


class Schemas(SchemaPerStore):
    """Stores in fresh schemas for module-level tests, closed and dropped after."""

    def __init__(self) -> None:
        self.schemas = []
        self.stores: list[PostgresStore] = []

    def open(self, url: str | None = None, **kwargs: Any) -> PostgresStore:
        store = PostgresStore(url if url is not None else self.fresh_url(), **kwargs)
        self.stores.append(store)
        return store

    def cleanup(self) -> None:
        for store in self.stores:
            store.close()
        for name in self.schemas:
            drop_schema(name)


@pytest.fixture
def schemas() -> Iterator[Schemas]:
    made = Schemas()
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def store(schemas: Schemas) -> PostgresStore:
    return schemas.open()


def run(tx: UnitOfWork, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run raw SQL in a unit of work (white-box: its ``execute``)."""
    return cast(Any, tx).execute(sql, params)


def raw(url: str) -> psycopg.Connection[Any]:
    """A plain autocommit connection to the schema of ``url``."""
    return psycopg.connect(url, autocommit=True)


def in_threads(count: int, work: Callable[[int], Any], timeout: float = 60) -> list[Any]:
    """Run ``work(n)`` in ``count`` threads started together; returns the results
    (or the exceptions) in thread order."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(number: int) -> None:
        start.wait()
        try:
            results[number] = work(number)
        except BaseException as exc:  # reported through the results
            results[number] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a thread is stuck"
    return results


def errors(results: list[Any]) -> list[BaseException]:
    return [result for result in results if isinstance(result, BaseException)]


# -- text ------------------------------------------------------------------------------


def test_text_is_stored_as_is_and_nul_is_refused_before_the_server(
    store: PostgresStore,
) -> None:
    """No codec: ``psql`` shows what was stored; NUL never reaches the server."""
    odd = "a\U0010ffffb\u202e"
    with store.transaction() as tx:
        user = tx.users.add(a_user("ada@example.com", name=odd))
        with pytest.raises(ValidationError):
            tx.users.add(a_user("nul\x00@example.com"))
        tx.meta.set("after", "the unit of work is still usable")
    with store.transaction(readonly=True) as tx:
        assert user == tx.users.get(user.id)
    with store._pool.connection() as raw:  # a plain connection, as psql would read it
        row = raw.execute("SELECT name FROM users WHERE id = %s", (user.id,)).fetchone()
        assert row is not None
        assert odd == row[0]


# -- schema and migrations ---------------------------------------------------------------


def test_opening_migrates_and_records_the_version(schemas: Schemas) -> None:
    url = schemas.fresh_url()
    store = schemas.open(url)
    with raw(url) as connection:
        rows = connection.execute(f"SELECT version FROM {MIGRATIONS_TABLE}").fetchall()
    assert [(version,) for version in range(1, LATEST_VERSION + 1)] == rows
    with store.transaction(readonly=True) as tx:
        assert LATEST_VERSION == tx.meta.schema_version()


GRANTS = json.dumps(
    sorted({"*", "docs:*", "docs:*:own", "notes:edit:own", "reports:read", "users:read"})
)


def test_a_schema_at_the_previous_version_upgrades_to_stored_permissions(
    schemas: Schemas,
) -> None:
    """The migration that adds the permissions table keeps every row and stores the
    application permissions the roles grant (registered in each process before)."""
    url = schemas.fresh_url()
    with raw(url) as connection, connection.transaction():
        for version, (description, statements) in enumerate(MIGRATIONS[:-1], start=1):
            for statement in statements:
                connection.execute(statement)
            connection.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, description) VALUES (%s, %s)",
                (version, description),
            )
        connection.execute(
            "INSERT INTO roles (name, permissions, inherits, description)"
            " VALUES ('analyst', %s, '[]', '')",
            (GRANTS,),
        )
    store = schemas.open(url)
    with store.transaction(readonly=True) as tx:
        assert LATEST_VERSION == tx.meta.schema_version()
        assert ["notes:edit", "reports:read"] == [p.name for p in tx.permissions.list()]
        assert json.loads(GRANTS) == sorted(present(tx.roles.get("analyst")).permissions)
    with store.transaction() as tx:
        tx.permissions.add(Permission(name="reports:export", created_at=T0))
    with schemas.open(url).transaction(readonly=True) as tx:
        assert 3 == len(tx.permissions.list())


def test_reopening_keeps_the_data(schemas: Schemas) -> None:
    url = schemas.fresh_url()
    with PostgresStore(url) as store, store.transaction() as tx:
        user = tx.users.add(a_user("ada@example.com", roles={"admin"}))
        tx.roles.add(Role(name="admin", permissions={"*"}))
    with PostgresStore(url) as store, store.transaction(readonly=True) as tx:
        assert user == tx.users.get(user.id)
        assert 1 == tx.roles.version()


def test_servers_starting_together_migrate_once(schemas: Schemas) -> None:
    url = schemas.fresh_url()
    opened = in_threads(6, lambda _: schemas.open(url, min_size=0))
    assert errors(opened) == []
    with raw(url) as connection:
        rows = connection.execute(f"SELECT count(*) FROM {MIGRATIONS_TABLE}").fetchall()
    assert [(LATEST_VERSION,)] == rows


def test_a_schema_from_a_newer_usercore_is_refused(schemas: Schemas) -> None:
    url = schemas.fresh_url()
    schemas.open(url).close()
    with raw(url) as connection:
        connection.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (version, description) VALUES (%s, 'future')",
            (LATEST_VERSION + 1,),
        )
    with pytest.raises(UsercoreError, match="newer"):
        PostgresStore(url)


def test_another_applications_tables_are_left_alone(schemas: Schemas) -> None:
    url = schemas.fresh_url()
    with raw(url) as connection:
        connection.execute("CREATE TABLE users (id serial PRIMARY KEY, login text)")
    with pytest.raises(UsercoreError, match=r"did not create \(users\)"):
        PostgresStore(url)
    with raw(url) as connection:  # nothing was created beside it
        assert [("users",)] == connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()


def test_a_search_path_without_an_existing_schema_is_explained() -> None:
    url = schema_url(server_url(), "usercore_test_no_such_schema")
    with pytest.raises(UsercoreError, match="CREATE SCHEMA"):
        PostgresStore(url)


def test_an_unreachable_server_is_a_clear_error_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(UsercoreError, match=r"cannot connect to PostgreSQL at 127\.0\.0\.1:1/"):
        PostgresStore("postgresql://nobody:s3cret@127.0.0.1:1/db")
    assert time.monotonic() - started < 10


def test_a_role_without_rights_on_the_schema_gets_the_reason(schemas: Schemas) -> None:
    url = schemas.fresh_url()
    schema = schemas.schemas[-1]
    role = f"usercore_test_role_{uuid.uuid4().hex[:8]}"
    with raw(server_url()) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        try:
            weak = psycopg.conninfo.make_conninfo(url, user=role)
            try:
                psycopg.connect(weak).close()
            except psycopg.OperationalError as exc:
                pytest.skip(f"cannot log in as a new role on this server: {exc}")
            with pytest.raises(UsercoreError, match="lacks USAGE"):
                PostgresStore(weak)
            admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            with pytest.raises(UsercoreError, match=f"permission denied for schema {schema}$"):
                PostgresStore(weak)
        finally:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def test_a_database_without_a_public_schema_migrates_and_searches_by_scanning() -> None:
    """pg_trgm goes to ``public``; where a DBA dropped it, search scans."""
    with scratch_database() as url:
        with raw(url) as admin:
            admin.execute("DROP SCHEMA public CASCADE")
            admin.execute("CREATE SCHEMA app")
        store = PostgresStore(schema_url(url, "app"))
        try:
            assert not store._dialects[0].indexed_search
            with store.transaction() as tx:
                tx.users.add(a_user("ada@example.com"))
            with store.transaction(readonly=True) as tx:
                found = tx.users.list(after=None, limit=5, filter=UserFilter(search="ada@"))
            assert ["ada@example.com"] == [user.email for user in found]
        finally:
            store.close()


def test_the_tests_work_in_a_scratch_database_dropped_when_their_process_exits() -> None:
    """Nothing stays behind on a shared server: not the schemas, not pg_trgm
    (created by the first migration, database-wide)."""
    with scratch_database():
        pass  # skips when this role may not create databases
    program = (
        "from tests.storage.postgres_support import create_schema, server_url\n"
        "from usercore.storage.postgres import PostgresStore\n"
        "_, url = create_schema()\n"
        "PostgresStore(url).close()\n"
        "print(server_url())\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=root, capture_output=True, text=True, check=True
    )
    used = done.stdout.strip()
    database = used.rsplit("/", 1)[1]
    assert database != configured_url().rsplit("/", 1)[1]
    assert database.startswith("usercore_test_")
    with raw(configured_url()) as connection:
        left = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        assert left.fetchone() is None


def test_a_malformed_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL connection URL"):
        PostgresStore("postgresql://app@db/users?no_such_parameter=1")


def test_a_password_never_appears_in_messages_or_repr(store: PostgresStore) -> None:
    with pytest.raises(UsercoreError) as caught:
        PostgresStore("postgresql://nobody:s3cret-pw@127.0.0.1:1/db")
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1:1/db" == where("postgresql://nobody:s3cret-pw@127.0.0.1:1/db")
    assert "db.internal:5433/users" == where("host=db.internal port=5433 dbname=users password=pw")
    assert "pw" not in repr(store)


def test_keys_are_unique_indexes_in_byte_order(store: PostgresStore) -> None:
    with store.transaction(readonly=True) as tx:
        indexes = dict(
            run(
                tx, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            ).fetchall()
        )
        collations = set(
            run(
                tx,
                "SELECT DISTINCT collation_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND data_type = 'text' "
                "AND table_name <> %s",
                (MIGRATIONS_TABLE,),
            ).fetchall()
        )
    assert "UNIQUE" in indexes["users_email_key"]
    assert "UNIQUE" in indexes["users_username_key"]
    assert "UNIQUE" in indexes["api_keys_prefix"]
    assert {("C",)} == collations


def test_datetimes_are_stored_as_bigint_microseconds(store: PostgresStore) -> None:
    with store.transaction() as tx:
        tx.users.add(a_user("ada@example.com"))
        row = run(tx, "SELECT pg_typeof(created_at)::text, created_at FROM users").fetchone()
    assert ("bigint", 1_715_938_215_123_456) == row


# -- SQL discipline -------------------------------------------------------------------


def test_no_value_is_ever_written_into_sql_text(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every repository method runs with hostile strings; none reaches the SQL text."""
    statements: list[str] = []
    for method in ("execute", "executemany"):
        original = getattr(psycopg.Cursor, method)

        def recording(self: Any, query: Any, *args: Any, _run: Any = original, **kw: Any) -> Any:
            statements.append(str(query))
            return _run(self, query, *args, **kw)

        monkeypatch.setattr(psycopg.Cursor, method, recording)
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
            tx.roles.get(value + "missing")
            tx.roles.list()
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
            tx.login_attempts.get(value + "missing")
            tx.login_attempts.put(
                LoginAttempts(key=value, failures=1, locked_until=None, updated_at=T0)
            )
            tx.login_attempts.get(value)
            tx.login_attempts.delete(value)
            tx.meta.get(value)
            tx.meta.set(value, value)
            tx.users.remove_role(value)
            tx.roles.delete(value)
            tx.users.delete(user.id)
    assert len(statements) > 40 * len(HOSTILE_STRINGS)
    assert [sql for sql in statements if "SNOWMAN" in sql or "\u2603" in sql] == []


# -- indexes and keyset paging ---------------------------------------------------------


def explain(store: PostgresStore, sql: str, params: list[Any]) -> str:
    with store.transaction(readonly=True) as tx:
        rows = run(tx, "EXPLAIN " + sql, params).fetchall()
    return " | ".join(row[0] for row in rows)


def buffers(store: PostgresStore, sql: str, params: list[Any]) -> int:
    """Shared buffers a statement touches: a cost measure without clocks."""
    with store.transaction(readonly=True) as tx:
        rows = run(tx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).fetchone()
    plan = rows[0] if isinstance(rows[0], list) else json.loads(rows[0])
    top = plan[0]["Plan"]
    return int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0))


@pytest.fixture(scope="module")
def big_store() -> Iterator[PostgresStore]:
    """8,000 users (two thirds with the role ``user``, a fifth inactive), a
    token, key, revocation, throttle and meta value per user; analyzed."""
    if skip_reason() is not None:
        pytest.skip(skip_reason() or "")
    name, url = create_schema()
    store = PostgresStore(url)
    try:
        with store.transaction() as tx:
            tx.users.add_many(
                [
                    a_user(
                        f"u{n}@example.com",
                        username=f"user{n}",
                        roles={"user"} if n % 3 else set(),
                        status=UserStatus.ACTIVE if n % 5 else UserStatus.INACTIVE,
                    )
                    for n in range(8000)
                ]
            )
        with raw(url) as connection:
            for statement in (
                "INSERT INTO refresh_tokens (token_hash, family_id, user_id, token_version, "
                "created_at, expires_at) SELECT sha256(id::text::bytea), 'f' || id, id, 0, 0, id "
                "FROM users",
                "INSERT INTO one_time_tokens (token_hash, purpose, user_id, binding, created_at, "
                "expires_at) SELECT sha256(id::text::bytea), 'reset', id, 'b', 0, id FROM users",
                "INSERT INTO api_keys (user_id, name, prefix, secret_hash, created_at) "
                "SELECT id, 'ci', 'p' || id, sha256(id::text::bytea), 0 FROM users",
                "INSERT INTO revoked_tokens (jti, expires_at) SELECT 'j' || id, id FROM users",
                "INSERT INTO login_attempts (key, failures, locked_until, updated_at) "
                "SELECT 'k' || id, 1, 1000000 + id, 0 FROM users",
                "INSERT INTO meta (key, value) SELECT 'm' || id, 'v' FROM users",
                "INSERT INTO roles (name, permissions, inherits, description) "
                "SELECT 'r' || id, '[]', '[]', '' FROM users",
                "ANALYZE",
            ):
                connection.execute(statement)
        yield store
    finally:
        store.close()
        drop_schema(name)


def test_every_lookup_searches_an_index(big_store: PostgresStore) -> None:
    with big_store.transaction(readonly=True) as tx:
        sql = cast(Any, tx).sql
    lookups = {
        sql.user_by_id: "users_pkey",
        sql.user_by_email: "users_email_key",
        sql.user_by_username: "users_username_key",
        sql.user_for_token: "users_pkey",
        sql.user_roles_holders: "user_roles_role",
        sql.role_get: "roles_pkey",
        sql.refresh_get: "refresh_tokens_pkey",
        sql.refresh_revoke_family: "refresh_tokens_family",
        sql.refresh_revoke_user: "refresh_tokens_user",
        sql.refresh_purge: "refresh_tokens_expires",
        sql.revoked_exists: "revoked_tokens_pkey",
        sql.revoked_purge: "revoked_tokens_expires",
        sql.api_key_get: "api_keys_pkey",
        sql.api_key_by_prefix: "api_keys_prefix",
        sql.api_key_for_user: "api_keys_user",
        sql.one_time_get: "one_time_tokens_pkey",
        sql.one_time_delete_user: "one_time_tokens_user",
        sql.one_time_delete_user_purpose: "one_time_tokens_user",
        sql.one_time_purge: "one_time_tokens_expires",
        sql.login_get: "login_attempts_pkey",
        sql.login_purge: "login_attempts_locked",
        sql.meta_get: "meta_pkey",
    }
    for statement, index in lookups.items():
        # Untyped "1"s: PostgreSQL reads each as the type of its column.
        plan = explain(big_store, statement, ["1"] * statement.count("%s"))
        assert index in plan, (statement, plan)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (EVERYONE, "users_pkey"),
        (UserFilter(role="user"), "user_roles_role"),
        # A fifth of the users are inactive: walking the primary key and skipping
        # the others is as good a seek as the (status, id) index.
        (UserFilter(status=UserStatus.INACTIVE), ("users_status", "users_pkey")),
        (UserFilter(role="user", status=UserStatus.INACTIVE), "user_roles_role"),
        (UserFilter(search="u7"), "users_pkey"),
    ],
)
def test_keyset_pages_seek_an_index_in_id_order(
    big_store: PostgresStore, query: UserFilter, index: str | tuple[str, ...]
) -> None:
    with big_store.transaction(readonly=True) as tx:
        sql = cast(Any, tx).dialect.user_query("list", after=True, filter=query)
    params: list[Any] = []
    if query.role:
        params.append(query.role)
    params.append(5000)
    if query.status:
        params.append(query.status.value)
    if query.search:
        params += [query.search] * 3
    plan = explain(big_store, sql, [*params, 20, 0])
    assert any(name in plan for name in ((index,) if isinstance(index, str) else index)), plan
    assert "Sort" not in plan, plan  # rows come out of the index in id order


def test_a_search_of_three_characters_or_more_reads_the_trigram_indexes(
    big_store: PostgresStore,
) -> None:
    if not big_store._dialects[0].indexed_search:
        pytest.skip("pg_trgm could not be created on this server")
    with big_store.transaction(readonly=True) as tx:
        dialect = cast(Any, tx).dialect
        found = tx.users.list(after=None, limit=50, filter=UserFilter(search="U777"))
    query = UserFilter(search="u777")
    for kind in ("list", "count"):
        sql = dialect.user_query(kind, after=False, filter=query)
        params = dialect.user_query_params(None, query)
        # 8,000 rows are few enough for a sequential scan to win; forbidding
        # it shows that the indexes answer the statement as written.
        with big_store.transaction(readonly=True) as tx:
            run(tx, "SET LOCAL enable_seqscan = off")
            run(tx, "SET LOCAL enable_indexscan = off")
            rows = run(tx, "EXPLAIN " + sql, params + ([20, 0] if kind == "list" else []))
            plan = " | ".join(row[0] for row in rows.fetchall())
        assert "users_email_trgm" in plan, plan
        assert "Seq Scan on users" not in plan, plan
    assert found
    assert all("u777" in user.email_key for user in found)


def test_counts_read_the_counters_not_the_rows(big_store: PostgresStore) -> None:
    with big_store.transaction(readonly=True) as tx:
        sql = cast(Any, tx).sql.user_counts_sum
        total = tx.users.count(filter=EVERYONE)
        scanned = run(tx, "SELECT count(*) FROM users").fetchone()[0]
    assert total == scanned
    assert buffers(big_store, sql, ["status:active", "status:inactive"]) <= 3


def test_a_deep_keyset_page_costs_the_same_as_the_first(big_store: PostgresStore) -> None:
    with big_store.transaction(readonly=True) as tx:
        dialect = cast(Any, tx).dialect
        deep = tx.users.list(after=None, limit=1, filter=EVERYONE, offset=7000)[0].id
    for query, params in (
        (EVERYONE, []),
        (UserFilter(role="user"), ["user"]),
        (UserFilter(status=UserStatus.ACTIVE), ["active"]),
    ):
        first = buffers(
            big_store, dialect.user_query("list", after=False, filter=query), [*params, 20, 0]
        )
        seek_sql = dialect.user_query("list", after=True, filter=query)
        seek_params = [*params[:1], deep, *params[1:]] if query.role else [deep, *params]
        later = buffers(big_store, seek_sql, [*seek_params, 20, 0])
        by_offset = buffers(
            big_store, dialect.user_query("list", after=False, filter=query), [*params, 20, 5000]
        )
        assert later <= first + 3, query
        assert by_offset > first * 5, "the measure tells a deep OFFSET from a seek"


# -- transactions, locks and the pool ---------------------------------------------------


def session_setting(tx: UnitOfWork, name: str) -> str:
    return str(run(tx, f"SHOW {name}").fetchone()[0])


def test_writes_read_committed_and_reads_see_one_snapshot(store: PostgresStore) -> None:
    with store.transaction() as tx:
        assert "read committed" == session_setting(tx, "transaction_isolation")
        assert "off" == session_setting(tx, "transaction_read_only")
    with store.transaction(readonly=True) as tx:
        assert "repeatable read" == session_setting(tx, "transaction_isolation")
        assert "on" == session_setting(tx, "transaction_read_only")
        before = tx.users.count(filter=EVERYONE)
        in_threads(1, lambda _: _add(store, "late@example.com"))
        assert before == tx.users.count(filter=EVERYONE), "a read-only unit sees one snapshot"


def _add(store: PostgresStore, email: str, **fields: Any) -> User:
    with store.transaction() as tx:
        return tx.users.add(a_user(email, **fields))


def backend_pid(tx: UnitOfWork) -> int:
    return int(run(tx, "SELECT pg_backend_pid()").fetchone()[0])


def test_a_unit_of_work_and_its_nested_ones_hold_one_connection(store: PostgresStore) -> None:
    with store.transaction() as outer:
        pid = backend_pid(outer)
        with store.transaction(readonly=True) as inner:
            assert pid == backend_pid(inner)
            assert inner is outer
        other = in_threads(1, lambda _: _pid_of_new_transaction(store))[0]
        assert pid != other, "another thread gets a connection of its own"


def _pid_of_new_transaction(store: PostgresStore) -> int:
    with store.transaction(readonly=True) as tx:
        return backend_pid(tx)


def test_threads_wait_for_a_free_connection(schemas: Schemas) -> None:
    store = schemas.open(min_size=1, max_size=2)
    results = in_threads(8, lambda n: _add(store, f"user{n}@example.com").id)
    assert errors(results) == []
    assert len(set(results)) == 8


def test_an_exhausted_pool_is_store_unavailable_after_the_timeout(
    schemas: Schemas, caplog: pytest.LogCaptureFixture
) -> None:
    store = schemas.open(min_size=1, max_size=1, timeout=0.3)
    with store.transaction():
        result = in_threads(1, lambda _: _add(store, "ada@example.com"))[0]
    assert isinstance(result, StoreUnavailable)
    assert result.http_status == 503
    assert "became free within 0.3 s" in caplog.text  # in the log, not the message


def test_a_write_transactions_read_waits_for_another_writers_lock(store: PostgresStore) -> None:
    """users.get in a write unit locks the row: a concurrent read-modify-write waits."""
    user = _add(store, "ada@example.com")
    order: list[str] = []
    locked = threading.Event()

    def first(_: int) -> None:
        with store.transaction() as tx:
            current = tx.users.get(user.id)
            assert current is not None
            locked.set()
            time.sleep(0.3)
            order.append("first writes")
            tx.users.update(attrs.evolve(current, failed_logins=current.failed_logins + 1))

    def second(_: int) -> None:
        locked.wait(5)
        with store.transaction(readonly=True) as tx:  # readers never wait
            assert tx.users.get(user.id) is not None
            order.append("reader reads")
        with store.transaction() as tx:
            current = tx.users.get(user.id)
            assert current is not None
            order.append("second reads")
            tx.users.update(attrs.evolve(current, failed_logins=current.failed_logins + 1))

    results = in_threads(2, lambda n: (first, second)[n](n))
    assert errors(results) == []
    assert ["reader reads", "first writes", "second reads"] == order
    with store.transaction(readonly=True) as tx:
        assert 2 == present(tx.users.get(user.id)).failed_logins


def test_concurrent_counters_lose_no_update(store: PostgresStore) -> None:
    """Failed-login counters on a user and on an unknown identifier (no row yet)."""
    user = _add(store, "ada@example.com")

    def fail_logins(_: int) -> None:
        for _round in range(10):
            with store.transaction() as tx:
                current = tx.users.get(user.id)
                assert current is not None
                tx.users.update(attrs.evolve(current, failed_logins=current.failed_logins + 1))
                before = tx.login_attempts.get("unknown")
                tx.login_attempts.put(
                    LoginAttempts(
                        key="unknown",
                        failures=(0 if before is None else before.failures) + 1,
                        locked_until=None,
                        updated_at=T0,
                    )
                )

    assert errors(in_threads(5, fail_logins)) == []
    with store.transaction(readonly=True) as tx:
        assert 50 == present(tx.users.get(user.id)).failed_logins
        assert 50 == present(tx.login_attempts.get("unknown")).failures


def test_servers_seeding_the_same_roles_create_each_once(store: PostgresStore) -> None:
    def seed(_: int) -> bool:
        with store.transaction() as tx:
            created = False
            for name in ("admin", "user"):
                if tx.roles.get(name) is None:
                    time.sleep(0.05)  # widen the window between the check and the insert
                    tx.roles.add(Role(name=name))
                    created = True
            return created

    results = in_threads(4, seed)
    assert errors(results) == []
    assert 1 == results.count(True)
    with store.transaction(readonly=True) as tx:
        assert ["admin", "user"] == [role.name for role in tx.roles.list()]
        assert 2 == tx.roles.version()


def test_role_graph_checks_run_one_at_a_time(store: PostgresStore) -> None:
    """Two writers each make one role inherit the other after checking the graph
    for cycles: the second sees the first's write, never both succeed."""
    with store.transaction() as tx:
        tx.roles.add(Role(name="a"))
        tx.roles.add(Role(name="b"))

    def inherit(number: int) -> str:
        name, other = ("a", "b") if number == 0 else ("b", "a")
        with store.transaction() as tx:
            graph = {role.name: role for role in tx.roles.list()}
            time.sleep(0.2)
            if name in graph[other].inherits:
                return "refused: cycle"
            tx.roles.update(attrs.evolve(graph[name], inherits={other}))
            return "inherited"

    assert ["inherited", "refused: cycle"] == sorted(in_threads(2, inherit))


def test_concurrent_refreshes_of_one_token_mark_it_used_once(store: PostgresStore) -> None:
    user = _add(store, "ada@example.com")
    with store.transaction() as tx:
        tx.refresh_tokens.add(a_refresh_token(b"token", user.id))

    def rotate(_: int) -> bool:
        with store.transaction() as tx:
            record = tx.refresh_tokens.get(b"token")
            assert record is not None
            return record.used_at is None and tx.refresh_tokens.mark_used(b"token", T0)

    assert [False] * 5 + [True] == sorted(in_threads(6, rotate))


def test_a_deadlock_rolls_back_one_unit_with_a_retryable_error(schemas: Schemas) -> None:
    store = schemas.open(schemas.fresh_url(deadlock_timeout="50ms"))
    ada, grace = _add(store, "ada@example.com"), _add(store, "grace@example.com")
    both = threading.Barrier(2)

    def cross(number: int) -> None:
        first, second = (ada, grace) if number == 0 else (grace, ada)
        with store.transaction() as tx:
            tx.users.get(first.id)
            both.wait(5)
            tx.users.get(second.id)
            tx.meta.set(f"winner-{number}", "yes")

    results = in_threads(2, cross)
    failed = errors(results)
    assert len(failed) == 1
    assert isinstance(failed[0], UsercoreError)
    assert failed[0].details == {"retryable": True}
    assert isinstance(failed[0].__cause__, psycopg.errors.DeadlockDetected)
    with store.transaction(readonly=True) as tx:
        winners = [tx.meta.get(f"winner-{n}") for n in (0, 1)]
    assert ["yes"] == [winner for winner in winners if winner]


def test_a_failed_statement_caught_inside_a_unit_is_not_committed(store: PostgresStore) -> None:
    """PostgreSQL would answer COMMIT with a silent ROLLBACK: the store says so."""

    def swallow_an_error() -> None:
        with store.transaction() as tx:
            tx.meta.set("kept?", "no")
            with pytest.raises(psycopg.errors.DivisionByZero):
                run(tx, "SELECT 1 / 0")

    with pytest.raises(UsercoreError, match="aborted the transaction"):
        swallow_an_error()
    with store.transaction(readonly=True) as tx:
        assert tx.meta.get("kept?") is None


def test_a_failed_statement_in_a_nested_unit_leaves_the_outer_one_usable(
    store: PostgresStore,
) -> None:
    with store.transaction() as outer:
        outer.meta.set("outer", "kept")
        with (
            pytest.raises(psycopg.errors.DivisionByZero),
            store.transaction(readonly=True) as inner,
        ):
            run(inner, "SELECT 1 / 0")
        outer.meta.set("after", "kept")
    with store.transaction(readonly=True) as tx:
        assert ["kept", "kept"] == [tx.meta.get("outer"), tx.meta.get("after")]


def terminate_backends(application_name: str) -> int:
    with raw(server_url()) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    time.sleep(0.1)  # let the terminations land
    return len(rows)


def test_dropped_pool_connections_are_replaced_on_begin(schemas: Schemas) -> None:
    name = f"usercore_drop_{time.monotonic_ns()}"
    url = schemas.fresh_url(application_name=name)
    store = schemas.open(url, min_size=3, max_size=3)
    in_threads(3, lambda n: _add(store, f"user{n}@example.com"))  # every connection used once
    assert terminate_backends(name) == 3
    for number in range(3):  # the server restarted, say: each next unit still works
        assert _add(store, f"after{number}@example.com").id > 0


def test_a_connection_lost_mid_unit_is_rolled_back_and_store_unavailable(
    schemas: Schemas,
) -> None:
    name = f"usercore_lost_{time.monotonic_ns()}"
    store = schemas.open(schemas.fresh_url(application_name=name), min_size=1, max_size=1)

    def lose_the_connection() -> None:
        with store.transaction() as tx:
            tx.meta.set("half", "written")
            terminate_backends(name)
            tx.meta.set("other", "half")

    with pytest.raises(StoreUnavailable) as caught:
        lose_the_connection()
    assert caught.value.retry_after >= 1
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    with store.transaction(readonly=True) as tx:
        assert tx.meta.get("half") is None


def test_a_closed_store_refuses_new_units(schemas: Schemas) -> None:
    store = schemas.open()
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.transaction().__enter__()


def test_bulk_add_takes_increasing_ids_while_others_insert(store: PostgresStore) -> None:
    def work(number: int) -> list[int]:
        if number == 0:
            with store.transaction() as tx:
                added = tx.users.add_many([a_user(f"bulk{n}@example.com") for n in range(3000)])
            return [user.id for user in added]
        return [_add(store, f"single{number}-{n}@example.com").id for n in range(30)]

    results = in_threads(3, work)
    assert errors(results) == []
    every = [user_id for ids in results for user_id in ids]
    assert len(every) == len(set(every)) == 3060
    assert results[0] == sorted(results[0])


# -- packaging -----------------------------------------------------------------------------


def test_importing_without_psycopg_names_the_extra() -> None:
    script = (
        "import sys\n"
        "sys.modules['psycopg'] = None\n"
        "sys.modules['psycopg_pool'] = None\n"
        "import usercore\n"
        "for attempt in ('import usercore.storage.postgres', "
        '\'usercore.UserCore.open("postgresql://x@localhost/db", '
        'settings=usercore.Settings(secret_key="k" * 32))\'):\n'
        "    try:\n"
        "        exec(attempt)\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result
    assert all("pip install 'usercore[postgres]'" in line for line in lines)


def test_conflicts_name_their_field_on_update_races(store: PostgresStore) -> None:
    """Two units rename different users to one email at once: one wins, the
    other gets ConflictError(email) and its transaction stays usable."""
    ada, grace = _add(store, "ada@example.com"), _add(store, "grace@example.com")
    both = threading.Barrier(2)

    def rename(number: int) -> str:
        user = (ada, grace)[number]
        with store.transaction() as tx:
            both.wait(5)
            try:
                tx.users.update(attrs.evolve(user, email="same@example.com"))
            except ConflictError as exc:
                tx.meta.set("loser", str(number))
                return f"conflict on {exc.field}"
            return "renamed"

    assert ["conflict on email", "renamed"] == sorted(in_threads(2, rename))
    with store.transaction(readonly=True) as tx:
        assert tx.meta.get("loser") in ("0", "1")
