"""What a mail is before it is delivered, and its one MIME form.

A :class:`MailMessage` is checked when it is made: a recipient, a subject or a
header that could smuggle a line break into the mail headers (header
injection, CWE-93; OWASP ASVS 4.0.3 V5.2.3 "sanitizes user input before
passing to mail systems") is a :class:`~usercore.ValidationError`, never a
mail.  Its ``repr`` shows the recipient and subject only: the bodies carry
reset and verification links, which are bearer secrets.
"""

from __future__ import annotations

import email.errors
import email.policy
import email.utils
import re
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from typing import Any

import attrs

from usercore.errors import UsercoreError, ValidationError
from usercore.validation import email_problems

__all__ = ["MailError", "MailMessage", "check_sender", "to_mime"]

_POLICY = email.policy.SMTP
_SUBJECT_MAX_LENGTH = 255
_HEADER_VALUE_MAX_LENGTH = 998  # RFC 5322 §2.1.1: at most 998 characters a line
# RFC 5322 §2.2: a field name is printable US-ASCII except the colon.
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")
# Headers the message itself owns; an extra header may not replace or double them.
_RESERVED_HEADERS = frozenset(
    {
        "bcc",
        "cc",
        "content-transfer-encoding",
        "content-type",
        "date",
        "from",
        "message-id",
        "mime-version",
        "return-path",
        "sender",
        "subject",
        "to",
    }
)

# With one Resent-Date, smtplib's send_message takes sender and recipients
# from the Resent-* headers (RFC 5322 §3.6.6): they would redirect the mail.
_RESENT_PREFIX = "resent-"


class MailError(UsercoreError):
    """A mail could not be delivered (connection, TLS, authentication, refusal).

    The message names the transport and what failed, never a password, a
    token or a body.  Callers that deliver tokens should log it and carry on,
    answering the client exactly as for a delivered mail.
    """

    code = "mail_delivery_failed"
    http_status = 503
    default_message = "The mail could not be delivered."


def _has_line_break_or_control(text: str) -> bool:
    # Any C0 control, DEL, and the Unicode line/paragraph separators, which
    # some mail software also treats as line ends.
    return any(ord(char) < 32 or ord(char) == 127 or char in "\u2028\u2029\x85" for char in text)


def _as_written(name: str, value: str) -> str | None:
    """The text the email package will write for header ``name``: it decodes
    RFC 2047 encoded words (``=?utf-8?q?a=0D=0Ab?=``) and writes what they
    hold, line breaks included.  ``None`` when it refuses the value."""
    try:
        return str(_POLICY.header_factory(name, value))
    except (ValueError, LookupError, email.errors.MessageError):
        return None


def _is_safe_header(name: str, value: str) -> bool:
    """No line break or control character, neither as given nor once decoded (CWE-93)."""
    if _has_line_break_or_control(value):
        return False
    written = _as_written(name, value)
    return written is not None and not _has_line_break_or_control(written)


