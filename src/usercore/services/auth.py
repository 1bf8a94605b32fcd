"""``core.auth``: login, sessions, lockout, password reset and email verification.

Login never tells an unknown account from a wrong password, an inactive
account or an account without a password: each raises the same
:class:`~usercore.errors.InvalidCredentials` after exactly one password
verification (a dummy one when there is no hash to check), and unknown
identifiers are locked out exactly like accounts (OWASP ASVS 4.0.3 V2.2.1,
V3 enumeration; NIST SP 800-63B §5.2.2 rate limiting).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime, timedelta

import attrs

from usercore import validation
from usercore.domain import Principal, TokenPair, User, email_key, username_key
from usercore.errors import (
    AccountLocked,
    EmailNotVerified,
    InvalidCredentials,
    StoreUnavailable,
    TokenError,
    ValidationError,
)
from usercore.ports import AwaitedTokenReads, LoginAttempts, UnitOfWork
from usercore.services._context import Context
from usercore.services._delegation import require_delegation, role_table
from usercore.services._lookup import check_id, found, in_id_range
from usercore.services.sessions import EMAIL_VERIFICATION, PASSWORD_RESET, unverified
from usercore.settings import Settings
from usercore.tokens import new_opaque_token, token_digest

__all__ = [
    "RESET_REQUEST_INTERVAL",
    "VERIFICATION_RESEND_INTERVAL",
    "AuthService",
    "Lockout",
    "lockout_duration",
]

# Identifiers longer than any valid email (RFC 5321: 254) cannot match an
# account; the bound is checked on the raw text, before NFKC and case folding.
MAX_IDENTIFIER_LENGTH = 320

# At most one verification mail per account per interval from refused logins.
VERIFICATION_RESEND_INTERVAL = timedelta(minutes=5)

# At most one password-reset token per address per interval: a request needs
# no account, and each one mailed the address and voided the token before it
# (OWASP Forgot Password Cheat Sheet, "rate-limiting on a per-account basis").
RESET_REQUEST_INTERVAL = timedelta(minutes=5)

# The label that derives the login-attempts key from the secret (an HKDF-style
# "info": one secret, one purpose per derived key, NIST SP 800-108).
_ATTEMPTS_KEY_LABEL = b"usercore/login-attempts/v1"


def lockout_duration(
    failures: int, settings: Settings, *, threshold: int | None = None
) -> timedelta | None:
    """How long to lock after ``failures`` consecutive failures, or ``None``.

    ``lockout_base`` at the threshold (``settings.lockout_threshold`` unless
    given), doubling with each further failure, up to ``lockout_max``
    (exponential back-off, NIST SP 800-63B §5.2.2).
    """
    limit = settings.lockout_threshold if threshold is None else threshold
    if failures < limit:
        return None
    doublings = min(failures - limit, 32)
    delay: timedelta = min(settings.lockout_base * (2**doublings), settings.lockout_max)
    return delay


def _retry_after(locked_until: datetime, now: datetime) -> int:
    return max(1, math.ceil((locked_until - now).total_seconds()))


def _identifier_key(identifier: object) -> tuple[str, str]:
    """``("email", key)`` or ``("username", key)`` for a login identifier.

    Anything that is not a string of at most ``MAX_IDENTIFIER_LENGTH`` code
    points is never normalized: it becomes the empty username, which no
    account has (CWE-400: NFKC and case folding cost grows with the input).
    """
    if not isinstance(identifier, str) or not 0 < len(identifier) <= MAX_IDENTIFIER_LENGTH:
        return "username", ""
    text = identifier.strip()
    return ("email", email_key(text)) if "@" in text else ("username", username_key(text))


def _attempts_secret(settings: Settings) -> bytes:
    """The key of the login-attempts HMAC, derived from the deployment's secret.

    Keys of ``login_attempts`` rows are HMAC-SHA256 of the identifier (RFC
    2104), not a plain hash: people type passwords into the username field,
    and an unkeyed hash of a short text falls to a dictionary.  With an
    asymmetric deployment (no ``secret_key``) the signing key's private part
    is the secret.
    """
    secret = settings.secret_key_bytes
    if secret is None:
        private = next((k.private_key for k in settings.signing_keys if k.private_key), None)
        secret = private.encode("utf-8") if isinstance(private, str) else private
    if secret is None:  # no secret at all: the facade refuses this; stay keyed anyway
        secret = secrets.token_bytes(32)
    return hmac.new(secret, _ATTEMPTS_KEY_LABEL, hashlib.sha256).digest()


# How many identifiers the in-process deny-set holds before it refuses every
# login (fail closed): a store outage under a guessing attack must not turn
# into unlimited guesses, nor into unbounded memory.
MAX_DENIED_IDENTIFIERS = 10_000


class _DenySet:
    """Identifiers whose guesses could not be counted, refused until an expiry.

    When the store cannot record a guess (read-only, disk full, unreachable),
    the lockout would silently stop counting and allow unlimited guesses
    whenever the store answers again intermittently: it fails *closed*
    instead (OWASP ASVS 4.0.3 V2.2.1; NIST SP 800-63B §5.2.2 rate limiting).
    Per process, bounded: when full, every identifier is refused until the
    oldest entry expires.
    """

    def __init__(self, limit: int = MAX_DENIED_IDENTIFIERS) -> None:
        self._limit = limit
        self._until: OrderedDict[str, datetime] = OrderedDict()
        self._everyone_until: datetime | None = None
        self._lock = threading.Lock()

    def add(self, key: str, until: datetime, now: datetime) -> None:
        with self._lock:
            self._forget_expired(now)
            if len(self._until) >= self._limit:
                self._everyone_until = max(self._everyone_until or until, until)
                return
            self._until.pop(key, None)
            self._until[key] = until

    def denied_until(self, key: str, now: datetime) -> datetime | None:
        with self._lock:
            self._forget_expired(now)
            until = self._until.get(key)
            if self._everyone_until is not None:
                until = self._everyone_until if until is None else max(until, self._everyone_until)
            return until

    def __len__(self) -> int:
        return len(self._until)

    def _forget_expired(self, now: datetime) -> None:
        # Entries expire in insertion order (one duration for all).
        while self._until:
            key, until = next(iter(self._until.items()))
            if until > now:
                break
            del self._until[key]
        if self._everyone_until is not None and self._everyone_until <= now:
            self._everyone_until = None


@attrs.frozen
class _Failure:
    reason: str
    user_id: int | None


@attrs.frozen
class _Reservation:
    """The counters one password guess was charged to, before it was checked."""

    keys: tuple[str, ...]
    locked_for: timedelta | None


class Lockout:
    """Throttling of password guesses, charged *before* the guess is checked.

    Two counters per guess, both in ``login_attempts`` rows keyed by an HMAC:

    * per ``(identifier, client)``: ``lockout_threshold`` guesses, then an
      exponential back-off (NIST SP 800-63B §5.2.2).  ``client`` is what the
      caller knows of the requester (the HTTP adapters pass the remote
      address), so a guesser elsewhere does not lock the owner out (OWASP
      Authentication Cheat Sheet, "Account Lockout").
    * per identifier, across clients: the ceiling
      ``lockout_identifier_threshold`` (at most 100 consecutive failures per
      account, NIST SP 800-63B §5.2.2), against guessing from many clients.

    Each guess is reserved in one write transaction (the store serializes
    these reads and writes: ``BEGIN IMMEDIATE`` in SQLite, row and key locks
    in PostgreSQL, one lock in memory) and only then verified, so at most
    ``lockout_threshold`` guesses per lock window are ever evaluated, however
    many threads or processes race.  A success clears both counters.  Keys
    include the account's id and token version, so a password reset, an
    administrator's ``set_password``, a deactivation or signing out
    everywhere starts fresh counters.  Email and username of one account count separately, exactly
    as two unknown identifiers do, so lock states never link the two.
    """

    def __init__(self, ctx: Context):
        self._ctx = ctx
        self._secret = _attempts_secret(ctx.settings)
        self._denied = _DenySet()

    @contextlib.contextmanager
    def fail_closed(self, kind: str, key: str) -> Iterator[None]:
        """Refuse the identifier while it is denied; deny it when charging it fails.

        Wraps the transaction that charges a guess.  When the store cannot
        write it (``StoreUnavailable``), the identifier is refused in this
        process for ``lockout_base`` (``StoreUnavailable`` with that
        ``retry_after``), even once the store answers again: an uncounted
        guess must not be followed by more (fails closed, not open).
        """
        subject = self._hmac(f"deny\x00{kind}:{key}")
        now = self._ctx.clock()
        until = self._denied.denied_until(subject, now)
        if until is not None:
            raise StoreUnavailable(retry_after=_retry_after(until, now))
        try:
            yield
        except StoreUnavailable:
            now = self._ctx.clock()
            self._denied.add(subject, now + self._ctx.settings.lockout_base, now)
            self._ctx.events.emit("auth.lockout_write_failed")
            raise

    def keys(self, kind: str, key: str, user: User | None, client: str | None) -> tuple[str, ...]:
        """The row keys of the identifier's ceiling and of its ``(identifier, client)`` counter.

        An account's counters are its own (a new account does not inherit the
        failures of the identifier before it existed) and belong to one token
        version (a reset or ``logout_all`` starts fresh ones).
        """
        generation = "-" if user is None else f"{user.id}.{user.token_version}"
        subject = f"{kind}:{key}\x00{generation}"
        return (
            self._hmac(f"identifier\x00{subject}"),
            self._hmac(f"client\x00{subject}\x00{client or ''}"),
        )

    def once_per(self, label: str, interval: timedelta) -> bool:
        """Whether ``label`` may happen now, at most once per ``interval`` across
        processes (a ``login_attempts`` row locked for ``interval``, forgotten by
        ``purge_expired``); claims the slot when it may."""
        with self._ctx.store.transaction() as tx:
            return self.claim(tx, label, interval)

    def claim(self, tx: UnitOfWork, label: str, interval: timedelta) -> bool:
        """:meth:`once_per` in the caller's write transaction ``tx``: one read and
        one write whether or not the slot is free (a refused claim writes its
        row back unchanged), so the time taken does not tell which it was."""
        key = self._hmac(f"once\x00{label}")
        now = self._ctx.clock()
        entry = tx.login_attempts.get(key)
        taken = entry is not None and entry.locked_until is not None and now < entry.locked_until
        if entry is None or not taken:
            entry = LoginAttempts(key=key, failures=0, locked_until=now + interval, updated_at=now)
        tx.login_attempts.put(entry)
        return not taken

    def decoy_key(self, key: str) -> str:
        """The key of the throwaway row a request for an unknown account writes."""
        return self._hmac(f"decoy\x00{key}")

    def _hmac(self, message: str) -> str:
        data = message.encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    def reserve(self, tx: UnitOfWork, keys: tuple[str, ...]) -> _Reservation | AccountLocked:
        """Charge one guess to every counter in ``keys``, or the lock in force.

        Runs in the caller's write transaction; the keys are read in a fixed
        order so two reservations cannot deadlock.
        """
        settings = self._ctx.settings
        ceiling = max(settings.lockout_identifier_threshold, settings.lockout_threshold)
        thresholds = (ceiling, settings.lockout_threshold)
        now = self._ctx.clock()
        entries = [tx.login_attempts.get(key) for key in keys]
        locks = [e.locked_until for e in entries if e is not None and e.locked_until is not None]
        active = [until for until in locks if now < until]
        if active:
            return AccountLocked(retry_after=_retry_after(max(active), now))
        locked_for: timedelta | None = None
        for key, entry, threshold in zip(keys, entries, thresholds, strict=False):
            failures = (0 if entry is None else entry.failures) + 1
            duration = lockout_duration(failures, settings, threshold=threshold)
            if duration is not None:
                locked_for = duration if locked_for is None else max(locked_for, duration)
            tx.login_attempts.put(
                LoginAttempts(
                    key=key,
                    failures=failures,
                    locked_until=None if duration is None else now + duration,
                    updated_at=now,
                )
            )
        return _Reservation(keys=keys, locked_for=locked_for)

    def clear(self, tx: UnitOfWork, keys: tuple[str, ...]) -> None:
        """Forget the counters of a guess that turned out right."""
        for key in keys:
            tx.login_attempts.delete(key)

    def failed(self, failure: _Failure, reservation: _Reservation) -> InvalidCredentials:
        """Report a wrong guess (already counted) and return the error to raise."""
        events = self._ctx.events
        events.emit("auth.login_failed", user_id=failure.user_id, reason=failure.reason)
        if reservation.locked_for is not None:
            events.emit(
                "auth.locked",
                user_id=failure.user_id,
                seconds=int(reservation.locked_for.total_seconds()),
            )
        return InvalidCredentials()

    def check_password(self, user: User, password: object, *, client: str | None = None) -> bool:
        """Whether ``password`` is ``user``'s, charged to the lockout like a login.

        For re-authentication (the current password of a password change):
        the same counters as a login with the account's email (or username),
        so a stolen session cannot guess without limit (OWASP ASVS 4.0.3
        V2.2.1).  Raises ``AccountLocked`` while a lock is in force; an
        over-long password is a mismatch after the dummy verification.
        """
        kind, key = _identifier_key(user.email or user.username or "")
        keys = self.keys(kind, key, user, client)
        # The slot first: a shed check (Overloaded) is not charged as a guess.
        with self._ctx.hasher.slot():
            with self.fail_closed(kind, key), self._ctx.store.transaction() as tx:
                reservation = self.reserve(tx, keys)
            if isinstance(reservation, AccountLocked):
                raise reservation
            matched, _ = self.verify(user.password_hash, password)
        if matched:
            with self._ctx.store.transaction() as tx:
                self.clear(tx, keys)
            return True
        self.failed(_Failure("bad_password", user.id), reservation)
        return False

    def verify(self, stored_hash: str | None, password: object) -> tuple[bool, str | None]:
        """One password verification at constant cost, whatever ``password`` is.

        A non-string or over-long password (:func:`validation.password_within_bounds`)
        is never normalized: it costs the dummy verification and does not match.
        """
        hasher = self._ctx.hasher
        if not isinstance(password, str) or not validation.password_within_bounds(
            password, max_length=self._ctx.settings.password_max_length
        ):
            hasher.dummy_verify("")
            return False, None
        return hasher.verify(stored_hash, password)


class AuthService:
    """``core.auth``."""

    def __init__(self, ctx: Context):
        self._ctx = ctx
        self._lockout = Lockout(ctx)

    # -- login ----------------------------------------------------------------

    def login(self, identifier: str, password: str, *, client: str | None = None) -> TokenPair:
        """Sign in by email or username; returns an access and a refresh token.

        ``client`` identifies the requester (the HTTP adapters pass the remote
        address): failures are counted per identifier *and* client, so
        someone else's guessing does not lock the owner out (see
        :class:`Lockout`).  Raises ``InvalidCredentials`` (one message for
        every reason) or ``AccountLocked`` while a lock from earlier failures
        is in force; ``EmailNotVerified`` (403) when
        ``Settings.require_verified_email`` holds, the password is right and
        the account's email is not verified; ``Overloaded`` (503) when no hashing slot is free in
        time; ``StoreUnavailable`` (503) when the guess cannot be counted (the
        identifier is then refused in this process for ``lockout_base``) or
        when the refresh token of a correct login cannot be stored (no tokens
        are issued without it).  A successful login resets the failure counters, records
        ``last_login_at`` and upgrades the stored hash when parameters or
        format are outdated.
        """
        ctx = self._ctx
        lockout = self._lockout
        kind, key = _identifier_key(identifier)
        # A hashing slot first, for known and unknown accounts alike: when the
        # process is overloaded the login is refused (Overloaded, 503) before
        # anything is charged or checked, at the same rate whether the account
        # exists or not.
        with ctx.hasher.slot():
            # The guess is charged before it is checked (at most lockout_threshold
            # guesses per lock window, across threads and processes); when it
            # cannot be charged, the identifier is refused for a while (fail closed).
            with lockout.fail_closed(kind, key), ctx.store.transaction() as tx:
                user = self._find(tx, kind, key) if key else None
                keys = lockout.keys(kind, key, user, client)
                reservation = lockout.reserve(tx, keys)
            if isinstance(reservation, AccountLocked):
                raise reservation
            # Exactly one verification on every path: against the real hash, or a
            # dummy one when the hash is missing or unusable or the password too long.
            matched, new_hash = lockout.verify(user.password_hash if user else None, password)
        if user is None:
            failure = _Failure("unknown_account", None)
        elif not user.is_active:
            failure = _Failure("inactive", user.id)
        elif not user.has_password:
            failure = _Failure("no_password", user.id)
        elif not matched:
            failure = _Failure("bad_password", user.id)
        elif unverified(ctx.settings, user):
            # Only now, with the password found right, may the answer differ
            # from InvalidCredentials.  The guess was right: its charge goes.
            with ctx.store.transaction() as tx:
                lockout.clear(tx, keys)
            ctx.events.emit("auth.login_failed", user_id=user.id, reason="email_not_verified")
            raise EmailNotVerified(user_id=user.id)
        else:
            return self._succeed(user.id, new_hash, keys)
        raise lockout.failed(failure, reservation)

    def _find(self, tx: UnitOfWork, kind: str, key: str) -> User | None:
        return tx.users.get_by_email(key) if kind == "email" else tx.users.get_by_username(key)

    def _succeed(self, user_id: int, new_hash: str | None, keys: tuple[str, ...]) -> TokenPair:
        ctx = self._ctx
        now = ctx.clock()
        with ctx.store.transaction() as tx:
            # The user row first, then the counters: the order of a
            # reservation, so two transactions never wait on each other in a cycle.
            user = found(tx.users.get(user_id), "User")
            self._lockout.clear(tx, keys)
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
            pair = ctx.sessions.issue_pair(tx, user)
        ctx.events.emit("auth.login_succeeded", user_id=user_id, rehashed=new_hash is not None)
        return pair

    # -- sessions ---------------------------------------------------------------

    def authenticate(self, access_token: str) -> Principal:
        """The principal of a valid access token; ``TokenError`` otherwise."""
        return self._ctx.sessions.authenticate(access_token)

    async def _authenticate_awaited(self, access_token: str, reads: AwaitedTokenReads) -> Principal:
        # For the web adapters (usercore.web._core.principal_awaited): authenticate,
        # the store read awaited on the event loop through ``reads`` (the store).
        # Not public: AsyncUserCore's twins run the sync methods in its pool.
        return await self._ctx.sessions.authenticate_awaited(access_token, reads)

    def authenticate_api_key(self, key: str) -> Principal:
        """The principal of a valid API key (limited to its scopes); ``TokenError`` otherwise."""
        return self._ctx.sessions.authenticate_api_key(key)

    def refresh(self, refresh_token: str) -> TokenPair:
        """Trade a refresh token for a new pair (rotation with replay detection).

        ``TokenError`` for a token that is not valid; ``EmailNotVerified``
        (the token stays usable) while ``Settings.require_verified_email``
        holds and the account's email is not verified.
        """
        try:
            pair, user = self._ctx.sessions.refresh(refresh_token)
        except (TokenError, EmailNotVerified):
            self._ctx.events.emit("token.refresh_rejected")
            raise
        self._ctx.events.emit("token.refreshed", user_id=user.id)
        return pair

    def logout(self, access_token: str, refresh_token: str | None = None) -> None:
        """End a session: the access token is refused from now on, and the refresh
        token's family is revoked when given."""
        user_id = self._ctx.sessions.logout(access_token, refresh_token)
        self._ctx.events.emit("token.revoked", user_id=user_id, scope="session")

    def logout_all(self, actor: Principal, user_id: int) -> None:
        """End every session and API key of a user (``users:update``, or oneself;
        ``PermissionDenied`` on an account more privileged than the actor)."""
        check_id(user_id)
        self._ctx.policy.require(actor, "users:update", owner_id=user_id)
        with self._ctx.store.transaction() as tx:
            user = found(tx.users.get(user_id) if in_id_range(user_id) else None, "User")
            require_delegation(role_table(tx), actor, target=user)
            tx.users.update(self._ctx.sessions.end_sessions(tx, user))
        self._ctx.events.emit("token.revoked", user_id=user_id, actor=actor, scope="all")

    # -- password reset and email verification -----------------------------------

    def request_password_reset(self, email: str) -> str | None:
        """A password-reset token to send to ``email``, or ``None`` when no active
        account has it — after the same work, so callers answer both alike.

        At most one token per address per ``RESET_REQUEST_INTERVAL``: a request
        within it also gets ``None`` (the token sent before stays valid), after
        the work of an unknown address, so the limit tells nothing about which
        addresses have accounts.  The request needs no account; without the
        limit a loop mailed the address without end and voided each token the
        owner received (OWASP Forgot Password Cheat Sheet, "rate-limiting on a
        per-account basis"; OWASP ASVS 4.0.3 V11.1.4).
        """
        ctx = self._ctx
        kind, key = _identifier_key(email)
        with ctx.store.transaction() as tx:
            # Claimed for unknown addresses too: the same work on every path.
            first = self._lockout.claim(
                tx, f"password-reset\x00{kind}:{key}", RESET_REQUEST_INTERVAL
            )
            user = tx.users.get_by_email(key) if kind == "email" and key else None
            known = user is not None and user.is_active
            if first and user is not None and known:
                token: str | None = ctx.sessions.issue_one_time(tx, user, PASSWORD_RESET)
            else:
                # The known path's store work, step for step (a lookup, a
                # delete, an insert), so timing does not tell the two apart
                # (OWASP ASVS 4.0.3 V2.5.1 / Forgot Password Cheat Sheet:
                # "consistent response time").  The insert is a throwaway
                # login_attempts row (one_time_tokens rows need a user), no
                # lock, forgotten by purge_expired.
                token_digest(new_opaque_token())
                tx.one_time_tokens.delete_for_user(0, PASSWORD_RESET)
                tx.login_attempts.put(
                    LoginAttempts(
                        key=self._lockout.decoy_key(key),
                        failures=0,
                        locked_until=None,
                        updated_at=ctx.clock(),
                    )
                )
                token = None
        ctx.events.emit(
            "password.reset_requested",
            user_id=user.id if user is not None and known else None,
            known=known,
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
            return self._ctx.sessions.check_one_time(tx, token, PASSWORD_RESET).email or ""

    def reset_password(self, token: str, new_password: str) -> None:
        """Set a new password with a reset token; revokes every session and lock.

        ``TokenError`` for an unknown, spent, expired or outdated token;
        ``ValidationError`` (token not spent) when the password is not acceptable.
        """
        ctx = self._ctx
        with ctx.store.transaction(readonly=True) as tx:
            # Look without spending: a rejected password must leave the token usable.
            user = ctx.sessions.check_one_time(tx, token, PASSWORD_RESET)
        ctx.sessions.replace_password(
            user,
            new_password,
            load=lambda tx: ctx.sessions.consume_one_time(tx, token, PASSWORD_RESET),
        )
        ctx.events.emit("password.reset", user_id=user.id)

    def request_email_verification(self, actor: Principal, user_id: int) -> str:
        """A token proving control of the user's email (``users:update``, or oneself;
        ``PermissionDenied`` on an account more privileged than the actor)."""
        check_id(user_id)
        self._ctx.policy.require(actor, "users:update", owner_id=user_id)
        with self._ctx.store.transaction() as tx:
            user = found(tx.users.get(user_id) if in_id_range(user_id) else None, "User")
            require_delegation(role_table(tx), actor, target=user)
            if user.email is None:  # an account identified by its username alone
                raise ValidationError.single("email", "the account has no email address")
            token = self._ctx.sessions.issue_one_time(tx, user, EMAIL_VERIFICATION)
        self._ctx.events.emit("user.email_verification_requested", user_id=user_id, actor=actor)
        return token

    def may_resend_verification(self, user_id: int) -> bool:
        """Whether a refused login (``EmailNotVerified``) may send ``user_id`` a new
        verification mail now: at most one per ``VERIFICATION_RESEND_INTERVAL``.

        Whoever registered an address that is not theirs knows the password,
        and each login would otherwise mail that address (mail flooding,
        OWASP ASVS 4.0.3 V11.1.4 anti-automation).
        """
        check_id(user_id)
        return self._lockout.once_per(
            f"verification-resend\x00{user_id}", VERIFICATION_RESEND_INTERVAL
        )

    def verify_email(self, token: str) -> User:
        """Mark the email verified with a verification token; ``TokenError`` if invalid."""
        ctx = self._ctx
        with ctx.store.transaction() as tx:
            user = ctx.sessions.consume_one_time(tx, token, EMAIL_VERIFICATION)
            saved = tx.users.update(attrs.evolve(user, email_verified=True, updated_at=ctx.clock()))
        ctx.events.emit("user.email_verified", user_id=saved.id)
        return saved
