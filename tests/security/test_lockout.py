"""Throttling of online guessing.

NIST SP 800-63B §5.2.2 (rate limiting, exponential back-off), OWASP ASVS
4.0.3 V2.2.1 (anti-automation), and enumeration resistance: unknown
identifiers lock exactly like accounts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from usercore import AccountLocked, InvalidCredentials, User, UserCore
from usercore.services.events import Event

from ..services.conftest import PASSWORD, FakeClock


def fail(core: UserCore, identifier: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            core.auth.login(identifier, "definitely wrong pw")


def test_five_failures_lock_for_a_minute_then_the_lock_lifts(
    core: UserCore, ada: User, clock: FakeClock, events: list[Event]
) -> None:
    fail(core, "ada", 5)
    assert "auth.locked" in [e.name for e in events]
    with pytest.raises(AccountLocked) as info:
        core.auth.login("ada", PASSWORD)  # even the right password waits
    assert 60 == info.value.retry_after
    clock.advance(seconds=59)
    with pytest.raises(AccountLocked) as info:
        core.auth.login("ada", PASSWORD)
    assert 1 == info.value.retry_after
    clock.advance(seconds=1)
    assert core.auth.login("ada", PASSWORD)


def test_lock_doubles_with_each_further_failure_up_to_the_maximum(
    core: UserCore, ada: User, clock: FakeClock
) -> None:
    fail(core, "ada", 5)
    expected = [120, 240, 480, 900, 900]
    for seconds in expected:
        clock.advance(minutes=16)
        fail(core, "ada", 1)
        with pytest.raises(AccountLocked) as info:
            core.auth.login("ada", PASSWORD)
        assert seconds == info.value.retry_after


def test_success_resets_the_failure_counter(core: UserCore, ada: User) -> None:
    fail(core, "ada", 4)
    core.auth.login("ada", PASSWORD)
    fail(core, "ada", 4)
    assert core.auth.login("ada", PASSWORD)


def test_unknown_identifiers_lock_exactly_like_accounts(core: UserCore, ada: User) -> None:
    """A lock must not reveal whether an account exists."""
    fail(core, "ada", 5)
    fail(core, "ghost", 5)
    with pytest.raises(AccountLocked) as known:
        core.auth.login("ada", "definitely wrong pw")
    with pytest.raises(AccountLocked) as unknown:
        core.auth.login("ghost", "definitely wrong pw")
    assert (known.value.code, known.value.message, known.value.retry_after) == (
        unknown.value.code,
        unknown.value.message,
        unknown.value.retry_after,
    )


def test_each_identifier_of_an_account_counts_like_an_unknown_identifier(
    core: UserCore, ada: User
) -> None:
    """Issue 12 item 13: lock states must not link a username to an email.

    Failures by username and by email count separately for a real account,
    exactly as they do for two unknown identifiers, so "3 by username + 2 by
    email locks" cannot tell whether the two belong together (OWASP ASVS
    4.0.3 V2.2.1; NIST SP 800-63B §5.2.2 still bounds each identifier)."""
    fail(core, "ada", 3)
    fail(core, "ada@example.com", 2)
    fail(core, "ghost", 3)
    fail(core, "ghost@example.com", 2)
    assert core.auth.login("ada", PASSWORD)  # not locked: same as for the ghost
    with pytest.raises(InvalidCredentials):
        core.auth.login("ghost", "definitely wrong pw")


def test_a_password_reset_clears_the_lock(core: UserCore, ada: User) -> None:
    fail(core, "ada", 5)
    token = core.auth.request_password_reset("ada@example.com")
    assert token is not None
    core.auth.reset_password(token, "a fresh new passphrase")
    assert core.auth.login("ada", "a fresh new passphrase")


def test_lockout_settings_are_honoured(
    open_core: Callable[..., UserCore], clock: FakeClock
) -> None:
    core = open_core(
        lockout_threshold=2,
        lockout_base=timedelta(seconds=10),
        lockout_max=timedelta(seconds=15),
    )
    core.users.register(email="ada@example.com", password=PASSWORD)
    fail(core, "ada@example.com", 2)
    with pytest.raises(AccountLocked) as info:
        core.auth.login("ada@example.com", PASSWORD)
    assert 10 == info.value.retry_after
