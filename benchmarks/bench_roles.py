"""What each role costs every request: why ``usercore.policy.MAX_ROLES`` is 1,000.

Every guarded write (a user update, a role change, an invitation...) reads
and compiles every role, and every process compiles them all again at its
first check after any role change.  This times, on SQLite, both with 10,
1,000 and 10,000 roles (made straight in the store, as no service would
allow the last), in alternation, several rounds, the median kept:

* a guarded write: an administrator's ``users.update`` of another account;
* the first check after a role change: ``authenticate`` and ``users.get``
  right after ``policy.invalidate()``.

Target: at the bound (1,000 roles) each stays within 100 ms.

Run: ``python benchmarks/bench_roles.py [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import argon2

from usercore import SYSTEM, Role, Settings, UserCore
from usercore.policy import MAX_ROLES

PASSWORD = "the admin's long passphrase"
COUNTS = (10, MAX_ROLES, 10 * MAX_ROLES)
TARGET_MS = 100.0


def _subject(count: int, folder: Path) -> tuple[UserCore, str, int]:
    core = UserCore.open(
        f"sqlite:///{folder / f'roles-{count}.db'}",
        settings=Settings(secret_key="k" * 40, argon2_profile=argon2.profiles.CHEAPEST),
    )
    core.users.create(SYSTEM, email="root@example.com", password=PASSWORD, roles=["admin"])
    token = core.auth.login("root@example.com", PASSWORD).access_token
    made = len(core.roles.list(SYSTEM))
    with core.store.transaction() as tx:
        for index in range(count - made):
            tx.roles.add(Role(name=f"r{index}", permissions=frozenset({"users:read"})))
    core.policy.invalidate()
    target = core.users.create(SYSTEM, email="someone@example.com")
    return core, token, target.id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        subjects = {count: _subject(count, Path(folder)) for count in COUNTS}
        writes: dict[int, list[float]] = {count: [] for count in COUNTS}
        firsts: dict[int, list[float]] = {count: [] for count in COUNTS}
        for round_ in range(args.rounds):
            for count, (core, token, target) in subjects.items():
                actor = core.auth.authenticate(token)
                started = time.perf_counter()
                core.users.update(actor, target, name=f"name {round_}")
                writes[count].append(time.perf_counter() - started)
                core.policy.invalidate()
                started = time.perf_counter()
                core.users.get(core.auth.authenticate(token), target)
                firsts[count].append(time.perf_counter() - started)
        for core, _, _ in subjects.values():
            core.close()
    print(f"{'roles':>7}  {'guarded write':>14}  {'first check after a change':>27}")
    failed = False
    for count in COUNTS:
        write = statistics.median(writes[count]) * 1000
        first = statistics.median(firsts[count]) * 1000
        print(f"{count:>7,}  {write:>11.1f} ms  {first:>24.1f} ms")
        if count == MAX_ROLES:
            failed = write > TARGET_MS or first > TARGET_MS
    verdict = "FAIL" if failed else "PASS"
    print(f"at the bound ({MAX_ROLES:,} roles) both within {TARGET_MS:.0f} ms: {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
