"""Run every benchmark, one after the other, and summarize their verdicts.

    python benchmarks/run_all.py [--only policy,tokens] [--quick]

Each ``bench_*.py`` script times usercore and its peer in the same run and
prints its own table with PASS/FAIL per target; this runner executes them in
a fresh interpreter each (so one's warm caches never help another), streams
their output, and ends with one line per script and the machine it ran on.
The figures in ``docs/performance.md`` come from this command.  Exit status 1
if any script missed a target.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, arguments for --quick)
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "policy": ("bench_policy.py", []),
    "tokens": ("bench_tokens.py", ["-n", "500", "--rounds", "3"]),
    "storage": ("bench_storage.py", ["--users", "20000", "--lookups", "1000", "--rounds", "3"]),
    "passwords": ("bench_passwords.py", ["-n", "10"]),
    "login": ("bench_login.py", ["-n", "8"]),
    "http": ("bench_http.py", ["--seconds", "2", "--rounds", "2"]),
    "password_dos": ("bench_password_dos.py", ["-n", "3"]),
    "sqlite_writers": ("bench_sqlite_writers.py", ["--writes", "100"]),
    "scale": ("bench_scale.py", ["--sizes", "10000,30000", "--reps", "50"]),
    "import": ("bench_import.py", ["--records", "24", "--rounds", "1"]),
    "flood": ("bench_flood.py", ["--connections", "100", "--seconds", "5"]),
    "workers": ("bench_workers.py", ["--seconds", "2", "--rounds", "1", "--requests", "30"]),
    "roles": ("bench_roles.py", ["--rounds", "2"]),
}
OPTIONAL = {"storage_postgres": ("bench_storage_postgres.py", [])}


def machine() -> str:
    cpus = os.cpu_count()
    return (
        f"{platform.system()} {platform.machine()}, {cpus} CPUs, "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", help="comma-separated names: " + ", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args = parser.parse_args(argv)
    table = dict(BENCHMARKS)
    for name, entry in OPTIONAL.items():
        if (HERE / entry[0]).exists():
            table[name] = entry
    names = list(table) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [name for name in names if name not in table]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    results: list[tuple[str, int, float]] = []
    for name in names:
        script, quick = table[name]
        command = [sys.executable, str(HERE / script), *(quick if args.quick else [])]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.run(command, check=False).returncode
        results.append((name, code, time.perf_counter() - start))
    print(f"\n=== summary ({machine()})")
    for name, code, seconds in results:
        verdict = "all targets met" if code == 0 else f"a target missed (exit {code})"
        print(f"{name:<18} {verdict:<28} {seconds:7.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
