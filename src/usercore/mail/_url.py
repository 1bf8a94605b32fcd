"""One configuration string for any mailer: what ``--smtp-url`` or an environment variable holds."""

from __future__ import annotations

import ssl
from urllib.parse import parse_qsl, unquote, urlsplit

from usercore.mail._mailers import DEFAULT_SENDER, ConsoleMailer, FileMailer, Mailer
from usercore.mail._smtp import SmtpMailer

__all__ = ["mailer_from_url"]


def mailer_from_url(url: str, *, ssl_context: ssl.SSLContext | None = None) -> Mailer:
    """The mailer a URL names.

    * ``smtp://[user:pass@]host[:port]?from=ADDR[&starttls=1]`` and
      ``smtps://…``: :class:`SmtpMailer` (see :meth:`SmtpMailer.from_url`);
    * ``console:`` (optionally ``console:?from=ADDR``): :class:`ConsoleMailer`
      on standard output;
    * ``file:///absolute/dir[?from=ADDR]``: :class:`FileMailer` writing ``.eml``
      files there.

    ``ValueError`` for any other URL; the message never repeats the URL,
    which may hold a password.
    """
    scheme = url.partition(":")[0].lower() if isinstance(url, str) else ""
    if scheme in ("smtp", "smtps"):
        return SmtpMailer.from_url(url, ssl_context=ssl_context)
    if scheme not in ("console", "file"):
        raise ValueError("a mail URL starts with smtp://, smtps://, console: or file://")
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    sender = options.pop("from", DEFAULT_SENDER)
    if options:
        raise ValueError("console: and file:// mail URLs take only a from= option")
    if scheme == "console":
        if parts.netloc or parts.path:
            raise ValueError("write the console mailer as console: or console:?from=ADDR")
        return ConsoleMailer(sender=sender)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ValueError("a file mail URL names an absolute local directory: file:///path")
    return FileMailer(unquote(parts.path), sender=sender)
