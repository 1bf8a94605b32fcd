"""SmtpMailer against a real SMTP server (aiosmtpd): plain, STARTTLS, implicit TLS, AUTH."""

from __future__ import annotations

import logging
import re
import ssl
from urllib.parse import parse_qs, quote, urlsplit

import argon2
import pytest

from tests.mail.smtp_server import SMTP_PASSWORD, SMTP_USER, Certificate, Server, smtp_server
from usercore import Settings, UserCore
from usercore.mail import MailError, MailMessage, Notifier, SmtpMailer, mailer_from_url

SENDER = "Notes <no-reply@notes.example>"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase, long"


def message(**changes: str) -> MailMessage:
    fields = {
        "to": "ada@example.com",
        "subject": "Hello Ada",
        "text": "plain body",
        "html": "<p>html body</p>",
    }
    fields.update(changes)
    return MailMessage(**fields)


def tls_url(server: Server, scheme: str, query: str = "starttls=1") -> str:
    auth = f"{SMTP_USER}:{quote(SMTP_PASSWORD, safe='')}"
    return (
        f"{scheme}://{auth}@{server.host}:{server.port}?from={quote(SENDER)}&helo=localhost&{query}"
    ).rstrip("&")


def test_plain_smtp_delivers_both_parts_to_the_recipient(plain_server: Server) -> None:
    mailer = SmtpMailer(
        plain_server.host,
        plain_server.port,
        sender=SENDER,
        security="none",
        local_hostname="localhost",
    )

    mailer.send(message())

    [got] = plain_server.inbox.received
    assert "no-reply@notes.example" == got.mail_from
    assert ["ada@example.com"] == got.rcpt_tos
    assert "ada@example.com" == got.message["To"]
    assert SENDER == got.message["From"]
    assert "Hello Ada" == got.message["Subject"]
    assert got.message["Message-ID"].endswith("@notes.example>")
    assert got.message["Date"]
    assert "plain body\n" == got.part("plain")
    assert "<p>html body</p>\n" == got.part("html")
    assert not got.tls


def test_an_international_address_is_delivered_with_smtputf8(plain_server: Server) -> None:
    mailer = SmtpMailer(plain_server.host, plain_server.port, sender=SENDER, security="none")

    mailer.send(message(to="jörg@bücher.example", subject="Grüße"))

    [got] = plain_server.inbox.received
    assert ["jörg@bücher.example"] == got.rcpt_tos
    assert "jörg@bücher.example" == got.message["To"]
    assert "Grüße" == got.message["Subject"]


def test_starttls_with_auth_delivers_over_tls(
    starttls_server: Server, certificate: Certificate
) -> None:
    mailer = SmtpMailer.from_url(
        tls_url(starttls_server, "smtp"), ssl_context=certificate.client_context()
    )
    assert "starttls" == mailer.security

    mailer.send(message())

    [got] = starttls_server.inbox.received
    assert got.tls
    assert SMTP_USER == got.authenticated_as
    assert ["ada@example.com"] == got.rcpt_tos


# aiosmtpd warns since it cannot see that an implicit-TLS port is encrypted.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_implicit_tls_with_auth_delivers(
    implicit_tls_server: Server, certificate: Certificate
) -> None:
    mailer = mailer_from_url(
        tls_url(implicit_tls_server, "smtps", query=""),
        ssl_context=certificate.client_context(),
    )

    mailer.send(message(subject="Über TLS"))

    [got] = implicit_tls_server.inbox.received
    assert got.tls
    assert SMTP_USER == got.authenticated_as
    assert "Über TLS" == got.message["Subject"]


