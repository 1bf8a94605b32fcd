"""Attacks that make the server mail an address again and again.

* ``POST /auth/password-reset`` needs no account: repeated for one address it
  mailed that mailbox once per request, each new token voiding the one before
  (so a loop kept the owner's link dead: no account recovery), and filled the
  server's mail queue (``BackgroundMailer``, 1,000 mails) so nobody else's
  reset or verification mail was sent.  OWASP Forgot Password Cheat Sheet:
  "rate-limiting on a per-account basis"; OWASP ASVS 4.0.3 V11.1.4
  (anti-automation).  Now at most one reset token per address per
  ``RESET_REQUEST_INTERVAL``; a request within it is answered the same and
  does the same store work for a known and an unknown address.
* ``POST /auth/verify-email`` (an account's own request) mailed its address
  on every call: whoever registered somebody else's address could flood it,
  which the resend limit of refused logins was meant to prevent.  Now it
  shares that limit (one per ``VERIFICATION_RESEND_INTERVAL``).
"""

from __future__ import annotations

from typing import Any

import argon2
import pytest

from usercore import Settings, TokenError, User, UserCore
from usercore.services.auth import RESET_REQUEST_INTERVAL, VERIFICATION_RESEND_INTERVAL

from ..services.conftest import FakeClock
from ..web.clients import ADAPTERS, Client, Outbox
from .test_auth_sessions_and_reset import CountingStore, counting  # noqa: F401


def test_a_second_reset_request_within_the_interval_issues_no_token(
    core: UserCore, ada: User, clock: FakeClock
) -> None:
    first = core.auth.request_password_reset("ada@example.com")
    assert first is not None
    assert core.auth.request_password_reset("ADA@example.com") is None  # the same address
    clock.advance(seconds=RESET_REQUEST_INTERVAL.total_seconds() - 1)
    assert core.auth.request_password_reset("ada@example.com") is None
    core.auth.reset_password(first, "a fresh new passphrase")  # still usable


def test_a_reset_request_after_the_interval_issues_a_new_token(
    core: UserCore, ada: User, clock: FakeClock
) -> None:
    first = core.auth.request_password_reset("ada@example.com")
    clock.advance(seconds=RESET_REQUEST_INTERVAL.total_seconds())
    second = core.auth.request_password_reset("ada@example.com")
    assert second is not None
    with pytest.raises(TokenError):
        core.auth.reset_password(first, "a fresh new passphrase")  # type: ignore[arg-type]
    core.auth.reset_password(second, "a fresh new passphrase")


def test_a_throttled_reset_request_does_the_work_of_an_unknown_address(
    core: UserCore,
    ada: User,
    counting: tuple[UserCore, CountingStore],  # noqa: F811
) -> None:
    """Throttled and first requests for a known and an unknown address all do
    the same store work: the limit tells nothing about which addresses have
    accounts, nor whether one was asked for a moment ago (OWASP ASVS 4.0.3 V2.5)."""
    counted, store = counting
    store.log.clear()
    assert counted.auth.request_password_reset("ada@example.com") is not None
    first_known = list(store.log)
    store.log.clear()
    assert counted.auth.request_password_reset("nobody@example.com") is None
    assert first_known == store.log
    store.log.clear()
    assert counted.auth.request_password_reset("ada@example.com") is None
    throttled_known = list(store.log)
    store.log.clear()
    assert counted.auth.request_password_reset("nobody@example.com") is None
    assert first_known == throttled_known == store.log


def _client(adapter: str, clock: FakeClock, outbox: Outbox, **settings: Any) -> Client:
    core = UserCore.open(
        "memory://",
        settings=Settings(argon2_profile=argon2.profiles.CHEAPEST, **settings),
        clock=clock,
    )
    return Client(adapter, core, outbox)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_reset_flood_mails_the_address_once(adapter: str, clock: FakeClock) -> None:
    outbox = Outbox()
    client = _client(adapter, clock, outbox)
    client.register("ada@example.com")
    for _ in range(20):
        reply = client.post("/auth/password-reset", json={"email": "ada@example.com"})
        assert 202 == reply.status
    assert 1 == len(outbox.resets)
    (_, token), *_ = outbox.resets
    confirmed = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "a fresh passphrase"}
    )
    assert 204 == confirmed.status


def _signed_in(adapter: str, clock: FakeClock) -> tuple[Client, Outbox, str, int]:
    """A client, its outbox, and the access token and id of a new account
    registered with somebody else's address (victim@example.com)."""
    outbox = Outbox()
    client = _client(adapter, clock, outbox)
    user_id = client.register("victim@example.com")["id"]
    return client, outbox, client.login("victim@example.com"), user_id


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_account_cannot_flood_its_address_with_verification_mails(
    adapter: str, clock: FakeClock
) -> None:
    client, outbox, token, _ = _signed_in(adapter, clock)
    for _ in range(20):
        reply = client.post("/auth/verify-email", token=token)
        assert 202 == reply.status
    assert 1 == len(outbox.verifications)
    clock.advance(seconds=VERIFICATION_RESEND_INTERVAL.total_seconds())
    assert 202 == client.post("/auth/verify-email", token=token).status
    assert 2 == len(outbox.verifications)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_throttled_verification_request_keeps_the_mailed_token_valid(
    adapter: str, clock: FakeClock
) -> None:
    client, outbox, token, user_id = _signed_in(adapter, clock)
    client.post("/auth/verify-email", token=token)
    client.post("/auth/verify-email", token=token)
    [(_, mailed)] = outbox.verifications
    confirmed = client.post("/auth/verify-email/confirm", json={"token": mailed})
    assert (200, user_id, True) == (
        confirmed.status,
        confirmed.body["id"],
        confirmed.body["email_verified"],
    )
