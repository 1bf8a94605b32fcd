"""Issue 12 item 5: the 1 MiB body cap holds while a chunked body streams in.

OWASP ASVS 4.0.3 V12.1.1 / V13.1.3: the application refuses over-large
requests; a body sent without ``Content-Length`` (chunked) must be cut off at
the cap, not read to its end and then parsed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.clients import ADAPTERS, PREFIX, Client, Outbox, http_scope, make_core

CHUNK = b" " * 65536
FIFTY_MB_CHUNKS = 50 * 1024 * 1024 // len(CHUNK)


class Chunks:
    """A 50 MB body as a generator that counts how much of it was read."""

    def __init__(self) -> None:
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(FIFTY_MB_CHUNKS):
            self.sent += 1
            yield CHUNK


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_chunked_50_mb_body_is_refused_with_413_without_being_read(adapter: str) -> None:
    with make_core() as core:
        client = Client(adapter, core, Outbox())
        body = Chunks()
        url = PREFIX + "/auth/register"
        headers = {"Content-Type": "application/json"}
        if adapter == "fastapi":
            status, error = asyncio.run(_asgi_post(client.app, url, body))
        else:
            status, error = _wsgi_post(client.app, url, body)
        assert "content-length" not in {key.lower() for key in headers}
        assert (status, error) == (413, "payload_too_large")
        # The cap is 1 MiB: a few chunks past it at most, never the whole 50 MB.
        assert body.sent < FIFTY_MB_CHUNKS // 10


async def _asgi_post(app: Any, path: str, body: Chunks) -> tuple[int, str]:
    """POST ``body`` to an ASGI app chunk by chunk: the status and the error code."""
    start, content = await _asgi_stream(app, path, body)
    return start["status"], json.loads(content)["error"]["code"]


async def _asgi_stream(app: Any, path: str, body: Chunks) -> tuple[dict[str, Any], bytes]:
    """POST ``body`` to an ASGI app chunk by chunk, as a server streams it in:
    the ``http.response.start`` message and the answer's body."""
    chunks = iter(body)
    scope = http_scope(
        "POST",
        path,
        [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start, content


def _wsgi_post(app: Any, path: str, body: Chunks) -> tuple[int, str]:
    """POST ``body`` to a WSGI app as a chunked request (no ``Content-Length``)."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    environ = EnvironBuilder(
        path=path, method="POST", content_type="application/json"
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input"] = _Stream(body)
    environ["wsgi.input_terminated"] = True
    app_iter, status, _ = run_wsgi_app(app, environ)
    content = b"".join(app_iter)
    return int(status.split()[0]), json.loads(content)["error"]["code"]


class _Stream:
    """A file-like body without a length, as a chunked request reaches WSGI."""

    def __init__(self, chunks: Chunks) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


# -- routes mounted outside init_app's prefix -----------------------------------------------


def _own_app_with_rbac_at(prefix: str) -> Any:
    """An app of one's own: ``init_app`` with its default prefix (``/api/v1``) and
    the rbac profile's router mounted elsewhere, as docs/profiles.md allows."""
    from fastapi import FastAPI

    from usercore.web.fastapi import create_router, init_app

    core = make_core()
    app = FastAPI()
    init_app(app, core)
    app.include_router(create_router(core, prefix=prefix, profile="rbac"))
    return app


def test_a_usercore_route_outside_the_guarded_prefix_keeps_the_cap_and_headers() -> None:
    """The guard covered only paths under init_app's prefix: the rbac router at
    /api took a 5 MB body whole and answered without the security headers
    (OWASP ASVS 4.0.3 V12.1.1, V14.4)."""
    from fastapi.testclient import TestClient

    client = TestClient(_own_app_with_rbac_at("/api"))
    body = b'{"username": "' + b"a" * 5_000_000 + b'", "password": "x"}'
    reply = client.post(
        "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert (413, {"message": "The request body is too large"}) == (reply.status_code, reply.json())
    assert "DENY" == reply.headers["x-frame-options"]
    answered = client.post("/api/auth/login", json={"username": "ada", "password": "x" * 20})
    assert 401 == answered.status_code
    assert {"nosniff", "DENY"} <= {
        answered.headers["x-content-type-options"],
        answered.headers["x-frame-options"],
    }


def test_a_chunked_body_to_a_route_outside_the_guarded_prefix_is_cut_off() -> None:
    app = _own_app_with_rbac_at("/api")
    body = Chunks()
    start, _ = asyncio.run(_asgi_stream(app, "/api/auth/login", body))
    assert 413 == start["status"]
    assert (b"x-frame-options", b"DENY") in [tuple(pair) for pair in start["headers"]]
    assert body.sent < FIFTY_MB_CHUNKS // 10
