"""MailMessage: checked when made (header injection), secret-free repr, one MIME form."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usercore import ValidationError
from usercore.mail import MailMessage
from usercore.mail._message import check_sender, to_mime

LINK = "https://app.example/reset?token=SECRET-TOKEN-123"


def make(**changes: Any) -> MailMessage:
    fields: dict[str, Any] = {
        "to": "ada@example.com",
        "subject": "Reset your password",
        "text": f"Open {LINK}",
        "html": f'<a href="{LINK}">reset</a>',
    }
    fields.update(changes)
    return MailMessage(**fields)


def errors_of(**changes: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        make(**changes)
    return caught.value.errors


def test_repr_shows_recipient_and_subject_but_never_the_bodies_or_headers() -> None:
    message = make(headers={"X-Token-Hint": "SECRET-TOKEN-123"})

    shown = repr(message) + str(message)

    assert "ada@example.com" in shown
    assert "Reset your password" in shown
    assert "SECRET-TOKEN-123" not in shown
    assert "app.example" not in shown


@pytest.mark.parametrize(
    "to",
    [
        "ada@example.com\r\nBcc: eve@evil.example",
        "ada@example.com\nBcc: eve@evil.example",
        "ada@example.com\rX: y",
        "ada@example.com\x00",
        "ada@example.com\u2028Bcc: eve@evil.example",
    ],
)
def test_line_breaks_in_the_recipient_are_rejected(to: str) -> None:
    assert ["must not contain line breaks or control characters"] == errors_of(to=to)["to"]


@pytest.mark.parametrize(
    "to",
    ["", "not an address", "ada@example.com, eve@evil.example", "Ada <ada@example.com>", 42],
)
def test_the_recipient_is_one_valid_address(to: object) -> None:
    assert errors_of(to=to)["to"]


@pytest.mark.parametrize(
    "subject",
    ["Hi\r\nBcc: eve@evil.example", "Hi\nX-Injected: 1", "Hi\rthere", "tab\there", "\x85next"],
)
def test_line_breaks_and_controls_in_the_subject_are_rejected(subject: str) -> None:
    assert ["must not contain line breaks or control characters"] == errors_of(subject=subject)[
        "subject"
    ]


@given(
    st.text(max_size=20),
    st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"]),
    st.text(max_size=20),
)
def test_no_subject_with_a_line_break_is_ever_accepted(head: str, brk: str, tail: str) -> None:
    with pytest.raises(ValidationError):
        make(subject=f"Hello {head}{brk}{tail}")


def test_every_bad_field_is_reported_at_once() -> None:
    errors = errors_of(to="x\ny", subject="", text=None, headers={"Bcc": "eve@evil.example"})

    assert {"to", "subject", "text", "headers"} == set(errors)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Ok", "line\r\nBcc: eve@evil.example"),
        ("X-Ok", "line\nX: y"),
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("", "v"),
        ("X-Ünicode", "v"),
        ("Bcc", "eve@evil.example"),
        ("to", "eve@evil.example"),
        ("From", "eve@evil.example"),
        ("Content-Type", "text/html"),
        ("Subject", "other"),
    ],
)
def test_extra_headers_cannot_inject_or_replace_structural_ones(name: str, value: str) -> None:
    assert errors_of(headers={name: value})["headers"]


def test_lone_surrogates_and_nul_in_bodies_are_rejected() -> None:
    assert errors_of(text="a\ud800b")["text"]
    assert errors_of(html="a\x00b")["html"]


def test_html_is_optional_and_headers_accept_pairs() -> None:
    message = make(html=None, headers=[("Reply-To", "help@app.example")])

    assert message.html is None
    assert (("Reply-To", "help@app.example"),) == message.headers


def test_the_mime_form_has_both_parts_and_the_extra_headers() -> None:
    message = make(headers={"Reply-To": "help@app.example"}, subject="Grüße")

    raw = to_mime(message, "App <no-reply@app.example>").as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)

    assert b"\r\n" in raw  # SMTP line ends
    assert "ada@example.com" == parsed["To"]
    assert "App <no-reply@app.example>" == parsed["From"]
    assert "Grüße" == parsed["Subject"]
    assert "help@app.example" == parsed["Reply-To"]
    assert parsed["Message-ID"].endswith("@app.example>")
    assert "multipart/alternative" == parsed.get_content_type()
    plain = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert LINK in plain.get_content()
    assert LINK in html.get_content()


def test_without_html_the_mime_form_is_plain_text() -> None:
    parsed = to_mime(make(html=None), "no-reply@app.example")

    assert "text/plain" == parsed.get_content_type()


@pytest.mark.parametrize(
    "sender", ["", "nobody", "a@b.example\r\nBcc: eve@evil.example", "Name <not an address>"]
)
def test_a_bad_sender_is_a_configuration_error(sender: str) -> None:
    with pytest.raises(ValueError, match="sender"):
        check_sender(sender)
