"""``core.auth``: login, sessions, lockout, password reset and email verification.

Login never tells an unknown account from a wrong password, an inactive
account or an account without a password: each raises the same
:class:`~usercore.errors.InvalidCredentials` after exactly one password
verification (a dummy one when there is no hash to check), and unknown
identifiers are locked out exactly like accounts (OWASP ASVS 4.0.3 V2.2.1,
V3 enumeration; NIST SP 800-63B §5.2.2 rate limiting).
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

import attrs

from usercore import validation
from usercore.domain import Principal, TokenPair, User, email_key, username_key
from usercore.errors import AccountLocked, InvalidCredentials, TokenError, ValidationError
from usercore.ports import LoginAttempts, UnitOfWork
from usercore.services._context import (
    Context,
    check_id,
    found,
    in_id_range,
    require_delegation,
    role_table,
)
from usercore.settings import Settings
from usercore.tokens import EMAIL_VERIFICATION, PASSWORD_RESET, new_opaque_token, token_digest

__all__ = ["AuthService", "lockout_duration", "record_password_failure"]

# Identifiers longer than any valid email (RFC 5321: 254) cannot match an account.
MAX_IDENTIFIER_LENGTH = 320


def lockout_duration(failures: int, settings: Settings) -> timedelta | None:
    """How long to lock after ``failures`` consecutive failures, or ``None``.

    ``lockout_base`` at the threshold, doubling with each further failure, up
    to ``lockout_max`` (exponential back-off, NIST SP 800-63B §5.2.2).
    """
    if failures < settings.lockout_threshold:
        return None
    doublings = min(failures - settings.lockout_threshold, 32)
    delay: timedelta = min(settings.lockout_base * (2**doublings), settings.lockout_max)
    return delay


def _retry_after(locked_until: datetime, now: datetime) -> int:
    return max(1, math.ceil((locked_until - now).total_seconds()))


def _identifier_key(identifier: str) -> tuple[str, str]:
    """``("email", key)`` or ``("username", key)`` for a login identifier."""
    text = identifier.strip()
    return ("email", email_key(text)) if "@" in text else ("username", username_key(text))


def _attempts_key(kind: str, key: str) -> str:
    # Stored hashed: people type passwords into the username field.
    return hashlib.sha256(f"{kind}:{key}".encode("utf-8", "surrogatepass")).hexdigest()


@attrs.frozen
class _Failure:
    reason: str
    user_id: int | None


def record_password_failure(ctx: Context, user_id: int) -> None:
    """Count a wrong password given outside login (a re-authentication's
    ``current_password``) as a failed login of an existing account: the same
    counter and lockout as :meth:`AuthService.login`."""
    AuthService(ctx)._record_failure(_Failure("bad_password", user_id), "username", "")


class AuthService:
    """``core.auth``."""

    def __init__(self, ctx: Context):
        self._ctx = ctx

    # -- login ----------------------------------------------------------------

    def login(self, identifier: str, password: str) -> TokenPair:
        """Sign in by email or username; returns an access and a refresh token.

        Raises ``InvalidCredentials`` (one message for every reason) or
        ``AccountLocked`` while a lock from earlier failures is in force.  A
        successful login resets the failure counter, records ``last_login_at``
        and upgrades the stored hash when parameters or format are outdated.
        """
        ctx = self._ctx
        valid_identifier = (
            isinstance(identifier, str) and 0 < len(identifier) <= MAX_IDENTIFIER_LENGTH
        )
        kind, key = _identifier_key(identifier) if valid_identifier else ("username", "")
        now = ctx.clock()
        with ctx.store.transaction(readonly=True) as tx:
            user = self._find(tx, kind, key) if valid_identifier else None
            attempts = None if user is not None else tx.login_attempts.get(_attempts_key(kind, key))
        locked_until = (
            user.locked_until
            if user is not None
            else (attempts.locked_until if attempts is not None else None)
        )
        if locked_until is not None and now < locked_until:
            raise AccountLocked(retry_after=_retry_after(locked_until, now))
        secret = password if isinstance(password, str) else ""
        # Exactly one verification on every path: against the real hash, or a
        # dummy one inside verify() when the hash is missing or unusable.
        matched, new_hash = ctx.hasher.verify(user.password_hash if user else None, secret)
        if user is None:
            failure = _Failure("unknown_account", None)
        elif not user.is_active:
            failure = _Failure("inactive", user.id)
        elif not user.has_password:
            failure = _Failure("no_password", user.id)
        elif not matched or not isinstance(password, str):
            failure = _Failure("bad_password", user.id)
        else:
            return self._succeed(user.id, new_hash)
        raise self._record_failure(failure, kind, key)

    def _find(self, tx: UnitOfWork, kind: str, key: str) -> User | None:
        return tx.users.get_by_email(key) if kind == "email" else tx.users.get_by_username(key)

    def _succeed(self, user_id: int, new_hash: str | None) -> TokenPair:
        ctx = self._ctx
        now = ctx.clock()
        with ctx.store.transaction() as tx:
            user = found(tx.users.get(user_id), "User")
            user = tx.users.update(
                attrs.evolve(
                    user,
                    failed_logins=0,
                    locked_until=None,
                    last_login_at=now,
                    # Rehash in the same transaction as the login.
                    password_hash=new_hash if new_hash is not None else user.password_hash,
                )
            )
            pair = ctx.tokens.issue_pair(tx, user)
        ctx.events.emit("auth.login_succeeded", user_id=user_id, rehashed=new_hash is not None)
        return pair

    def _record_failure(self, failure: _Failure, kind: str, key: str) -> InvalidCredentials:
        """Count a failed login (locking at the threshold) and return the error to raise."""
        ctx = self._ctx
        now = ctx.clock()
        locked_for: timedelta | None = None
        with ctx.store.transaction() as tx:
            user = tx.users.get(failure.user_id) if failure.user_id is not None else None
            if user is not None:
                failures = user.failed_logins + 1
                locked_for = lockout_duration(failures, ctx.settings)
                tx.users.update(
                    attrs.evolve(
                        user,
                        failed_logins=failures,
                        locked_until=None if locked_for is None else now + locked_for,
                    )
                )
            else:
                attempts_key = _attempts_key(kind, key)
                previous = tx.login_attempts.get(attempts_key)
                failures = (0 if previous is None else previous.failures) + 1
                locked_for = lockout_duration(failures, ctx.settings)
                tx.login_attempts.put(
                    LoginAttempts(
                        key=attempts_key,
                        failures=failures,
                        locked_until=None if locked_for is None else now + locked_for,
                        updated_at=now,
                    )
                )
        ctx.events.emit("auth.login_failed", user_id=failure.user_id, reason=failure.reason)
        if locked_for is not None:
            ctx.events.emit(
                "auth.locked",
                user_id=failure.user_id,
                seconds=int(locked_for.total_seconds()),
            )
        return InvalidCredentials()

    # -- sessions ---------------------------------------------------------------

    def authenticate(self, access_token: str) -> Principal:
        """The principal of a valid access token; ``TokenError`` otherwise."""
        return self._ctx.tokens.authenticate(access_token)

    def authenticate_api_key(self, key: str) -> Principal:
        """The principal of a valid API key (limited to its scopes); ``TokenError`` otherwise."""
        return self._ctx.tokens.authenticate_api_key(key)

    def refresh(self, refresh_token: str) -> TokenPair:
        """Trade a refresh token for a new pair (rotation with replay detection)."""
        try:
            pair, user = self._ctx.tokens.refresh(refresh_token)
        except TokenError:
            self._ctx.events.emit("token.refresh_rejected")
            raise
        self._ctx.events.emit("token.refreshed", user_id=user.id)
        return pair

    def logout(self, access_token: str, refresh_token: str | None = None) -> None:
        """End a session: the access token is refused from now on, and the refresh
        token's family is revoked when given."""
        user_id = self._ctx.tokens.logout(access_token, refresh_token)
        self._ctx.events.emit("token.revoked", user_id=user_id, scope="session")

    def logout_all(self, actor: Principal, user_id: int) -> None:
        """End every session and API key of a user (``users:update``, or oneself;
        ``PermissionDenied`` on an account more privileged than the actor)."""
        check_id(user_id)
        self._ctx.policy.require(actor, "users:update", owner_id=user_id)
        with self._ctx.store.transaction() as tx:
            user = found(tx.users.get(user_id) if in_id_range(user_id) else None, "User")
            require_delegation(role_table(tx), actor, target=user)
            self._ctx.tokens.revoke_user_sessions(tx, user.id)
            tx.users.update(attrs.evolve(user, token_version=user.token_version + 1))
        self._ctx.events.emit("token.revoked", user_id=user_id, actor=actor, scope="all")

    # -- password reset and email verification -----------------------------------

    def request_password_reset(self, email: str) -> str | None:
        """A password-reset token to send to ``email``, or ``None`` when no active
        account has it — after the same work, so callers answer both alike."""
        ctx = self._ctx
        key = email_key(email.strip()) if isinstance(email, str) and len(email) <= 320 else ""
        with ctx.store.transaction() as tx:
            user = tx.users.get_by_email(key) if key else None
            if user is None or not user.is_active:
                # Mirror the known path's cost: a token, its digest, a write.
                token_digest(new_opaque_token())
                tx.one_time_tokens.delete_for_user(0, PASSWORD_RESET)
                token = None
            else:
                token = ctx.tokens.issue_one_time(tx, user, PASSWORD_RESET)
        ctx.events.emit(
            "password.reset_requested",
            user_id=None if token is None or user is None else user.id,
            known=token is not None,
        )
        return token

    def reset_recipient(self, token: str) -> str:
        """The stored address a password-reset token must be delivered to.

        Always the account's own address, never the text a requester typed: a
        look-alike that folds to the same key (``john@straße.de`` for
        ``john@strasse.de``) is another mailbox (Django CVE-2019-19844).
        ``TokenError`` if the token is not a valid reset token.
        """
        with self._ctx.store.transaction(readonly=True) as tx:
            # Reset tokens are only issued to accounts found by their email.
            return self._ctx.tokens.check_one_time(tx, token, PASSWORD_RESET).email or ""

    def reset_password(self, token: str, new_password: str) -> None:
        """Set a new password with a reset token; revokes every session and lock.

        ``TokenError`` for an unknown, spent, expired or outdated token;
        ``ValidationError`` (token not spent) when the password is not acceptable.
        """
        ctx = self._ctx
        with ctx.store.transaction(readonly=True) as tx:
            # Look without spending: a rejected password must leave the token usable.
            user = ctx.tokens.check_one_time(tx, token, PASSWORD_RESET)
        password = validation.validate_password(
            new_password,
            settings=ctx.settings,
            username=user.username,
            email=user.email,
            field="new_password",
        )
        password_hash = ctx.hasher.hash(password)
        with ctx.store.transaction() as tx:
            current = ctx.tokens.consume_one_time(tx, token, PASSWORD_RESET)
            ctx.tokens.revoke_user_sessions(tx, current.id)
            tx.users.update(
                attrs.evolve(
                    current,
                    password_hash=password_hash,
                    token_version=current.token_version + 1,
                    failed_logins=0,
                    locked_until=None,
                    updated_at=ctx.clock(),
                )
            )
        ctx.events.emit("password.reset", user_id=user.id)

    def request_email_verification(self, actor: Principal, user_id: int) -> str:
        """A token proving control of the user's email (``users:update``, or oneself)."""
        check_id(user_id)
        self._ctx.policy.require(actor, "users:update", owner_id=user_id)
        with self._ctx.store.transaction() as tx:
            user = found(tx.users.get(user_id) if in_id_range(user_id) else None, "User")
            if user.email is None:  # an account identified by its username alone
                raise ValidationError.single("email", "the account has no email address")
            token = self._ctx.tokens.issue_one_time(tx, user, EMAIL_VERIFICATION)
        self._ctx.events.emit("email.verification_requested", user_id=user_id, actor=actor)
        return token

    def verify_email(self, token: str) -> User:
        """Mark the email verified with a verification token; ``TokenError`` if invalid."""
        ctx = self._ctx
        with ctx.store.transaction() as tx:
            user = ctx.tokens.consume_one_time(tx, token, EMAIL_VERIFICATION)
            saved = tx.users.update(attrs.evolve(user, email_verified=True, updated_at=ctx.clock()))
        ctx.events.emit("user.email_verified", user_id=saved.id)
        return saved
