"""Storage speed, measured against peers in the same run.

    python benchmarks/bench_storage.py [--users 20000] [--lookups 3000] [--rounds 5]

Prints one table with the ratio of each comparison and PASS/FAIL per target:

- user lookup by email through ``SQLiteStore`` (a read-only unit of work and a
  ``User`` built from the row) vs a raw ``sqlite3`` indexed select on the same
  table (target: at most 3x slower) and vs Django's ORM ``get()`` on an
  equivalent model (target: at least 5x faster);
- a keyset page at depth 15,000 vs the first page (target: at most 1.5x);
- bulk insert of 20,000 users vs raw ``executemany`` into the same schema
  (reported, no target).

Every measurement is the best of ``--rounds`` runs (the least disturbed one).
The raw baselines run on files created with usercore's own schema, so that
both sides pay for the same indexes and pragmas (WAL, ``synchronous=FULL``).
Django runs on its own SQLite file, configured in this script.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from usercore.domain import User, email_key
from usercore.ports import UserFilter
from usercore.storage import SQLiteStore
from usercore.storage._sql import user_params
from usercore.storage._sqlite_schema import MIGRATIONS

NOW = datetime(2024, 5, 17, 12, 0, tzinfo=timezone.utc)
EVERYONE = UserFilter()
PAGE = 20
DEPTH = 15_000


def best_of(rounds: int, run: Callable[[], object], operations: int = 1) -> float:
    """Seconds per operation of the fastest of ``rounds`` runs."""
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        timings.append((time.perf_counter() - start) / operations)
    return min(timings)


def make_users(count: int, start: int = 0) -> list[User]:
    """Users number ``start`` to ``start + count - 1`` (one in ten an admin)."""
    return [
        User(
            id=0,
            email=f"User{n}@Example.com",
            username=f"user{n}",
            name=f"User Number {n}",
            roles={"user"} if n % 10 else {"user", "admin"},
            password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            created_at=NOW,
            updated_at=NOW,
        )
        for n in range(start, start + count)
    ]


def raw_connection(path: Path) -> sqlite3.Connection:
    """A plain connection to a file with usercore's schema and pragmas."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    for statements in MIGRATIONS:
        for statement in statements:
            connection.execute(statement)
    return connection


def raw_rows(users: Sequence[User]) -> tuple[list[tuple[Any, ...]], list[tuple[int, str]]]:
    """The rows as a hand-written raw insert would bind them, prepared in advance."""
    rows = [(n + 1, *user_params(user, 1)) for n, user in enumerate(users)]
    roles = [(n + 1, role) for n, user in enumerate(users) for role in user.roles]
    return rows, roles


