"""A live ``usercore serve`` for the fault-injection suite, and HTTP calls to it."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

HOST = "127.0.0.1"
PREFIX = "/api/v1"
PASSWORD = "correct horse battery staple"
STARTUP_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Server:
    """``usercore serve --db URL`` in a child process, on a free loopback port."""

    def __init__(self, db: str, *, key: str | None = None) -> None:
        self.db = db
        self.port = _free_port()
        self.key = key or secrets.token_urlsafe(32)
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Any = None

    def start(self) -> None:
        env = {**os.environ, "USERCORE_SECRET_KEY": self.key}
        command = [sys.executable, "-m", "usercore.cli", "serve", "--db", self.db]
        command += ["--port", str(self.port), "--log-level", "warning"]
        # A file, not a pipe: a server logging warnings must never block on a full pipe.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=self.log
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"usercore serve did not start: {self.stderr()}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, nothing finishes."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log is not None:
            self.log.close()

    def stderr(self) -> str:
        """What the server has written to stderr so far (its log)."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """One request: ``(status, headers, JSON body)``; ``OSError`` if it gets no answer."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            payload = json.dumps(body) if body is not None else None
            connection.request(method, PREFIX + path, payload, headers)
            response = connection.getresponse()
            content = response.read()
            answer = {name.lower(): value for name, value in response.getheaders()}
            return response.status, answer, json.loads(content) if content else {}
        finally:
            connection.close()

    def register(self, email: str, **call: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
        return self.call("POST", "/auth/register", {"email": email, "password": PASSWORD}, **call)

    def recovers(self, attempts: int = 40) -> bool:
        """Whether a registration succeeds within ``attempts`` tries, each answered
        201 or a 503 (never anything else) meanwhile; no restart in between."""
        for attempt in range(attempts):
            answer = self.register(f"recovered{attempt}@example.com")
            if answer[0] == 201:
                return True
            assert_unavailable(*answer)
            time.sleep(0.1)
        return False


@pytest.fixture
def serve() -> Iterator[type[Server]]:
    """Start servers with ``serve(db).start()``; every one is stopped afterwards."""
    started: list[Server] = []

    class Tracked(Server):
        def start(self) -> None:
            started.append(self)
            super().start()

    yield Tracked
    for server in started:
        server.stop()


def assert_unavailable(status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
    """A transient fault's answer: 503 with ``Retry-After`` and a stable code, never a 500."""
    assert status == 503, (status, body)
    assert int(headers["retry-after"]) >= 1
    assert body["error"]["code"] in ("store_unavailable", "overloaded")
