"""Attacks on the registration policy (issue 16 item 4).

* Closed or invite-only registration must not become an oracle for which
  addresses have accounts (OWASP ASVS 4.0.3 V2.2 / V3 account enumeration):
  same status, same body and the same work (no hashing, no store access) for
  a taken address, a new one and invalid input.
* ``email_not_verified`` must not be reachable without the right password: a
  wrong password for an unverified account answers exactly like one for a
  verified or unknown account, after the same single verification.
* Invitations are single-use, bound to one address and expire; a rejected one
  is the one opaque ``invalid_token`` whatever the reason.
* Registering permissions needs ``permissions:register``; its holder cannot
  register wildcards (which would widen every ``*`` check) or ``:own`` forms.

Timing is pinned by counting work (hashes, verifications, store transactions),
never by a clock.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import argon2
import pytest

from usercore import (
    SYSTEM,
    EmailNotVerified,
    InvalidCredentials,
    RegistrationClosed,
    Settings,
    TokenError,
    UserCore,
    ValidationError,
)

from ..services.conftest import PASSWORD, FakeClock, login_principal
from ..web.clients import ADAPTERS, Client, Outbox

with warnings.catch_warnings():
    # Starlette asks for httpx2, which is not a dependency; its TestClient works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    import fastapi.testclient  # noqa: F401

WRONG = "not the password at all"


@pytest.fixture
def argon2_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 hash and verification in the process, real or dummy."""
    calls: list[str] = []
    original_verify = argon2.PasswordHasher.verify
    original_hash = argon2.PasswordHasher.hash

    def verify(self: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        calls.append("verify")
        return original_verify(self, hash, password)

    def hash_(self: argon2.PasswordHasher, password: str | bytes, **kwargs: Any) -> str:
        calls.append("hash")
        return original_hash(self, password, **kwargs)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", verify)
    monkeypatch.setattr(argon2.PasswordHasher, "hash", hash_)
    return calls


@contextmanager
def store_transactions(core: UserCore) -> Iterator[list[bool]]:
    """Count the store transactions opened while inside."""
    opened: list[bool] = []
    store: Any = core.store
    original = store.transaction

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(True)
        return original(*args, **kwargs)

    store.transaction = counting
    try:
        yield opened
    finally:
        del store.transaction


# -- closed registration -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["closed", "invite"])
def test_closed_registration_costs_nothing_and_reads_nothing(
    open_core: Callable[..., UserCore], argon2_work: list[str], mode: str
) -> None:
    core = open_core(registration=mode)
    core.users.create(SYSTEM, email="ada@example.com", password=PASSWORD)
    for email in ("ada@example.com", "ADA@example.com", "new@example.com", "bad"):
        argon2_work.clear()
        with store_transactions(core) as opened, pytest.raises(RegistrationClosed):
            core.users.register(email=email, password=PASSWORD)
        assert ([], []) == (argon2_work, opened), email


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("mode", ["closed", "invite"])
def test_closed_registration_answers_a_taken_address_like_a_new_one(
    adapter: str, mode: str
) -> None:
    core = UserCore.open(
        "memory://", settings=Settings(argon2_profile=argon2.profiles.CHEAPEST, registration=mode)
    )
    core.users.create(SYSTEM, email="ada@example.com", username="ada", password=PASSWORD)
    client = Client(adapter, core, Outbox())
    replies = {
        (reply.status, reply.raw)
        for reply in (
            client.post("/auth/register", json=body)
            for body in (
                {"email": "ada@example.com", "password": PASSWORD},
                {"email": "new@example.com", "password": PASSWORD},
                {"email": "new@example.com", "username": "ada", "password": PASSWORD},
                {"email": "x", "password": "y"},
            )
        )
    }
    assert 1 == len(replies), replies
    (status, _), *_ = replies
    assert 403 == status


def _profile_post(adapter: str, core: UserCore, profile: str, path: str, body: Any) -> Any:
    if adapter == "fastapi":
        from fastapi.testclient import TestClient

        from usercore.web.fastapi import create_app

        reply = TestClient(create_app(core, profile=profile)).post(path, json=body)
        return reply.status_code, reply.content
    from usercore.web.flask import create_app as create_flask_app

    answer = create_flask_app(core, profile=profile).test_client().post(path, json=body)
    return answer.status_code, answer.get_data()


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("mode", ["closed", "invite"])
@pytest.mark.parametrize(
    ("profile", "path"),
    [("ums", "/auth/register"), ("classic", "/register"), ("rails", "/api/v1/auth/register")],
)
def test_closed_registration_answers_alike_on_every_profile(
    adapter: str, mode: str, profile: str, path: str
) -> None:
    """The ums profile checked the fields its document requires (``name``)
    before the registration policy: a body without them answered 400, not the
    403 every other input gets (docs/registration.md: the refusal comes before
    any rule)."""
    core = UserCore.open(
        "memory://", settings=Settings(argon2_profile=argon2.profiles.CHEAPEST, registration=mode)
    )
    core.users.create(SYSTEM, email="ada@example.com", username="ada", password=PASSWORD)
    bodies = (
        {"email": "ada@example.com", "password": PASSWORD, "name": "Ada"},
        {"email": "new@example.com", "password": PASSWORD, "name": "New"},
        {"email": "ada@example.com", "password": PASSWORD},
        {"email": "x", "password": "y"},
        {"password": PASSWORD},
    )
    replies = {_profile_post(adapter, core, profile, path, body) for body in bodies}
    assert 1 == len(replies), replies
    (status, _), *_ = replies
    assert 403 == status


# -- email_not_verified only behind the right password ------------------------------------------


@pytest.mark.parametrize("case", ["unverified", "verified", "unknown"])
def test_a_wrong_password_never_reveals_an_unverified_account(
    open_core: Callable[..., UserCore], argon2_work: list[str], case: str
) -> None:
    core = open_core(require_verified_email=True)
    ada = core.users.register(email="ada@example.com", password=PASSWORD)
    if case == "verified":
        core.auth.verify_email(core.auth.request_email_verification(SYSTEM, ada.id))
    identifier = "nobody@example.com" if case == "unknown" else "ada@example.com"
    argon2_work.clear()
    with pytest.raises(InvalidCredentials) as caught:
        core.auth.login(identifier, WRONG)
    assert ("invalid_credentials", "Invalid credentials.", {}) == (
        caught.value.code,
        caught.value.message,
        caught.value.details,
    )
    assert ["verify"] == argon2_work


def test_email_not_verified_costs_one_verification_like_any_login(
    open_core: Callable[..., UserCore], argon2_work: list[str]
) -> None:
    core = open_core(require_verified_email=True)
    core.users.register(email="ada@example.com", password=PASSWORD)
    argon2_work.clear()
    with pytest.raises(EmailNotVerified) as caught:
        core.auth.login("ada@example.com", PASSWORD)
    assert ["verify"] == argon2_work
    assert {} == caught.value.details  # the user id is for the server's code only
    assert "ada" not in caught.value.message


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_over_http_a_wrong_password_answers_alike_verified_or_not(adapter: str) -> None:
    core = UserCore.open(
        "memory://",
        settings=Settings(argon2_profile=argon2.profiles.CHEAPEST, require_verified_email=True),
    )
    ada = core.users.register(email="ada@example.com", password=PASSWORD)
    bob = core.users.register(email="bob@example.com", password=PASSWORD)
    core.auth.verify_email(core.auth.request_email_verification(SYSTEM, bob.id))
    outbox = Outbox()
    client = Client(adapter, core, outbox)
    answers = {
        (reply.status, reply.raw)
        for reply in (
            client.post("/auth/login", json={"email": email, "password": WRONG})
            for email in ("ada@example.com", "bob@example.com", "nobody@example.com")
        )
    }
    assert 1 == len(answers)
    assert [] == outbox.verifications  # no mail to a guesser's target
    assert ada.id != bob.id


# -- invitations ---------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_every_rejected_invitation_is_the_same_answer(adapter: str) -> None:
    clock = FakeClock()
    core = UserCore.open(
        "memory://",
        settings=Settings(argon2_profile=argon2.profiles.CHEAPEST, registration="invite"),
        clock=clock,
    )
    client = Client(adapter, core, Outbox())
    _, spent = core.users.invite(SYSTEM, email="spent@example.com")
    core.users.register(email="spent@example.com", password=PASSWORD, invitation=spent)
    _, live = core.users.invite(SYSTEM, email="ada@example.com")
    _, old = core.users.invite(SYSTEM, email="old@example.com")

    def attempt(email: str, token: str) -> tuple[int, bytes]:
        reply = client.post(
            "/auth/register", json={"email": email, "password": PASSWORD, "invitation": token}
        )
        return reply.status, reply.raw

    answers = {
        attempt("spent@example.com", spent),  # replay
        attempt("eve@example.com", live),  # another address
        attempt("ada@example.com", "A" * 43),  # unknown
        attempt("ada@example.com", live[:-1] + ("A" if live[-1] != "A" else "B")),  # tampered
    }
    # Eve's attempt did not spend Ada's invitation.
    assert core.users.register(email="ada@example.com", password=PASSWORD, invitation=live)
    clock.advance(days=8)
    answers.add(attempt("old@example.com", old))  # expired
    assert 1 == len(answers), answers
    status, body = answers.pop()
    assert 401 == status
    assert b'"invalid_token"' in body
    assert [] == [u for u in core.users.list(SYSTEM).items if u.email == "eve@example.com"]


def test_a_wrong_address_does_not_spend_the_invitation(open_core: Callable[..., UserCore]) -> None:
    core = open_core(registration="invite")
    _, token = core.users.invite(SYSTEM, email="ada@example.com")
    for email in ("eve@example.com", "ada@example.org", "ada+x@example.com"):
        with pytest.raises(TokenError):
            core.users.register(email=email, password=PASSWORD, invitation=token)
    assert core.users.register(email="ADA@example.com", password=PASSWORD, invitation=token)


def test_the_invitation_token_is_never_in_events_or_repr(
    open_core: Callable[..., UserCore],
) -> None:
    core = open_core(registration="invite")
    seen: list[Any] = []
    core.events.subscribe(seen.append)
    pending, token = core.users.invite(SYSTEM, email="ada@example.com")
    core.users.register(email="ada@example.com", password=PASSWORD, invitation=token)
    assert all(token not in repr(event.to_dict()) for event in seen)
    assert token not in repr(pending)


# -- who may register permissions ------------------------------------------------------------------


def test_a_permission_registrar_cannot_grant_itself_more(core: UserCore) -> None:
    """Holding permissions:register lets one name permissions, not hold them."""
    core.roles.create(SYSTEM, "registrar", permissions=["permissions:register"])
    core.users.create(SYSTEM, email="reg@example.com", password=PASSWORD, roles=["registrar"])
    registrar = login_principal(core, "reg@example.com")
    core.permissions.register(registrar, "reports:read")
    assert not core.policy.is_allowed(registrar, "reports:read")
    for name in ("*", "users:*", "reports:*", "reports:read:own"):
        with pytest.raises(ValidationError) as caught:
            core.permissions.register(registrar, name)
        assert ["name"] == list(caught.value.errors)
    assert not core.policy.is_allowed(registrar, "users:create")


def test_a_permission_registrar_cannot_grow_the_registry_without_bound(
    core: UserCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each registration copies the registry (readers see whole snapshots), so
    without a bound a holder of permissions:register made every further one
    slower and the process bigger (OWASP API Security Top 10 2023 API4)."""
    from usercore import policy

    core.roles.create(SYSTEM, "registrar", permissions=["permissions:register"])
    core.users.create(SYSTEM, email="reg@example.com", password=PASSWORD, roles=["registrar"])
    registrar = login_principal(core, "reg@example.com")
    held = len(core.permissions.list())
    monkeypatch.setattr(policy, "MAX_REGISTERED_PERMISSIONS", held + 2)
    core.permissions.register(registrar, "reports:read")
    core.permissions.register(registrar, "reports:export")
    with pytest.raises(ValidationError) as caught:
        core.permissions.register(registrar, "reports:delete")
    assert ["name"] == list(caught.value.errors)
    core.permissions.register(registrar, "reports:read")  # a known one is still harmless
    assert held + 2 == len(core.permissions.list())


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_refused_logins_cannot_flood_an_address_with_verification_mail(adapter: str) -> None:
    """Whoever registers someone else's address knows the password: each refused
    login must not mail that address again (at most one per interval)."""
    from usercore.services.auth import VERIFICATION_RESEND_INTERVAL

    clock = FakeClock()
    core = UserCore.open(
        "memory://",
        settings=Settings(argon2_profile=argon2.profiles.CHEAPEST, require_verified_email=True),
        clock=clock,
    )
    outbox = Outbox()
    client = Client(adapter, core, outbox)
    client.register("victim@example.com")
    body = {"email": "victim@example.com", "password": PASSWORD}
    for _ in range(5):
        assert 403 == client.post("/auth/login", json=body).status
    assert 2 == len(outbox.verifications)  # the registration's and one resend
    clock.now += VERIFICATION_RESEND_INTERVAL
    for _ in range(3):
        assert 403 == client.post("/auth/login", json=body).status
    assert 3 == len(outbox.verifications)


def test_an_unverified_address_cannot_mint_itself_an_api_key(
    open_core: Callable[..., UserCore],
) -> None:
    """``require_verified_email`` means no new credentials for an unverified
    address (OWASP ASVS 4.0.3 V2.5/V3.5): after changing its email, the
    session still running must not mint a key that outlives it, when refresh
    is already refused (docs/registration.md)."""
    core = open_core(require_verified_email=True)
    ada = core.users.register(email="ada@example.com", password=PASSWORD)
    core.auth.verify_email(core.auth.request_email_verification(SYSTEM, ada.id))
    actor = login_principal(core, "ada@example.com")
    core.users.update(actor, ada.id, email="ada@elsewhere.example", current_password=PASSWORD)
    with pytest.raises(EmailNotVerified):
        core.api_keys.create(actor, ada.id, name="ci", current_password=PASSWORD)
    assert [] == core.api_keys.list(SYSTEM, ada.id)
    # An administrator may still hand a key to it; once verified, so may Ada.
    core.api_keys.create(SYSTEM, ada.id, name="ops")
    core.auth.verify_email(core.auth.request_email_verification(SYSTEM, ada.id))
    core.api_keys.create(actor, ada.id, name="ci", current_password=PASSWORD)
