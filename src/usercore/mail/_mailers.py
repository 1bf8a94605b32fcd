"""The ``Mailer`` port and the adapters that need no server: console, files, memory."""

from __future__ import annotations

import email.policy
import os
import secrets
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

from usercore.mail._message import MailMessage, check_sender, to_mime

__all__ = ["ConsoleMailer", "FileMailer", "Mailer", "RecordingMailer"]

#: ``From`` of the development mailers when none is given.
DEFAULT_SENDER = "usercore@localhost.localdomain"


@runtime_checkable
class Mailer(Protocol):
    """Delivers one :class:`MailMessage`; raises :class:`MailError` when it cannot."""

    def send(self, message: MailMessage) -> None:
        """Deliver ``message`` or raise :class:`MailError`."""


class ConsoleMailer:
    """Writes each mail, readably, to a text stream (``sys.stdout`` by default).

    For development only: the output holds the links, which are secrets.
    Shows the headers and the plain-text body undecoded, so a link can be
    copied straight from the terminal.  Thread-safe.
    """

    def __init__(self, stream: TextIO | None = None, *, sender: str = DEFAULT_SENDER) -> None:
        self._stream = stream
        self._sender = check_sender(sender)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ConsoleMailer(sender={self._sender!r})"

    def send(self, message: MailMessage) -> None:
        """Write ``message`` to the stream (the current ``sys.stdout`` if none was given)."""
        mime = to_mime(message, self._sender)
        lines = [f"{name}: {mime[name]}" for name in ("From", "To", "Subject", "Date")]
        lines += [f"{name}: {value}" for name, value in message.headers]
        lines += ["", message.text.rstrip("\n")]
        if message.html is not None:
            lines.append(f"[and an HTML part of {len(message.html)} characters]")
        rule = "-" * 72
        with self._lock:
            stream = self._stream if self._stream is not None else sys.stdout
            stream.write("\n".join([rule, *lines, rule, ""]))
            stream.flush()


class FileMailer:
    """Writes each mail as one ``.eml`` file (RFC 5322, CRLF) in ``directory``.

    The directory is created (mode 0700) if missing; each file is created
    exclusively with mode 0600, since it holds a live link.  File names sort
    by time: ``20260102T030405.123456Z-<random>.eml``.  For development and
    for tests that read what would have been sent.  Thread-safe.
    """

    def __init__(self, directory: str | os.PathLike[str], *, sender: str = DEFAULT_SENDER) -> None:
        self.directory = Path(directory)
        self._sender = check_sender(sender)

    def __repr__(self) -> str:
        return f"FileMailer(directory={str(self.directory)!r}, sender={self._sender!r})"

    def send(self, message: MailMessage) -> None:
        """Write ``message`` to a new file; ``OSError`` if the directory is not writable."""
        # An internationalized address is written as UTF-8 (RFC 6532), as an
        # SMTPUTF8 server would get it; encoded-words are not allowed there.
        international = not (message.to + self._sender).isascii()
        policy = email.policy.SMTPUTF8 if international else email.policy.SMTP
        data = to_mime(message, self._sender).as_bytes(policy=policy)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{secrets.token_hex(4)}.eml"
        # O_EXCL: never follow or reuse a file someone else put there.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)


class RecordingMailer:
    """Keeps every mail in :attr:`messages`, in order; for tests. Thread-safe."""

    def __init__(self) -> None:
        self._messages: list[MailMessage] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RecordingMailer(messages={len(self._messages)})"

    @property
    def messages(self) -> list[MailMessage]:
        """A copy of the mails sent so far, oldest first."""
        with self._lock:
            return list(self._messages)

    def send(self, message: MailMessage) -> None:
        """Record ``message``."""
        with self._lock:
            self._messages.append(message)

    def clear(self) -> None:
        """Forget every recorded mail."""
        with self._lock:
            self._messages.clear()
