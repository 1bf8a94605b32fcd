"""Notifier: the four account mails, their links and recipients."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from usercore import Settings
from usercore.mail import MailTemplates, Notifier, RecordingMailer

RESET = "https://notes.example/reset?token={token}"
VERIFY = "https://notes.example/verify/{token}"
SETTINGS = Settings(
    secret_key="notifier-tests-" + "k" * 32,
    password_reset_ttl=timedelta(minutes=30),
    email_verification_ttl=timedelta(days=2),
)


@pytest.fixture
def outbox() -> RecordingMailer:
    return RecordingMailer()


@pytest.fixture
def notifier(outbox: RecordingMailer) -> Notifier:
    return Notifier(
        outbox, reset_url=RESET, verification_url=VERIFY, app_name="Notes", settings=SETTINGS
    )


def test_password_reset_mails_a_link_that_carries_the_token(
    notifier: Notifier, outbox: RecordingMailer
) -> None:
    notifier.password_reset("ada@example.com", "tok+en/=")

    [mail] = outbox.messages
    assert "ada@example.com" == mail.to
    assert "Reset your Notes password" == mail.subject
    link = "https://notes.example/reset?token=tok%2Ben%2F%3D"
    assert link in mail.text
    assert mail.html is not None
    assert f'href="{link}"' in mail.html
    assert ["tok+en/="] == parse_qs(urlsplit(link).query)["token"]
    assert "30 minutes" in mail.text


def test_email_verification_mails_its_own_link(notifier: Notifier, outbox: RecordingMailer) -> None:
    notifier.email_verification("ada@example.com", "abc")

    [mail] = outbox.messages
    assert "ada@example.com" == mail.to
    assert "https://notes.example/verify/abc" in mail.text
    assert "2 days" in mail.text


def test_email_changed_notice_goes_to_the_old_address(
    notifier: Notifier, outbox: RecordingMailer
) -> None:
    notifier.email_changed("ada@old.example", "ada@new.example")

    [mail] = outbox.messages
    assert "ada@old.example" == mail.to
    assert "ada@new.example" in mail.text
    assert "ada@old.example" in mail.text


def test_password_changed_notice(notifier: Notifier, outbox: RecordingMailer) -> None:
    notifier.password_changed("ada@example.com")

    [mail] = outbox.messages
    assert "ada@example.com" == mail.to
    assert "password" in mail.subject
    assert "https://" not in mail.text


def test_templates_may_be_given_as_a_mapping(outbox: RecordingMailer) -> None:
    notifier = Notifier(
        outbox,
        reset_url=RESET,
        verification_url=VERIFY,
        templates={"password_changed.subject": "Heads up from ${app_name}"},
    )

    notifier.password_changed("ada@example.com")

    assert "Heads up from usercore" == outbox.messages[0].subject


def test_templates_may_be_given_as_a_set(outbox: RecordingMailer) -> None:
    templates = MailTemplates({"password_changed.subject": "Changed"})
    Notifier(
        outbox, reset_url=RESET, verification_url=VERIFY, templates=templates
    ).password_changed("ada@example.com")

    assert "Changed" == outbox.messages[0].subject


def test_default_lifetimes_come_from_default_settings(outbox: RecordingMailer) -> None:
    Notifier(outbox, reset_url=RESET, verification_url=VERIFY).password_reset("a@example.com", "t")

    assert "1 hour" in outbox.messages[0].text


@pytest.mark.parametrize(
    "url",
    [
        "https://notes.example/reset",  # no placeholder
        "https://notes.example/{token}/{token}",
        "javascript:alert(1)//{token}",
        "data:text/html,{token}",
        "/relative?token={token}",
        "https://notes.example/reset?token={token} x",
        "https://notes.example/reset?token={token}\n",
    ],
)
def test_link_templates_must_be_absolute_web_urls_with_one_token(url: str) -> None:
    with pytest.raises(ValueError, match="reset_url"):
        Notifier(RecordingMailer(), reset_url=url, verification_url=VERIFY)


def test_an_empty_token_is_refused(notifier: Notifier, outbox: RecordingMailer) -> None:
    with pytest.raises(ValueError, match="token"):
        notifier.password_reset("ada@example.com", "")
    assert [] == outbox.messages


def test_repr_names_the_mailer_only(notifier: Notifier) -> None:
    assert "Notifier(mailer=RecordingMailer(messages=0), app_name='Notes')" == repr(notifier)
