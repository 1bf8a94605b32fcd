"""Registration can hide whether an email is taken (issue 12 item 19).

OWASP ASVS 4.0.3 V2.2 / V3 account enumeration and the OWASP Authentication
Cheat Sheet ("Account creation"): with
``Settings.registration_enumeration_safe`` a taken address gets the same
202 answer as a new one, after the same hashing work, and the owner of the
taken address is told through the ``user.duplicate_registration_attempted`` event.  The
default stays False (409 for a taken email), as SECURITY.md explains.
"""

from __future__ import annotations

from collections.abc import Callable

from usercore import SYSTEM, CustomField, Settings, UserCore
from usercore.services.events import Event

from ..services.conftest import PASSWORD
from ..web.clients import Client, Outbox


def register(
    core: UserCore, email: str, username: str | None = None, **custom: object
) -> tuple[int, object]:
    body: dict[str, object] = {"email": email, "password": PASSWORD, **custom}
    if username is not None:
        body["username"] = username
    reply = Client("flask", core, Outbox()).post("/auth/register", json=body)
    return reply.status, reply.body


def test_the_default_keeps_answering_409_for_a_taken_email(core: UserCore) -> None:
    assert not Settings().registration_enumeration_safe
    assert 201 == register(core, "ada@example.com")[0]
    assert 409 == register(core, "ADA@example.com")[0]


def test_safe_mode_answers_a_taken_email_like_a_new_one(
    open_core: Callable[..., UserCore],
) -> None:
    core = open_core(registration_enumeration_safe=True)
    events: list[Event] = []
    core.events.subscribe(events.append)
    new = register(core, "ada@example.com")
    taken = register(core, "ADA@example.com")
    assert new == taken
    assert 202 == new[0]
    duplicates = [
        event for event in events if event.name == "user.duplicate_registration_attempted"
    ]
    assert [{"email": "ada@example.com"}] == [dict(event.data) for event in duplicates]
    assert ["ada@example.com"] == [user.email for user in core.users.list(SYSTEM).items]


def test_safe_mode_still_names_a_taken_username(open_core: Callable[..., UserCore]) -> None:
    """Usernames are public handles: a clash must be reported so people pick another."""
    core = open_core(registration_enumeration_safe=True)
    assert 202 == register(core, "ada@example.com", "ada")[0]
    assert 409 == register(core, "other@example.com", "ada")[0]


def test_a_taken_handle_is_no_oracle_for_a_taken_email(open_core: Callable[..., UserCore]) -> None:
    """An attacker who knows one taken username (or unique custom field value:
    their own) sends it with a guessed address.  Were the email's conflict
    reported first, that would answer 202 exactly when the address is
    registered (OWASP ASVS 4.0.3 V2.2, OWASP Authentication Cheat Sheet
    "Account creation"): the handle's 409 must not depend on the email."""
    badge = CustomField(name="badge", unique=True, registrable=True)
    core = open_core(registration_enumeration_safe=True, custom_fields=(badge,))
    assert 202 == register(core, "victim@example.com", "victim", badge="B-1")[0]
    assert 202 == register(core, "mallory@example.com", "mallory", badge="B-2")[0]
    for handle in ({"username": "mallory"}, {"badge": "B-2"}):
        registered = register(core, "victim@example.com", **handle)  # type: ignore[arg-type]
        unknown = register(core, "nobody@example.com", **handle)  # type: ignore[arg-type]
        assert registered == unknown
        assert 409 == registered[0]
    assert 2 == len(core.users.list(SYSTEM).items)