RAW_USER_INSERT = (
    "INSERT INTO users (id, email, email_key, username, username_key, name, name_key, roles, "
    "status, email_verified, created_at, updated_at, last_login_at, password_hash, "
    "failed_logins, locked_until, token_version, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
RAW_ROLE_INSERT = "INSERT INTO user_roles (user_id, role) VALUES (?, ?)"
RAW_LOOKUP = (
    "SELECT id, email, username, name, roles, status, email_verified, created_at, "
    "updated_at, last_login_at, password_hash, failed_logins, locked_until, "
    "token_version, version FROM users WHERE email_key = ?"
)


def bench_bulk(directory: Path, users: list[User], rounds: int) -> tuple[float, float]:
    """Seconds to insert ``users`` in one transaction: usercore, then raw ``executemany``.

    Each round writes a new file; only the insert is timed, not creating the file.
    """
    rows, roles = raw_rows(users)
    ours, raw = [], []
    for round_number in range(rounds):
        with SQLiteStore(directory / f"bulk-{round_number}.db") as store:
            start = time.perf_counter()
            with store.transaction() as tx:
                tx.users.add_many(users)
            ours.append(time.perf_counter() - start)
        connection = raw_connection(directory / f"raw-bulk-{round_number}.db")
        start = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(RAW_USER_INSERT, rows)
        connection.executemany(RAW_ROLE_INSERT, roles)
        connection.execute("COMMIT")
        raw.append(time.perf_counter() - start)
        connection.close()
    return min(ours), min(raw)


def bench_lookups(
    store: SQLiteStore, raw: sqlite3.Connection, keys: list[str], rounds: int
) -> tuple[float, float]:
    def usercore_lookups() -> None:
        for key in keys:
            with store.transaction(readonly=True) as tx:
                user = tx.users.get_by_email(key)
            assert user is not None

    def raw_lookups() -> None:
        for key in keys:
            row = raw.execute(RAW_LOOKUP, (key,)).fetchone()
            assert row is not None

    usercore_lookups()  # warm the page cache and the statement caches of both
    raw_lookups()
    return (
        best_of(rounds, usercore_lookups, len(keys)),
        best_of(rounds, raw_lookups, len(keys)),
    )


def django_user_model(directory: Path, extra_databases: dict[str, Path] | None = None) -> Any:
    """Configure Django on ``directory / "django.db"`` and return a model equivalent
    to usercore's ``users`` table (its table created).  Once per process.

    ``extra_databases`` names further SQLite files Django may use (by alias)."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=[],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DATABASES={
            alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
            for alias, path in {
                "default": directory / "django.db",
                **(extra_databases or {}),
            }.items()
        },
    )
    django.setup()
    from django.db import connection, models

    class BenchUser(models.Model):
        email = models.CharField(max_length=320)
        email_key = models.CharField(max_length=320, unique=True)
        username = models.CharField(max_length=150, null=True)
        username_key = models.CharField(max_length=150, null=True, unique=True)
        name = models.CharField(max_length=200, null=True)
        roles = models.TextField(default="[]")
        status = models.CharField(max_length=16, default="active")
        email_verified = models.BooleanField(default=False)
        created_at = models.DateTimeField()
        updated_at = models.DateTimeField()
        last_login_at = models.DateTimeField(null=True)
        password_hash = models.CharField(max_length=200, null=True)
        failed_logins = models.IntegerField(default=0)
        locked_until = models.DateTimeField(null=True)
        token_version = models.IntegerField(default=0)
        version = models.IntegerField(default=1)

        class Meta:
            app_label = "bench"

    with connection.schema_editor() as editor:
        editor.create_model(BenchUser)
    return BenchUser


def bench_django(directory: Path, users: list[User], keys: list[str], rounds: int) -> float:
    BenchUser = django_user_model(directory)
    BenchUser.objects.bulk_create(
        [
            BenchUser(
                email=user.email,
                email_key=user.email_key,
                username=user.username,
                username_key=user.username_key,
                name=user.name,
                password_hash=user.password_hash,
                created_at=user.created_at,
                updated_at=user.updated_at,
            )
            for user in users
        ],
        batch_size=1000,
    )

    def django_lookups() -> None:
        for key in keys:
            BenchUser.objects.get(email_key=key)

    django_lookups()
    return best_of(rounds, django_lookups, len(keys))


def bench_pages(store: SQLiteStore, rounds: int) -> tuple[float, float, float]:
    with store.transaction(readonly=True) as tx:
        deep = tx.users.list(after=None, limit=1, filter=EVERYONE, offset=DEPTH - 1)[0].id
    repeat = 500

    def page(after: int | None, offset: int = 0) -> Callable[[], None]:
        def run() -> None:
            for _ in range(repeat):
                with store.transaction(readonly=True) as tx:
                    found = tx.users.list(after=after, limit=PAGE, filter=EVERYONE, offset=offset)
                assert len(found) == PAGE

        return run

    first = best_of(rounds, page(None), repeat)
    at_depth = best_of(rounds, page(deep), repeat)
    by_offset = best_of(rounds, page(None, DEPTH), repeat)
    return first, at_depth, by_offset


def micros(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def millis(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.users <= DEPTH + PAGE:
        parser.error(f"--users must exceed {DEPTH + PAGE} for the keyset page at depth {DEPTH}")

    users = make_users(args.users)
    rng = random.Random(1234)
    keys = [email_key(rng.choice(users).email) for _ in range(args.lookups)]

    with tempfile.TemporaryDirectory(prefix="usercore-bench-") as name:
        directory = Path(name)
        bulk_ours, bulk_raw = bench_bulk(directory, users, max(1, args.rounds - 2))

        store = SQLiteStore(directory / "usercore.db")
        with store.transaction() as tx:
            tx.users.add_many(users)
        raw = raw_connection(directory / "raw.db")
        rows, roles = raw_rows(users)
        raw.execute("BEGIN")
        raw.executemany(RAW_USER_INSERT, rows)
        raw.executemany(RAW_ROLE_INSERT, roles)
        raw.execute("COMMIT")

        lookup_ours, lookup_raw = bench_lookups(store, raw, keys, args.rounds)
        lookup_django = bench_django(directory, users, keys, args.rounds)
        first, at_depth, by_offset = bench_pages(store, args.rounds)
        store.close()
        raw.close()

    results = [
        # name, ours, peer, ratio text, target text, passed (None: report only)
        (
            "lookup by email: usercore vs raw sqlite3",
            micros(lookup_ours),
            micros(lookup_raw),
            f"{lookup_ours / lookup_raw:.2f}x slower",
            "<= 3x",
            lookup_ours / lookup_raw <= 3,
        ),
        (
            "lookup by email: usercore vs Django ORM get()",
            micros(lookup_ours),
            micros(lookup_django),
            f"{lookup_django / lookup_ours:.1f}x faster",
            ">= 5x faster",
            lookup_django / lookup_ours >= 5,
        ),
        (
            f"keyset page of {PAGE} at depth {DEPTH:,} vs first page",
            micros(at_depth),
            micros(first),
            f"{at_depth / first:.2f}x",
            "<= 1.5x",
            at_depth / first <= 1.5,
        ),
        (
            f"(for contrast) OFFSET {DEPTH:,} page vs first page",
            micros(by_offset),
            micros(first),
            f"{by_offset / first:.1f}x",
            "-",
            None,
        ),
        (
            f"bulk insert {args.users:,} users vs raw executemany",
            millis(bulk_ours),
            millis(bulk_raw),
            f"{bulk_ours / bulk_raw:.2f}x slower",
            "report",
            None,
        ),
    ]
    header = ("benchmark", "usercore", "peer", "ratio", "target", "result")
    table = [
        (name, ours, peer, ratio, target, "-" if ok is None else ("PASS" if ok else "FAIL"))
        for name, ours, peer, ratio, target, ok in results
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    print(
        f"usercore storage benchmark: {args.users:,} users, {args.lookups:,} lookups, "
        f"best of {args.rounds}; Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
    )
    for row in [header, tuple("-" * width for width in widths), *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 1 if any(ok is False for *_, ok in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
