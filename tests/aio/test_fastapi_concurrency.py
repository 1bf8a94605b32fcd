"""A real FastAPI app over a real socket: slow logins through ``AsyncUserCore``, and
slow credential checks in ``AsyncAuth`` dependencies, leave the event loop free
for ``/ping``; the synchronous core called inline does not.

Order, not time, is asserted: each login or credential check is held inside
the core (an event subscriber, or the check itself, waits on a gate) and
``/ping`` reports how many requests the server had in flight and had finished
when it answered.  Every wait is bounded only
so a regression fails instead of hanging.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints'
annotations at runtime, and they name local dependencies.
"""

import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import pytest

from tests.services.conftest import PASSWORD, make_settings
from usercore import Principal, UserCore
from usercore.aio import AsyncUserCore
from usercore.services.events import Event
from usercore.web._core import authenticate

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from usercore.web.fastapi import AsyncAuth  # noqa: E402

pytestmark = pytest.mark.slow

LOGINS = 8
HOST = "127.0.0.1"
BOUND = 60.0  # seconds; only so that a blocked loop fails the test instead of hanging it


class Gate:
    """Holds every successful login inside the core until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.first_inside = threading.Event()
        self.all_inside = threading.Event()
        self._lock = threading.Lock()
        self._inside = 0

    def __call__(self, event: Event) -> None:
        if event.name == "auth.login_succeeded":
            self.hold()

    def hold(self) -> None:
        with self._lock:
            self._inside += 1
            self.first_inside.set()
            if self._inside == LOGINS:
                self.all_inside.set()
        assert self.release.wait(BOUND), "the gate was never opened"

    def holding(self, authenticate: Callable[[str], Principal]) -> Callable[[str], Principal]:
        """``authenticate``, held at the gate after it checked the token."""

        def held(token: str) -> Principal:
            principal = authenticate(token)
            self.hold()
            return principal

        return held


def build_app(acore: AsyncUserCore) -> Any:
    app = fastapi.FastAPI()
    counters = {"in_flight": 0, "done": 0}
    auth = AsyncAuth(acore)

    async def inline_principal(request: fastapi.Request) -> Principal:
        # The sync web layer's check called inline: it blocks the event loop.
        principal = authenticate(acore.sync, request.headers)
        assert principal is not None
        return principal

    principals = {"async": auth.principal, "inline": inline_principal}

    async def counted() -> AsyncIterator[None]:
        counters["in_flight"] += 1
        try:
            yield
        finally:
            counters["in_flight"] -= 1
        counters["done"] += 1

    for mode, dependency in principals.items():

        @app.get(f"/me/{mode}", dependencies=[fastapi.Depends(counted)])
        async def me(
            principal: Annotated[Principal, fastapi.Depends(dependency)],
        ) -> dict[str, int | None]:
            return {"user_id": principal.user_id}

    @app.post("/login/{mode}")
    async def login(mode: str, body: dict[str, str]) -> dict[str, str]:
        counters["in_flight"] += 1
        try:
            if mode == "async":
                pair = await acore.auth.login(body["username"], body["password"])
            else:  # the synchronous core called inline: it blocks the event loop
                pair = acore.sync.auth.login(body["username"], body["password"])
        finally:
            counters["in_flight"] -= 1
        counters["done"] += 1
        return {"access_token": pair.access_token}

    @app.get("/ping")
    async def ping() -> dict[str, int]:
        return dict(counters)

    return app


class LiveServer:
    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        # Listening before the server runs: the kernel queues connections at
        # once, even while the server's event loop is busy.
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.token = ""  # ada's access token

    def start(self) -> None:
        self.thread.start()
        probe = self.send("GET", "/ping")
        assert read_response(probe)[0] == 200

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(BOUND)
        self.sock.close()

    def send(
        self, method: str, path: str, body: dict[str, str] | None = None, token: str = ""
    ) -> socket.socket:
        """Connect and write a whole request; when this returns the request is in
        the server's socket buffer, whether or not its loop is free to read it."""
        payload = b"" if body is None else json.dumps(body).encode()
        authorization = f"Authorization: Bearer {token}\r\n" if token else ""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n{authorization}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        conn = socket.create_connection((HOST, self.port), timeout=BOUND)
        conn.sendall(head.encode() + payload)
        return conn


def read_response(conn: socket.socket) -> tuple[int, Any]:
    with conn:
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def server(gate: Gate) -> Iterator[LiveServer]:
    core = UserCore.open("memory://", settings=make_settings())
    core.users.register(email="ada@example.com", username="ada", password=PASSWORD)
    acore = AsyncUserCore(core, max_workers=LOGINS)
    token = core.auth.login("ada", PASSWORD).access_token
    core.events.subscribe(gate)
    # Instance attribute: the web layer's check finds it; logins never call it.
    core.auth.authenticate = gate.holding(core.auth.authenticate)  # type: ignore[method-assign]
    live = LiveServer(build_app(acore))
    live.token = token
    live.start()
    try:
        yield live
    finally:
        gate.release.set()
        live.stop()
        core.close()


def send_requests(server: LiveServer, route: str, mode: str) -> list[socket.socket]:
    """Eight slow requests: logins, or reads whose credential check is held."""
    if route == "login":
        credentials = {"username": "ada", "password": PASSWORD}
        return [server.send("POST", f"/login/{mode}", credentials) for _ in range(LOGINS)]
    return [server.send("GET", f"/me/{mode}", token=server.token) for _ in range(LOGINS)]


def answered(route: str, body: Any) -> bool:
    return bool(body["access_token"]) if route == "login" else body == {"user_id": 1}


# "me": an async def route on AsyncAuth.principal, whose credential check is held.
ROUTES = ["login", "me"]


@pytest.mark.parametrize("route", ROUTES)
def test_async_calls_leave_the_loop_free_for_ping(
    server: LiveServer, gate: Gate, route: str
) -> None:
    requests = send_requests(server, route, "async")
    assert gate.all_inside.wait(BOUND)  # all eight are inside the core at once
    status, seen = read_response(server.send("GET", "/ping"))
    # /ping was answered while every request was still held inside the core.
    assert (status, seen) == (200, {"in_flight": LOGINS, "done": 0})
    gate.release.set()
    answers = [read_response(conn) for conn in requests]
    assert [status for status, _ in answers] == [200] * LOGINS
    assert all(answered(route, body) for _, body in answers)


@pytest.mark.parametrize("route", ROUTES)
def test_the_sync_core_called_inline_makes_ping_wait(
    server: LiveServer, gate: Gate, route: str
) -> None:
    """The same routes calling the sync core inline block the loop (so the test
    above can fail)."""
    requests = send_requests(server, route, "inline")
    assert gate.first_inside.wait(BOUND)  # one request holds the event loop
    ping = server.send("GET", "/ping")  # sent while that request is in flight
    gate.release.set()
    status, seen = read_response(ping)
    # /ping could only run after the request it was sent during had finished,
    # and never overlapped any other.
    assert status == 200
    assert seen["done"] >= 1
    assert seen["in_flight"] == 0
    assert [read_response(conn)[0] for conn in requests] == [200] * LOGINS
