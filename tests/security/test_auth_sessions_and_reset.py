"""Issue 12 items 11 and 18: reset requests do the same store work for known and
unknown addresses; logout ends the session, not just the access token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from usercore import Principal, TokenError, User, UserCore
from usercore.ports import Store, UnitOfWork

from ..services.conftest import PASSWORD, FakeClock, make_settings

# -- item 11: password-reset requests -------------------------------------------------


class _Recorder:
    """Wraps a repository: records "read"/"write" for each call, by method name."""

    def __init__(self, inner: Any, log: list[str]) -> None:
        self._inner = inner
        self._log = log

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            read = name.startswith(("get", "list", "count", "is_", "version", "schema"))
            self._log.append("read" if read else "write")
            return attribute(*args, **kwargs)

        return call


class CountingStore:
    """A store whose units of work record every repository operation."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.log: list[str] = []

    @contextmanager
    def transaction(
        self, *, readonly: bool = False, single_read: bool = False
    ) -> Iterator[UnitOfWork]:
        self.log.append("begin-readonly" if readonly or single_read else "begin-write")
        with self.inner.transaction(readonly=readonly, single_read=single_read) as tx:
            yield _Tx(tx, self.log)  # type: ignore[misc]

    def close(self) -> None:
        self.inner.close()


class _Tx:
    def __init__(self, tx: UnitOfWork, log: list[str]) -> None:
        self._tx = tx
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return _Recorder(getattr(self._tx, name), self._log)


@pytest.fixture
def counting(core: UserCore, clock: FakeClock) -> tuple[UserCore, CountingStore]:
    store = CountingStore(core.store)
    counted = UserCore(store, make_settings(), clock=clock)  # type: ignore[arg-type]
    return counted, store


@pytest.mark.parametrize("unknown", ["nobody@example.com", "inactive"])
def test_known_and_unknown_reset_requests_do_the_same_store_work(
    core: UserCore,
    ada: User,
    admin: Principal,
    counting: tuple[UserCore, CountingStore],
    unknown: str,
) -> None:
    """Before the fix the known path wrote a token row the unknown path did not
    (1.32 ms vs 0.95 ms, 93-97 % single-request accuracy).  OWASP Forgot
    Password Cheat Sheet: "consistent response time"; ASVS 4.0.3 V2.5."""
    counted, store = counting
    if unknown == "inactive":
        other = core.users.register(email="gone@example.com", password=PASSWORD)
        core.users.set_status(admin, other.id, "inactive")
        unknown = "gone@example.com"
    store.log.clear()
    assert counted.auth.request_password_reset("ada@example.com") is not None
    known_work = list(store.log)
    store.log.clear()
    assert counted.auth.request_password_reset(unknown) is None
    assert known_work == store.log
    assert known_work.count("write") >= 2  # the token row is among them


# -- item 18: logout ends the session ----------------------------------------------------


def test_logout_without_refresh_token_ends_that_sessions_refresh_family(
    core: UserCore, ada: User
) -> None:
    """Before the fix the refresh token of the session stayed usable (OWASP ASVS
    4.0.3 V3.3.1: logout invalidates the session; RFC 9700 §4.14)."""
    pair = core.auth.login("ada", PASSWORD)
    core.auth.logout(pair.access_token)
    with pytest.raises(TokenError):
        core.auth.refresh(pair.refresh_token)
    with pytest.raises(TokenError):
        core.auth.authenticate(pair.access_token)


def test_logout_with_a_rotated_access_token_ends_the_same_family(core: UserCore, ada: User) -> None:
    first = core.auth.login("ada", PASSWORD)
    rotated = core.auth.refresh(first.refresh_token)
    other = core.auth.login("ada", PASSWORD)  # another device
    core.auth.logout(rotated.access_token)
    with pytest.raises(TokenError):
        core.auth.refresh(rotated.refresh_token)
    assert core.auth.refresh(other.refresh_token)  # other sessions go on


def test_access_tokens_name_their_session(core: UserCore, ada: User) -> None:
    codec = core._ctx.sessions.codec
    first = core.auth.login("ada", PASSWORD)
    rotated = core.auth.refresh(first.refresh_token)
    second = core.auth.login("ada", PASSWORD)
    sid: Callable[[str], str | None] = lambda token: codec.verify(token).family_id  # noqa: E731
    assert sid(first.access_token) is not None
    assert sid(first.access_token) == sid(rotated.access_token)
    assert sid(first.access_token) != sid(second.access_token)
