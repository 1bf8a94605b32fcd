"""Huge-password DoS (issue 12 item 1): a 1 MB password costs what a normal one does.

Before the fix, a 400 KB password of combining marks took ~32 s at login (NFKC
normalization is quadratic on them) and held the GIL, so every other request
of the process waited as long.  Now the raw size is bounded before any
normalization and the login spends only the dummy argon2 verification.

Two comparisons, each against a peer measured alternately in the same run:

* a wrong-password login with a 1 MB password (the issue's combining-mark
  payload, 500,000 code points) vs one with a normal password: target <= 1.5x;
* the latency of a cheap call (``core.auth.authenticate`` of an access token)
  made from another thread *during* each of those logins: target <= 2x the
  latency during a normal login (argon2-cffi releases the GIL; NFKC did not).

Run: ``python benchmarks/bench_password_dos.py [-n 10]``; exit status 1 if a
target is missed.  Not a test: tests never assert on wall-clock time.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from collections.abc import Callable

from usercore import AccountLocked, InvalidCredentials, Settings, UserCore

PASSWORD = "correct horse battery staple"
NORMAL_WRONG = "not the password, wrong"
# ~1 MB of UTF-8: "a" then 250,000 pairs of combining marks (2 bytes each).
HUGE = "a" + "\u0301\u0316" * 250_000


def _login_ms(core: UserCore, password: str) -> float:
    start = time.perf_counter()
    with contextlib.suppress(InvalidCredentials, AccountLocked):
        core.auth.login("ada", password)
    return (time.perf_counter() - start) * 1000.0


def _concurrent_ms(core: UserCore, password: str, cheap: Callable[[], object]) -> float:
    """Start a login, then time ``cheap()`` from this thread while it runs."""
    started = threading.Event()

    def run() -> None:
        started.set()
        _login_ms(core, password)

    worker = threading.Thread(target=run)
    worker.start()
    started.wait()
    time.sleep(0.002)  # let the login get into its work
    start = time.perf_counter()
    cheap()
    elapsed = (time.perf_counter() - start) * 1000.0
    worker.join()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    # Lockout off (huge thresholds) so failures can repeat; default argon2 profile.
    settings = Settings(
        secret_key="bench-" + "k" * 40,
        lockout_threshold=10**9,
        lockout_identifier_threshold=10**9,
    )
    with UserCore.open("memory://", settings=settings) as core:
        core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
        token = core.auth.login("ada", PASSWORD).access_token

        def cheap() -> object:
            return core.auth.authenticate(token)

        for password in (NORMAL_WRONG, HUGE):  # warm up
            _login_ms(core, password)
        samples: dict[str, list[float]] = {
            "login, normal password": [],
            "login, 1 MB password": [],
            "cheap call during normal login": [],
            "cheap call during 1 MB login": [],
            "cheap call, idle": [],
        }
        for _ in range(args.rounds):
            samples["login, normal password"].append(_login_ms(core, NORMAL_WRONG))
            samples["login, 1 MB password"].append(_login_ms(core, HUGE))
            samples["cheap call during normal login"].append(
                _concurrent_ms(core, NORMAL_WRONG, cheap)
            )
            samples["cheap call during 1 MB login"].append(_concurrent_ms(core, HUGE, cheap))
            start = time.perf_counter()
            cheap()
            samples["cheap call, idle"].append((time.perf_counter() - start) * 1000.0)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"memory store, default argon2 profile, median of {args.rounds} (ms)")
    for name, value in medians.items():
        print(f"  {name:<32} {value:9.2f}")
    login_ratio = medians["login, 1 MB password"] / medians["login, normal password"]
    during_ratio = (
        medians["cheap call during 1 MB login"] / medians["cheap call during normal login"]
    )
    login_ok, during_ok = login_ratio <= 1.5, during_ratio <= 2.0
    print(
        f"  1 MB / normal login:             {login_ratio:5.2f}x (target <= 1.5x) "
        f"{'ok' if login_ok else 'MISSED'}"
    )
    print(
        f"  cheap call during 1 MB / normal: {during_ratio:5.2f}x (target <= 2x) "
        f"{'ok' if during_ok else 'MISSED'}"
    )
    return 0 if login_ok and during_ok else 1


if __name__ == "__main__":
    sys.exit(main())
