"""``core.auth``: login, enumeration resistance, lockout, sessions, reset, verification."""

from __future__ import annotations

import dataclasses

import argon2
import pytest

from usercore import (
    SYSTEM,
    InvalidCredentials,
    Principal,
    TokenError,
    User,
    UserCore,
    ValidationError,
)
from usercore.services.auth import RESET_REQUEST_INTERVAL
from usercore.services.events import Event

from .conftest import PASSWORD, FakeClock, make_settings


def test_login_by_email_or_username_returns_a_bearer_pair(
    core: UserCore, ada: User, events: list[Event]
) -> None:
    by_username = core.auth.login("ada", PASSWORD)
    by_email = core.auth.login(" ADA@example.com ", PASSWORD)
    assert "bearer" == by_email.token_type
    assert 15 * 60 == by_email.expires_in
    assert ada.id == core.auth.authenticate(by_username.access_token).user_id
    assert ada.id == core.auth.authenticate(by_email.access_token).user_id
    assert ["auth.login_succeeded"] * 2 == [e.name for e in events]


def test_login_records_last_login(core: UserCore, ada: User, clock: FakeClock) -> None:
    core.auth.login("ada", PASSWORD)
    assert clock() == core.users.get(SYSTEM, ada.id).last_login_at


@pytest.mark.parametrize(("identifier", "password"), [(None, PASSWORD), ("ada", None), (7, 7)])
def test_login_with_wrong_types_is_invalid_credentials(
    core: UserCore, ada: User, identifier: object, password: object
) -> None:
    with pytest.raises(InvalidCredentials):
        core.auth.login(identifier, password)  # type: ignore[arg-type]


def test_login_failure_events_carry_the_reason_and_never_the_password(
    core: UserCore, ada: User, events: list[Event]
) -> None:
    with pytest.raises(InvalidCredentials):
        core.auth.login("ada", "not the password at all")
    with pytest.raises(InvalidCredentials):
        core.auth.login("ghost", "ghost's secret phrase")
    failed = [e for e in events if e.name == "auth.login_failed"]
    assert ["bad_password", "unknown_account"] == [e.data["reason"] for e in failed]
    text = repr([e.to_dict() for e in events])
    assert "not the password at all" not in text
    assert "ghost's secret phrase" not in text


def test_successful_login_upgrades_an_outdated_hash(core: UserCore, clock: FakeClock) -> None:
    user = core.users.register(email="ada@example.com", password=PASSWORD)
    old_hash = user.password_hash
    stronger = dataclasses.replace(argon2.profiles.CHEAPEST, time_cost=2)
    # A second facade on the same store, configured with stronger parameters.
    new = UserCore(core.store, make_settings(argon2_profile=stronger), clock=clock)
    new.auth.login("ada@example.com", PASSWORD)
    upgraded = new.users.get(SYSTEM, user.id).password_hash
    assert upgraded != old_hash
    assert upgraded is not None
    assert "t=2" in upgraded
    assert new.auth.login("ada@example.com", PASSWORD)


# -- refresh and logout -----------------------------------------------------------


def test_refresh_rotates_and_a_replay_revokes_the_family(core: UserCore, ada: User) -> None:
    first = core.auth.login("ada", PASSWORD)
    second = core.auth.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert ada.id == core.auth.authenticate(second.access_token).user_id
    with pytest.raises(TokenError):
        core.auth.refresh(first.refresh_token)  # replay: the family dies
    with pytest.raises(TokenError):
        core.auth.refresh(second.refresh_token)


def test_a_refresh_token_expires_with_its_family(
    core: UserCore, ada: User, clock: FakeClock
) -> None:
    pair = core.auth.login("ada", PASSWORD)
    clock.advance(days=13)
    pair = core.auth.refresh(pair.refresh_token)
    clock.advance(days=1)
    with pytest.raises(TokenError):
        core.auth.refresh(pair.refresh_token)


def test_refresh_and_access_tokens_are_not_interchangeable(core: UserCore, ada: User) -> None:
    pair = core.auth.login("ada", PASSWORD)
    with pytest.raises(TokenError):
        core.auth.authenticate(pair.refresh_token)
    with pytest.raises(TokenError):
        core.auth.refresh(pair.access_token)


def test_logout_kills_the_access_token_before_it_expires(
    core: UserCore, ada: User, events: list[Event]
) -> None:
    pair = core.auth.login("ada", PASSWORD)
    other = core.auth.login("ada", PASSWORD)
    core.auth.logout(pair.access_token, pair.refresh_token)
    with pytest.raises(TokenError):
        core.auth.authenticate(pair.access_token)
    with pytest.raises(TokenError):
        core.auth.refresh(pair.refresh_token)
    assert ada.id == core.auth.authenticate(other.access_token).user_id
    assert "token.revoked" in [e.name for e in events]


