"""Does ``usercore import`` use every core to hash plain passwords?  (RFC 9106 low memory)

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

Run: ``.venv/bin/python benchmarks/bench_import.py [--records 96] [--jobs N]
[--rounds 2]``.  Exit status 1 if the target is missed.  Not a test: tests never
assert on wall-clock time.
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
from pathlib import Path

from usercore import cli

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=96, help="records per import")
    parser.add_argument("--jobs", type=int, default=cli._default_jobs(), help="pool size")
    parser.add_argument("--rounds", type=int, default=2, help="imports per case")
    args = parser.parse_args(argv)
    if args.jobs < 2:
        print("only one CPU is available: there is nothing to compare")
        return 0
    rates: dict[int, list[float]] = {1: [], args.jobs: []}
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        source = directory / "users.jsonl"
        write_records(source, args.records)
        for _ in range(args.rounds):
            for jobs in rates:
                rates[jobs].append(import_rate(source, directory, jobs, args.records))
    print(
        f"usercore import of {args.records} plain-password records, argon2id "
        f"RFC_9106_LOW_MEMORY, {os.cpu_count()} CPUs, {args.rounds} rounds"
    )
    print(f"{'processes':>10} {'median users/s':>15} {'min':>8} {'max':>8}")
    medians = {}
    for jobs, values in rates.items():
        medians[jobs] = statistics.median(values)
        print(f"{jobs:>10} {medians[jobs]:>15.1f} {min(values):>8.1f} {max(values):>8.1f}")
    speedup = medians[args.jobs] / medians[1]
    passed = speedup >= EFFICIENCY * args.jobs
    print(
        f"target pool/one >= {EFFICIENCY * args.jobs:.2f}: ratio {speedup:.2f} -> "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
