"""Single reads on PostgreSQL: one statement in autocommit, one round trip.

``store.transaction(single_read=True)`` (authenticating a token, a user by id
or email) sends its one statement on its own: no ``BEGIN``, no ``COMMIT``.
A pooled connection found dropped is replaced and the read runs once more;
a server that stays away is ``StoreUnavailable`` (503), like any unit of work.
"""

# The imports after importorskip need psycopg, so they come after it.
# ruff: noqa: E402

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")

from psycopg.pq import TransactionStatus

from tests.services.conftest import make_settings
from tests.storage.postgres_support import skip_reason
from tests.storage.test_postgres import Schemas, _add, terminate_backends
from tests.storage.test_postgres import schemas as schemas  # the fixtures
from tests.storage.test_postgres import store as store
from tests.storage.test_postgres_outage import Cluster, when_back
from tests.storage.test_postgres_outage import cluster as cluster
from usercore import SYSTEM, UserCore
from usercore.errors import StoreUnavailable
from usercore.storage.postgres import PostgresStore

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement psycopg sends from now on (``Connection.execute`` goes
    through a cursor too), as text."""
    statements: list[str] = []
    execute = psycopg.Cursor.execute

    def counting(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    return statements


def test_a_single_read_is_one_statement_outside_any_transaction(
    store: PostgresStore, sent: list[str]
) -> None:
    user = _add(store, "ada@example.com")
    sent.clear()
    with store.transaction(single_read=True) as tx:
        assert user == tx.users.get(user.id)
        assert TransactionStatus.IDLE == tx.connection.info.transaction_status
    assert [statement.split()[0] for statement in sent] == ["SELECT"]
    sent.clear()
    with store.transaction(readonly=True) as tx:
        assert user == tx.users.get(user.id)
    assert [statement.split()[0] for statement in sent] == ["BEGIN", "SELECT", "COMMIT"]


def test_authenticate_and_the_gets_send_one_statement_each(
    store: PostgresStore, sent: list[str]
) -> None:
    # The role table is reloaded at most once an hour here, not during the calls.
    core = UserCore(store, make_settings(policy_refresh_interval=timedelta(hours=1)))
    user = core.users.register(email="ada@example.com", password="correct horse battery")
    token = core.auth.login("ada@example.com", "correct horse battery").access_token
    calls = {
        "authenticate": lambda: core.auth.authenticate(token).user_id,
        "get": lambda: core.users.get(SYSTEM, user.id).id,
        "get_by_email": lambda: core.users.get_by_email(SYSTEM, "ADA@example.com").id,
    }
    for name, call in calls.items():
        assert user.id == call()  # the role table loaded, statements prepared
        sent.clear()
        assert user.id == call()
        assert [statement.split()[0] for statement in sent] == ["SELECT"], name


def test_a_second_statement_in_a_single_read_is_refused(store: PostgresStore) -> None:
    user = _add(store, "ada@example.com")
    with store.transaction(single_read=True) as tx:
        assert user == tx.users.get(user.id)
        with pytest.raises(RuntimeError, match="one statement"):
            tx.users.get_by_email("ada@example.com")


def test_a_failed_single_read_leaves_its_connection_usable(schemas: Schemas) -> None:
    store = schemas.open(min_size=1, max_size=1)
    user = _add(store, "ada@example.com")
    with (
        pytest.raises(psycopg.errors.DivisionByZero),
        store.transaction(single_read=True) as tx,
    ):
        tx.execute("SELECT 1 / 0")
    with store.transaction(single_read=True) as tx:  # the one pooled connection
        assert user == tx.users.get(user.id)
    assert _add(store, "grace@example.com").id > user.id


def test_a_dropped_pooled_connection_is_replaced_and_the_read_runs_again(
    schemas: Schemas,
) -> None:
    name = f"usercore_single_{time.monotonic_ns()}"
    store = schemas.open(schemas.fresh_url(application_name=name), min_size=1, max_size=1)
    user = _add(store, "ada@example.com")
    assert terminate_backends(name) == 1  # the server restarted, say, while it sat idle
    with store.transaction(single_read=True) as tx:
        assert user == tx.users.get(user.id)
    assert _add(store, "grace@example.com").id > user.id


@pytest.mark.slow
def test_a_stopped_server_is_store_unavailable_and_single_reads_recover(
    cluster: Cluster,
) -> None:
    with PostgresStore(cluster.url, min_size=1, max_size=2, timeout=1.0) as store:
        user = _add(store, "ada@example.com")

        def read() -> object:
            with store.transaction(single_read=True) as tx:
                return tx.users.get(user.id)

        cluster.stop()
        for _ in range(2):
            with pytest.raises(StoreUnavailable) as caught:
                read()
            assert caught.value.http_status == 503
            assert caught.value.__cause__ is not None
        cluster.start()
        assert user == when_back(read)
