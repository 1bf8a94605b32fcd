"""Delivery through an SMTP server with the standard library's ``smtplib``."""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import smtplib
import ssl
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from usercore.mail._message import MailError, MailMessage, check_sender, to_mime

__all__ = ["SmtpMailer"]

_log = logging.getLogger("usercore.mail")

Security = Literal["none", "starttls", "ssl"]
_DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "ssl": 465}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_URL_OPTIONS = frozenset({"from", "starttls", "timeout", "helo"})
# RFC 5321 §4.1.1.1: the HELO/EHLO argument is a domain or an address literal,
# printable ASCII without spaces; a CR LF there would start a second command.
_HELO_NAME = re.compile(r"[!-~]{1,255}")


def _is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SmtpMailer:
    """Sends each mail over its own SMTP connection (``smtplib``).

    ``security`` is ``"starttls"`` (the default: upgrade a plain connection,
    port 587), ``"ssl"`` (implicit TLS, port 465, RFC 8314) or ``"none"``
    (port 25, for a relay on a trusted network).  The server certificate is
    always verified (``ssl.create_default_context()`` unless ``ssl_context``
    is given); a server that does not offer STARTTLS is an error, never a
    silent plain-text fallback.  Credentials are refused without TLS: they
    would cross the network in clear (OWASP ASVS 4.0.3 V9.2.2, TLS to
    external services).  The password never appears in ``repr``, logs or
    errors.

    Raises ``ValueError`` for an unusable configuration; :meth:`send` raises
    :class:`MailError` when the mail cannot be delivered.  Thread-safe.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        sender: str,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if not isinstance(host, str) or not host or any(c.isspace() for c in host):
            raise ValueError("the SMTP host must be a non-empty name without spaces")
        if security not in _DEFAULT_PORTS:
            raise ValueError("security must be 'none', 'starttls' or 'ssl'")
        port = _DEFAULT_PORTS[security] if port is None else port
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError("the SMTP port must be between 1 and 65535")
        if (username is None) != (password is None):
            raise ValueError("give both an SMTP username and a password, or neither")
        if username is not None and security == "none":
            raise ValueError("SMTP credentials need TLS: use security='starttls' or 'ssl'")
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            # inf would reach socket.settimeout as an OverflowError at send time.
            raise ValueError("the SMTP timeout must be a finite positive number of seconds")
        if local_hostname is not None and not (
            isinstance(local_hostname, str) and _HELO_NAME.fullmatch(local_hostname)
        ):
            raise ValueError("the HELO name must be printable ASCII without spaces")
        self.host = host
        self.port = port
        self.security: Security = security
        self.username = username
        self._password = password
        self.timeout = float(timeout)
        self.sender = check_sender(sender)
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname

    @classmethod
    def from_url(cls, url: str, *, ssl_context: ssl.SSLContext | None = None) -> SmtpMailer:
        """A mailer from ``smtp://[user:password@]host[:port]?from=ADDRESS[&starttls=1]``.

        ``smtps://`` means implicit TLS.  Options: ``from`` (required),
        ``starttls`` (``1``/``0``, ``smtp://`` only), ``timeout`` (seconds) and
        ``helo`` (the name this host gives).  User and password are
        percent-decoded.  ``ValueError`` for anything else; the message never
        repeats the URL, which holds the password.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except (TypeError, ValueError, AttributeError):
            raise ValueError("the SMTP URL is malformed") from None
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("the SMTP URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("the SMTP URL has no host")
        options: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in _URL_OPTIONS or key in options:
                raise ValueError(f"unknown or repeated SMTP URL option {key[:40]!r}")
            options[key] = value
        # Without an explicit starttls= option a plain smtp:// URL upgrades with
        # STARTTLS unless the relay is on this host: reset links and tokens
        # must not cross a network in clear (OWASP ASVS 4.0.3 V9.2.2).
        # ``starttls=0`` is the operator's explicit choice of a trusted relay.
        security: Security = (
            "ssl"
            if parts.scheme == "smtps"
            else "none"
            if _is_loopback(parts.hostname)
            else "starttls"
        )
        if "starttls" in options:
            flag = options["starttls"].lower()
            if parts.scheme == "smtps" or flag not in _TRUE | _FALSE:
                raise ValueError("starttls must be 1 or 0, and only with smtp://")
            security = "starttls" if flag in _TRUE else "none"
        if "from" not in options:
            raise ValueError("the SMTP URL needs a from=ADDRESS option")
        try:
            timeout = float(options.get("timeout", "10"))
        except ValueError:
            raise ValueError("timeout must be a number of seconds") from None
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if username is not None and password is None:
            password = ""
        return cls(
            parts.hostname,
            port,
            sender=options["from"],
            security=security,
            username=username,
            password=password,
            timeout=timeout,
            ssl_context=ssl_context,
            local_hostname=options.get("helo"),
        )

    def __repr__(self) -> str:
        return (
            f"SmtpMailer(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"username={self.username!r}, sender={self.sender!r})"
        )

    def send(self, message: MailMessage) -> None:
        """Deliver ``message``; :class:`MailError` names the step that failed."""
        mime = to_mime(message, self.sender)
        step = "connect"
        try:
            with self._connect() as smtp:
                if self.security == "starttls":
                    step = "starttls"
                    smtp.starttls(context=self._context())
                if self.username is not None and self._password is not None:
                    step = "login"
                    smtp.login(self.username, self._password)
                step = "send"
                smtp.send_message(mime)
        except (smtplib.SMTPException, OSError) as exc:
            # The exception itself is left out (raise ... from None): some
            # carry server replies that may echo what was sent.  The class
            # and SMTP code are enough to diagnose.
            code = getattr(exc, "smtp_code", None)
            _log.warning(
                "SMTP %s failed on %s:%d: %s%s",
                step,
                self.host,
                self.port,
                type(exc).__name__,
                f" {code}" if code else "",
            )
            raise MailError(
                f"SMTP {step} failed on {self.host}:{self.port} ({type(exc).__name__})",
                details={"step": step, "smtp_code": code},
            ) from None
        _log.debug("sent %r via %s:%d", message, self.host, self.port)

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context if self._ssl_context is not None else ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self._local_hostname,
                timeout=self.timeout,
                context=self._context(),
            )
        return smtplib.SMTP(
            self.host, self.port, local_hostname=self._local_hostname, timeout=self.timeout
        )
