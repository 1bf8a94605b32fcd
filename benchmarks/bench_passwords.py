"""Does the dummy verify cost what a real verify costs?  (default profile, RFC 9106 low memory)

Login answers an unknown account after ``PasswordHasher.dummy_verify`` and a
known one after a real argon2 verify (DESIGN §3); if the two took visibly
different times, response time would reveal which accounts exist (OWASP
Authentication Cheat Sheet).  This script times, alternating so that drift in
CPU frequency or load hits every case alike:

* ``dummy_verify(password)``: what an unknown account costs,
* ``verify(None, password)``: the same through ``verify`` (missing hash),
* ``verify(hash, wrong)``: a known account, wrong password,
* ``verify(hash, right)``: a known account, right password (no rehash needed).

Target: the dummy's median within 25 % of each real verify's median.

Run: ``.venv/bin/python benchmarks/bench_passwords.py [-n 30]``.  Exit status
1 if the target is missed.  Not a test: tests never assert on wall-clock time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import argon2

from usercore.passwords import PasswordHasher

TARGET = 0.25  # |dummy / real - 1| must not exceed this
PASSWORD = "correct horse battery staple"
WRONG = "correct horse battery stapler"


def _time_ms(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--rounds", type=int, default=30, help="timings per case")
    args = parser.parse_args(argv)

    profile = argon2.profiles.RFC_9106_LOW_MEMORY
    hasher = PasswordHasher(profile)
    stored = hasher.hash(PASSWORD)
    # The first dummy_verify also makes the dummy hash (once per hasher):
    # time it apart, then warm every path before measuring.
    first_dummy_ms = _time_ms(lambda: hasher.dummy_verify(PASSWORD))
    cases: dict[str, Callable[[], object]] = {
        "dummy_verify(password)": lambda: hasher.dummy_verify(PASSWORD),
        "verify(None, password)": lambda: hasher.verify(None, PASSWORD),
        "verify(hash, wrong)": lambda: hasher.verify(stored, WRONG),
        "verify(hash, right)": lambda: hasher.verify(stored, PASSWORD),
    }
    assert hasher.verify(stored, PASSWORD) == (True, None)
    assert hasher.verify(stored, WRONG) == (False, None)
    for call in cases.values():
        call()

    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, call in cases.items():
            timings[name].append(_time_ms(call))
    medians = {name: statistics.median(values) for name, values in timings.items()}

    print(
        f"argon2id t={profile.time_cost} m={profile.memory_cost} KiB p={profile.parallelism}"
        f" (RFC_9106_LOW_MEMORY), {args.rounds} rounds, alternating"
    )
    print(f"first dummy_verify (makes the dummy hash): {first_dummy_ms:8.2f} ms")
    print()
    print(f"{'case':<26} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'dummy/case':>11}")
    dummy = medians["dummy_verify(password)"]
    for name, values in timings.items():
        ratio = dummy / medians[name]
        print(
            f"{name:<26} {medians[name]:>10.2f} {min(values):>8.2f} {max(values):>8.2f}"
            f" {ratio:>11.3f}"
        )

    ok = True
    print()
    for real in ("verify(hash, wrong)", "verify(hash, right)"):
        for probe in ("dummy_verify(password)", "verify(None, password)"):
            ratio = medians[probe] / medians[real]
            passed = abs(ratio - 1.0) <= TARGET
            ok = ok and passed
            verdict = "PASS" if passed else "FAIL"
            print(f"target |{probe} / {real} - 1| <= {TARGET:.0%}: ratio {ratio:.3f} -> {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
