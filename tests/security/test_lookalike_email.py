"""One-time tokens go to, and bind to, the exact stored address (issue 12 item 2).

``john@straße.de`` and ``john@strasse.de`` fold to one uniqueness key but are
different mailboxes (under IDNA2008 even different domains).  A reset asked
for the look-alike must be delivered to the stored address only, and a token
issued for one address must not verify another (the class of Django's
CVE-2019-19844; OWASP ASVS 4.0.3 V2.5.2 / V2.5.7 account recovery).
"""

from __future__ import annotations

import pytest

from usercore import SYSTEM, TokenError, User, UserCore

from ..services.conftest import PASSWORD
from ..web.clients import Client, Outbox


@pytest.fixture
def john(core: UserCore) -> User:
    return core.users.register(email="john@strasse.de", password=PASSWORD)


def test_a_reset_asked_for_a_look_alike_goes_to_the_stored_address(
    core: UserCore, john: User
) -> None:
    token = core.auth.request_password_reset("john@straße.de")
    assert token is not None
    assert "john@strasse.de" == core.auth.reset_recipient(token)


def test_the_http_hook_receives_the_stored_address_never_the_typed_one(
    core: UserCore, john: User
) -> None:
    outbox = Outbox()
    reply = Client("flask", core, outbox).post(
        "/auth/password-reset", json={"email": "JOHN@straße.de"}
    )
    assert 202 == reply.status
    assert ["john@strasse.de"] == [email for email, _ in outbox.resets]


def test_reset_recipient_refuses_anything_but_a_live_reset_token(
    core: UserCore, john: User
) -> None:
    verification = core.auth.request_email_verification(SYSTEM, john.id)
    with pytest.raises(TokenError):
        core.auth.reset_recipient(verification)
    with pytest.raises(TokenError):
        core.auth.reset_recipient("not-a-token")


def test_a_verification_token_does_not_verify_a_look_alike_address(
    core: UserCore, john: User
) -> None:
    token = core.auth.request_email_verification(SYSTEM, john.id)
    core.users.update(SYSTEM, john.id, email="john@straße.de")
    with pytest.raises(TokenError):
        core.auth.verify_email(token)
    assert not core.users.get(SYSTEM, john.id).email_verified


def test_a_reset_token_dies_when_the_address_changes_to_a_look_alike(
    core: UserCore, john: User
) -> None:
    token = core.auth.request_password_reset("john@strasse.de")
    assert token is not None
    core.users.update(SYSTEM, john.id, email="john@straße.de")
    with pytest.raises(TokenError):
        core.auth.reset_password(token, "a brand new passphrase")
