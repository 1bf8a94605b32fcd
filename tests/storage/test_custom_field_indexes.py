"""Filters on unique and indexed custom fields are answered by their indexes,
on SQLite and on PostgreSQL, with the statements the stores run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from usercore.custom_fields import CustomField
from usercore.ports import Store, UserFilter
from usercore.storage.sqlite import SQLiteStore

from .postgres_support import postgres_schema

FIELDS = (CustomField(name="tenant_id", indexed=True), CustomField(name="badge", unique=True))
INDEXES = {"tenant_id": "users_custom_tenant_id", "badge": "users_custom_badge_key"}


def plan(store: Store, name: str, explain: str, *setup: str) -> list[Any]:
    """The rows of ``explain`` for the listing a store runs to filter by ``name``."""
    store.declare_custom_fields(FIELDS)
    query = UserFilter(custom_fields={name: "acme"})
    with store.transaction(readonly=True) as tx:
        uow = cast(Any, tx)
        sql = uow.dialect.user_query("list", after=False, filter=query)
        params = [*uow.dialect.user_query_params(None, query), 20, 0]
        for statement in setup:
            uow.execute(statement, ())
        rows: list[Any] = uow.execute(explain + sql, params).fetchall()
    return rows


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_sqlite_filters_search_the_custom_index(tmp_path: Path, name: str) -> None:
    with SQLiteStore(tmp_path / "users.db") as store:
        explained = " | ".join(row[3] for row in plan(store, name, "EXPLAIN QUERY PLAN "))
    assert f"SEARCH u USING INDEX {INDEXES[name]}" in explained, explained


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_postgres_filters_scan_the_custom_index(postgres_url: str, name: str) -> None:
    from usercore.storage.postgres import PostgresStore

    with PostgresStore(postgres_url) as store:
        # A few rows are cheaper to scan; forbidding it shows the index answers.
        rows = plan(store, name, "EXPLAIN ", "SET LOCAL enable_seqscan = off")
    explained = " | ".join(row[0] for row in rows)
    assert INDEXES[name] in explained, explained
    assert "Seq Scan on users" not in explained, explained
