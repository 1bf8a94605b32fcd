"""Concurrent SQLite writers: write latency at 1 thread vs 8, in the same run.

    python benchmarks/bench_sqlite_writers.py [--writes 400] [--threads 8]

Each write is what ``POST /auth/refresh`` does to the store: one write
transaction that spends a refresh token and stores the next one.
``SQLiteStore`` writers of one process queue on an in-process writer lock in
front of ``BEGIN IMMEDIATE`` and wake the moment the writer ahead commits.  The
peer, measured alongside, is the same transaction on plain ``sqlite3``
connections (one per thread, 30 s busy timeout): writers there wait in
SQLite's busy handler, which sleeps with a growing back-off.

Targets (issue 18.4): ``SQLiteStore``'s p99 at ``--threads`` within 3x its p99
at one thread, and its throughput not lower than at one thread.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from usercore.domain import RefreshToken, User
from usercore.storage import SQLiteStore

NOW = datetime(2024, 5, 17, 12, 0, tzinfo=timezone.utc)


Write = Callable[[int, int, bytes | None, bytes], None]
"""One write: (thread number, write number, previous token, next token)."""


def store_write(store: SQLiteStore, user_id: int) -> Write:
    def write(number: int, n: int, previous: bytes | None, token: bytes) -> None:
        with store.transaction() as tx:
            if previous is not None:
                tx.refresh_tokens.mark_used(previous, NOW)
            tx.refresh_tokens.add(
                RefreshToken(
                    token_hash=token,
                    family_id=f"f{number}",
                    user_id=user_id,
                    token_version=0,
                    created_at=NOW,
                    expires_at=NOW + timedelta(days=n + 1),
                )
            )

    return write


def raw_write(path: Path, user_id: int) -> Write:
    local = threading.local()

    def write(number: int, n: int, previous: bytes | None, token: bytes) -> None:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous = FULL")
        connection.execute("BEGIN IMMEDIATE")
        if previous is not None:
            connection.execute(
                "UPDATE refresh_tokens SET used_at = 1 WHERE token_hash = ? AND used_at IS NULL",
                (previous,),
            )
        connection.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, token_version, "
            "created_at, expires_at) VALUES (?, ?, ?, 0, 0, ?)",
            (token, f"r{number}", user_id, n + 1),
        )
        connection.execute("COMMIT")

    return write


def run(write: Write, threads: int, writes: int) -> tuple[list[float], float]:
    """Per-write latencies (seconds) and the wall time of ``writes`` writes in ``threads``."""
    latencies: list[float] = []
    lock = threading.Lock()
    start_together = threading.Barrier(threads)
    per_thread = writes // threads

    def writer(number: int) -> None:
        mine = []
        previous = None
        start_together.wait()
        for n in range(per_thread):
            token = os.urandom(32)
            begin = time.perf_counter()
            write(number, n, previous, token)
            mine.append(time.perf_counter() - begin)
            previous = token
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    began = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return latencies, time.perf_counter() - began


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    results: dict[str, tuple[list[float], float, list[float], float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "w.db"
        with SQLiteStore(path) as store:
            with store.transaction() as tx:
                user = tx.users.add(
                    User(id=0, email="w@example.com", created_at=NOW, updated_at=NOW)
                )
            for name, write in (
                ("SQLiteStore", store_write(store, user.id)),
                ("raw sqlite3", raw_write(path, user.id)),
            ):
                run(write, 1, 50)  # warm up
                one, one_wall = run(write, 1, args.writes)
                many, many_wall = run(write, args.threads, args.writes)
                results[name] = (one, one_wall, many, many_wall)
    print(f"{'subject':<12} {'writers':>7} {'p50 ms':>8} {'p99 ms':>8} {'writes/s':>9}")
    for name, (one, one_wall, many, many_wall) in results.items():
        for label, values, wall in (("1", one, one_wall), (str(args.threads), many, many_wall)):
            print(
                f"{name:<12} {label:>7} {statistics.median(values) * 1e3:8.2f} "
                f"{p99(values) * 1e3:8.2f} {len(values) / wall:9.0f}"
            )
        print(f"{name:<12} p99[{args.threads}] / p99[1] = {p99(many) / p99(one):.1f}x")
    one, one_wall, many, many_wall = results["SQLiteStore"]
    ratio = p99(many) / p99(one)
    throughput = (len(many) / many_wall) / (len(one) / one_wall)
    verdicts = [
        (f"SQLiteStore p99 at {args.threads} writers within 3x of 1 writer", ratio <= 3.0, ratio),
        ("SQLiteStore throughput not lower than at 1 writer", throughput >= 1.0, throughput),
    ]
    for name, ok, figure in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure:.2f}x")
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
