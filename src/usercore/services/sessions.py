"""Sessions on a store: token pairs, refresh rotation, revocation, one-time tokens, API keys.

The use cases behind ``core.auth`` and ``core.api_keys`` that keep state:
refresh-token families (rotation with replay detection, RFC 9700 §4.14.2),
revoked access-token ids, single-use reset and verification tokens bound to
the account state, and API-key authentication.  The pure formats they build
on (JWT access tokens, opaque tokens, API-key text) live in
:mod:`usercore.tokens`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from usercore import validation
from usercore.domain import ApiKey, OneTimeToken, Principal, RefreshToken, TokenPair, User
from usercore.errors import EmailNotVerified, StoreUnavailable
from usercore.passwords import PasswordHasher
from usercore.ports import AwaitedTokenReads, Clock, Store, UnitOfWork
from usercore.settings import Settings
from usercore.tokens import (
    JTI_BYTES,
    AccessClaims,
    AccessTokenCodec,
    _reject,
    format_api_key,
    generate_api_key,
    new_opaque_token,
    parse_api_key,
    token_digest,
)

__all__ = [
    "API_KEY_TOUCH_INTERVAL",
    "EMAIL_VERIFICATION",
    "INVITATION",
    "PASSWORD_RESET",
    "SessionService",
    "state_binding",
    "unverified",
]

PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose name, not a secret
EMAIL_VERIFICATION = "email_verification"
# An administrator's invitation to register (Settings.registration == "invite").
INVITATION = "invitation"
# last_used_at is a write; one per minute per key is plenty for an audit trail
# and keeps key authentication a read on the hot path.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)
MAX_OPAQUE_TOKEN_LENGTH = 128


def state_binding(purpose: str, user: User) -> str:
    """A digest of the account state a one-time token is valid for.

    It covers the *exact* stored email (not its case-folded key) and the
    password hash, so changing either voids every outstanding reset and
    verification token: a token issued for ``ceo@strasse.de`` does not verify
    ``ceo@straße.de``, although both fold to one key (the class of Django's
    CVE-2019-19844).
    """
    material = "\0".join((purpose, user.email or "", user.password_hash or "", str(user.id)))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def unverified(settings: Settings, user: User) -> bool:
    """Whether ``Settings.require_verified_email`` refuses ``user`` new tokens: it
    has an email that is not verified (an account identified by its username
    alone has nothing to verify)."""
    return settings.require_verified_email and user.email is not None and not user.email_verified


def _is_plausible_opaque(token: object) -> bool:
    return isinstance(token, str) and 0 < len(token) <= MAX_OPAQUE_TOKEN_LENGTH


def _session_user(claims: AccessClaims, user: User | None, revoked: bool) -> User:
    """The user an access token's verified ``claims`` stand for, from the store's
    read (``users.get_for_token``); ``TokenError`` when the session has ended."""
    if revoked:
        raise _reject("revoked jti")
    if user is None:
        raise _reject("unknown user")
    if not user.is_active:
        raise _reject("inactive user")
    if user.token_version != claims.token_version:
        raise _reject("old token version")
    return user


class SessionService:
    """Sessions on a store: token pairs, refresh rotation, revocation, one-time tokens, API keys.

    Methods that take ``tx`` run inside the caller's unit of work so a login,
    a rehash and the new refresh token commit together.  Methods without it
    open their own transactions and, where a rejection must still write (a
    replayed refresh token revokes its family), commit before raising.
    """

    def __init__(self, store: Store, settings: Settings, clock: Clock, hasher: PasswordHasher):
        self._store = store
        self._settings = settings
        self._clock = clock
        self._hasher = hasher
        self.codec = AccessTokenCodec(settings, clock)

    # -- access and refresh tokens ------------------------------------------

    def issue_pair(self, tx: UnitOfWork, user: User, *, family_id: str | None = None) -> TokenPair:
        """A new access token and a refresh token opening a new family (a login:
        the access token carries ``auth_time``, now)."""
        now = self._clock()
        family = family_id or secrets.token_urlsafe(JTI_BYTES)
        refresh = self._add_refresh(
            tx, user, family_id=family, expires_at=now + self._settings.refresh_token_ttl
        )
        return self._pair(user, refresh, family, auth_time=now)

    def _pair(
        self,
        user: User,
        refresh_token: str,
        family_id: str,
        *,
        auth_time: datetime | None = None,
    ) -> TokenPair:
        # A refresh proves possession of a token, not of a credential: refreshed
        # access tokens carry no auth_time, so they are never "fresh".
        access, _ = self.codec.issue(
            user_id=user.id,
            token_version=user.token_version,
            roles=user.roles,
            family_id=family_id,
            auth_time=auth_time,
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh_token,
            expires_in=int(self._settings.access_token_ttl.total_seconds()),
        )

    def _add_refresh(
        self, tx: UnitOfWork, user: User, *, family_id: str, expires_at: datetime
    ) -> str:
        token = new_opaque_token()
        tx.refresh_tokens.add(
            RefreshToken(
                token_hash=token_digest(token),
                family_id=family_id,
                user_id=user.id,
                token_version=user.token_version,
                created_at=self._clock(),
                expires_at=expires_at,
            )
        )
        return token

    def _session(self, access_token: object) -> tuple[AccessClaims, User]:
        """Verify an access token and load its user: the jti is not revoked, the
        user exists, is active and still has the token's version (one statement,
        a single read: one round trip on a database server)."""
        claims = self.codec.verify(access_token)
        with self._store.transaction(single_read=True) as tx:
            user, revoked = tx.users.get_for_token(claims.user_id, claims.jti)
        return claims, _session_user(claims, user, revoked)

    def authenticate(self, access_token: object) -> Principal:
        """The principal an access token stands for; ``TokenError`` otherwise."""
        return self._principal(*self._session(access_token))

    async def authenticate_awaited(
        self, access_token: object, reads: AwaitedTokenReads
    ) -> Principal:
        """:meth:`authenticate`, its store read awaited through ``reads`` (the store)."""
        claims = self.codec.verify(access_token)
        user, revoked = await reads.read_for_token(claims.user_id, claims.jti)
        return self._principal(claims, _session_user(claims, user, revoked))

    def _principal(self, claims: AccessClaims, user: User) -> Principal:
        roles = (
            claims.roles
            if self._settings.trust_token_roles and claims.roles is not None
            else user.roles
        )
        return Principal(
            user_id=user.id,
            roles=roles,
            token_id=claims.jti,
            method="token",
            user=user,
            auth_time=claims.auth_time,
        )

    def refresh(self, refresh_token: object) -> tuple[TokenPair, User]:
        """Rotate a refresh token: the old one is spent, a new one joins its family.

        Presenting a spent token again is a replay: the whole family is revoked
        (OAuth 2.0 Security BCP, RFC 9700 §4.14.2) and ``TokenError`` raised.
        ``EmailNotVerified`` (the token not spent) while
        ``Settings.require_verified_email`` holds and the account's email is
        not verified.
        """
        if not _is_plausible_opaque(refresh_token):
            raise _reject("malformed refresh token")
        assert isinstance(refresh_token, str)
        digest = token_digest(refresh_token)
        now = self._clock()
        with self._store.transaction() as tx:
            outcome = self._rotate(tx, digest, now)
        if isinstance(outcome, str):
            raise _reject(outcome)
        if isinstance(outcome, EmailNotVerified):
            raise outcome
        return outcome

    def _rotate(
        self, tx: UnitOfWork, digest: bytes, now: datetime
    ) -> tuple[TokenPair, User] | str | EmailNotVerified:
        record = tx.refresh_tokens.get(digest)
        if record is None:
            return "unknown refresh token"
        if record.revoked_at is not None:
            return "revoked refresh token"
        if record.used_at is not None:
            tx.refresh_tokens.revoke_family(record.family_id, now)
            return "refresh token replayed: family revoked"
        if now >= record.expires_at:
            return "expired refresh token"
        user = tx.users.get(record.user_id)
        if user is None or not user.is_active or user.token_version != record.token_version:
            tx.refresh_tokens.revoke_family(record.family_id, now)
            return "refresh token of a gone, inactive or logged-out user"
        if unverified(self._settings, user):
            # Not spent: the session goes on once the address is verified.
            return EmailNotVerified(user_id=user.id)
        if not tx.refresh_tokens.mark_used(digest, now):
            # Lost a race with a concurrent refresh of the same token: a replay.
            tx.refresh_tokens.revoke_family(record.family_id, now)
            return "concurrent refresh: family revoked"
        new = self._add_refresh(tx, user, family_id=record.family_id, expires_at=record.expires_at)
        return self._pair(user, new, record.family_id), user

    def logout(self, access_token: object, refresh_token: object = None) -> int:
        """End a session: revoke the access token's ``jti`` until it expires, and
        its refresh family.

        The family is the one the access token was issued with (its ``sid``
        claim), so a client that sends only its access token still ends the
        whole session (OWASP ASVS 4.0.3 V3.3.1: logout invalidates the
        session); a ``refresh_token`` of the same user ends its family too.
        Returns the user id.  ``TokenError`` if the access token is not valid.
        """
        claims, user = self._session(access_token)
        now = self._clock()
        with self._store.transaction() as tx:
            tx.revoked_tokens.add(claims.jti, claims.expires_at)
            if claims.family_id is not None:
                tx.refresh_tokens.revoke_family(claims.family_id, now)
            if _is_plausible_opaque(refresh_token):
                assert isinstance(refresh_token, str)
                record = tx.refresh_tokens.get(token_digest(refresh_token))
                if record is not None and record.user_id == user.id:
                    tx.refresh_tokens.revoke_family(record.family_id, now)
        return user.id

    def end_sessions(self, tx: UnitOfWork, user: User, *, one_time_tokens: bool = False) -> User:
        """End every session of ``user``: revoke its refresh tokens and API keys
        and return it with its token version bumped (every access token issued
        before dies), for the caller to save with its other changes.

        ``one_time_tokens`` also drops its outstanding reset and verification
        tokens (deleting the account).  Every credential change goes through
        here (sign-out everywhere, password reset and change, an
        administrator's ``set_password``, deactivation, deletion), so a key
        minted with a stolen session cannot outlive the owner's recovery
        (OWASP ASVS 4.0.3 V3.3.3, V2.5.x).
        """
        now = self._clock()
        tx.refresh_tokens.revoke_user(user.id, now)
        tx.api_keys.revoke_user(user.id, now)
        if one_time_tokens:
            tx.one_time_tokens.delete_for_user(user.id)
        return attrs.evolve(user, token_version=user.token_version + 1)

    def replace_password(
        self,
        user: User,
        new_password: object,
        *,
        load: Callable[[UnitOfWork], User],
    ) -> User:
        """Store a new password for ``user`` and end every session: the one path
        of a password change, an administrator's reset and a reset by token.

        The password is validated against ``user`` (``ValidationError`` on
        ``new_password``, nothing written) and hashed outside any transaction;
        then ``load(tx)`` returns the account as the write transaction sees it
        (raising to refuse: a spent token, a delegation rule), and the new hash
        is saved with any lockout cleared (OWASP ASVS 4.0.3 V2.1.1, V3.3.3).
        Returns the saved user.
        """
        password = validation.validate_password(
            new_password,
            settings=self._settings,
            username=user.username,
            email=user.email,
            field="new_password",
        )
        password_hash = self._hasher.hash(password)
        with self._store.transaction() as tx:
            current = self.with_password(tx, load(tx), password_hash)
            return tx.users.update(attrs.evolve(current, updated_at=self._clock()))

    def with_password(self, tx: UnitOfWork, user: User, password_hash: str) -> User:
        """``user`` with a new password hash, every session ended and any lockout
        cleared, for the caller to save in ``tx``: what every password change
        writes (:meth:`replace_password`, and ``users.update(password=...)``
        beside other fields).  Outstanding reset and verification links die
        with the old password."""
        return attrs.evolve(
            self.end_sessions(tx, user, one_time_tokens=True),
            password_hash=password_hash,
            failed_logins=0,
            locked_until=None,
        )

    def purge_expired(self) -> int:
        """Forget expired revocations, refresh tokens and one-time tokens; returns the count."""
        now = self._clock()
        with self._store.transaction() as tx:
            return (
                tx.revoked_tokens.purge_expired(now)
                + tx.refresh_tokens.purge_expired(now)
                + tx.one_time_tokens.purge_expired(now)
                + tx.login_attempts.purge_expired(now)
            )

    # -- one-time tokens ----------------------------------------------------

    def issue_one_time(self, tx: UnitOfWork, user: User, purpose: str) -> str:
        """A single-use token for ``purpose``; earlier ones of that purpose are voided."""
        ttl = {
            PASSWORD_RESET: self._settings.password_reset_ttl,
            INVITATION: self._settings.invitation_ttl,
        }.get(purpose, self._settings.email_verification_ttl)
        now = self._clock()
        token = new_opaque_token()
        tx.one_time_tokens.delete_for_user(user.id, purpose)
        tx.one_time_tokens.add(
            OneTimeToken(
                token_hash=token_digest(token),
                purpose=purpose,
                user_id=user.id,
                binding=state_binding(purpose, user),
                created_at=now,
                expires_at=now + ttl,
            )
        )
        return token

    def check_one_time(self, tx: UnitOfWork, token: object, purpose: str) -> User:
        """The user a one-time token is valid for, without spending it; ``TokenError``
        when it is unknown, of another purpose, spent, expired, or the account's
        email or password changed since it was issued."""
        if not _is_plausible_opaque(token):
            raise _reject("malformed one-time token")
        assert isinstance(token, str)
        record = tx.one_time_tokens.get(token_digest(token))
        if record is None or record.purpose != purpose:
            raise _reject("unknown one-time token")
        if record.used_at is not None or self._clock() >= record.expires_at:
            raise _reject("spent or expired one-time token")
        user = tx.users.get(record.user_id)
        if user is None or not hmac.compare_digest(record.binding, state_binding(purpose, user)):
            raise _reject("one-time token of a changed account")
        return user

    def consume_one_time(self, tx: UnitOfWork, token: object, purpose: str) -> User:
        """Spend a one-time token (single use, atomically) and return its user."""
        user = self.check_one_time(tx, token, purpose)
        assert isinstance(token, str)
        if not tx.one_time_tokens.consume(token_digest(token), self._clock()):
            raise _reject("one-time token spent concurrently")
        return user

    # -- API keys -----------------------------------------------------------

    def create_api_key(
        self,
        tx: UnitOfWork,
        user: User,
        *,
        name: str,
        scopes: frozenset[str] | None,
        expires_at: datetime | None,
    ) -> tuple[ApiKey, str]:
        """Store a new key (prefix and SHA-256 of the secret only); return it and its text."""
        prefix, secret = generate_api_key()
        record = tx.api_keys.add(
            ApiKey(
                id=0,
                user_id=user.id,
                name=name,
                prefix=prefix,
                scopes=scopes,
                created_at=self._clock(),
                expires_at=expires_at,
                secret_hash=token_digest(secret),
            )
        )
        return record, format_api_key(prefix, secret)

    def authenticate_api_key(self, key: object) -> Principal:
        """The principal of an API key, limited to the key's scopes; ``TokenError`` otherwise.

        The format is checked before any store query; the secret is compared
        with ``hmac.compare_digest`` against the stored SHA-256.
        """
        parsed = parse_api_key(key)
        if parsed is None:
            raise _reject("malformed API key")
        prefix, secret = parsed
        now = self._clock()
        with self._store.transaction(readonly=True) as tx:
            record = tx.api_keys.get_by_prefix(prefix)
            user = None if record is None else tx.users.get(record.user_id)
        # Compare even when the prefix is unknown, so both paths cost the same.
        expected = b"\0" * 32 if record is None else record.secret_hash
        matched = hmac.compare_digest(expected, token_digest(secret))
        if record is None or not matched:
            raise _reject("unknown API key")
        if not record.is_usable_at(now):
            raise _reject("revoked or expired API key")
        if user is None or not user.is_active:
            raise _reject("API key of a gone or inactive user")
        if record.last_used_at is None or now - record.last_used_at >= API_KEY_TOUCH_INTERVAL:
            try:
                with self._store.transaction() as tx:
                    current = tx.api_keys.get(record.id)
                    if current is not None:
                        tx.api_keys.update(attrs.evolve(current, last_used_at=now))
            except StoreUnavailable:
                # The audit timestamp is best effort: a store that reads but
                # cannot write (disk full, read-only) still lets the key in;
                # the store has logged the incident.
                pass
        return Principal(
            user_id=user.id,
            roles=user.roles,
            scopes=record.scopes if record.scopes is not None else None,
            token_id=f"apikey:{record.id}",
            method="api_key",
            user=user,
        )
