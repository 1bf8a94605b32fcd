"""Where the FastAPI adapter runs each request (docs/http.md, "Where requests run").

* An operation that may hash a password is admitted onto the hashing pool,
  at most ``max_concurrent_hashes + hash_queue_length`` at once; one more is
  refused with 503 + ``Retry-After`` at once, on the event loop, without a
  thread of FastAPI's pool and before its body is read.
* ``GET /auth/me`` on an in-process store (memory, SQLite) is answered on the
  event loop: it is answered while every hashing slot is busy and needs no
  thread; on a store that reads over the network it runs on the read pool
  (a cheaper hop than FastAPI's thread pool).
* A client that has gone away before its hash starts is not worked for.

Every test orders events (a slow hasher blocks until released); none times anything.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import argon2
import httpx
import pytest

from usercore import SYSTEM, Settings, UserCore
from usercore.storage import SQLiteStore
from usercore.web import fastapi as adapter
from usercore.web._core import HASH_THREAD_NICENESS, HashAdmission, inline_reads
from usercore.web.fastapi import create_app

from .clients import http_scope

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
PATIENCE = 2000  # event-loop turns to wait for a thread to reach a point (not a time bound)


class SlowHasher:
    """Makes every password verification of ``core`` wait until released."""

    def __init__(self, core: UserCore, monkeypatch: pytest.MonkeyPatch) -> None:
        hasher = core._ctx.hasher
        self.started = 0
        self.threads: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        original = hasher.verify

        def verify(stored: str | None, password: str) -> tuple[bool, str | None]:
            with self._lock:
                self.started += 1
                self.threads.append(threading.current_thread().name)
            assert self.release.wait(30), "the test never released the hasher"
            return original(stored, password)

        monkeypatch.setattr(hasher, "verify", verify)


@pytest.fixture
def core() -> Iterator[UserCore]:
    settings = Settings(
        argon2_profile=argon2.profiles.CHEAPEST,
        max_concurrent_hashes=1,
        hash_queue_length=1,
        hash_queue_timeout=timedelta(seconds=30),
    )
    with UserCore.open("memory://", settings=settings) as core:
        core.users.create(SYSTEM, email=EMAIL, password=PASSWORD)
        yield core


@pytest.fixture
def no_thread_pool(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every use of FastAPI's thread pool by usercore's endpoints."""
    used: list[str] = []

    async def record(func: Callable[..., Any], *args: Any) -> Any:
        used.append(getattr(func, "__name__", repr(func)))
        return func(*args)

    monkeypatch.setattr(adapter, "run_in_threadpool", record)
    return used


def admission_of(app: Any) -> HashAdmission:
    for route in app.router.routes:
        shed = getattr(route, "shed", None)
        if shed is not None:
            admission: HashAdmission = shed[0]
            return admission
    raise AssertionError("no route sheds load")


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(PATIENCE):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition was never met")


def run(scenario: Callable[[httpx.AsyncClient], Awaitable[None]], app: Any) -> None:
    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await scenario(client)

    asyncio.run(main())


