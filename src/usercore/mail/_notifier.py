"""Turns what happened to an account into the mail its owner should get."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import quote, urlsplit

from usercore.mail._mailers import Mailer
from usercore.mail._message import MailMessage
from usercore.mail._templates import MailTemplates
from usercore.settings import Settings

__all__ = ["Notifier"]

_TOKEN = "{token}"  # noqa: S105 - the placeholder, not a secret


def _check_link_template(name: str, url: str) -> str:
    if not isinstance(url, str) or url.count(_TOKEN) != 1:
        raise ValueError(f"{name} must contain {_TOKEN} exactly once")
    parts = urlsplit(url.replace(_TOKEN, "t"))
    # Only web links: a javascript: or data: "link" in a mail is an attack.
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{name} must be an absolute http(s) URL")
    if any(char.isspace() or ord(char) < 32 for char in url):
        raise ValueError(f"{name} must not contain whitespace")
    return url


def _duration(ttl: timedelta) -> str:
    """``1 hour``, ``24 hours``, ``30 minutes``, ``2 days``: how long a link lives."""
    seconds = int(ttl.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


class Notifier:
    """Sends the account mails: password reset, email verification and two notices.

    ``reset_url``, ``verification_url`` and the optional ``invitation_url``
    are the app's pages that take a token, with ``{token}`` where it goes, e.g.
    ``"https://app.example/reset?token={token}"``; the token is
    percent-encoded into it.  Link lifetimes in the text come from
    ``settings`` (``password_reset_ttl``, ``email_verification_ttl``,
    ``invitation_ttl``).
    ``templates`` overrides the mails (:class:`MailTemplates`, or a mapping
    of template names to text).  Raises ``ValueError`` for a link template
    that is not an absolute http(s) URL with ``{token}`` exactly once.

    Each method builds one mail and hands it to ``mailer``; the mailer's
    :class:`MailError` propagates.  The two token methods match the web
    layer's hooks: ``on_password_reset=notifier.password_reset``.
    """

    def __init__(
        self,
        mailer: Mailer,
        *,
        reset_url: str,
        verification_url: str,
        app_name: str = "usercore",
        templates: MailTemplates | Mapping[str, str] | None = None,
        settings: Settings | None = None,
        invitation_url: str | None = None,
    ) -> None:
        if settings is None:
            settings = Settings()
        self.mailer = mailer
        self._reset_url = _check_link_template("reset_url", reset_url)
        self._verification_url = _check_link_template("verification_url", verification_url)
        self._invitation_url = (
            None
            if invitation_url is None
            else _check_link_template("invitation_url", invitation_url)
        )
        self._app_name = app_name
        self._templates = (
            templates if isinstance(templates, MailTemplates) else MailTemplates(templates)
        )
        self._reset_ttl = _duration(settings.password_reset_ttl)
        self._verification_ttl = _duration(settings.email_verification_ttl)
        self._invitation_ttl = _duration(settings.invitation_ttl)

    def __repr__(self) -> str:
        return f"Notifier(mailer={self.mailer!r}, app_name={self._app_name!r})"

    def password_reset(self, email: str, token: str) -> None:
        """Mail ``email`` the link that resets its password with ``token``."""
        self._send("password_reset", email, self._link(self._reset_url, token, self._reset_ttl))

    def email_verification(self, email: str, token: str) -> None:
        """Mail ``email`` the link that proves, with ``token``, that its owner reads it."""
        link = self._link(self._verification_url, token, self._verification_ttl)
        self._send("email_verification", email, link)

    def invitation(self, email: str, token: str) -> None:
        """Mail ``email`` the link that accepts, with ``token``, an invitation to register
        (:meth:`usercore.services.users.UserService.invite`); ``ValueError``
        when the notifier was made without ``invitation_url``."""
        if self._invitation_url is None:
            raise ValueError("an invitation mail needs the Notifier's invitation_url")
        link = self._link(self._invitation_url, token, self._invitation_ttl)
        self._send("invitation", email, link)

    def email_changed(self, old_email: str, new_email: str) -> None:
        """Tell ``old_email`` that the account's address is now ``new_email``.

        Sent to the old address so the owner learns of a takeover that began
        by changing the address (OWASP ASVS 4.0.3 V2.5.5 / 5.0 V6.3.7:
        notify users of changes to their authentication details).
        """
        self._send("email_changed", old_email, {"old_email": old_email, "new_email": new_email})

    def password_changed(self, email: str) -> None:
        """Tell ``email`` that the account's password was changed (ASVS 4.0.3 V2.5.5)."""
        self._send("password_changed", email, {})

    def _link(self, url: str, token: str, expires_in: str) -> dict[str, str]:
        if not isinstance(token, str) or not token:
            raise ValueError("a token is required")
        return {
            "link": url.replace(_TOKEN, quote(token, safe="")),
            "token": token,
            "expires_in": expires_in,
        }

    def _send(self, kind: str, to: str, values: dict[str, str]) -> None:
        rendered = self._templates.render(kind, {"app_name": self._app_name, "email": to, **values})
        self.mailer.send(
            MailMessage(to=to, subject=rendered.subject, text=rendered.text, html=rendered.html)
        )
