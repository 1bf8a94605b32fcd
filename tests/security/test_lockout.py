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


# -- issue 12 item 7: the owner gets in while guessing stays bounded ---------------

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"


def test_a_guesser_elsewhere_does_not_lock_the_owner_out(
    core: UserCore, ada: User, clock: FakeClock
) -> None:
    """Before the fix one bad guess each time the lock expired (18 requests
    over 3 h) kept the owner at 429 forever.  Lockout is keyed by identifier
    *and* client (OWASP Authentication Cheat Sheet, "Account Lockout")."""
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            core.auth.login("ada", "definitely wrong pw", client=ATTACKER)
    for _ in range(18):
        with pytest.raises(AccountLocked):
            core.auth.login("ada", PASSWORD, client=ATTACKER)  # the guesser is held
        assert core.auth.login("ada", PASSWORD, client=OWNER)  # the owner is not
        clock.advance(minutes=10)
        with pytest.raises((InvalidCredentials, AccountLocked)):
            core.auth.login("ada", "definitely wrong pw", client=ATTACKER)


def test_guessing_from_many_clients_is_bounded_by_the_identifier_ceiling(
    open_core: Callable[..., UserCore],
) -> None:
    """NIST SP 800-63B §5.2.2: at most 100 consecutive failures per account;
    the ceiling (here 12) applies to every client of one identifier."""
    core = open_core(lockout_identifier_threshold=12)
    core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    evaluated = 0
    for number in range(10):  # 10 clients x 4 guesses: under each client's threshold
        for _ in range(4):
            try:
                core.auth.login("ada", "definitely wrong pw", client=f"192.0.2.{number}")
            except InvalidCredentials:
                evaluated += 1
            except AccountLocked:
                pass
    assert 12 == evaluated
    with pytest.raises(AccountLocked):
        core.auth.login("ada", PASSWORD, client="192.0.2.200")
    # The ceiling is per identifier: the email still works for the owner.
    assert core.auth.login("ada@example.com", PASSWORD, client=OWNER)


def test_a_threshold_above_the_ceiling_raises_the_ceiling(
    open_core: Callable[..., UserCore],
) -> None:
    """Settings written before the ceiling existed (a threshold over 50) keep working."""
    core = open_core(lockout_threshold=60)
    core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    fail(core, "ada", 59)
    assert core.auth.login("ada", PASSWORD)


# -- issue 12 item 12: re-authentication counts toward the lockout -------------------


def test_wrong_current_passwords_lock_like_failed_logins(core: UserCore, ada: User) -> None:
    """Before the fix 30 wrong current passwords were tried without a lock
    (OWASP ASVS 4.0.3 V2.2.1: anti-automation on every credential check)."""
    from usercore import ValidationError

    principal = core.auth.authenticate(core.auth.login("ada", PASSWORD).access_token)
    for _ in range(5):
        with pytest.raises(ValidationError):
            core.users.change_password(
                principal, ada.id, current_password="nope, wrong", new_password="x new passphrase!"
            )
    with pytest.raises(AccountLocked):
        core.users.change_password(
            principal, ada.id, current_password=PASSWORD, new_password="x new passphrase!"
        )
    with pytest.raises(AccountLocked):  # the same counter as a login by email
        core.auth.login("ada@example.com", PASSWORD)


def test_a_right_current_password_resets_the_counter(core: UserCore, ada: User) -> None:
    from usercore import ValidationError

    principal = core.auth.authenticate(core.auth.login("ada", PASSWORD).access_token)
    for _ in range(4):
        with pytest.raises(ValidationError):
            core.users.change_password(
                principal, ada.id, current_password="nope, wrong", new_password="x new passphrase!"
            )
    core.users.change_password(
        principal, ada.id, current_password=PASSWORD, new_password="x new passphrase!"
    )
    fail(core, "ada@example.com", 4)
    assert core.auth.login("ada@example.com", "x new passphrase!")


# -- issue 12 item 15: login_attempts keys are keyed hashes ---------------------------


def test_attempt_keys_are_hmacs_under_the_secret_not_plain_hashes(
    open_core: Callable[..., UserCore],
) -> None:
    """Before the fix keys were SHA-256("kind:identifier"): 54 of 54 recovered by
    dictionary, passwords typed as usernames included.  Now HMAC-SHA256 (RFC
    2104) with a key derived from ``Settings.secret_key``."""
    import hashlib

    from ..services.conftest import SECRET

    seen: list[set[str]] = []
    for secret in (SECRET, "another-secret-" + "k" * 32):
        core = open_core(secret_key=secret)
        before = _attempt_keys(core)  # the store is shared by both facades
        fail(core, "Tr0ub4dor&3", 1)  # a password typed into the username field
        with core.store.transaction(readonly=True) as tx:
            plain = hashlib.sha256(b"username:tr0ub4dor&3").hexdigest()
            assert tx.login_attempts.get(plain) is None
        seen.append(_attempt_keys(core) - before)
    # Two rows per failure (identifier, identifier+client); other keys per secret.
    assert 2 == len(seen[0]) == len(seen[1])
    assert not seen[0] & seen[1]


def _attempt_keys(core: UserCore) -> set[str]:
    """Every login_attempts key of a store (memory, SQLite or PostgreSQL)."""
    store: object = core.store
    if hasattr(store, "_login_attempts"):
        return set(store._login_attempts)
    with core.store.transaction(readonly=True) as tx:
        uow: object = tx
        rows = uow.reading()("SELECT key FROM login_attempts", ()).fetchall()  # type: ignore[attr-defined]
    return {row[0] for row in rows}
