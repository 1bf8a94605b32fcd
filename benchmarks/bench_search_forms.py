"""Why ``search="user5678@"`` grows with the table: the search index's query forms side by side.

    python benchmarks/bench_search_forms.py [--sizes 10000,100000,1000000] [--cache DIR]
                                            [--suffix-sizes 10000,100000] [--reps 200]
    python benchmarks/bench_search_forms.py --sample-segments 1000000 [--step 2000]

On a copy of ``bench_scale.py``'s file for each size (``--cache`` as there),
with FTS5's index merged into one segment (``optimize``, timed), raw
queries on a plain connection, medians of ``--reps`` runs in rounds that
alternate between the forms:

- ``phrase``: what the store asks, the phrase ``"user5678@"``;
- ``rarest two``: ``"567" AND "678"`` alone, the needle's rarest trigrams;
- ``column filter``: the phrase on ``email_key`` only;
- ``detail=column`` / ``detail=none``: the same index without positions
  (built here), which supports no phrase: the AND of the seven trigrams,
  checked with ``instr()`` on the candidates;
- ``suffix table`` (``--suffix-sizes`` only, it is slow to build): a
  ``WITHOUT ROWID`` table of every suffix of every key, searched by range;
  its build time and the file growth are printed beside the FTS5 rebuild.

``--sample-segments N`` loads ``N`` users into a fresh file through
``add_many`` calls of ``--step`` users and prints the number of index
segments after each call (mean, maximum).

Not a test: tests never assert on time.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench_scale import COMMON_NEEDLE, SEARCH_QUERY, loaded_file, segments
from bench_storage import make_users

from usercore import Settings, UserCore
from usercore.storage._sqlite_schema import SEARCH_INDEX

SETTINGS = Settings(secret_key="bench-" + "k" * 40, lockout_threshold=10**9)
ROUNDS = 5
TRIGRAMS = " AND ".join(f'"{COMMON_NEEDLE[i : i + 3]}"' for i in range(len(COMMON_NEEDLE) - 2))
CHECKED = (
    "SELECT u.id FROM users u WHERE u.id IN (SELECT rowid FROM {index} WHERE {index} MATCH ?) "
    "AND (instr(u.email_key, ?) OR instr(u.username_key, ?) OR instr(u.name_key, ?))"
)
SUFFIXES = """
    INSERT OR IGNORE INTO suffixes
    WITH RECURSIVE keys(id, key) AS (
        SELECT id, email_key FROM users WHERE email_key IS NOT NULL
        UNION ALL SELECT id, username_key FROM users WHERE username_key IS NOT NULL
        UNION ALL SELECT id, name_key FROM users WHERE name_key IS NOT NULL
    ), n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
    SELECT substr(key, i), id FROM keys JOIN n ON n.i <= length(key) - 2
"""


def medians(
    connection: sqlite3.Connection, forms: dict[str, tuple[str, tuple[str, ...]]], reps: int
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in forms}
    for sql, params in forms.values():
        connection.execute(sql, params).fetchall()
    for _ in range(ROUNDS):
        for name, (sql, params) in forms.items():
            for _ in range(max(1, reps // ROUNDS)):
                start = time.perf_counter()
                connection.execute(sql, params).fetchall()
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


def timed(connection: sqlite3.Connection, sql: str) -> float:
    start = time.perf_counter()
    connection.execute(sql)
    return time.perf_counter() - start


def compare(directory: Path, size: int, reps: int, cache: Path | None, suffixes: bool) -> None:
    path = loaded_file(directory, size, SETTINGS, cache)
    connection = sqlite3.connect(path, isolation_level=None)
    before = segments(connection)
    merge = timed(connection, f"INSERT INTO {SEARCH_INDEX} ({SEARCH_INDEX}) VALUES ('optimize')")
    print(f"  {before} segments merged into one in {merge:.2f} s", flush=True)
    phrase = '"' + COMMON_NEEDLE + '"'
    checked = (TRIGRAMS, COMMON_NEEDLE, COMMON_NEEDLE, COMMON_NEEDLE)
    forms = {
        "phrase": (SEARCH_QUERY, (phrase,)),
        "rarest two": (SEARCH_QUERY, ('"567" AND "678"',)),
        "column filter": (SEARCH_QUERY, ("email_key : " + phrase,)),
    }
    for detail in ("column", "none"):
        index = f"search_{detail}"
        connection.execute(
            f"CREATE VIRTUAL TABLE {index} USING fts5 (email_key, username_key, name_key, "
            "content = 'users', content_rowid = 'id', tokenize = 'trigram case_sensitive 1', "
            f"detail = {detail})"
        )
        connection.execute(f"INSERT INTO {index} ({index}) VALUES ('rebuild')")
        connection.execute(f"INSERT INTO {index} ({index}) VALUES ('optimize')")
        forms[f"detail={detail}, AND + instr"] = (CHECKED.format(index=index), checked)
    if suffixes:
        connection.execute(
            "CREATE TABLE suffixes (suffix TEXT NOT NULL, user_id INTEGER NOT NULL, "
            "PRIMARY KEY (suffix, user_id)) WITHOUT ROWID"
        )
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        build = timed(connection, SUFFIXES)
        grown = connection.execute("PRAGMA page_count").fetchone()[0]
        rebuild = timed(
            connection, f"INSERT INTO {SEARCH_INDEX} ({SEARCH_INDEX}) VALUES ('rebuild')"
        )
        connection.execute(f"INSERT INTO {SEARCH_INDEX} ({SEARCH_INDEX}) VALUES ('optimize')")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        print(
            f"  suffix table built in {build:.2f} s (FTS5 rebuild {rebuild:.2f} s), "
            f"file {pages * page_size / 1e6:.0f} -> {grown * page_size / 1e6:.0f} MB",
            flush=True,
        )
        upper = COMMON_NEEDLE[:-1] + chr(ord(COMMON_NEEDLE[-1]) + 1)
        forms["suffix table"] = (
            "SELECT DISTINCT user_id FROM suffixes WHERE suffix >= ? AND suffix < ?",
            (COMMON_NEEDLE, upper),
        )
    for name, value in medians(connection, forms, reps).items():
        print(f"  {name:<28}{value:>10.1f} µs", flush=True)
    connection.close()


def sample_segments(directory: Path, count: int, step: int) -> None:
    path = directory / "segments.db"
    counts = []
    with UserCore.open(f"sqlite:///{path}", settings=SETTINGS) as core:
        connection = sqlite3.connect(path)
        for first in range(0, count, step):
            with core.store.transaction() as tx:
                tx.users.add_many(make_users(min(step, count - first), start=first))
            counts.append(segments(connection))
        connection.close()
    print(
        f"segments after each add_many of {step:,} users, up to {count:,}: "
        f"mean {statistics.mean(counts):.1f}, max {max(counts)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--suffix-sizes", default="10000,100000")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--cache", type=Path, help="bench_scale.py's --cache directory")
    parser.add_argument("--sample-segments", type=int, metavar="N")
    parser.add_argument("--step", type=int, default=2_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        if args.sample_segments:
            sample_segments(directory, args.sample_segments, args.step)
            return 0
        suffix_sizes = {int(size) for size in args.suffix_sizes.split(",") if size}
        for size in sorted(int(size) for size in args.sizes.split(",")):
            print(f"{size:,} users", flush=True)
            compare(directory, size, args.reps, args.cache, size in suffix_sizes)
            for leftover in directory.glob("scale-*"):
                leftover.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
