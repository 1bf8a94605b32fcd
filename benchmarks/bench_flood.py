"""A login flood against a live ``usercore serve``: bounded memory, load shedding, a live server.

One ``usercore serve`` process (SQLite, the production argon2 profile: RFC 9106
low-memory, 64 MiB per hash) on a free loopback port.  A load generator in its
own process opens ``--connections`` keep-alive connections (asyncio streams)
and posts ``/api/v1/auth/login`` as fast as each answers, for ``--seconds``:
nine in ten for unknown random usernames (each costs the dummy verification),
one in ten the real account's correct password.  Every request has a 2 s
client timeout.  Meanwhile this process asks ``GET /api/v1/auth/me`` (one
connection, every 20 ms) and samples the server's memory from ``/proc``.

Printed: the answers by status (2xx, 401, 429, 503; anything else, and
client timeouts, fail the targets), the slowest answer, the server's peak RSS
(``VmHWM``), and ``/auth/me`` latency before (the peer, idle), during and
right after the flood, as p50/p99 and as a ratio to the idle p99.

``--polite`` makes the clients wait ``Retry-After`` after a 503 (well-behaved
clients and load balancers); by default they ask again at once (an attacker).

Targets (issue 17): peak RSS < 512 MB, every login answered within 2 s,
``/auth/me`` p99 < 50 ms during and after.

Run: ``python benchmarks/bench_flood.py [--connections 300] [--seconds 15]``
(needs ``pip install 'usercore[fastapi]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PREFIX = "/api/v1"
USERNAME = "flood"
PASSWORD = "correct horse battery staple"
CLIENT_TIMEOUT = 2.0
PROBE_INTERVAL = 0.02
AFTER_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def request(
    port: int, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, PREFIX + path, json.dumps(body) if body else None, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


@contextlib.contextmanager
def server(directory: Path) -> Iterator[tuple[int, int]]:
    """A ``usercore serve`` on a fresh SQLite file: ``(port, pid)``."""
    port = free_port()
    env = {**os.environ, "USERCORE_SECRET_KEY": secrets.token_urlsafe(32)}
    command = [
        sys.executable,
        "-m",
        "usercore.cli",
        "serve",
        "--db",
        str(directory / "flood.db"),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("usercore serve did not start") from None
                time.sleep(0.1)
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_kib(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of ``pid`` in KiB: now, and the peak so far."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, body: bytes
) -> tuple[int, dict[str, str]]:
    """One keep-alive HTTP/1.1 request on an open connection: status and headers."""
    writer.write(
        f"POST {PREFIX}/auth/login HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    status_line = await reader.readuntil(b"\r\n")
    headers: dict[str, str] = {}
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers


async def _flood(port: int, connections: int, seconds: float, polite: bool) -> dict[str, Any]:
    # Raw asyncio streams, not an HTTP client library: 300 clients must cost
    # the generator little CPU (an httpx client builds an SSL context each).
    statuses: Counter[str] = Counter()
    slowest = 0.0
    stop = time.monotonic() + seconds

    async def connection() -> None:
        nonlocal slowest
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.monotonic() < stop:
            if secrets.randbelow(10):
                fields = {"username": "u" + secrets.token_hex(6), "password": "wrong password!"}
            else:
                fields = {"username": USERNAME, "password": PASSWORD}
            started = time.monotonic()
            try:
                if stream is None:
                    stream = await asyncio.wait_for(
                        asyncio.open_connection(HOST, port), CLIENT_TIMEOUT
                    )
                left = CLIENT_TIMEOUT - (time.monotonic() - started)
                exchange = _exchange(*stream, port, json.dumps(fields).encode())
                status, headers = await asyncio.wait_for(exchange, max(left, 0.001))
            except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                timed_out = isinstance(exc, asyncio.TimeoutError)
                statuses["timeout" if timed_out else type(exc).__name__] += 1
                if stream is not None:
                    stream[1].close()
                stream = None
                continue
            slowest = max(slowest, time.monotonic() - started)
            statuses[str(status)] += 1
            if status == 503 and "retry-after" not in headers:
                statuses["503 without Retry-After"] += 1
            elif status == 503 and polite:
                await asyncio.sleep(min(float(headers["retry-after"]), stop - time.monotonic()))
            if headers.get("connection") == "close":
                stream[1].close()
                stream = None
        if stream is not None:
            stream[1].close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return {"statuses": dict(statuses), "slowest": slowest}


def flood_process(port: int, connections: int, seconds: float, polite: bool, results: Any) -> None:
    results.put(asyncio.run(_flood(port, connections, seconds, polite)))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


class Probe:
    """``GET /auth/me`` every 20 ms on one keep-alive connection, latencies by phase."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.phase = "idle"
        self.latencies: dict[str, list[float]] = {"idle": [], "during": [], "after": []}
        self.failures: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        while not self._stop.wait(PROBE_INTERVAL):
            phase = self.phase
            started = time.perf_counter()
            try:
                connection.request("GET", PREFIX + "/auth/me", headers=headers)
                response = connection.getresponse()
                response.read()
            except OSError as exc:
                self.failures[type(exc).__name__] += 1
                connection.close()
                connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
                continue
            elapsed = time.perf_counter() - started
            if response.status != 200:
                self.failures[str(response.status)] += 1
            self.latencies[phase].append(elapsed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--polite",
        action="store_true",
        help="clients wait Retry-After after a 503 (default: they ask again at once)",
    )
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="usercore-flood-"))
    try:
        with server(directory) as (port, pid):
            status, _ = request(
                port,
                "POST",
                "/auth/register",
                {"email": "flood@example.com", "username": USERNAME, "password": PASSWORD},
            )
            assert status == 201, status
            status, tokens = request(
                port, "POST", "/auth/login", {"username": USERNAME, "password": PASSWORD}
            )
            assert status == 200, status
            baseline_rss, _ = rss_kib(pid)
            with Probe(port, tokens["access_token"]) as probe:
                time.sleep(3)
                probe.phase = "during"
                results: Any = multiprocessing.get_context("spawn").Queue()
                flooder = multiprocessing.get_context("spawn").Process(
                    target=flood_process,
                    args=(port, args.connections, args.seconds, args.polite, results),
                )
                flooder.start()
                peak_rss = 0
                while flooder.is_alive():
                    now_rss, hwm = rss_kib(pid)
                    peak_rss = max(peak_rss, now_rss, hwm)
                    time.sleep(0.1)
                    if not results.empty():
                        break
                flood = results.get(timeout=60)
                flooder.join()
                probe.phase = "after"
                time.sleep(AFTER_SECONDS)
            _, hwm = rss_kib(pid)
            peak_rss = max(peak_rss, hwm)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    statuses: dict[str, int] = flood["statuses"]
    answered = sum(n for code, n in statuses.items() if code in ("200", "401", "429", "503"))
    total = sum(n for code, n in statuses.items() if code != "503 without Retry-After")
    kind = "clients honour Retry-After" if args.polite else "clients never back off"
    print(
        f"flood: {args.connections} connections x {args.seconds:.0f} s on POST /auth/login ({kind})"
    )
    print(f"  machine load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  answers: {dict(sorted(statuses.items()))}")
    print(
        f"  answered 2xx/401/429/503: {answered}/{total}; slowest answer {flood['slowest']:.2f} s"
    )
    print(f"  server RSS: idle {baseline_rss / 1024:.0f} MB, peak {peak_rss / 1024:.0f} MB")
    idle_p99 = percentile(probe.latencies["idle"], 0.99)
    for phase in ("idle", "during", "after"):
        values = probe.latencies[phase]
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(
            f"  GET /auth/me {phase:>6}: n={len(values):4d} p50 {p50 * 1000:6.1f} ms "
            f"p99 {p99 * 1000:6.1f} ms ({p99 / idle_p99:5.1f}x idle p99)"
        )
    if probe.failures:
        print(f"  GET /auth/me failures: {dict(probe.failures)}")
    during = percentile(probe.latencies["during"], 0.99)
    after = percentile(probe.latencies["after"], 0.99)
    met = (
        answered == total
        and flood["slowest"] < CLIENT_TIMEOUT
        and peak_rss < 512 * 1024
        and during < 0.05
        and after < 0.05
        and not probe.failures
    )
    print(
        "targets (peak < 512 MB, all answered < 2 s, me p99 < 50 ms):", "met" if met else "MISSED"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
