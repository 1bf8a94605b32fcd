"""The PostgreSQL server the tests use, and a fresh schema per test.

``USERCORE_TEST_POSTGRES_URL`` names the server (CI sets it); unset, the
tests try ``postgresql://postgres@127.0.0.1:5432/postgres``.  When no server
answers there (or psycopg is not installed), every PostgreSQL test is skipped
with the reason, never failed.

Each store gets a schema of its own (``CREATE SCHEMA`` is far cheaper than
``CREATE DATABASE``), selected through the ``options`` of its URL and dropped
afterwards.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest

__all__ = [
    "DEFAULT_URL",
    "SchemaPerStore",
    "create_schema",
    "drop_schema",
    "dump_postgres",
    "postgres_schema",
    "require_server",
    "schema_url",
    "server_url",
    "skip_reason",
]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ENV = "USERCORE_TEST_POSTGRES_URL"


def server_url() -> str:
    return os.environ.get(ENV) or DEFAULT_URL


@functools.cache
def skip_reason() -> str | None:
    """Why the PostgreSQL tests cannot run here, or ``None`` when they can."""
    url = server_url()
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
