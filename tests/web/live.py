"""A live ``usercore serve`` in a subprocess on a free loopback port, for the
tests that talk HTTP over a real socket.  Every wait is bounded and the server
is always terminated."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

HOST = "127.0.0.1"
STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def cli(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``usercore ARGS`` with ``env``, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "usercore.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def wait_until_answering(
    process: subprocess.Popen[bytes], url: str, log: Path, seconds: float = STARTUP_SECONDS
) -> None:
    """Return once ``url`` answers 200; fail with the server's log if the process
    exits first, or when ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, "the server did not start in time"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)


@contextlib.contextmanager
def serving(args: Sequence[str], *, env: dict[str, str], workdir: Path, log: Path) -> Iterator[str]:
    """``usercore serve ARGS --port P`` until the block ends; yields its base URL
    once ``/openapi.json`` answers (its output goes to ``log``)."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "usercore.cli", "serve", *args, "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    base_url = f"http://{HOST}:{port}"
    try:
        wait_until_answering(process, f"{base_url}/openapi.json", log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
