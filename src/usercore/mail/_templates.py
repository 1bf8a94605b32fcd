"""Mail templates: a subject, a plain-text body and an HTML body for each kind of mail.

Templates use :class:`string.Template` (``${name}`` placeholders; ``$$`` for a
dollar sign).  Values substituted into the HTML body are HTML-escaped, every
one of them, so an address or a link can never add markup (OWASP ASVS 4.0.3
V5.3.1, output encoding for the context).  Each template is test-rendered when
the set is made: an unknown placeholder or a stray ``$`` fails at start-up,
not when the first user asks for a reset.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from string import Template
from typing import NamedTuple

__all__ = ["KINDS", "MailTemplates", "RenderedMail"]

_COMMON = ("app_name", "email")
#: Every kind of mail and the placeholders its templates may use.
KINDS: Mapping[str, tuple[str, ...]] = {
    "password_reset": (*_COMMON, "link", "token", "expires_in"),
    "email_verification": (*_COMMON, "link", "token", "expires_in"),
    "email_changed": (*_COMMON, "old_email", "new_email"),
    "password_changed": _COMMON,
    "invitation": (*_COMMON, "link", "token", "expires_in"),
}
_PARTS = ("subject", "txt", "html")
# A subject is shown in MailMessage's repr, so in delivery logs, and in mail
# server logs and notification previews: never a bearer secret there
# (OWASP ASVS 4.0.3 V7.1.1, no session tokens in logs).
_SECRET_PLACEHOLDERS = frozenset({"link", "token"})


class RenderedMail(NamedTuple):
    """One kind of mail filled in: what :class:`~usercore.mail.MailMessage` needs."""

    subject: str
    text: str
    html: str


def _names() -> list[str]:
    return [f"{kind}.{part}" for kind in KINDS for part in _PARTS]


def _default_sources() -> dict[str, str]:
    folder = resources.files("usercore.mail").joinpath("templates")
    return {name: folder.joinpath(name).read_text(encoding="utf-8") for name in _names()}


class MailTemplates:
    """The templates of every kind of mail, usercore's own unless overridden.

    ``overrides`` maps template names to template text; a name is
    ``<kind>.<part>`` with kind one of :data:`KINDS` (``password_reset``,
    ``email_verification``, ``email_changed``, ``password_changed``,
    ``invitation``) and part
    ``subject``, ``txt`` or ``html``, e.g. ``"password_reset.html"``.  Names
    not overridden keep usercore's template.  Raises ``ValueError`` for an
    unknown name, an unknown placeholder or a malformed template.
    """

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        sources = _default_sources()
        for name, text in (overrides or {}).items():
            if name not in sources:
                raise ValueError(f"unknown mail template {name!r}; known: {', '.join(_names())}")
            if not isinstance(text, str):
                raise ValueError(f"mail template {name!r} must be text")
            sources[name] = text
        self._templates = {name: Template(text) for name, text in sources.items()}
        for kind, all_placeholders in KINDS.items():
            for part in _PARTS:
                name = f"{kind}.{part}"
                placeholders = [
                    key
                    for key in all_placeholders
                    if part != "subject" or key not in _SECRET_PLACEHOLDERS
                ]
                try:
                    self._templates[name].substitute({key: key for key in placeholders})
                except KeyError as exc:
                    raise ValueError(
                        f"mail template {name!r} uses unknown placeholder ${{{exc.args[0]}}}; "
                        f"it may use {', '.join(placeholders)}"
                    ) from None
                except ValueError:
                    raise ValueError(
                        f"mail template {name!r} has a '$' that starts no placeholder "
                        "(write $$ for a dollar sign)"
                    ) from None

    @classmethod
    def from_directory(cls, directory: str | os.PathLike[str]) -> MailTemplates:
        """Templates read from files named like the templates (``password_reset.html``…).

        Files for names that are absent keep usercore's template; other files
        are ignored.  ``ValueError`` as for the constructor, ``OSError`` if the
        directory cannot be read.
        """
        folder = Path(directory)
        if not folder.is_dir():
            raise NotADirectoryError(f"no mail template directory at {folder}")
        return cls(
            {
                name: (folder / name).read_text(encoding="utf-8")
                for name in _names()
                if (folder / name).is_file()
            }
        )

    def render(self, kind: str, values: Mapping[str, str]) -> RenderedMail:
        """Fill in the templates of ``kind`` with ``values`` (HTML-escaped in the HTML body).

        ``KeyError`` for an unknown kind or a missing value.
        """
        placeholders = KINDS[kind]
        plain = {key: values[key] for key in placeholders}
        escaped = {key: html.escape(value, quote=True) for key, value in plain.items()}
        subject = self._templates[f"{kind}.subject"].substitute(
            {key: value for key, value in plain.items() if key not in _SECRET_PLACEHOLDERS}
        )
        return RenderedMail(
            # A subject is one line: the file's trailing newline is not part of it.
            subject=" ".join(subject.split()),
            text=self._templates[f"{kind}.txt"].substitute(plain),
            html=self._templates[f"{kind}.html"].substitute(escaped),
        )
