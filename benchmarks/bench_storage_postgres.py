"""PostgreSQL beside SQLite: the same store operations, measured in the same run.

    python benchmarks/bench_storage_postgres.py [--url postgresql://…] [--users 20000]
        [--lookups 3000] [--rounds 5] [--threads 4] [--logins 200]
        [--http | --http-only] [--baseline-src ../main/src] [--seconds 3] [--connections 8]

Prints one table, one row per measurement, a column per store:

- lookup by email: a read-only unit of work and a ``User`` built from the row
  (and, for context, the same indexed select on the raw driver);
- through the facade: ``core.auth.authenticate`` of an access token (the
  codec's verified-token cache warm, so the figure is the store read: the
  revoked ``jti`` and the user in one statement), ``core.users.get`` and
  ``core.users.get_by_email`` as ``SYSTEM``, each a read of one statement;
- a keyset page of 20 at depth 15,000, the first page, and (for contrast) an
  ``OFFSET 15000`` page;
- bulk insert of 20,000 users (``users.add_many`` in one unit of work);
- login throughput with ``--threads`` threads on one ``UserCore`` (lookup,
  verify, counters, refresh token, JWT, two commits per login).  argon2 runs
  with its CHEAPEST profile, so that the number measures the store and the
  login path, not the password hash: with the default profile a login is
  dominated by argon2 (see ``bench_login.py``).

Both stores commit durably (SQLite ``synchronous=FULL``; PostgreSQL with the
server's ``synchronous_commit``, printed in the header).  The PostgreSQL side
runs in a schema of its own, dropped afterwards.  ``--url`` defaults to
``$USERCORE_BENCH_POSTGRES_URL``, then ``$USERCORE_TEST_POSTGRES_URL``, then
the local ``postgres`` database.  Every figure is the best of ``--rounds``.
No targets for the table: it reports, it does not judge.

``--http`` adds ``GET /api/v1/auth/me`` on PostgreSQL over HTTP (usercore's
FastAPI app under uvicorn, one worker, ``wrk`` with ``--connections``
keep-alive connections, or a thread-per-connection generator without it),
for this checkout and, with ``--baseline-src``, for another checkout's
``src`` directory (``PYTHONPATH`` of the server process) in the same run,
alternating over ``--rounds`` and keeping the median; exit status 1 when
this checkout serves fewer than ``--target`` (2) times the baseline's
requests/s (issue 18 item 5).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import argon2
from bench_storage import DEPTH, EVERYONE, PAGE, RAW_LOOKUP, best_of, make_users

from usercore import SYSTEM, Settings, UserCore
from usercore.domain import User, email_key
from usercore.ports import Store
from usercore.storage import SQLiteStore

PASSWORD = "correct horse battery staple"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_url(given: str | None) -> str:
    return (
        given
        or os.environ.get("USERCORE_BENCH_POSTGRES_URL")
        or os.environ.get("USERCORE_TEST_POSTGRES_URL")
        or DEFAULT_URL
    )


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A new schema on the server, as a URL selecting it; dropped on exit."""
    import psycopg

    name = f"usercore_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options={quote(f'-csearch_path={name}', safe='')}"
    finally:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {name} CASCADE")


