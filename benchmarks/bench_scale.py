"""Flat at a million users: each facade operation at growing table sizes (SQLite).

    python benchmarks/bench_scale.py [--sizes 10000,100000] [--million] [--reps 200]

For each size a fresh SQLite file is loaded with that many users (one in ten
an ``admin``, the rest ``user``), then every operation below runs ``--reps``
times (random users, so the page cache sees a realistic spread) through
:class:`usercore.UserCore` as :data:`usercore.SYSTEM`; the median is printed.

- ``get by id`` / ``get by email``: ``core.users.get`` / ``get_by_email``;
- ``keyset page``: ``core.users.list(per_page=20)`` (no count);
- ``page=1 (with total)``: ``core.users.list(page=1)``, which counts;
- ``role page=1 (with total)``: ``core.users.list(role="admin", page=1)``;
- ``search, one match``: ``core.users.list(search="user5678@")``, a needle
  whose trigrams most users share (``use``, ``ser``; ``78@`` is in one address
  in a hundred): its cost follows the rows that hold several of them;
- ``search, one rare match``: ``search="wąsowicz"``, one user's name, whose
  trigrams no other user has;
- ``search, every user matches``: ``search="example"`` (linear by design: see
  docs/performance.md);
- ``authenticate``: ``core.auth.authenticate(access_token)``;
- ``import`` (µs per user): ``core.users.import_users`` of 2,000 records with a
  pre-hashed password, full validation (``benchmarks/bench_import.py`` compares
  it with Django's ``bulk_create``).

The last table prints each operation's growth factor from the smallest size
to the largest and the verdict: no operation may grow more than 1.5x, except
those whose growth is documented as following a number of rows.  Not a
test: tests never assert on time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench_import import prehashed_records
from bench_storage import make_users

from usercore import SYSTEM, Settings, UserCore

PASSWORD = "correct horse battery staple"
IMPORT_BATCH = 2_000
DOCUMENTED_GROWTH = {
    "search, every user matches": "linear by design",
    "search, one match": "follows rows sharing its trigrams",
}
"""Operations whose cost follows a number of rows by design, and what it
follows (docs/storage.md and docs/performance.md, "Scale")."""
LIMIT = 1.5


def median_us(reps: int, call: Callable[[int], object]) -> float:
    """Median microseconds of ``call(i)`` over ``reps`` runs (after one warm-up)."""
    call(0)
    samples = []
    for i in range(reps):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def load(core: UserCore, count: int) -> float:
    """Bulk-load ``count`` users; returns seconds."""
    start = time.perf_counter()
    step = 50_000
    for first in range(0, count, step):
        users = make_users(min(step, count - first), start=first)
        with core.store.transaction() as tx:
            tx.users.add_many(users)
    return time.perf_counter() - start


def measure(directory: Path, size: int, reps: int) -> dict[str, float]:
    settings = Settings(secret_key="bench-" + "k" * 40, lockout_threshold=10**9)
    path = directory / f"scale-{size}.db"
    with UserCore.open(f"sqlite:///{path}", settings=settings) as core:
        seconds = load(core, size)
        print(f"  loaded {size:,} users in {seconds:.1f} s", flush=True)
        core.users.register(
            email="bench@example.net", password=PASSWORD, username="bench", name="Zofia Wąsowicz"
        )
        token = core.auth.login("bench", PASSWORD).access_token
        rng = random.Random(size)
        ids = [rng.randrange(1, size + 1) for _ in range(reps + 1)]
        emails = [f"user{rng.randrange(size)}@example.com" for _ in range(reps + 1)]
        users = core.users
        slow = max(5, reps // 10)
        results = {
            "get by id": median_us(reps, lambda i: users.get(SYSTEM, ids[i])),
            "get by email": median_us(reps, lambda i: users.get_by_email(SYSTEM, emails[i])),
            "keyset page": median_us(reps, lambda i: users.list(SYSTEM)),
            "page=1 (with total)": median_us(reps, lambda i: users.list(SYSTEM, page=1)),
            "role page=1 (with total)": median_us(
                reps, lambda i: users.list(SYSTEM, role="admin", page=1)
            ),
            "search, one match": median_us(reps, lambda i: users.list(SYSTEM, search="user5678@")),
            "search, one rare match": median_us(
                reps, lambda i: users.list(SYSTEM, search="wąsowicz")
            ),
            "search, every user matches": median_us(
                slow, lambda i: users.list(SYSTEM, search="example")
            ),
            "authenticate": median_us(reps, lambda i: core.auth.authenticate(token)),
        }
        imports = iter(range(1_000_000))

        def run_import(_: int) -> None:
            report = users.import_users(
                SYSTEM, prehashed_records(f"s{size}n{next(imports)}", IMPORT_BATCH)
            )
            assert report.created == IMPORT_BATCH, report

        results["import (per user)"] = median_us(5, run_import) / IMPORT_BATCH
    return results


def report(sizes: Sequence[int], results: dict[int, dict[str, float]]) -> bool:
    names = list(results[sizes[0]])
    header = f"{'operation':<28}" + "".join(f"{size:>12,}" for size in sizes)
    print("\nmedian µs per operation\n" + header + f"{'growth':>9}  verdict")
    ok = True
    for name in names:
        values = [results[size][name] for size in sizes]
        growth = values[-1] / values[0]
        if name in DOCUMENTED_GROWTH:
            verdict = DOCUMENTED_GROWTH[name]
        elif growth <= LIMIT:
            verdict = "PASS"
        else:
            verdict = f"FAIL (> {LIMIT}x)"
            ok = False
        cells = "".join(f"{value:>12.1f}" for value in values)
        print(f"{name:<28}{cells}{growth:>8.2f}x  {verdict}")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated user counts")
    parser.add_argument("--million", action="store_true", help="add a 1,000,000-user run")
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args(argv)
    sizes = sorted(
        {int(size) for size in args.sizes.split(",")} | ({10**6} if args.million else set())
    )
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for size in sizes:
            print(f"{size:,} users", flush=True)
            results[size] = measure(directory, size, args.reps)
    ok = report(sizes, results)
    print("\nverdict:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
