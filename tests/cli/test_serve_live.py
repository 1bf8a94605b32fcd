"""``usercore serve`` as a live process: graceful shutdown on SIGTERM, with one
worker and with two, and the account mails reaching a real SMTP server.

Every wait is bounded and every server is always terminated.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tests.mail.smtp_server import free_port, smtp_server
from tests.web.live import wait_until_answering

from .conftest import PASSWORD

pytest.importorskip("uvicorn")
pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
STARTUP_SECONDS = 60.0
NEW_PASSWORD = "a brand new passphrase, long"


@contextmanager
def serving(
    db: Path, *argv: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    log = db.parent / f"serve-{port}.log"
    environment = {**os.environ, "USERCORE_SECRET_KEY": "s" * 40, **(env or {})}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "usercore.cli", "serve", "--db", str(db)),
                *("--port", str(port), "--log-level", "warning", *argv),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    base = f"http://{HOST}:{port}"
    try:
        wait_until_answering(process, f"{base}/readyz", log, STARTUP_SECONDS)
        yield process, base, log
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_lets_the_request_in_flight_finish(db: Path, workers: str) -> None:
    """A login whose body is still on its way when SIGTERM arrives is answered
    in full, then the process exits 0."""
    with serving(db, "--workers", workers) as (process, base, log):
        port = int(base.rsplit(":", 1)[1])
        body = json.dumps({"email": "ada@example.com", "password": PASSWORD}).encode()
        with socket.create_connection((HOST, port), timeout=30) as client:
            client.sendall(
                b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
            )
            time.sleep(1.0)  # the app has the request and waits for its body
            process.send_signal(signal.SIGTERM)
            time.sleep(1.0)  # shutting down, yet the request is still in flight
            assert process.poll() is None
            client.sendall(body)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = client.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b'"access_token"' in answer
        assert process.wait(timeout=30) == 0, log.read_text(errors="replace")
        # No new connection is accepted after the shutdown.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/healthz", timeout=2)


def test_a_reset_mail_reaches_smtp_and_its_token_resets_the_password(db: Path) -> None:
    """The password is in the environment, not on the command line."""
    with smtp_server() as smtp:
        mail_url = f"smtp://{smtp.host}:{smtp.port}?from={quote('no-reply@notes.example')}"
        links = ("--reset-url", "https://notes.example/reset?token={token}")
        links += ("--verification-url", "https://notes.example/verify?token={token}")
        with serving(db, *links, env={"USERCORE_MAIL_URL": mail_url}) as (process, base, log):
            api = f"{base}/api/v1"
            asked = httpx.post(f"{api}/auth/password-reset", json={"email": "ada@example.com"})
            assert asked.status_code == 202
            deadline = time.monotonic() + 30
            while not smtp.inbox.received:
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
            [mail] = smtp.inbox.received
            assert mail.rcpt_tos == ["ada@example.com"]
            [link] = re.findall(r"https://notes\.example/reset\?\S+", mail.part("plain"))
            [token] = parse_qs(urlsplit(link).query)["token"]
            confirm = {"token": token, "new_password": NEW_PASSWORD}
            reset = httpx.post(f"{api}/auth/password-reset/confirm", json=confirm)
            assert reset.status_code == 204, reset.text
            login = {"email": "ada@example.com", "password": NEW_PASSWORD}
            assert httpx.post(f"{api}/auth/login", json=login).status_code == 200
            # The reset also mails the owner a notice (ASVS 4.0.3 V2.5.5).
            deadline = time.monotonic() + 30
            while len(smtp.inbox.received) < 2:
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
            notice = smtp.inbox.received[1]
            assert notice.rcpt_tos == ["ada@example.com"]
            assert "password was changed" in notice.message["Subject"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
