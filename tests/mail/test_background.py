"""BackgroundMailer: the caller never waits for delivery; failures are logged, not raised."""

from __future__ import annotations

import logging
import threading

import pytest

from usercore.mail import BackgroundMailer, MailError, MailMessage, RecordingMailer

SECRET_LINK = "https://notes.example/reset?token=SECRET-TOKEN"


def message(to: str = "ada@example.com") -> MailMessage:
    return MailMessage(to=to, subject="Reset", text=SECRET_LINK, html=SECRET_LINK)


class GatedMailer(RecordingMailer):
    """Blocks every delivery until the gate opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def send(self, message: MailMessage) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        super().send(message)


class FailingFirst(RecordingMailer):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def send(self, message: MailMessage) -> None:
        if not self.failed:
            self.failed = True
            raise MailError("SMTP send failed on mail.example:587 (SMTPDataError)")
        super().send(message)


def test_send_returns_while_the_delivery_is_still_blocked() -> None:
    inner = GatedMailer()
    mailer = BackgroundMailer(inner)

    mailer.send(message())  # returns although the inner mailer cannot finish yet

    assert inner.entered.wait(10)
    assert [] == inner.messages
    inner.gate.set()
    assert mailer.close(timeout=10)
    assert ["ada@example.com"] == [m.to for m in inner.messages]


def test_close_delivers_everything_queued_in_order() -> None:
    inner = RecordingMailer()
    mailer = BackgroundMailer(inner)
    for i in range(5):
        mailer.send(message(f"u{i}@example.com"))

    assert mailer.close(timeout=10)

    assert [f"u{i}@example.com" for i in range(5)] == [m.to for m in inner.messages]
    assert mailer.close()  # idempotent


def test_a_failed_delivery_is_logged_without_the_body_and_the_next_one_goes_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = FailingFirst()
    mailer = BackgroundMailer(inner)
    caplog.set_level(logging.DEBUG, logger="usercore.mail")

    mailer.send(message("ada@example.com"))
    mailer.send(message("bob@example.com"))
    assert mailer.close(timeout=10)

    assert ["bob@example.com"] == [m.to for m in inner.messages]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "ada@example.com" in record.getMessage()
    assert "SMTPDataError" in record.getMessage()
    assert "SECRET-TOKEN" not in caplog.text


def test_a_full_queue_is_a_mail_error() -> None:
    inner = GatedMailer()
    mailer = BackgroundMailer(inner, max_queued=1)
    mailer.send(message("a@example.com"))
    assert inner.entered.wait(10)  # the worker holds the first; the queue is empty again
    mailer.send(message("b@example.com"))

    with pytest.raises(MailError) as caught:
        mailer.send(message("c@example.com"))

    assert "queue" == caught.value.details["step"]
    inner.gate.set()
    assert mailer.close(timeout=10)
    assert ["a@example.com", "b@example.com"] == [m.to for m in inner.messages]


def test_a_closed_mailer_refuses_mail() -> None:
    mailer = BackgroundMailer(RecordingMailer())
    assert mailer.close()

    with pytest.raises(MailError, match="closed"):
        mailer.send(message())


def test_max_queued_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_queued"):
        BackgroundMailer(RecordingMailer(), max_queued=0)
