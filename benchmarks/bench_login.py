"""Login cost: ``core.auth.login`` vs a bare argon2 verify, and unknown vs known account.

Two targets (issue 6), with the default argon2 profile (RFC 9106 low memory):

* a successful ``login`` (lookup, verify, counters, refresh token, JWT, commit)
  costs at most 1.05x a bare ``argon2.PasswordHasher.verify`` with the same
  parameters: the password hash is the work, everything else is noise;
* a login for an unknown account costs 0.9x-1.1x a known account's wrong-password
  login, so response time does not reveal which accounts exist.

Cases are measured alternately (drift hits all alike) on the memory and SQLite
stores.  Lockout is disabled by a huge threshold so failures can repeat.

Run: ``python benchmarks/bench_login.py [-n 20]``; exit status 1 if a target is missed.
Not a test: tests never assert on wall-clock time.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import argon2

from usercore import InvalidCredentials, Settings, UserCore

PASSWORD = "correct horse battery staple"


def _ms(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    with contextlib.suppress(InvalidCredentials):
        call()
    return (time.perf_counter() - start) * 1000.0


def measure(url: str, rounds: int) -> dict[str, float]:
    settings = Settings(secret_key="bench-" + "k" * 40, lockout_threshold=10**9)
    with UserCore.open(url, settings=settings) as core:
        core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
        bare = argon2.PasswordHasher.from_parameters(settings.argon2_profile)
        stored = bare.hash(PASSWORD)
        cases: dict[str, Callable[[], object]] = {
            "bare argon2 verify": lambda: bare.verify(stored, PASSWORD),
            "login, success": lambda: core.auth.login("ada", PASSWORD),
            "login, wrong password": lambda: core.auth.login("ada", "not the password"),
            "login, unknown account": lambda: core.auth.login("ghost", "not the password"),
        }
        for call in cases.values():  # warm up every path
            _ms(call)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, call in cases.items():
                samples[name].append(_ms(call))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for label, url in (
            ("memory", "memory://"),
            ("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}"),
        ):
            medians = measure(url, args.rounds)
            print(f"\n{label} store, median of {args.rounds} (ms)")
            for name, value in medians.items():
                print(f"  {name:<24} {value:8.2f}")
            login_ratio = medians["login, success"] / medians["bare argon2 verify"]
            enum_ratio = medians["login, unknown account"] / medians["login, wrong password"]
            login_ok = login_ratio <= 1.05
            enum_ok = 0.9 <= enum_ratio <= 1.1
            ok = ok and login_ok and enum_ok
            print(
                f"  login / bare verify      {login_ratio:8.3f}  target <= 1.05  "
                f"{'PASS' if login_ok else 'FAIL'}"
            )
            print(
                f"  unknown / wrong password {enum_ratio:8.3f}  target 0.9-1.1  "
                f"{'PASS' if enum_ok else 'FAIL'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
