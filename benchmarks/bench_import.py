"""Import throughput: usercore's validated import vs Django's ``bulk_create``, and the hashing pool.

Two comparisons, each against a peer measured in the same run:

``--compare django``: ``core.users.import_users`` of pre-hashed records
(argon2id PHC strings, kept as they are), every record fully validated
(email syntax and domain, username and name rules, hash format, roles,
duplicates in the batch and in the store), into an SQLite file already
holding ``--preload`` users, with the search index and counters the schema
keeps; against Django's ``bulk_create`` (``batch_size=1000``, no validation
at all) of model instances built from the same records into its own SQLite
file.  Rounds of ``--batch`` records alternate between the two; the median
microseconds per user are printed.  Target: usercore faster than Django.

``--compare pool``: does ``usercore import`` use every core to hash plain
passwords?  (RFC 9106 low memory)

Imports the same file of plain-password records twice, into fresh SQLite
files, through the real command (``usercore.cli.main``): once with
``--jobs 1`` (one process hashes every password, the peer) and once with
``--jobs N`` (a pool of N worker processes, default: the CPUs this process may
use).  Both use the argon2id profile the command uses,
``argon2.profiles.RFC_9106_LOW_MEMORY`` (t=3, m=64 MiB, p=4): the cheapest
profile would measure the pool's overhead, not the hashing an operator waits
for.  Rounds alternate so that load from other processes hits both alike.

Target: users/s with the pool at least 0.8 x N times users/s with one process
(the pool's overhead and the writes stay under a fifth of the work).

Run: ``.venv/bin/python benchmarks/bench_import.py [--compare all|django|pool]
[--records 96] [--jobs N] [--rounds 2] [--batch 2000] [--preload 10000]``.
Exit status 1 if a target is missed.  Not a test: tests never assert on
wall-clock time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from usercore import SYSTEM, Settings, UserCore, cli

EFFICIENCY = 0.8  # pooled rate >= EFFICIENCY * jobs * single-process rate


def write_records(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            record = {
                "email": f"user{i}@example.com",
                "username": f"user{i}",
                "password": f"imported passphrase number {i:06d}",
            }
            out.write(json.dumps(record) + "\n")


def import_rate(source: Path, directory: Path, jobs: int, count: int) -> float:
    database = directory / f"jobs{jobs}-{time.monotonic_ns()}.db"
    argv = ["import", str(source), "--db", str(database), "--jobs", str(jobs), "--no-progress"]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as summary:
        status = cli.main(argv)
    seconds = time.perf_counter() - start
    expected = f"created {count}, skipped 0 (already exist), failed 0\n"
    if status != 0 or summary.getvalue() != expected:
        raise SystemExit(f"the import failed: {summary.getvalue()!r}")
    database.unlink()
    return count / seconds


HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
NOW = datetime(2024, 5, 17, 12, 0, tzinfo=timezone.utc)


def prehashed_records(tag: str, count: int) -> list[dict[str, object]]:
    """``count`` records with a pre-hashed password, unique per ``tag``."""
    return [
        {
            "email": f"Imported{n}.{tag}@Example.org",
            "username": f"imported{n}x{tag}",
            "name": f"Imported {n}",
            "password_hash": HASH,
        }
        for n in range(count)
    ]


def usercore_importer(core: UserCore, batch: int) -> Callable[[], None]:
    """One call imports ``batch`` new pre-hashed records through ``core``."""
    rounds = iter(range(10**9))

    def run() -> None:
        report = core.users.import_users(SYSTEM, prehashed_records(f"u{next(rounds)}", batch))
        assert report.created == batch, report

    return run


def django_importers(
    directory: Path, usercore_db: Path, batch: int
) -> dict[str, Callable[[], None]] | None:
    """Django's ``bulk_create`` of ``batch`` rows built from the same records (no
    validation): ``"bare"`` into a plain table on its own file, ``"schema"`` into
    the ``users`` and ``user_roles`` tables of the usercore file ``usercore_db``,
    so that it pays for the same search index, counters and keys.  ``None``
    without Django installed."""
    try:
        import django  # noqa: F401 - only whether it is installed
    except ImportError:
        return None
    from bench_storage import django_user_model  # configures Django: only now
    from django.db import models, transaction

    bare: Any = django_user_model(directory, {"usercore": usercore_db})

    class SchemaUser(models.Model):
        email = models.TextField()
        email_key = models.TextField()
        username = models.TextField(null=True)
        username_key = models.TextField(null=True)
        name = models.TextField(null=True)
        name_key = models.TextField(null=True)
        roles = models.TextField()
        status = models.TextField()
        email_verified = models.BooleanField(default=False)
        created_at = models.BigIntegerField()  # usercore's microseconds since the epoch
        updated_at = models.BigIntegerField()
        password_hash = models.TextField(null=True)

        class Meta:
            app_label = "bench"
            db_table = "users"
            managed = False

    class SchemaRole(models.Model):
        pk = models.CompositePrimaryKey("user_id", "role")
        user_id = models.BigIntegerField()
        role = models.TextField()

        class Meta:
            app_label = "bench"
            db_table = "user_roles"
            managed = False

    now = int(NOW.timestamp() * 1_000_000)
    rounds = iter(range(10**9))

    def fields(record: dict[str, object]) -> dict[str, Any]:
        return {
            "email": str(record["email"]),
            "email_key": str(record["email"]).lower(),
            "username": str(record["username"]),
            "username_key": str(record["username"]).lower(),
            "name": str(record["name"]),
            "roles": '["user"]',
            "password_hash": HASH,
        }

    def run_bare() -> None:
        with transaction.atomic():
            bare.objects.bulk_create(
                [
                    bare(created_at=NOW, updated_at=NOW, **fields(record))
                    for record in prehashed_records(f"d{next(rounds)}", batch)
                ],
                batch_size=1000,
            )

    def run_schema() -> None:
        with transaction.atomic(using="usercore"):
            users = SchemaUser.objects.using("usercore").bulk_create(
                [
                    SchemaUser(
                        name_key=str(record["name"]).lower(),
                        status="active",
                        created_at=now,
                        updated_at=now,
                        **fields(record),
                    )
                    for record in prehashed_records(f"s{next(rounds)}", batch)
                ],
                batch_size=1000,
            )
            SchemaRole.objects.using("usercore").bulk_create(
                [SchemaRole(user_id=user.id, role="user") for user in users], batch_size=1000
            )

    return {"bare": run_bare, "schema": run_schema}


def median_us_per_user(samples: list[float], batch: int) -> float:
    return statistics.median(samples) / batch * 1e6


def compare_django(directory: Path, *, rounds: int, batch: int, preload: int) -> bool | None:
    """Alternate usercore imports and Django bulk_creates; print them; whether
    usercore was faster than both (``None`` without Django)."""
    database = directory / "import.db"
    settings = Settings(secret_key="bench-" + "k" * 40)
    with UserCore.open(f"sqlite:///{database}", settings=settings) as core:
        peers = django_importers(directory, database, batch)
        if peers is None:
            print("Django is not installed (the bench extra): nothing to compare")
            return None
        subjects = {"usercore": usercore_importer(core, batch), **peers}
        for first in range(0, preload, batch):
            core.users.import_users(
                SYSTEM, prehashed_records(f"p{first}", min(batch, preload - first))
            )
        for run in subjects.values():
            run()  # warm-up: caches, statements, connections
        times: dict[str, list[float]] = {name: [] for name in subjects}
        for _ in range(rounds):
            for name, run in subjects.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    us = {name: median_us_per_user(values, batch) for name, values in times.items()}
    print(
        f"import of {batch} pre-hashed records per round into {preload:,}+ users, "
        f"{rounds} alternating rounds (median µs per user)"
    )
    for name, label in (
        ("usercore", "usercore import_users, full validation"),
        ("bare", "Django bulk_create, no validation, bare table"),
        ("schema", "Django bulk_create, no validation, usercore's tables"),
    ):
        print(f"  {label:<54} {us[name]:8.1f} µs ({1e6 / us[name]:,.0f}/s)")
    ratios = {peer: us["usercore"] / us[peer] for peer in peers}
    faster = all(ratio < 1 for ratio in ratios.values())
    print(
        f"target usercore/Django time < 1: {ratios['bare']:.2f} (bare table), "
        f"{ratios['schema']:.2f} (same tables) -> {'PASS' if faster else 'FAIL'}"
    )
    return faster


def compare_pool(directory: Path, *, records: int, jobs: int, rounds: int) -> bool | None:
    """The process pool against one process (``None`` with one CPU)."""
    if jobs < 2:
        print("only one CPU is available: there is nothing to compare")
        return None
    rates: dict[int, list[float]] = {1: [], jobs: []}
    source = directory / "users.jsonl"
    write_records(source, records)
    for _ in range(rounds):
        for pool in rates:
            rates[pool].append(import_rate(source, directory, pool, records))
    print(
        f"usercore import of {records} plain-password records, argon2id "
        f"RFC_9106_LOW_MEMORY, {os.cpu_count()} CPUs, {rounds} rounds"
    )
    print(f"{'processes':>10} {'median users/s':>15} {'min':>8} {'max':>8}")
    medians = {}
    for pool, values in rates.items():
        medians[pool] = statistics.median(values)
        print(f"{pool:>10} {medians[pool]:>15.1f} {min(values):>8.1f} {max(values):>8.1f}")
    speedup = medians[jobs] / medians[1]
    passed = speedup >= EFFICIENCY * jobs
    print(
        f"target pool/one >= {EFFICIENCY * jobs:.2f}: ratio {speedup:.2f} -> "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--compare", choices=("all", "django", "pool"), default="all")
    parser.add_argument("--records", type=int, default=96, help="records per pool import")
    parser.add_argument("--jobs", type=int, default=cli._default_jobs(), help="pool size")
    parser.add_argument("--rounds", type=int, default=2, help="pool imports per case")
    parser.add_argument("--batch", type=int, default=2000, help="records per Django round")
    parser.add_argument("--django-rounds", type=int, default=7, help="rounds per subject")
    parser.add_argument("--preload", type=int, default=10_000, help="users already stored")
    args = parser.parse_args(argv)
    verdicts: list[bool | None] = []
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        if args.compare in ("all", "django"):
            verdicts.append(
                compare_django(
                    directory, rounds=args.django_rounds, batch=args.batch, preload=args.preload
                )
            )
        if args.compare in ("all", "pool"):
            verdicts.append(
                compare_pool(directory, records=args.records, jobs=args.jobs, rounds=args.rounds)
            )
    return 1 if False in verdicts else 0


if __name__ == "__main__":
    sys.exit(main())
