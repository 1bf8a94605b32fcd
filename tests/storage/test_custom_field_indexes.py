"""Filters on unique and indexed custom fields are answered by their indexes,
on SQLite and on PostgreSQL, with the statements the stores run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from usercore.custom_fields import CustomField
from usercore.ports import UserFilter
from usercore.storage.sqlite import SQLiteStore

from .postgres_support import postgres_schema

FIELDS = (CustomField(name="tenant_id", indexed=True), CustomField(name="badge", unique=True))
INDEXES = {"tenant_id": "users_custom_tenant_id", "badge": "users_custom_badge_key"}


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_sqlite_filters_search_the_custom_index(tmp_path: Path, name: str) -> None:
    with SQLiteStore(tmp_path / "users.db") as store:
        store.declare_custom_fields(FIELDS)
        query = UserFilter(custom_fields={name: "acme"})
        with store.transaction(readonly=True) as tx:
            uow = cast(Any, tx)
            sql = uow.dialect.user_query("list", after=False, filter=query)
            params = [*uow.dialect.user_query_params(None, query), 20, 0]
            rows = uow.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        plan = " | ".join(row[3] for row in rows)
        assert f"SEARCH u USING INDEX {INDEXES[name]}" in plan, plan


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_postgres_filters_scan_the_custom_index(postgres_url: str, name: str) -> None:
    from usercore.storage.postgres import PostgresStore

    with PostgresStore(postgres_url) as store:
        store.declare_custom_fields(FIELDS)
        query = UserFilter(custom_fields={name: "acme"})
        with store.transaction(readonly=True) as tx:
            uow = cast(Any, tx)
            sql = uow.dialect.user_query("list", after=False, filter=query)
            params = [*uow.dialect.user_query_params(None, query), 20, 0]
            # A few rows are cheaper to scan; forbidding it shows the index answers.
            uow.execute("SET LOCAL enable_seqscan = off", ())
            rows = uow.execute("EXPLAIN " + sql, params).fetchall()
        plan = " | ".join(row[0] for row in rows)
        assert INDEXES[name] in plan, plan
        assert "Seq Scan on users" not in plan, plan