def _is_delivered_as_written(address: str) -> bool:
    """Whether a ``To`` of ``address`` names exactly that one mailbox.

    An encoded word in the local part is decoded by the email package, so
    ``=?utf-8?q?bob?=@example.com`` would reach ``bob@example.com``, a mailbox
    the account never proved it owns (RFC 2047 §5 forbids encoded words in an
    address; "splitting the email atom").
    """
    try:
        header = _POLICY.header_factory("To", address)
    except (ValueError, LookupError, email.errors.MessageError):
        return False
    mailboxes: tuple[Any, ...] = getattr(header, "addresses", ())
    return len(mailboxes) == 1 and mailboxes[0].addr_spec == address


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _header_pairs(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((name, value) for name, value in items)


@attrs.frozen
class MailMessage:
    """One mail to one recipient: a subject, a plain-text body and an optional HTML body.

    ``headers`` adds fields such as ``Reply-To`` or ``List-Unsubscribe``; the
    structural ones (``From``, ``To``, ``Subject``, ``Date``, ``Content-*``…)
    are the transport's.  Raises :class:`~usercore.ValidationError`, one entry
    per bad field, for a recipient that is not a single valid address, and for
    a line break or control character in ``to``, ``subject`` or a header, as
    given or hidden in an RFC 2047 encoded word (``=?utf-8?q?=0D=0A?=``),
    which the email package would decode and write out.  A recipient with an
    encoded word, a header allowed once (``Reply-To``) given twice, are refused too.
    """

    to: str
    subject: str
    text: str = attrs.field(repr=False)
    html: str | None = attrs.field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=_header_pairs, repr=False
    )

    def __attrs_post_init__(self) -> None:
        errors: dict[str, list[str]] = {}
        if isinstance(self.to, str) and _has_line_break_or_control(self.to):
            errors["to"] = ["must not contain line breaks or control characters"]
        else:
            problems = email_problems(self.to)
            if problems:
                errors["to"] = problems
            elif not _is_delivered_as_written(self.to):
                errors["to"] = ["must be a plain address, without encoded words"]
        if not isinstance(self.subject, str):
            errors["subject"] = ["must be a string"]
        elif not _is_encodable(self.subject) or not _is_safe_header("Subject", self.subject):
            errors["subject"] = ["must not contain line breaks or control characters"]
        elif not self.subject.strip() or len(self.subject) > _SUBJECT_MAX_LENGTH:
            errors["subject"] = [f"must be 1 to {_SUBJECT_MAX_LENGTH} characters"]
        for field, body in (("text", self.text), ("html", self.html)):
            if body is None and field == "html":
                continue
            if not isinstance(body, str) or not _is_encodable(body) or "\x00" in body:
                errors[field] = ["must be text without NUL characters"]
        header_problems = [
            problem for name, value in self.headers for problem in _header_problems(name, value)
        ] or _repeated_header_problems(self.headers)
        if header_problems:
            errors["headers"] = header_problems
        if errors:
            raise ValidationError(errors)


def _header_problems(name: object, value: object) -> list[str]:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        return ["a header name must be printable ASCII without a colon"]
    if name.lower() in _RESERVED_HEADERS or name.lower().startswith(_RESENT_PREFIX):
        return [f"the {name} header is set by the mailer"]
    if not isinstance(value, str) or _has_line_break_or_control(value):
        return [f"the {name} header must not contain line breaks or control characters"]
    if len(value) > _HEADER_VALUE_MAX_LENGTH or not _is_encodable(value):
        return [f"the {name} header must be at most {_HEADER_VALUE_MAX_LENGTH} characters"]
    if not _is_safe_header(name, value):
        return [f"the {name} header must not contain line breaks or control characters"]
    return []


def _repeated_header_problems(headers: tuple[tuple[str, str], ...]) -> list[str]:
    """A header the email package allows once (``Reply-To``…) given twice would
    only fail at delivery, with a ``ValueError``."""
    counts: dict[str, int] = {}
    for name, _ in headers:
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    return [
        f"the {name} header may appear at most {limit} time(s)"
        for name, count in counts.items()
        if (limit := _POLICY.header_max_count(name)) is not None and count > limit
    ]


def check_sender(sender: str) -> str:
    """``sender`` (``addr`` or ``Name <addr>``) if usable as ``From``; ``ValueError`` otherwise.

    A configuration check, so the error names the problem, not the value.
    """
    if not isinstance(sender, str) or not _is_safe_header("From", sender):
        raise ValueError("the sender must be an address without line breaks")
    _, address = email.utils.parseaddr(sender)
    if not address or email_problems(address):
        raise ValueError("the sender must be a valid email address, optionally 'Name <address>'")
    return sender


def to_mime(message: MailMessage, sender: str) -> EmailMessage:
    """The RFC 5322 form of ``message`` from ``sender``: ``multipart/alternative``
    (text, then HTML) when there is an HTML body, ``text/plain`` otherwise."""
    mime = EmailMessage(policy=email.policy.SMTP)
    _, address = email.utils.parseaddr(sender)
    mime["From"] = sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = email.utils.formatdate(usegmt=True)
    # The domain is given so make_msgid never asks DNS for this host's name.
    mime["Message-ID"] = email.utils.make_msgid(domain=address.rpartition("@")[2])
    for name, value in message.headers:
        mime[name] = value
    mime.set_content(message.text)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    return mime
