"""Adversarial tests for the mail package: each one is an attack that once worked.

Header injection (CWE-93; OWASP ASVS 4.0.3 V5.2.3) through RFC 2047 encoded
words, recipient confusion ("splitting the email atom"), and resource limits.
"""

from __future__ import annotations

import threading

import pytest

from tests.mail.test_background import GatedMailer
from usercore.errors import ValidationError
from usercore.mail import BackgroundMailer, MailMessage, SmtpMailer
from usercore.mail._message import to_mime

SENDER = "app@example.com"


def mime_bytes(message: MailMessage) -> bytes:
    return to_mime(message, SENDER).as_bytes()


# A CR LF, a U+2028 line separator and a NEL, each hidden in an encoded word:
# the email package decodes it and writes the line break out for real.
ENCODED_BREAKS = [
    "=?utf-8?q?Hi=0D=0ABcc:_victim@evil.example?=",
    "=?utf-8?b?SGkNCkJjYzogdmljdGltQGV2aWwuZXhhbXBsZQ==?=",
    "=?utf-8?q?Hi=E2=80=A8Bcc:_victim@evil.example?=",
    "=?utf-8?q?Hi=C2=85Bcc:_victim@evil.example?=",
    "Welcome =?utf-8?q?=0A?=Content-Type: text/html",
]


@pytest.mark.parametrize("subject", ENCODED_BREAKS)
def test_an_encoded_word_cannot_smuggle_a_line_break_into_the_subject(subject: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MailMessage(to="ada@example.com", subject=subject, text="body")
    assert "subject" in caught.value.errors


@pytest.mark.parametrize("value", ENCODED_BREAKS)
def test_an_encoded_word_cannot_smuggle_a_line_break_into_an_extra_header(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MailMessage(to="ada@example.com", subject="s", text="b", headers={"X-Note": value})
    assert "headers" in caught.value.errors


def test_a_harmless_encoded_word_still_makes_a_mail_without_injected_lines() -> None:
    message = MailMessage(to="ada@example.com", subject="=?utf-8?q?caf=C3=A9?=", text="b")
    head = mime_bytes(message).split(b"\r\n\r\n", 1)[0]
    assert b"Bcc" not in head
    assert all(line.split(b":", 1)[0].strip() for line in head.split(b"\r\n") if line[:1] != b" ")


@pytest.mark.parametrize(
    "address",
    [
        # Delivered to bob@example.com, not to the address the account holds.
        "=?utf-8?q?bob?=@example.com",
        # The To line would read "attacker@evil.example @bank.example".
        "=?x?q?attacker=40evil.example=20?=@bank.example",
        # Decodes to a CR LF: the email package raises ValueError at send time.
        "=?utf-8?q?x=0D=0ABcc=3A_v=40evil.example?=@example.com",
    ],
)
def test_a_recipient_is_delivered_to_exactly_as_written(address: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MailMessage(to=address, subject="s", text="b")
    assert "to" in caught.value.errors


def test_international_and_dotted_recipients_still_pass() -> None:
    for address in ("ada.lovelace@example.com", "ada@bücher.example", "ädä@example.com"):
        assert MailMessage(to=address, subject="s", text="b").to == address


def test_a_header_allowed_once_cannot_be_given_twice() -> None:
    # Accepted, then a ValueError from the email package at delivery time.
    with pytest.raises(ValidationError) as caught:
        MailMessage(
            to="ada@example.com",
            subject="s",
            text="b",
            headers=[("Reply-To", "a@example.com"), ("reply-to", "b@example.com")],
        )
    assert "headers" in caught.value.errors


def test_an_encoded_word_in_the_sender_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="sender"):
        SmtpMailer(
            "mail.example",
            sender="=?utf-8?q?App=0D=0ABcc=3A_v=40evil.example?= <app@example.com>",
        )


@pytest.mark.parametrize("helo", ["evil\r\nRCPT TO:<v@evil.example>", "a b", ""])
def test_the_helo_name_cannot_inject_smtp_commands(helo: str) -> None:
    # smtplib refuses CR LF with a ValueError at send time: a 500, not a MailError.
    with pytest.raises(ValueError, match="HELO"):
        SmtpMailer("mail.example", sender=SENDER, local_hostname=helo)


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 0.0, -1.0])
def test_the_timeout_is_a_finite_positive_number(timeout: float) -> None:
    # inf reached socket.settimeout as an OverflowError at send time.
    with pytest.raises(ValueError, match="timeout"):
        SmtpMailer("mail.example", sender=SENDER, timeout=timeout)


def test_close_honours_its_timeout_when_the_queue_is_full() -> None:
    """A full queue and a hung SMTP server made close(timeout) block until the
    whole queue drained, holding the lock every send() needs."""
    stuck = GatedMailer()
    mailer = BackgroundMailer(stuck, max_queued=2)
    message = MailMessage(to="ada@example.com", subject="s", text="b")
    mailer.send(message)
    assert stuck.entered.wait(10)  # one in the worker's hands...
    mailer.send(message)
    mailer.send(message)  # ...and the queue full
    finished = threading.Event()
    result: list[bool] = []

    def close() -> None:
        result.append(mailer.close(timeout=0.2))
        finished.set()

    closer = threading.Thread(target=close, daemon=True)
    closer.start()
    try:
        assert finished.wait(10), "close(timeout=0.2) blocked on the full queue"
        assert result == [False]
    finally:
        stuck.gate.set()
        closer.join(10)
    assert mailer.close(timeout=10) is True


@pytest.mark.parametrize(
    "address",
    ["=?utf-8?q?bob?=@example.com", "a=?x?q?b?=@example.com", "=?utf-8?b?Ym9i?=@x.example"],
)
def test_an_account_address_cannot_hold_an_encoded_word(address: str) -> None:
    """Registration refuses what no mail could be sent to as written (RFC 2047 §5:
    no encoded word in an addr-spec), so one mailbox cannot verify many accounts."""
    from usercore.validation import email_problems

    assert email_problems(address)


@pytest.mark.parametrize("name", ["Resent-To", "Resent-Date", "resent-bcc", "Resent-Sender"])
def test_resent_headers_cannot_redirect_delivery(name: str) -> None:
    """smtplib's send_message takes the recipients from Resent-To/-Cc/-Bcc when
    the mail has one Resent-Date: extra Resent-* headers would send the
    reset link to another mailbox than ``to``."""
    with pytest.raises(ValidationError) as caught:
        MailMessage(to="ada@example.com", subject="s", text="b", headers={name: "eve@evil.example"})
    assert "headers" in caught.value.errors


@pytest.mark.parametrize("placeholder", ["token", "link"])
def test_a_subject_template_cannot_carry_the_secret(placeholder: str) -> None:
    """The subject is in MailMessage's repr, hence in the delivery logs
    (and in mail-server logs and lock-screen previews): the reset token or
    link there would be a bearer secret in a log (OWASP ASVS 4.0.3 V7.1.1)."""
    from usercore.mail import MailTemplates

    with pytest.raises(ValueError, match=placeholder):
        MailTemplates({"password_reset.subject": f"Your code: ${{{placeholder}}}"})
