"""PostgreSQL beside SQLite: the same store operations, measured in the same run.

    python benchmarks/bench_storage_postgres.py [--url postgresql://…] [--users 20000]
        [--lookups 3000] [--rounds 5] [--threads 4] [--logins 200]

Prints one table, one row per measurement, a column per store:

- lookup by email: a read-only unit of work and a ``User`` built from the row
  (and, for context, the same indexed select on the raw driver);
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
No targets: this reports, it does not judge.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
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

from usercore import Settings, UserCore
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
        results["logins"] = bench_logins(backend, args.threads, args.logins, args.rounds)
    finally:
        backend.cleanup()
    return results


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
    args = parser.parse_args(argv)
    if args.users <= DEPTH + PAGE:
        parser.error(f"--users must exceed {DEPTH + PAGE} for the keyset page at depth {DEPTH}")
    url = postgres_url(args.url)
    try:
        facts = server_facts(url)
    except Exception as exc:
        print(f"no PostgreSQL server at {url.split('@')[-1]}: {exc}", file=sys.stderr)
        return 2

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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
