"""Flat at a million users: each facade operation at growing table sizes (SQLite).

    python benchmarks/bench_scale.py [--sizes 10000,100000] [--million] [--reps 200]
                                     [--cache DIR]

For each size a fresh SQLite file is loaded with that many users (one in ten
an ``admin``, the rest ``user``) and its search index described (segments,
users holding each trigram of ``user5678@``); then every operation below runs
``--reps`` times on every size (random users, so the page cache sees a
realistic spread) through :class:`usercore.UserCore` as
:data:`usercore.SYSTEM`, in rounds that alternate between the sizes (so that
load from other processes falls on all of them alike); the median is printed.

- ``get by id`` / ``get by email``: ``core.users.get`` / ``get_by_email``;
- ``keyset page``: ``core.users.list(per_page=20)`` (no count);
- ``page=1 (with total)``: ``core.users.list(page=1)``, which counts;
- ``role page=1 (with total)``: ``core.users.list(role="admin", page=1)``;
- ``search, one match``: ``core.users.list(search="user5678@")``, a needle
  whose trigrams all recur in many users (``use``, ``ser`` in all; the
  rarest, ``567`` and ``678``, in one in 250): its cost follows the users
  holding its rarest trigrams; ``FTS5 query alone`` is the index's part of it
  (the phrase query on a plain connection), and ``index merged to 1
  segment`` the same search once FTS5's ``optimize`` has merged the index
  (measured last): what is left when no segment is probed twice;
- ``search, one rare match``: ``search="wąsowicz"``, one user's name, whose
  trigrams no other user has;
- ``search, every user matches``: ``search="example"`` (linear by design: see
  docs/performance.md);
- ``authenticate``: ``core.auth.authenticate(access_token)``;
- ``import`` (µs per user): ``core.users.import_users`` of 2,000 records with a
  pre-hashed password, full validation (``benchmarks/bench_import.py`` compares
  it with Django's ``bulk_create``).

``--cache DIR`` keeps each freshly loaded file in ``DIR`` (``scale-<size>.db``)
and later runs start from a copy of it instead of loading again (1M users
take a minute or two to load); delete the files after a schema change.

The last table prints each operation's growth factor from the smallest size
to the largest and the verdict: no operation may grow more than 1.5x, except
those whose growth is documented as following a number of rows.  Not a
test: tests never assert on time.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench_import import prehashed_records
from bench_storage import make_users

from usercore import SYSTEM, Settings, UserCore
from usercore.storage._sqlite_schema import SEARCH_INDEX

SEARCH_QUERY = f"SELECT rowid FROM {SEARCH_INDEX} WHERE {SEARCH_INDEX} MATCH ?"
"""What the facade's search asks FTS5 (sqlite.SQLiteDialect.search_condition)."""

PASSWORD = "correct horse battery staple"
IMPORT_BATCH = 2_000
COMMON_NEEDLE = "user5678@"
DOCUMENTED_GROWTH = {
    "search, every user matches": "linear by design",
    "search, one match": "follows its rarest trigram's rows",
    "  FTS5 query alone": "follows its rarest trigram's rows",
    "  index merged to 1 segment": "follows its rarest trigram's rows",
}
"""Operations whose cost follows a number of rows by design, and what it
follows (docs/storage.md and docs/performance.md, "Scale")."""
LIMIT = 1.5


ROUNDS = 5
"""Each operation's runs are split into this many rounds, the sizes taking
turns, so that load from other processes falls on every size alike."""

Call = Callable[[int], object]
Operations = dict[str, tuple[int, Call]]


def median_us(runs: int, calls: dict[int, Call]) -> dict[int, float]:
    """Median microseconds of each ``calls[size](i)`` over ``runs`` runs (after one
    warm-up), in rounds that alternate between the sizes."""
    samples: dict[int, list[float]] = {size: [] for size in calls}
    for call in calls.values():
        call(0)
    per_round = max(1, runs // ROUNDS)
    for first in range(0, runs, per_round):
        for size, call in calls.items():
            for i in range(first, min(runs, first + per_round)):
                start = time.perf_counter()
                call(i)
                samples[size].append(time.perf_counter() - start)
    return {size: statistics.median(values) * 1e6 for size, values in samples.items()}


def load(core: UserCore, count: int) -> float:
    """Bulk-load ``count`` users; returns seconds."""
    start = time.perf_counter()
    step = 50_000
    for first in range(0, count, step):
        users = make_users(min(step, count - first), start=first)
        with core.store.transaction() as tx:
            tx.users.add_many(users)
    return time.perf_counter() - start


def loaded_file(directory: Path, size: int, settings: Settings, cache: Path | None) -> Path:
    """A file in ``directory`` holding ``size`` loaded users: a copy of the one
    in ``cache`` if there is one, else loaded now (and kept in ``cache``)."""
    path = directory / f"scale-{size}.db"
    cached = None if cache is None else cache / path.name
    if cached is not None and cached.exists():
        shutil.copyfile(cached, path)
        print(f"  copied {size:,} users from {cached}", flush=True)
        return path
    with UserCore.open(f"sqlite:///{path}", settings=settings) as core:
        seconds = load(core, size)
    print(f"  loaded {size:,} users in {seconds:.1f} s", flush=True)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, cached)
    return path