def test_a_password_reset_mail_arrives_and_its_link_resets_the_password(
    starttls_server: Server, certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole flow: core issues a token, the mail carries it, the link's token resets."""
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        secret_key="mail-tests-" + "k" * 32, argon2_profile=argon2.profiles.CHEAPEST
    )
    mailer = SmtpMailer.from_url(
        tls_url(starttls_server, "smtp"), ssl_context=certificate.client_context()
    )
    notifier = Notifier(
        mailer,
        reset_url="https://notes.example/reset?token={token}",
        verification_url="https://notes.example/verify?token={token}",
        app_name="Notes",
        settings=settings,
    )
    with UserCore.open("memory://", settings=settings) as core:
        core.users.register(email="ada@example.com", password=PASSWORD)
        token = core.auth.request_password_reset("ada@example.com")
        assert token is not None
        notifier.password_reset("ada@example.com", token)

        [got] = starttls_server.inbox.received
        assert ["ada@example.com"] == got.rcpt_tos
        assert "Reset your Notes password" == got.message["Subject"]
        text_links = re.findall(r"https://notes\.example/reset\?\S+", got.part("plain"))
        html_links = re.findall(r'href="([^"]+)"', got.part("html"))
        assert text_links == [link.replace("&amp;", "&") for link in html_links]
        [link] = text_links
        [mailed_token] = parse_qs(urlsplit(link).query)["token"]

        core.auth.reset_password(mailed_token, NEW_PASSWORD)

        assert core.auth.login("ada@example.com", NEW_PASSWORD).access_token

    # usercore's own logs never show the token, the link or the SMTP password.
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("usercore"))
    assert "ada@example.com" in ours  # the mail was logged...
    for secret in (token, quote(token, safe=""), SMTP_PASSWORD, "notes.example/reset"):
        assert secret not in ours  # ...without its secrets


def test_starttls_is_never_skipped_when_the_server_does_not_offer_it(
    plain_server: Server,
) -> None:
    mailer = SmtpMailer(
        plain_server.host, plain_server.port, sender=SENDER, local_hostname="localhost"
    )

    with pytest.raises(MailError) as caught:
        mailer.send(message())

    assert "starttls" == caught.value.details["step"]
    assert [] == plain_server.inbox.received


def test_an_untrusted_certificate_fails_before_any_credential_is_sent(
    starttls_server: Server,
) -> None:
    # The default context trusts the system CAs only, not the self-signed test certificate.
    mailer = SmtpMailer.from_url(tls_url(starttls_server, "smtp"))

    with pytest.raises(MailError) as caught:
        mailer.send(message())

    assert "starttls" == caught.value.details["step"]
    assert [] == starttls_server.inbox.logins
    assert [] == starttls_server.inbox.received


def test_a_wrong_password_is_an_error_that_never_shows_the_password(
    starttls_server: Server, certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-" + SMTP_PASSWORD
    url = tls_url(starttls_server, "smtp").replace(quote(SMTP_PASSWORD, safe=""), quote(wrong))
    mailer = SmtpMailer.from_url(url, ssl_context=certificate.client_context())
    caplog.set_level(logging.DEBUG)

    with pytest.raises(MailError) as caught:
        mailer.send(message())

    error = caught.value
    assert "login" == error.details["step"]
    assert 535 == error.details["smtp_code"]
    assert error.__cause__ is None
    assert error.__suppress_context__
    for shown in (str(error), repr(error), repr(error.to_dict()), repr(mailer), caplog.text):
        assert wrong not in shown
        assert SMTP_PASSWORD not in shown
    assert [] == starttls_server.inbox.received


def test_an_unreachable_server_is_a_mail_error(certificate: Certificate) -> None:
    with smtp_server() as server:
        host, port = server.host, server.port
    mailer = SmtpMailer(host, port, sender=SENDER, security="none", timeout=2)

    with pytest.raises(MailError) as caught:
        mailer.send(message())

    assert "connect" == caught.value.details["step"]


def test_the_default_tls_context_verifies_certificates() -> None:
    mailer = SmtpMailer("mail.example", sender=SENDER)
    context = mailer._context()
    assert ssl.CERT_REQUIRED == context.verify_mode
    assert context.check_hostname