def login(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
    return client.post(LOGIN, json={"username": EMAIL, "password": PASSWORD})


def test_a_full_hashing_pool_is_refused_at_once_and_me_is_still_answered(
    core: UserCore, monkeypatch: pytest.MonkeyPatch, no_thread_pool: list[str]
) -> None:
    token = core.auth.login(EMAIL, PASSWORD).access_token
    slow = SlowHasher(core, monkeypatch)
    app = create_app(core)
    admission = admission_of(app)
    assert admission.capacity == 2  # one slot and one place in the queue

    async def scenario(client: httpx.AsyncClient) -> None:
        first = asyncio.create_task(login(client))
        second = asyncio.create_task(login(client))
        await until(lambda: slow.started == 1 and admission.admitted == 2)

        refused = await login(client)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "overloaded"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["Connection"] == "close"
        assert refused.headers["X-Content-Type-Options"] == "nosniff"

        me = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["email"] == EMAIL
        # Both answered while the admitted logins still wait for the hasher.
        assert not first.done()
        assert not second.done()
        assert slow.started == 1

        slow.release.set()
        assert (await first).status_code == 200
        assert (await second).status_code == 200
        assert admission.admitted == 0

    run(scenario, app)
    assert slow.threads
    assert all(name.startswith("usercore-hash") for name in slow.threads)
    assert no_thread_pool == []  # neither the logins, the refusal nor /auth/me took a thread


def test_a_login_admitted_with_room_left_is_answered(
    core: UserCore, no_thread_pool: list[str]
) -> None:
    app = create_app(core)

    async def scenario(client: httpx.AsyncClient) -> None:
        answer = await login(client)
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "no-store"
        assert "Connection" not in answer.headers

    run(scenario, app)
    assert admission_of(app).admitted == 0
    assert no_thread_pool == []


def test_me_runs_on_the_read_pool_on_a_store_that_reads_over_the_network(
    core: UserCore, no_thread_pool: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = core.auth.login(EMAIL, PASSWORD).access_token
    monkeypatch.setattr(core.store, "inline_reads", False)
    assert not inline_reads(core)
    threads: list[str] = []
    authenticate = core.auth.authenticate

    def recording(access_token: str) -> Any:
        threads.append(threading.current_thread().name)
        return authenticate(access_token)

    monkeypatch.setattr(core.auth, "authenticate", recording)
    app = create_app(core)

    async def scenario(client: httpx.AsyncClient) -> None:
        me = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        users = await client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
        assert users.status_code == 403  # not an inline operation: FastAPI's pool

    run(scenario, app)
    assert len(threads) == 2
    assert threads[0].startswith("usercore-read")  # not the loop, not FastAPI's pool
    assert no_thread_pool == ["run"]


def test_in_process_stores_read_inline(core: UserCore, tmp_path: Any) -> None:
    assert inline_reads(core)
    assert SQLiteStore.inline_reads is True
    postgres = pytest.importorskip("usercore.storage.postgres")
    assert postgres.PostgresStore.inline_reads is False


def test_a_client_gone_before_its_hash_starts_is_not_worked_for(
    core: UserCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = SlowHasher(core, monkeypatch)
    slow.release.set()
    app = create_app(core)
    body = b'{"username": "ada@example.com", "password": "correct horse battery staple"}'
    messages = [
        {"type": "http.request", "body": body, "more_body": False},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    asyncio.run(app(http_scope("POST", LOGIN, headers), receive, send))
    assert sent[0]["status"] == 503  # answered (nobody reads it), never worked on
    assert slow.started == 0  # no hash, no lockout reservation for a client that left
    assert admission_of(app).admitted == 0
    assert core.users.get_by_email(SYSTEM, EMAIL).last_login_at is None


def test_a_flood_is_refused_before_routing_with_the_guards_headers(
    core: UserCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under a flood each refusal must cost the event loop as little as it can:
    # the guard answers it from the exact method and path, before the router
    # matches a route, with the security and CORS headers of every answer.
    app = create_app(core, cors_origins=["https://app.example"])
    admission = admission_of(app)
    routed: list[str] = []
    real_handle = adapter._Route.handle

    async def handle(self: Any, scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await real_handle(self, scope, receive, send)

    monkeypatch.setattr(adapter._Route, "handle", handle)
    for _ in range(admission.capacity):
        admission.enter()

    async def scenario(client: httpx.AsyncClient) -> None:
        refused = await client.post(
            LOGIN,
            json={"username": EMAIL, "password": PASSWORD},
            headers={"Origin": "https://app.example"},
        )
        assert (503, "overloaded") == (refused.status_code, refused.json()["error"]["code"])
        assert "nosniff" == refused.headers["X-Content-Type-Options"]
        assert "https://app.example" == refused.headers["Access-Control-Allow-Origin"]
        assert [] == routed
        # Another method on the path, and other paths, are routed as usual.
        assert 405 == (await client.get(LOGIN)).status_code
        assert [LOGIN] == routed

    run(scenario, app)
    for _ in range(admission.capacity):
        admission.leave()


def test_hashing_threads_yield_the_cpu_to_the_event_loop(core: UserCore) -> None:
    import os

    if not hasattr(os, "getpriority"):
        pytest.skip("thread priorities are a POSIX feature")
    admission = admission_of(create_app(core))
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    niceness = admission.executor.submit(
        lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    ).result()
    assert min(19, base + HASH_THREAD_NICENESS) == niceness