class Backend:
    """One store kind: how to make a fresh store, a facade URL and a raw lookup."""

    def __init__(self, name: str, directory: Path, server: str | None = None) -> None:
        self.name = name
        self.directory = directory
        self.server = server
        self._cleanups: list[Callable[[], None]] = []

    def fresh_url(self) -> str:
        if self.server is None:
            return f"sqlite:///{self.directory / f'{uuid.uuid4().hex}.db'}"
        schema = fresh_schema(self.server)
        url = schema.__enter__()
        self._cleanups.append(lambda: schema.__exit__(None, None, None))
        return url

    def open(self, url: str) -> Store:
        if self.server is None:
            return SQLiteStore(url.removeprefix("sqlite:///"))
        from usercore.storage.postgres import PostgresStore

        return PostgresStore(url)

    def raw_lookup(self, url: str) -> Callable[[str], Any]:
        if self.server is None:
            connection = sqlite3.connect(url.removeprefix("sqlite:///"))
            self._cleanups.append(connection.close)
            return lambda key: connection.execute(RAW_LOOKUP, (key,)).fetchone()
        import psycopg

        raw = psycopg.connect(url, autocommit=True)
        self._cleanups.append(raw.close)
        sql = RAW_LOOKUP.replace("?", "%s")
        return lambda key: raw.execute(sql, (key,)).fetchone()

    def cleanup(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()
        self._cleanups.clear()


def bench_bulk(backend: Backend, users: list[User], rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        store = backend.open(backend.fresh_url())
        try:
            start = time.perf_counter()
            with store.transaction() as tx:
                tx.users.add_many(users)
            timings.append(time.perf_counter() - start)
        finally:
            store.close()
    return min(timings)


def bench_reads(
    store: Store, raw: Callable[[str], Any], keys: list[str], rounds: int
) -> dict[str, float]:
    def lookups() -> None:
        for key in keys:
            with store.transaction(readonly=True) as tx:
                assert tx.users.get_by_email(key) is not None

    def raw_lookups() -> None:
        for key in keys:
            assert raw(key) is not None

    with store.transaction(readonly=True) as tx:
        deep = tx.users.list(after=None, limit=1, filter=EVERYONE, offset=DEPTH - 1)[0].id
    repeat = 300

    def page(after: int | None, offset: int = 0) -> Callable[[], None]:
        def run() -> None:
            for _ in range(repeat):
                with store.transaction(readonly=True) as tx:
                    found = tx.users.list(after=after, limit=PAGE, filter=EVERYONE, offset=offset)
                assert len(found) == PAGE

        return run

    lookups()  # warm caches and prepared statements on both sides
    raw_lookups()
    return {
        "lookup": best_of(rounds, lookups, len(keys)),
        "raw lookup": best_of(rounds, raw_lookups, len(keys)),
        "first page": best_of(rounds, page(None), repeat),
        "deep page": best_of(rounds, page(deep), repeat),
        "offset page": best_of(rounds, page(None, DEPTH), repeat),
    }


def bench_logins(backend: Backend, threads: int, per_thread: int, rounds: int) -> float:
    """Logins per second with ``threads`` threads on one facade, distinct accounts."""
    settings = Settings(
        secret_key="bench-" + "k" * 40,
        argon2_profile=argon2.profiles.CHEAPEST,
        lockout_threshold=10**9,
    )
    rates = []
    url = backend.fresh_url()
    with UserCore.open(url, settings=settings) as core:
        for number in range(threads):
            core.users.register(email=f"login{number}@example.com", password=PASSWORD)
        for number in range(threads):  # warm every path and connection
            core.auth.login(f"login{number}@example.com", PASSWORD)
        for _ in range(rounds):
            start_line = threading.Barrier(threads + 1)

            def work(number: int, start_line: threading.Barrier = start_line) -> None:
                start_line.wait()
                for _ in range(per_thread):
                    core.auth.login(f"login{number}@example.com", PASSWORD)

            workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
            for worker in workers:
                worker.start()
            start_line.wait()
            start = time.perf_counter()
            for worker in workers:
                worker.join()
            rates.append(threads * per_thread / (time.perf_counter() - start))
    return max(rates)


def bench_facade(backend: Backend, calls: int, rounds: int) -> dict[str, float]:
    """Seconds per call of the facade's one-statement reads on a fresh store."""
    settings = Settings(secret_key="bench-" + "k" * 40, argon2_profile=argon2.profiles.CHEAPEST)
    with UserCore.open(backend.fresh_url(), settings=settings) as core:
        user = core.users.register(email="ada@example.com", password=PASSWORD)
        token = core.auth.login("ada@example.com", PASSWORD).access_token
        cases: dict[str, Callable[[], object]] = {
            "authenticate": lambda: core.auth.authenticate(token),
            "facade get": lambda: core.users.get(SYSTEM, user.id),
            "facade get_by_email": lambda: core.users.get_by_email(SYSTEM, "ada@example.com"),
        }
        timings: dict[str, list[float]] = {name: [] for name in cases}
        for call in cases.values():  # warm the paths, prepared statements, caches
            for _ in range(50):
                call()
        for _ in range(rounds):  # alternating, so drift hits every case alike
            for name, call in cases.items():
                start = time.perf_counter()
                for _ in range(calls):
                    call()
                timings[name].append((time.perf_counter() - start) / calls)
    return {name: min(values) for name, values in timings.items()}


def measure(
    backend: Backend, users: list[User], keys: list[str], args: argparse.Namespace
) -> dict[str, float]:
    results: dict[str, float] = {}
    try:
        results["bulk"] = bench_bulk(backend, users, max(1, args.rounds - 2))
        url = backend.fresh_url()
        store = backend.open(url)
        try:
            with store.transaction() as tx:
                tx.users.add_many(users)
            if backend.server is not None:
                import psycopg

                with psycopg.connect(url, autocommit=True) as connection:
                    connection.execute("ANALYZE")
            results.update(bench_reads(store, backend.raw_lookup(url), keys, args.rounds))
        finally:
            store.close()
        results.update(bench_facade(backend, args.lookups, args.rounds))
        results["logins"] = bench_logins(backend, args.threads, args.logins, args.rounds)
    finally:
        backend.cleanup()
    return results


# -- GET /auth/me over HTTP, this checkout against a baseline --------------------------

HOST = "127.0.0.1"
ME = "/api/v1/auth/me"
STARTUP_SECONDS = 60.0


def serve_me(url: str, port: int, token_file: Path) -> None:
    """Child process: usercore's FastAPI app on ``url`` (whichever usercore
    ``PYTHONPATH`` names), an account and its access token in ``token_file``."""
    import uvicorn

    import usercore
    from usercore.web.fastapi import create_app

    settings = Settings(secret_key="bench-" + "k" * 40, argon2_profile=argon2.profiles.CHEAPEST)
    core = UserCore.open(url, settings=settings)
    core.users.register(email="ada@example.com", password=PASSWORD)
    token = core.auth.login("ada@example.com", PASSWORD).access_token
    token_file.write_text(f"{token}\n{Path(usercore.__file__).parent.parent}")
    uvicorn.run(create_app(core), host=HOST, port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def me_server(src: Path, url: str, workdir: Path) -> Iterator[tuple[int, str, int]]:
    """A server on a fresh schema with ``src`` first on its path: ``(port, token, pid)``."""
    from bench_http import free_port, get_status

    port = free_port()
    token_file = workdir / f"{port}.token"
    log = (workdir / f"{port}.log").open("wb")
    command = [sys.executable, __file__, "--serve-me", "--url", url, "--port", str(port)]
    command += ["--token-file", str(token_file)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(Path(__file__).parent)])}
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS

        def starting() -> None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server for {src} did not start; see {log.name}")
            time.sleep(0.1)

        while not token_file.exists() or "\n" not in token_file.read_text():
            starting()
        token, served_from = token_file.read_text().split("\n")
        if Path(served_from).resolve() != src.resolve():
            raise RuntimeError(f"the server imported usercore from {served_from}")
        status = None
        while status is None:  # the token is written before uvicorn listens
            try:
                status = get_status(port, ME, token)
            except OSError:
                starting()
        if status != 200:
            raise RuntimeError(f"GET {ME} answered {status}; see {log.name}")
        yield port, token, process.pid
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        process.kill()  # nothing to do when it has exited
        process.wait(timeout=10)
        log.close()


def load_me(port: int, token: str, seconds: float, connections: int) -> float:
    """Requests/s of ``GET /auth/me`` under ``wrk`` (or threads without it)."""
    from bench_http import load_with_threads, load_with_wrk

    load = load_with_wrk if shutil.which("wrk") else load_with_threads
    return load(port, ME, token, seconds, connections)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, every thread) of process ``pid`` so far; ``None``
    where ``/proc`` does not tell (not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_me_http(
    url: str, trees: dict[str, Path], args: argparse.Namespace
) -> dict[str, tuple[float, float | None]]:
    """Per tree, each on its own fresh schema, measured in alternation: the
    median requests/s and the median server CPU seconds per request (``None``
    without ``/proc``), which the other processes on the machine move less."""
    rates: dict[str, list[float]] = {name: [] for name in trees}
    costs: dict[str, list[float]] = {name: [] for name in trees}
    with (
        tempfile.TemporaryDirectory(prefix="usercore-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        servers = {}
        for name, src in trees.items():
            schema_url = stack.enter_context(fresh_schema(url))
            servers[name] = stack.enter_context(me_server(src, schema_url, Path(tmp)))
        for port, token, _ in servers.values():  # warm up
            load_me(port, token, 1.0, args.connections)
        for _ in range(args.rounds):
            for name, (port, token, pid) in servers.items():
                before, start = cpu_seconds(pid), time.monotonic()
                rate = load_me(port, token, args.seconds, args.connections)
                after, elapsed = cpu_seconds(pid), time.monotonic() - start
                rates[name].append(rate)
                if before is not None and after is not None and rate > 0:
                    costs[name].append((after - before) / (rate * elapsed))
    medians: dict[str, tuple[float, float | None]] = {}
    for name in trees:
        cost = statistics.median(costs[name]) if costs[name] else None
        medians[name] = (statistics.median(rates[name]), cost)
    return medians


def server_facts(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as connection:
        version = connection.info.server_version
        commit = connection.execute("SHOW synchronous_commit").fetchone()
        fsync = connection.execute("SHOW fsync").fetchone()
    major, minor = divmod(version, 10_000)
    return (
        f"PostgreSQL {major}.{minor}, synchronous_commit={commit[0] if commit else '?'}, "
        f"fsync={fsync[0] if fsync else '?'}"
    )


def micros(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="PostgreSQL server (a fresh schema is made on it)")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--logins", type=int, default=200, help="logins per thread and round")
    parser.add_argument("--http", action="store_true", help=f"also GET {ME} over HTTP")
    parser.add_argument("--http-only", action="store_true", help=f"only GET {ME} over HTTP")
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src, for --http")
    parser.add_argument("--target", type=float, default=2.0, help="--http: least req/s ratio")
    parser.add_argument("--seconds", type=float, default=3.0, help="--http: per server per round")
    parser.add_argument("--connections", type=int, default=8, help="--http: wrk connections")
    parser.add_argument("--serve-me", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_me:
        serve_me(args.url, args.port, args.token_file)
        return 0
    if args.users <= DEPTH + PAGE:
        parser.error(f"--users must exceed {DEPTH + PAGE} for the keyset page at depth {DEPTH}")
    url = postgres_url(args.url)
    try:
        facts = server_facts(url)
    except Exception as exc:
        print(f"no PostgreSQL server at {url.split('@')[-1]}: {exc}", file=sys.stderr)
        return 2

    if args.http_only:
        print(f"PostgreSQL: {facts}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
        return http_comparison(url, args)
    users = make_users(args.users)
    rng = random.Random(1234)
    keys = [email_key(rng.choice(users).email) for _ in range(args.lookups)]
    with tempfile.TemporaryDirectory(prefix="usercore-bench-") as name:
        directory = Path(name)
        sqlite = measure(Backend("SQLite", directory), users, keys, args)
        postgres = measure(Backend("PostgreSQL", directory, url), users, keys, args)

    rows = [
        ("lookup by email (usercore)", "lookup", micros),
        ("lookup by email (raw driver, for context)", "raw lookup", micros),
        (f"keyset page of {PAGE}, first", "first page", micros),
        (f"keyset page of {PAGE} at depth {DEPTH:,}", "deep page", micros),
        (f"OFFSET {DEPTH:,} page (contrast)", "offset page", micros),
        ("core.auth.authenticate (token seen before)", "authenticate", micros),
        ("core.users.get (by id, as SYSTEM)", "facade get", micros),
        ("core.users.get_by_email (as SYSTEM)", "facade get_by_email", micros),
        (f"bulk insert {args.users:,} users", "bulk", lambda s: f"{s * 1e3:,.0f} ms"),
        (
            f"logins/s, {args.threads} threads, argon2 CHEAPEST",
            "logins",
            lambda rate: f"{rate:,.0f}/s",
        ),
    ]
    header = ("measurement", "SQLite", "PostgreSQL", "PostgreSQL / SQLite")
    table = [
        (label, show(sqlite[key]), show(postgres[key]), f"{postgres[key] / sqlite[key]:.2f}x")
        for label, key, show in rows
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    print(
        f"usercore storage, PostgreSQL beside SQLite: {args.users:,} users, {args.lookups:,} "
        f"lookups, best of {args.rounds}; Python {sys.version.split()[0]}, "
        f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL), {facts}; {os.cpu_count()} CPUs"
    )
    for row in [header, tuple("-" * width for width in widths), *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return http_comparison(url, args) if args.http else 0


def http_comparison(url: str, args: argparse.Namespace) -> int:
    here = Path(__file__).resolve().parent.parent / "src"
    trees = {"this checkout": here}
    if args.baseline_src is not None:
        trees["baseline"] = args.baseline_src.resolve()
    measured = bench_me_http(url, trees, args)
    print()
    print(
        f"GET {ME} on PostgreSQL: uvicorn, 1 worker, {args.connections} connections, "
        f"{args.seconds:g} s per server, median of {args.rounds} alternating rounds; "
        f"load average {os.getloadavg()[0]:.1f} after"
    )
    for name, src in trees.items():
        rate, cost = measured[name]
        cpu = "" if cost is None else f"  {micros(cost):>8} server CPU per request"
        print(f"  {name:<14} {rate:8,.0f} req/s{cpu}   ({src})")
    if "baseline" not in measured:
        return 0
    (rate, cost), (base_rate, base_cost) = measured["this checkout"], measured["baseline"]
    if cost is not None and base_cost is not None:
        print(f"  server CPU per request, baseline / this checkout: {base_cost / cost:.2f}×")
    ratio = rate / base_rate
    verdict = "PASS" if ratio >= args.target else "MISS"
    print(f"  this checkout / baseline: {ratio:.2f}×  target ≥ {args.target:g}×  {verdict}")
    return 0 if ratio >= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
