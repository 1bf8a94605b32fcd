"""The PostgreSQL server the tests use, and a fresh schema per test.

``USERCORE_TEST_POSTGRES_URL`` names the server (CI sets it); unset, the
tests try ``postgresql://postgres@127.0.0.1:5432/postgres``.  When no server
answers there (or psycopg is not installed), every PostgreSQL test is skipped
with the reason, never failed.

The tests never work in that database itself: each test process creates a
scratch database beside it once (``usercore_test_<hex>``) and drops it when
the process exits, so nothing is left behind on a shared server, not even
the database-wide ``pg_trgm`` extension a store's migration creates in
``public`` (docs/storage.md).  A role that may not create databases runs the
tests in the configured database, which then keeps that extension.  Each
store gets a schema of its own in it (``CREATE SCHEMA`` is far cheaper than
``CREATE DATABASE``), selected through the ``options`` of its URL and dropped
afterwards.
"""

from __future__ import annotations

import atexit
import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

__all__ = [
    "DEFAULT_URL",
    "SchemaPerStore",
    "configured_url",
    "create_schema",
    "drop_schema",
    "dump_postgres",
    "postgres_schema",
    "require_server",
    "schema_url",
    "scratch_database",
    "server_url",
    "skip_reason",
]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ENV = "USERCORE_TEST_POSTGRES_URL"


def configured_url() -> str:
    """The database ``USERCORE_TEST_POSTGRES_URL`` names (it may be shared)."""
    return os.environ.get(ENV) or DEFAULT_URL


def database_url(url: str, database: str) -> str:
    """``url`` naming ``database`` instead of its own."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def create_database() -> str | None:
    """A new empty database on the configured server (its name), or ``None``
    when this role may not create one."""
    import psycopg

    name = f"usercore_test_{uuid.uuid4().hex[:16]}"
    try:
        with psycopg.connect(configured_url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
    except psycopg.errors.InsufficientPrivilege:
        return None
    return name


def drop_database(name: str) -> None:
    """Drop ``name``, ending any session still on it (a store a test leaked)."""
    import psycopg

    with psycopg.connect(configured_url(), autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new database, dropped on exit; skips when none can be made."""
    require_server()
    name = create_database()
    if name is None:
        pytest.skip("this role may not create databases")
    try:
        yield database_url(configured_url(), name)
    finally:
        drop_database(name)


@functools.cache
def server_url() -> str:
    """The database the tests work in: this process's scratch database,
    dropped when it exits (the configured one when none can be created)."""
    if skip_reason() is not None:
        return configured_url()
    name = create_database()
    if name is None:
        return configured_url()
    atexit.register(drop_database, name)
    return database_url(configured_url(), name)


@functools.cache
def skip_reason() -> str | None:
    """Why the PostgreSQL tests cannot run here, or ``None`` when they can."""
    url = configured_url()
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install 'usercore[postgres]'"
    try:
        with psycopg.connect(url, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        where = url.split("@")[-1]
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no PostgreSQL server answers at {where} (set ${ENV}): {reason}"
    return None


def require_server() -> str:
    """The server URL; skips the calling test when there is no server."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    return server_url()


def schema_url(url: str, schema: str, **settings: str) -> str:
    """``url`` with ``schema`` first on the search path, and any other server
    ``settings`` for its sessions (libpq ``options``)."""
    options = " ".join(
        f"-c{key}={value}" for key, value in {"search_path": schema, **settings}.items()
    )
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(options, safe='')}"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url(), autocommit=True) as connection:
        connection.execute(sql)


def create_schema(**settings: str) -> tuple[str, str]:
    """A new empty schema: ``(name, url selecting it)``."""
    name = f"usercore_test_{uuid.uuid4().hex[:16]}"
    _admin(f"CREATE SCHEMA {name}")
    return name, schema_url(server_url(), name, **settings)


def drop_schema(name: str) -> None:
    _admin(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@contextmanager
def postgres_schema(**settings: str) -> Iterator[str]:
    """The URL of a fresh schema, dropped on exit; skips without a server."""
    require_server()
    name, url = create_schema(**settings)
    try:
        yield url
    finally:
        drop_schema(name)


class SchemaPerStore:
    """Mix-in for test classes that make many stores: each in a schema of its
    own, all dropped when the test ends."""

    schemas: list[str]

    @pytest.fixture(autouse=True)
    def _schemas(self) -> Iterator[None]:
        require_server()
        self.schemas = []
        yield
        for name in self.schemas:
            drop_schema(name)

    def fresh_url(self, **settings: str) -> str:
        name, url = create_schema(**settings)
        self.schemas.append(name)
        return url


def dump_postgres(store: Any) -> dict[str, list[dict[str, Any]]]:
    """Everything a ``PostgresStore`` holds, as ``{table: [row dicts]}`` (the shape of
    ``tests/hardening/dump.py``), read in one snapshot on an idle pooled connection.

    Sequences are left out on purpose: PostgreSQL never rolls them back, so a
    failed insert consumes an id (ids are never reused either way).  The
    store must be at rest: no unit of work open in this thread, every pooled
    connection idle.
    """
    if getattr(store._local, "uow", None) is not None:
        raise AssertionError(f"{store!r} left a transaction open")
    stats = store._pool.get_stats()
    if stats.get("pool_available", 0) != stats.get("pool_size", 0):
        raise AssertionError(f"{store!r} has a connection out of the pool: {stats}")
    result: dict[str, list[dict[str, Any]]] = {}
    with store._pool.connection() as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            names = [
                row[0]
                for row in connection.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "ORDER BY tablename"
                ).fetchall()
            ]
            for name in names:
                cursor = connection.execute(f'SELECT * FROM "{name}"')
                columns = [column.name for column in cursor.description or ()]
                rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
                result[name] = sorted(rows, key=lambda row: repr(sorted(row.items())))
        finally:
            connection.execute("ROLLBACK")
    return result