def test_logout_all_kills_every_session(core: UserCore, ada: User) -> None:
    pairs = [core.auth.login("ada", PASSWORD) for _ in range(3)]
    me = core.auth.authenticate(pairs[0].access_token)
    core.auth.logout_all(me, ada.id)
    for pair in pairs:
        with pytest.raises(TokenError):
            core.auth.authenticate(pair.access_token)
        with pytest.raises(TokenError):
            core.auth.refresh(pair.refresh_token)
    assert core.auth.login("ada", PASSWORD)


def test_expired_revocations_are_purged(core: UserCore, ada: User, clock: FakeClock) -> None:
    pair = core.auth.login("ada", PASSWORD)
    core.auth.logout(pair.access_token)
    assert 0 == core.purge_expired() - core.purge_expired()  # idempotent
    clock.advance(days=15)
    core.auth.login("ada", PASSWORD)
    clock.advance(days=15)
    assert core.purge_expired() >= 1


# -- password reset and email verification ---------------------------------------


def test_password_reset_round_trip_is_single_use(core: UserCore, ada: User) -> None:
    session = core.auth.login("ada", PASSWORD)
    token = core.auth.request_password_reset("ADA@example.com")
    assert token is not None
    core.auth.reset_password(token, "a fresh new passphrase")
    assert core.auth.login("ada", "a fresh new passphrase")
    with pytest.raises(TokenError):
        core.auth.authenticate(session.access_token)
    with pytest.raises(TokenError):
        core.auth.reset_password(token, "yet another passphrase")


def test_password_reset_for_an_unknown_email_returns_none(core: UserCore) -> None:
    assert core.auth.request_password_reset("nobody@example.com") is None
    assert core.auth.request_password_reset(12) is None  # type: ignore[arg-type]


def test_a_rejected_new_password_leaves_the_reset_token_usable(core: UserCore, ada: User) -> None:
    token = core.auth.request_password_reset("ada@example.com")
    assert token is not None
    with pytest.raises(ValidationError):
        core.auth.reset_password(token, "short")
    core.auth.reset_password(token, "a fresh new passphrase")


def test_a_reset_token_expires_after_an_hour(core: UserCore, ada: User, clock: FakeClock) -> None:
    token = core.auth.request_password_reset("ada@example.com")
    assert token is not None
    clock.advance(hours=1)
    with pytest.raises(TokenError):
        core.auth.reset_password(token, "a fresh new passphrase")


def test_a_reset_token_dies_when_the_password_changes(
    core: UserCore, ada: User, admin: Principal
) -> None:
    token = core.auth.request_password_reset("ada@example.com")
    assert token is not None
    core.users.set_password(admin, ada.id, "changed by the admin")
    with pytest.raises(TokenError):
        core.auth.reset_password(token, "a fresh new passphrase")


def test_a_new_reset_request_voids_the_previous_token(
    core: UserCore, ada: User, clock: FakeClock
) -> None:
    first = core.auth.request_password_reset("ada@example.com")
    clock.advance(seconds=RESET_REQUEST_INTERVAL.total_seconds())  # one per address per interval
    second = core.auth.request_password_reset("ada@example.com")
    assert first is not None
    assert second is not None
    with pytest.raises(TokenError):
        core.auth.reset_password(first, "a fresh new passphrase")
    core.auth.reset_password(second, "a fresh new passphrase")


def test_tokens_are_bound_to_their_purpose(core: UserCore, ada: User, ada_p: Principal) -> None:
    verification = core.auth.request_email_verification(ada_p, ada.id)
    with pytest.raises(TokenError):
        core.auth.reset_password(verification, "a fresh new passphrase")
    reset = core.auth.request_password_reset("ada@example.com")
    with pytest.raises(TokenError):
        core.auth.verify_email(reset)  # type: ignore[arg-type]


def test_email_verification_round_trip(
    core: UserCore, ada: User, ada_p: Principal, clock: FakeClock
) -> None:
    token = core.auth.request_email_verification(ada_p, ada.id)
    assert core.auth.verify_email(token).email_verified
    with pytest.raises(TokenError):
        core.auth.verify_email(token)
    late = core.auth.request_email_verification(ada_p, ada.id)
    clock.advance(hours=24)
    with pytest.raises(TokenError):
        core.auth.verify_email(late)


@pytest.mark.parametrize("garbage", ["", "x" * 500, None, 5, "not-a-token"])
def test_garbage_one_time_tokens_are_token_errors(
    core: UserCore, ada: User, garbage: object
) -> None:
    with pytest.raises(TokenError):
        core.auth.verify_email(garbage)  # type: ignore[arg-type]
    with pytest.raises(TokenError):
        core.auth.reset_password(garbage, "a fresh new passphrase")  # type: ignore[arg-type]
