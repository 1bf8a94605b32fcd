"""The one exception hierarchy of usercore.

Every error carries a stable snake_case ``code`` (what programs branch on), a
human ``message`` and a ``details`` dict that is safe to show a client: no
secrets, tokens, hashes or stack traces ever go into any of the three.  The
HTTP status each maps to lives on the class as ``http_status`` so the web layer
needs no table of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "AccountLocked",
    "AuthenticationError",
    "ConflictError",
    "EmailNotVerified",
    "InvalidCredentials",
    "NotFoundError",
    "Overloaded",
    "PermissionDenied",
    "ReauthenticationRequired",
    "RegistrationClosed",
    "StoreUnavailable",
    "TokenError",
    "UsercoreError",
    "ValidationError",
]


class UsercoreError(Exception):
    """Base of every error usercore raises on purpose.

    Catch this to handle any usercore failure; branch on ``code`` rather than on
    the message, which may be reworded.
    """

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "An internal error occurred."

    def __init__(self, message: str | None = None, *, details: Mapping[str, Any] | None = None):
        self.message: str = message if message is not None else self.default_message
        self.details: dict[str, Any] = dict(details) if details else {}
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"code", "message", "details"}``."""
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationError(UsercoreError):
    """Input was rejected; ``errors`` maps each field to every message about it.

    All fields are checked before this is raised, so one error tells a caller
    everything that is wrong.  Raised before anything is written.
    """

    code = "validation_failed"
    http_status = 400
    default_message = "The input is not valid."

    def __init__(
        self,
        errors: Mapping[str, Sequence[str]],
        message: str | None = None,
    ):
        self.errors: dict[str, list[str]] = {field: list(msgs) for field, msgs in errors.items()}
        super().__init__(message, details=self.errors)

    @classmethod
    def single(cls, field: str, message: str) -> ValidationError:
        """A validation error about one field."""
        return cls({field: [message]})

    def __repr__(self) -> str:
        return f"ValidationError({self.errors!r})"

    def __str__(self) -> str:
        parts = "; ".join(f"{field}: {', '.join(msgs)}" for field, msgs in self.errors.items())
        return f"{self.message} ({parts})" if parts else self.message


class NotFoundError(UsercoreError):
    """The user, role, key or token asked for does not exist (or is not visible)."""

    code = "not_found"
    http_status = 404
    default_message = "The requested resource was not found."


class ConflictError(UsercoreError):
    """A uniqueness rule was broken (duplicate email, username, role) or a write lost a race.

    ``details["field"]`` names the field when one is known.
    """

    code = "conflict"
    http_status = 409
    default_message = "The resource conflicts with an existing one."

    def __init__(self, message: str | None = None, *, field: str | None = None):
        super().__init__(message, details={"field": field} if field else None)
        self.field = field


class AuthenticationError(UsercoreError):
    """The caller could not be authenticated."""

    code = "authentication_failed"
    http_status = 401
    default_message = "Authentication failed."


class InvalidCredentials(AuthenticationError):
    """Login failed.

    Raised with the same message for an unknown account, a wrong password, an
    inactive account or an account without a password, so a caller cannot tell
    them apart (OWASP ASVS 4.0.3 V2.2 / V3 account enumeration).
    """

    code = "invalid_credentials"
    default_message = "Invalid credentials."


class AccountLocked(AuthenticationError):
    """Too many failed logins: no attempt is accepted for ``retry_after`` seconds."""

    code = "account_locked"
    http_status = 429
    default_message = "Too many failed attempts; try again later."

    def __init__(self, retry_after: int, message: str | None = None):
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, details={"retry_after": self.retry_after})


class TokenError(AuthenticationError):
    """A token or key was rejected.

    One opaque error for every reason (expired, bad signature, revoked, reused,
    wrong type, unknown user): the precise reason goes to the ``usercore`` log
    only, never to the caller (compare ``cryptography.fernet.InvalidToken``).
    """

    code = "invalid_token"
    default_message = "The token is invalid or has expired."


class PermissionDenied(UsercoreError):
    """The principal is authenticated but not allowed to do this."""

    code = "permission_denied"
    http_status = 403
    default_message = "You do not have permission to perform this action."

    def __init__(self, message: str | None = None, *, permission: str | None = None):
        super().__init__(message, details={"permission": permission} if permission else None)
        self.permission = permission


class ReauthenticationRequired(PermissionDenied):
    """A sensitive change needs fresh authentication (OWASP ASVS 4.0.3 V3.7.1).

    Raised when the session did not log in within ``Settings.fresh_auth_window``
    and no ``current_password`` was given; API keys are never fresh.  Log in
    again, or repeat the call with the current password.
    """

    code = "reauthentication_required"
    default_message = (
        "This change needs recent authentication: log in again or give your current password."
    )


class RegistrationClosed(PermissionDenied):
    """Self-registration is not open (``Settings.registration`` is ``"closed"``,
    or ``"invite"`` and no invitation was given).

    Raised before the input is looked at or the store is read, so the answer
    is the same whatever the address: it never tells whether an account
    exists (OWASP ASVS 4.0.3 V2.2 / V3 account enumeration).  Administrators
    still create accounts with ``core.users.create``.
    """

    code = "registration_closed"
    default_message = "Registration is closed."


class EmailNotVerified(PermissionDenied):
    """The account's email address is not verified, and ``Settings.require_verified_email``
    asks for it before a session is issued.

    Raised by login only *after* the password was checked and found right (a
    wrong password is ``InvalidCredentials`` as ever), and by refresh, so it
    tells nothing to someone without the password.  ``user_id`` names the
    account for the caller's code (to send a new verification mail); it is
    never in ``details``.
    """

    code = "email_not_verified"
    default_message = "Verify your email address before logging in."

    def __init__(self, message: str | None = None, *, user_id: int | None = None):
        super().__init__(message)
        self.user_id = user_id


class _RetryLater(UsercoreError):
    """A 503: the request may succeed unchanged after ``retry_after`` seconds (``Retry-After``)."""

    http_status = 503

    def __init__(self, message: str | None = None, *, retry_after: int = 1):
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, details={"retry_after": self.retry_after})


class StoreUnavailable(_RetryLater):
    """The store cannot serve the request right now; try again in ``retry_after`` seconds.

    Raised for transient faults only: the connection to the database was lost,
    no pooled connection became free in time, the database stayed locked past
    the busy timeout, the disk is full, or the database is read-only.  Nothing
    was committed by the failed unit of work.  The message is generic; the
    driver's error is kept as ``__cause__`` (and logged once per incident by the
    store), never shown to a client.  Answered as HTTP 503 with ``Retry-After``.
    """

    code = "store_unavailable"
    default_message = "The service is temporarily unavailable; try again later."


class Overloaded(_RetryLater):
    """Too many password hashes are in progress; try again in ``retry_after`` seconds.

    Raised instead of waiting when every hashing slot of the process is busy
    and the short queue is full, or a queued request waited
    ``Settings.hash_queue_timeout`` without getting a slot: load shedding, so a
    login flood is answered at once with HTTP 503 + ``Retry-After`` instead of
    exhausting memory (each Argon2 hash holds its ``memory_cost``) and hanging
    every other request (OWASP ASVS 4.0.3 V2.4 / CWE-400).  Nothing was
    checked or written: a shed login is not charged to the lockout counters.
    """

    code = "overloaded"
    default_message = "The service is busy; try again later."
