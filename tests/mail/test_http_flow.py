"""Over HTTP (FastAPI and Flask): account mails reach a real SMTP server and their links work.

Wired only through the web layer's existing hooks, the way an app does it:
``create_app(core, on_password_reset=notifier.password_reset, ...)``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.mail.smtp_server import Certificate, Received, Server
from tests.mail.test_smtp import tls_url
from tests.web.clients import ADAPTERS, PASSWORD, Client, Outbox, make_core
from usercore import User, UserCore
from usercore.mail import BackgroundMailer, Notifier, SmtpMailer

pytest.importorskip("fastapi")
pytest.importorskip("flask")
with warnings.catch_warnings():
    # Starlette asks for httpx2, which is not a dependency; its TestClient works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    import fastapi.testclient  # noqa: F401

NEW_PASSWORD = "a brand new passphrase, long"


class MailingOutbox(Outbox):
    """The web test client's hooks, delivering through a Notifier instead of a list."""

    def __init__(self, notifier: Notifier) -> None:
        super().__init__()
        self.notifier = notifier

    def reset(self, email: str, token: str) -> None:
        self.notifier.password_reset(email, token)

    def verify(self, user: User, token: str) -> None:
        assert user.email is not None
        self.notifier.email_verification(user.email, token)


@pytest.fixture
def core() -> Iterator[UserCore]:
    with make_core() as core:
        yield core


@pytest.fixture
def mailer(starttls_server: Server, certificate: Certificate) -> Iterator[BackgroundMailer]:
    smtp = SmtpMailer.from_url(
        tls_url(starttls_server, "smtp"), ssl_context=certificate.client_context()
    )
    mailer = BackgroundMailer(smtp)
    yield mailer
    mailer.close(timeout=10)


@pytest.fixture(params=ADAPTERS)
def client(request: pytest.FixtureRequest, core: UserCore, mailer: BackgroundMailer) -> Client:
    notifier = Notifier(
        mailer,
        reset_url="https://notes.example/reset?token={token}",
        verification_url="https://notes.example/verify?token={token}",
        app_name="Notes",
        settings=core.settings,
    )
    return Client(request.param, core, MailingOutbox(notifier))


def link_token(mail: Received, page: str) -> str:
    [link] = re.findall(rf"https://notes\.example/{page}\?\S+", mail.part("plain"))
    [token] = parse_qs(urlsplit(link).query)["token"]
    return token


def test_a_reset_mail_reaches_the_smtp_server_and_its_link_resets_the_password(
    client: Client, mailer: BackgroundMailer, starttls_server: Server
) -> None:
    client.register("ada@example.com")

    known = client.post("/auth/password-reset", json={"email": "ada@example.com"})
    unknown = client.post("/auth/password-reset", json={"email": "nobody@example.com"})
    assert mailer.close(timeout=10)

    assert known.status == unknown.status == 202
    assert known.body == unknown.body
    [mail] = starttls_server.inbox.received  # none for the unknown address
    assert ["ada@example.com"] == mail.rcpt_tos
    assert "Reset your Notes password" == mail.message["Subject"]

    confirmed = client.post(
        "/auth/password-reset/confirm",
        json={"token": link_token(mail, "reset"), "new_password": NEW_PASSWORD},
    )

    assert 204 == confirmed.status
    old = client.post("/auth/login", json={"identifier": "ada@example.com", "password": PASSWORD})
    assert 401 == old.status
    assert client.login("ada@example.com", NEW_PASSWORD)


def test_a_verification_mail_link_verifies_the_address(
    client: Client, mailer: BackgroundMailer, starttls_server: Server
) -> None:
    client.register("ada@example.com")
    token = client.login("ada@example.com")

    assert 202 == client.post("/auth/verify-email", token=token).status
    assert mailer.close(timeout=10)
    [mail] = starttls_server.inbox.received

    verified = client.post("/auth/verify-email/confirm", json={"token": link_token(mail, "verify")})

    assert 200 == verified.status
    assert verified.body["email_verified"] is True