def operations(core: UserCore, index: sqlite3.Connection, size: int, reps: int) -> Operations:
    """What is measured on a file of ``size`` users: name -> (runs, call)."""
    core.users.register(
        email="bench@example.net", password=PASSWORD, username="bench", name="Zofia Wąsowicz"
    )
    token = core.auth.login("bench", PASSWORD).access_token
    rng = random.Random(size)
    ids = [rng.randrange(1, size + 1) for _ in range(reps + 1)]
    emails = [f"user{rng.randrange(size)}@example.com" for _ in range(reps + 1)]
    users = core.users
    phrase = '"' + COMMON_NEEDLE + '"'
    imports = iter(range(1_000_000))

    def run_import(_: int) -> None:
        report = users.import_users(
            SYSTEM, prehashed_records(f"s{size}n{next(imports)}", IMPORT_BATCH)
        )
        assert report.created == IMPORT_BATCH, report

    return {
        "get by id": (reps, lambda i: users.get(SYSTEM, ids[i])),
        "get by email": (reps, lambda i: users.get_by_email(SYSTEM, emails[i])),
        "keyset page": (reps, lambda i: users.list(SYSTEM)),
        "page=1 (with total)": (reps, lambda i: users.list(SYSTEM, page=1)),
        "role page=1 (with total)": (reps, lambda i: users.list(SYSTEM, role="admin", page=1)),
        "search, one match": (reps, lambda i: users.list(SYSTEM, search=COMMON_NEEDLE)),
        "  FTS5 query alone": (reps, lambda i: index.execute(SEARCH_QUERY, (phrase,)).fetchall()),
        "search, one rare match": (reps, lambda i: users.list(SYSTEM, search="wąsowicz")),
        "search, every user matches": (
            max(ROUNDS, reps // 10),
            lambda i: users.list(SYSTEM, search="example"),
        ),
        "authenticate": (reps, lambda i: core.auth.authenticate(token)),
        "import (per user)": (ROUNDS, run_import),
    }


def measure(
    directory: Path, sizes: Sequence[int], reps: int, cache: Path | None = None
) -> dict[int, dict[str, float]]:
    """Every operation on a file per size, the sizes taking turns (see :data:`ROUNDS`)."""
    settings = Settings(secret_key="bench-" + "k" * 40, lockout_threshold=10**9)
    with contextlib.ExitStack() as stack:
        cores: dict[int, UserCore] = {}
        indexes: dict[int, sqlite3.Connection] = {}
        for size in sizes:
            print(f"{size:,} users", flush=True)
            path = loaded_file(directory, size, settings, cache)
            indexes[size] = stack.enter_context(
                contextlib.closing(sqlite3.connect(path, isolation_level=None))
            )
            describe_index(indexes[size], COMMON_NEEDLE)
            cores[size] = stack.enter_context(UserCore.open(f"sqlite:///{path}", settings=settings))
        measured = {size: operations(cores[size], indexes[size], size, reps) for size in sizes}
        results: dict[int, dict[str, float]] = {size: {} for size in sizes}
        for name, (runs, _) in measured[sizes[0]].items():
            medians = median_us(runs, {size: measured[size][name][1] for size in sizes})
            for size, value in medians.items():
                results[size][name] = value / IMPORT_BATCH if name.startswith("import") else value
        # The same search once FTS5 has merged every segment into one: what is
        # left is walking the postings of the needle's trigrams.
        for index in indexes.values():
            index.execute(f"INSERT INTO {SEARCH_INDEX} ({SEARCH_INDEX}) VALUES ('optimize')")
        medians = median_us(reps, {size: measured[size]["search, one match"][1] for size in sizes})
        for size, value in medians.items():
            results[size]["  index merged to 1 segment"] = value
    return results


def segments(connection: sqlite3.Connection) -> int:
    """The number of segments (b-trees) of the FTS5 search index: a search
    probes each of them once per trigram of its needle."""
    query = f"SELECT count(DISTINCT segid) FROM {SEARCH_INDEX}_idx"
    return int(connection.execute(query).fetchone()[0])


def describe_index(connection: sqlite3.Connection, needle: str) -> None:
    """Print the index's segments and how many users hold each trigram of ``needle``."""
    connection.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocabulary "
        f"USING fts5vocab(main, {SEARCH_INDEX}, row)"
    )
    trigrams = [needle[i : i + 3] for i in range(len(needle) - 2)]
    counts = [
        connection.execute("SELECT doc FROM vocabulary WHERE term = ?", (trigram,)).fetchone()
        for trigram in trigrams
    ]
    held = ", ".join(
        f"{trigram} {0 if count is None else count[0]:,}"
        for trigram, count in zip(trigrams, counts, strict=True)
    )
    print(f"  search index: {segments(connection)} segments; users holding {held}", flush=True)


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
    parser.add_argument(
        "--cache", type=Path, help="keep loaded files here and start from copies of them"
    )
    args = parser.parse_args(argv)
    sizes = sorted(
        {int(size) for size in args.sizes.split(",")} | ({10**6} if args.million else set())
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(Path(tmp), sizes, args.reps, args.cache)
    ok = report(sizes, results)
    print("\nverdict:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
