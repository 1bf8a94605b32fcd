"""The token check's read awaited on an event loop: ``PostgresStore.read_for_token``.

What the blocking single read promises, the awaited one promises: one
statement in autocommit, the same answer as ``users.get_for_token``, a
dropped idle connection replaced and the read run once more, a lost server
``StoreUnavailable`` (503); and the store's ``close`` closes its connections.
"""

# The imports after importorskip need psycopg, so they come after it.
# ruff: noqa: E402

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")

from tests.storage.postgres_support import server_url, skip_reason
from tests.storage.test_postgres import Schemas, _add, raw, terminate_backends
from tests.storage.test_postgres import schemas as schemas  # the fixtures
from tests.storage.test_postgres import store as store
from tests.storage.test_postgres_outage import Cluster, when_back
from tests.storage.test_postgres_outage import cluster as cluster
from usercore.custom_fields import CustomField
from usercore.errors import StoreUnavailable, UsercoreError
from usercore.ports import AwaitedTokenReads
from usercore.storage.postgres import PostgresStore

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


def read(store: AwaitedTokenReads, user_id: int, jti: str) -> Any:
    return asyncio.run(store.read_for_token(user_id, jti))


def backends(application_name: str, *, waiting_for_a_lock: bool = False) -> int:
    waiting = " AND wait_event_type = 'Lock'" if waiting_for_a_lock else ""
    with raw(server_url()) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s" + waiting,
            (application_name,),
        ).fetchone()
    return int(row[0])


def test_the_awaited_read_answers_what_get_for_token_answers(store: PostgresStore) -> None:
    user = _add(store, "ada@example.com")
    with store.transaction() as tx:
        tx.revoked_tokens.add("revoked-jti", user.created_at + timedelta(hours=1))
    cases = [
        (user.id, "live-jti"),
        (user.id, "revoked-jti"),
        (user.id + 1, "live-jti"),
        (user.id + 1, "revoked-jti"),
        (user.id, "nul\x00jti"),  # no row can hold it: not revoked, not an error
    ]
    for user_id, jti in cases:
        with store.transaction(single_read=True) as tx:
            expected = tx.users.get_for_token(user_id, jti)
        assert expected == read(store, user_id, jti), (user_id, jti)
    assert read(store, user.id, "live-jti") == (user, False)
    assert read(store, user.id, "revoked-jti") == (user, True)


def test_the_awaited_read_gives_the_declared_custom_fields(store: PostgresStore) -> None:
    declared = [CustomField(name="team", type=str), CustomField(name="level", type=int)]
    store.declare_custom_fields(declared)
    user = _add(store, "ada@example.com", custom_fields={"team": "core", "level": 3})
    assert user.custom_fields == {"team": "core", "level": 3}
    assert read(store, user.id, "jti") == (user, False)


def test_the_awaited_read_is_one_statement_outside_any_transaction(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = _add(store, "ada@example.com")
    sent: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def counting(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counting)

    async def twice() -> None:
        for _ in range(2):  # a new connection, then the idle one again
            assert (user, False) == await store.read_for_token(user.id, "jti")

    asyncio.run(twice())
    assert [statement.split()[0] for statement in sent] == ["SELECT", "SELECT"]


def test_the_awaited_connections_serve_any_event_loop(store: PostgresStore) -> None:
    user = _add(store, "ada@example.com")
    assert read(store, user.id, "jti") == (user, False)
    assert read(store, user.id, "jti") == (user, False)  # another loop, the idle connection
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(read(store, user.id, "jti")))
    thread.start()
    thread.join()
    assert answers == [(user, False)]


def test_reads_beyond_max_size_at_once_go_through_the_pool(schemas: Schemas) -> None:
    store = schemas.open(min_size=1, max_size=1)
    user = _add(store, "ada@example.com")

    async def together() -> list[Any]:
        return list(await asyncio.gather(*(store.read_for_token(user.id, "j") for _ in range(4))))

    assert asyncio.run(together()) == [(user, False)] * 4


def test_a_dropped_awaited_connection_is_replaced_and_the_read_runs_again(
    schemas: Schemas,
) -> None:
    name = f"usercore_awaited_{time.monotonic_ns()}"
    store = schemas.open(schemas.fresh_url(application_name=name), min_size=1, max_size=2)
    user = _add(store, "ada@example.com")
    assert read(store, user.id, "jti") == (user, False)
    assert terminate_backends(name) == 2  # the pooled one and the awaited one
    assert read(store, user.id, "jti") == (user, False)


def test_closing_the_store_closes_its_awaited_connections(schemas: Schemas) -> None:
    name = f"usercore_awaited_{time.monotonic_ns()}"
    store = schemas.open(schemas.fresh_url(application_name=name), min_size=1, max_size=2)
    user = _add(store, "ada@example.com")
    assert read(store, user.id, "jti") == (user, False)
    assert backends(name) == 2
    store.close()
    deadline = time.monotonic() + 10
    while backends(name) and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the closed sockets
    assert backends(name) == 0
    with pytest.raises(RuntimeError, match="closed"):
        read(store, user.id, "jti")


