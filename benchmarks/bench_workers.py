"""``usercore serve --workers 2`` against ``--workers 1`` on ``GET /api/v1/auth/me``, in one run.

Each subject is a real ``usercore serve`` process on one SQLite file (WAL),
on a free loopback port, with the access log and the purge thread off.  Every
request carries a valid access token.  The load comes from ``wrk``
(``apt-get install wrk``) or, without it, from bench_http's keep-alive
``http.client`` threads (which compete with the server for the same cores).
Subjects alternate over several rounds and the median is kept.

It also shows why uvicorn's own ``--workers`` was slow here: one keep-alive
connection, requests one after the other, on the same app with the asyncio
event loop, under ``uvicorn --workers 2`` (its listening socket has protocol
0, so asyncio never sets TCP_NODELAY on accepted connections and each
response waits ~40 ms for the client's delayed ACK) and under
``usercore serve --workers 2`` (a socket made with IPPROTO_TCP).

Target: ``--workers 2`` at least 1.6x the requests/s of ``--workers 1`` on a
2-core machine.

Run: ``python benchmarks/bench_workers.py`` (needs ``pip install 'usercore[server]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench_http import HOST, free_port, load_with_threads, load_with_wrk

SECRET = "bench-secret-key-bench-secret-key-0123456789"
EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"
PATH = "/api/v1/auth/me"
STARTUP_SECONDS = 60.0
TARGET = 1.6


def _request(
    port: int, method: str, path: str, body: object = None, token: str | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _environment() -> dict[str, str]:
    return {**os.environ, "USERCORE_SECRET_KEY": SECRET}


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start in time")
        with contextlib.suppress(OSError):
            if _request(port, "GET", "/readyz")[0] == 200:
                return
        time.sleep(0.1)


@contextlib.contextmanager
def _running(argv: list[str], workdir: Path, env: dict[str, str]) -> Iterator[tuple[int, str]]:
    """A server from ``argv`` (``{port}`` replaced), ready, as (port, token)."""
    port = free_port()
    log = workdir / f"{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in argv],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait_ready(process, port, log)
        status, body = _request(
            port, "POST", "/api/v1/auth/login", {"email": EMAIL, "password": PASSWORD}
        )
        if status != 200:
            raise RuntimeError(f"login answered {status}: {body[:200]!r}")
        yield port, json.loads(body)["access_token"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _serve(database: Path, workers: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "usercore.cli",
        "serve",
        "--db",
        str(database),
        "--port",
        "{port}",
        "--workers",
        str(workers),
        "--access-log",
        "off",
        "--purge-every",
        "0",
        "--log-level",
        "warning",
        *extra,
    ]


def _sequential_ms(port: int, token: str, requests: int) -> float:
    """Median milliseconds per request, one keep-alive connection, one at a time."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    times = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            connection.request("GET", PATH, headers=headers)
            response = connection.getresponse()
            response.read()
            times.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"{PATH} answered {response.status}")
    finally:
        connection.close()
    return statistics.median(times) * 1000


def prepare(workdir: Path) -> Path:
    from usercore import Settings, UserCore

    database = workdir / "bench.db"
    with UserCore.open(f"sqlite:///{database}", settings=Settings(secret_key=SECRET)) as core:
        core.users.register(email=EMAIL, password=PASSWORD)
    return database


def diagnose(database: Path, workdir: Path, requests: int) -> dict[str, float]:
    from usercore.web._server import OPTIONS_ENV, ServeOptions

    env = _environment()
    env[OPTIONS_ENV] = ServeOptions(url=f"sqlite:///{database}", purge_every=0).to_json()
    uvicorn_own = [
        sys.executable,
        "-m",
        "uvicorn",
        "usercore.web._server:worker_app",
        "--factory",
        "--port",
        "{port}",
        "--workers",
        "2",
        "--loop",
        "asyncio",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    subjects = {
        "uvicorn --workers 2 (asyncio loop)": uvicorn_own,
        "usercore serve --workers 2 --loop asyncio": _serve(database, 2, "--loop", "asyncio"),
    }
    results = {}
    for name, argv in subjects.items():
        with _running(argv, workdir, env) as (port, token):
            _sequential_ms(port, token, 20)
            results[name] = _sequential_ms(port, token, requests)
    return results


def measure(
    database: Path, workdir: Path, seconds: float, connections: int, rounds: int
) -> dict[int, float]:
    load = load_with_wrk if shutil.which("wrk") else load_with_threads
    samples: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for workers in samples:
            with _running(_serve(database, workers), workdir, _environment()) as (port, token):
                load(port, PATH, token, 1.0, connections)  # warm every worker
                samples[workers].append(load(port, PATH, token, seconds, connections))
    return {workers: statistics.median(values) for workers, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100, help="sequential, for the diagnosis")
    args = parser.parse_args(argv)
    generator = "wrk" if shutil.which("wrk") else "python threads"
    print(f"{os.cpu_count()} CPUs; load: {generator}, {args.connections} keep-alive connections")
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        database = prepare(workdir)
        print("\none connection, one request at a time (median ms per request):")
        for name, ms in diagnose(database, workdir, args.requests).items():
            print(f"  {name:<45} {ms:8.2f} ms")
        rates = measure(database, workdir, args.seconds, args.connections, args.rounds)
    ratio = rates[2] / rates[1]
    print(f"\nGET {PATH}, median of {args.rounds} rounds of {args.seconds:.0f} s:")
    for workers, rate in rates.items():
        print(f"  usercore serve --workers {workers}  {rate:9.0f} req/s")
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(f"  workers 2 / workers 1: {ratio:.2f}x (target >= {TARGET}x) {verdict}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
