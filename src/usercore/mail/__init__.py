"""Mail delivery: the ``Mailer`` port, its adapters, templates and the ``Notifier``.

Standard library only (``smtplib``, ``email``, ``string.Template``): no extra
to install.  A :class:`Notifier` builds the account mails (password reset,
email verification, email-changed and password-changed notices) from
:class:`MailTemplates` and hands them to a :class:`Mailer`:
:class:`SmtpMailer` in production, :class:`ConsoleMailer` or
:class:`FileMailer` in development, :class:`RecordingMailer` in tests.
:func:`mailer_from_url` makes one from a configuration string, and
:class:`BackgroundMailer` moves delivery off the request path.  See
``docs/mail.md``.
"""

from usercore.mail._background import BackgroundMailer
from usercore.mail._mailers import ConsoleMailer, FileMailer, Mailer, RecordingMailer
from usercore.mail._message import MailError, MailMessage
from usercore.mail._notifier import Notifier
from usercore.mail._smtp import SmtpMailer
from usercore.mail._templates import KINDS, MailTemplates, RenderedMail
from usercore.mail._url import mailer_from_url

__all__ = [
    "KINDS",
    "BackgroundMailer",
    "ConsoleMailer",
    "FileMailer",
    "MailError",
    "MailMessage",
    "MailTemplates",
    "Mailer",
    "Notifier",
    "RecordingMailer",
    "RenderedMail",
    "SmtpMailer",
    "mailer_from_url",
]
