"""Issue 12 item 6: concurrent guesses never get past the lockout threshold.

Each guess is charged to the failure counters in a write transaction *before*
the password is checked, so at most ``lockout_threshold`` guesses are ever
evaluated per lock window, across threads and processes (NIST SP 800-63B
§5.2.2: limit failed attempts; OWASP ASVS 4.0.3 V2.2.1).  Verifications are
counted on argon2 itself; no timing is involved.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from usercore import AccountLocked, InvalidCredentials, User, UserCore

from ..services.conftest import PASSWORD, make_settings
from ..services.test_postgres_facade import together

THRESHOLD = 5
WRONG = "a wrong guess, long enough"


def counted_verifications(core: UserCore) -> list[int]:
    """Wrap this facade's argon2 hasher: one entry per verification, real or dummy."""
    hasher = core._ctx.hasher
    inner = hasher._argon2
    calls: list[int] = []
    lock = threading.Lock()

    class Counting:
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            with lock:
                calls.append(1)
            return inner.verify(hash, password)

        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

    hasher._argon2 = Counting()  # type: ignore[assignment]
    return calls


def race(count: int, work: Callable[[], str]) -> list[str]:
    """``work()`` in ``count`` threads released at once; each outcome's name."""
    return [str(outcome) for outcome in together(count, lambda _: work())]


def guess(core: UserCore, identifier: str) -> str:
    try:
        core.auth.login(identifier, WRONG)
    except InvalidCredentials:
        return "refused"
    except AccountLocked:
        return "locked"
    return "in"


@pytest.mark.parametrize("identifier", ["ada", "nobody@example.com"])
def test_parallel_guesses_evaluate_at_most_the_threshold(
    core: UserCore, ada: User, identifier: str
) -> None:
    """Before the fix 100 parallel logins evaluated 44 guesses with threshold 5."""
    calls = counted_verifications(core)
    outcomes = race(24, lambda: guess(core, identifier))
    assert THRESHOLD == len(calls)
    assert THRESHOLD == outcomes.count("refused")
    assert 24 - THRESHOLD == outcomes.count("locked")


def test_parallel_wrong_current_passwords_evaluate_at_most_the_threshold(
    core: UserCore, ada: User
) -> None:
    """Item 12 under concurrency: the change-password route is charged the same way."""
    principal = core.auth.authenticate(core.auth.login("ada", PASSWORD).access_token)
    calls = counted_verifications(core)

    def change() -> str:
        try:
            core.users.change_password(
                principal, ada.id, current_password=WRONG, new_password="x new long passphrase"
            )
        except AccountLocked:
            return "locked"
        except Exception:  # ValidationError: "is incorrect"
            return "refused"
        return "changed"

    outcomes = race(16, change)
    assert THRESHOLD == len(calls)
    assert THRESHOLD == outcomes.count("refused")


def _process_attack(url: str, identifier: str, threads: int, queue: Any) -> None:
    core = UserCore.open(url, settings=make_settings())
    try:
        calls = counted_verifications(core)
        outcomes = race(threads, lambda: guess(core, identifier))
        queue.put((len(calls), outcomes.count("refused")))
    finally:
        core.close()


@pytest.mark.parametrize("identifier", ["ada", "nobody@example.com"])
def test_two_processes_evaluate_at_most_the_threshold_on_sqlite(
    tmp_path: Path, identifier: str
) -> None:
    """Before the fix two processes x 32 threads evaluated all 64 guesses."""
    url = f"sqlite:///{tmp_path / 'users.db'}"
    with UserCore.open(url, settings=make_settings()) as core:
        core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [
        context.Process(target=_process_attack, args=(url, identifier, 12, queue)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(60)
        assert 0 == process.exitcode
    assert THRESHOLD == sum(count for count, _ in results)
    assert THRESHOLD == sum(refused for _, refused in results)
