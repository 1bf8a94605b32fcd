"""Login under load and store faults: shed before charging, fail closed, no tokens unstored.

OWASP ASVS 4.0.3 V2.2.1 (anti-automation must not fail open), NIST SP
800-63B §5.2.2 (rate limiting), CWE-400 (bounded hashing work)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from usercore import (
    SYSTEM,
    AccountLocked,
    InvalidCredentials,
    Overloaded,
    StoreUnavailable,
    User,
    UserCore,
)
from usercore.services.events import Event

from ..services.conftest import PASSWORD, FakeClock
from ..test_hash_limiter import held

WRONG = "definitely wrong pw"


def slots_taken(core: UserCore) -> AbstractContextManager[None]:
    """Every hashing slot of ``core`` is held by another thread."""
    limiter = core._ctx.hasher.limiter
    assert limiter is not None
    return held(limiter, limiter.slots)


@contextmanager
def failing_writes(core: UserCore, after: int = 0) -> Iterator[None]:
    """Write transactions of ``core``'s store fail to commit with ``StoreUnavailable`` (after
    ``after`` of them succeed), as on a full disk: their work runs, then rolls back.
    Read-only transactions still work."""
    store = core.store
    real: Callable[..., AbstractContextManager[Any]] = store.transaction
    budget = [after]

    @contextmanager
    def failing_commit(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real(*args, **kwargs) as tx:
            yield tx
            raise StoreUnavailable(retry_after=1)  # inside: the transaction rolls back

    def transaction(*args: Any, readonly: bool = False, **kwargs: Any) -> Any:
        if not readonly:
            if budget[0] <= 0:
                return failing_commit(*args, readonly=readonly, **kwargs)
            budget[0] -= 1
        return real(*args, readonly=readonly, **kwargs)

    store.transaction = transaction  # type: ignore[method-assign]
    try:
        yield
    finally:
        del store.transaction  # type: ignore[method-assign]


def test_a_shed_login_is_503_and_charges_no_guess(open_core: Callable[..., UserCore]) -> None:
    core = open_core(max_concurrent_hashes=1, hash_queue_length=0)
    core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    with slots_taken(core):
        for _ in range(core.settings.lockout_threshold + 3):
            with pytest.raises(Overloaded) as info:
                core.auth.login("ada", WRONG)
            assert info.value.http_status == 503
    # Nothing was charged: not locked, and the right password works.
    assert core.auth.login("ada", PASSWORD).access_token


def test_an_unknown_account_is_shed_exactly_like_a_known_one(
    open_core: Callable[..., UserCore],
) -> None:
    core = open_core(max_concurrent_hashes=1, hash_queue_length=0)
    core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    with slots_taken(core):
        for identifier in ("ada", "nobody", "nobody@example.com"):
            with pytest.raises(Overloaded):
                core.auth.login(identifier, PASSWORD)
    with pytest.raises(InvalidCredentials):
        core.auth.login("nobody", PASSWORD)


def test_registration_is_shed_too(open_core: Callable[..., UserCore]) -> None:
    core = open_core(max_concurrent_hashes=1, hash_queue_length=0)
    with slots_taken(core), pytest.raises(Overloaded):
        core.users.register(email="ada@example.com", password=PASSWORD)
    assert core.users.register(email="ada@example.com", password=PASSWORD)


def test_correct_password_without_a_stored_refresh_token_gets_no_tokens(
    core: UserCore, ada: User
) -> None:
    # The guess is charged (first write), the session cannot be stored (second).
    with failing_writes(core, after=1), pytest.raises(StoreUnavailable) as info:
        core.auth.login("ada", PASSWORD)
    assert info.value.http_status == 503
    refreshed = core.users.get(SYSTEM, ada.id)
    assert refreshed.last_login_at is None  # the whole success rolled back
    assert core.auth.login("ada", PASSWORD).refresh_token  # and works once writes do


def test_a_guess_that_cannot_be_counted_denies_the_identifier_in_the_process(
    core: UserCore, ada: User, clock: FakeClock, events: list[Event]
) -> None:
    with failing_writes(core), pytest.raises(StoreUnavailable):
        core.auth.login("ada", WRONG)
    assert "auth.lockout_write_failed" in [e.name for e in events]
    # The store works again, but the identifier stays refused: fail closed.
    for password in (WRONG, PASSWORD):
        with pytest.raises(StoreUnavailable) as info:
            core.auth.login("ada", password)
        assert info.value.retry_after == int(core.settings.lockout_base.total_seconds())
    # Other identifiers are not affected; even the same account's email is another identifier.
    assert core.auth.login("ada@example.com", PASSWORD)
    clock.advance(seconds=core.settings.lockout_base.total_seconds())
    assert core.auth.login("ada", PASSWORD)


def test_reauthentication_fails_closed_too(core: UserCore, ada: User, clock: FakeClock) -> None:
    lockout = core.auth._lockout
    with failing_writes(core), pytest.raises(StoreUnavailable):
        lockout.check_password(ada, WRONG)
    with pytest.raises(StoreUnavailable):
        lockout.check_password(ada, PASSWORD)
    clock.advance(seconds=core.settings.lockout_base.total_seconds())
    assert lockout.check_password(ada, PASSWORD)


def test_the_deny_set_is_bounded_and_refuses_everyone_when_full(
    core: UserCore, ada: User, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from usercore.services import auth

    monkeypatch.setattr(core.auth._lockout, "_denied", auth._DenySet(limit=3))
    with failing_writes(core):
        for name in ("u1", "u2", "u3", "u4"):
            with pytest.raises(StoreUnavailable):
                core.auth.login(name, WRONG)
    assert len(core.auth._lockout._denied) == 3
    with pytest.raises(StoreUnavailable):
        core.auth.login("ada", PASSWORD)  # full: nobody gets an uncounted guess
    clock.advance(seconds=core.settings.lockout_base.total_seconds())
    assert core.auth.login("ada", PASSWORD)


def test_a_lock_in_force_is_still_a_lock_not_a_store_error(core: UserCore, ada: User) -> None:
    for _ in range(core.settings.lockout_threshold):
        with pytest.raises(InvalidCredentials):
            core.auth.login("ada", WRONG)
    with pytest.raises(AccountLocked):
        core.auth.login("ada", PASSWORD)


def test_an_api_key_still_authenticates_while_writes_fail(
    open_core: Callable[..., UserCore],
) -> None:
    # Its last_used_at stamp is an audit write: best effort, not a reason to
    # refuse a read-only request during a disk-full or read-only incident.
    core = open_core()
    user = core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    _, key = core.api_keys.create(SYSTEM, user.id, name="ci")
    with failing_writes(core):
        principal = core.auth.authenticate_api_key(key)
    assert user.id == principal.user_id
    with core.store.transaction(readonly=True) as tx:
        stamped = tx.api_keys.list_for_user(user.id)
    assert [None] == [record.last_used_at for record in stamped]