@pytest.mark.slow
def test_a_stopped_server_is_store_unavailable_and_awaited_reads_recover(
    cluster: Cluster,
) -> None:
    with PostgresStore(cluster.url, min_size=1, max_size=2, timeout=1.0) as store:
        user = _add(store, "ada@example.com")
        assert read(store, user.id, "jti") == (user, False)  # an idle awaited connection
        cluster.stop()
        for _ in range(2):  # the dropped idle connection, then a refused connect
            with pytest.raises(StoreUnavailable) as caught:
                read(store, user.id, "jti")
            assert caught.value.http_status == 503
            assert caught.value.__cause__ is not None
        cluster.start()
        assert (user, False) == when_back(lambda: read(store, user.id, "jti"))


def test_reads_beyond_max_size_still_fail_within_timeout_while_every_read_is_stuck(
    schemas: Schemas,
) -> None:
    """The overflow of the awaited reads waits for a pooled connection at most
    ``timeout`` even when the loop's default executor is no bigger than the
    pool and every pooled connection is stuck (a lock here; a network hang
    does the same): never queued behind the stuck reads."""
    url = schemas.fresh_url()
    store = schemas.open(url, min_size=1, max_size=1, timeout=0.5)
    user = _add(store, "ada@example.com")
    with raw(url) as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # every read waits

        async def scenario() -> Any:
            loop = asyncio.get_running_loop()
            loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
            awaited = asyncio.create_task(store.read_for_token(user.id, "j"))
            pooled = asyncio.create_task(store.read_for_token(user.id, "j"))
            await asyncio.sleep(0.2)  # both stuck: the awaited one, the pooled one
            try:
                # A guard against a hang, not a measurement.
                with pytest.raises(StoreUnavailable):
                    await asyncio.wait_for(store.read_for_token(user.id, "j"), 30)
            finally:
                locker.execute("ROLLBACK")
            return await asyncio.gather(awaited, pooled)

        assert asyncio.run(scenario()) == [(user, False)] * 2


def test_a_cancelled_awaited_read_closes_its_connection_and_frees_its_place(
    schemas: Schemas, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read cancelled mid-statement (a client gone, a server shutting down)
    closes its connection, and the next read is awaited again: no place of
    the ``max_size`` is lost, which would send every later read to a thread."""
    name = f"usercore_awaited_{time.monotonic_ns()}"
    url = schemas.fresh_url(application_name=name)
    store = schemas.open(url, min_size=1, max_size=1)
    user = _add(store, "ada@example.com")
    assert read(store, user.id, "jti") == (user, False)
    assert backends(name) == 2  # the pooled connection and the awaited one

    async def cancelled() -> None:
        with raw(url) as locker:
            locker.execute("BEGIN")
            locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # the read waits
            stuck = asyncio.create_task(store.read_for_token(user.id, "jti"))
            while not backends(name, waiting_for_a_lock=True):
                await asyncio.sleep(0.01)
            stuck.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stuck
            locker.execute("ROLLBACK")

    asyncio.run(cancelled())

    def no_thread(*args: Any) -> Any:
        raise AssertionError("an awaited read went to a thread")

    monkeypatch.setattr(store, "_read_for_token", no_thread)
    assert read(store, user.id, "jti") == (user, False)
    deadline = time.monotonic() + 10
    while backends(name) > 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the closed socket
    assert backends(name) == 2  # the cancelled read's connection was closed


@pytest.mark.parametrize("setting", ["statement_timeout", "lock_timeout"])
def test_a_statement_the_server_cancels_fails_as_the_blocking_read_fails(
    schemas: Schemas, setting: str
) -> None:
    """A read the server ends on a healthy connection (a statement or lock
    timeout: no lost connection) is the blocking single read's error, not a
    lost connection (``StoreUnavailable``) after running the statement twice."""
    url = schemas.fresh_url(**{setting: "300"})
    store = schemas.open(url, min_size=1, max_size=1)
    user = _add(store, "ada@example.com")
    assert read(store, user.id, "jti") == (user, False)  # an idle awaited connection
    with raw(url) as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # the reads wait
        with pytest.raises((psycopg.Error, UsercoreError)) as blocking:
            store._read_for_token(user.id, "jti")
        with pytest.raises((psycopg.Error, UsercoreError)) as awaited:
            read(store, user.id, "jti")
        locker.execute("ROLLBACK")
    assert type(blocking.value) is not StoreUnavailable
    assert (type(blocking.value), str(blocking.value)) == (
        type(awaited.value),
        str(awaited.value),
    )
    assert read(store, user.id, "jti") == (user, False)
