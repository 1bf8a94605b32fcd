"""Tokens: JWT access tokens (pyjwt), opaque refresh and one-time tokens, API keys.

Standards: RFC 7519 (JWT), RFC 8725 (JWT best current practice), OWASP ASVS
4.0.3 V3 (sessions) and the OWASP JWT cheat sheet.

- Access tokens are short-lived JWTs with ``iss aud sub iat nbf exp jti typ``
  and the user's token version (``ver``).  The accepted algorithm list comes
  from :class:`~usercore.Settings`, never from the token (RFC 8725 §3.1); a
  token whose header names its own key (``jwk``, ``jku``, ``x5u``, ``x5c``) is
  refused (RFC 8725 §3.10).  Key rotation by ``kid``: the first key signs,
  every listed key verifies (as ``cryptography``'s ``MultiFernet``).
- Refresh, reset and verification tokens are opaque 256-bit random strings;
  the store keeps only their SHA-256 digest.
- API keys look like ``uc_<prefix>_<secret>``: base62 only, so a key splits
  unambiguously on ``_`` and a double-click selects it whole.

Every failure to verify raises the one :class:`~usercore.errors.TokenError`;
the precise reason goes to the ``usercore`` log, and no token text ever does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import jwt

from usercore.domain import ApiKey, OneTimeToken, Principal, RefreshToken, TokenPair, User
from usercore.errors import TokenError
from usercore.ports import Clock, Store, UnitOfWork
from usercore.settings import HMAC_ALGORITHMS, Settings

__all__ = [
    "API_KEY_PATTERN",
    "AccessClaims",
    "AccessTokenCodec",
    "TokenService",
    "format_api_key",
    "generate_api_key",
    "new_opaque_token",
    "parse_api_key",
    "token_digest",
]

logger = logging.getLogger("usercore")

ACCESS_TYPE = "access"
# RFC 8725 §3.11 explicit typing; RFC 9068 names this media type for access tokens.
ACCESS_HEADER_TYPE = "at+jwt"
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "sub", "jti", "iss", "aud")
# RFC 8725 §3.10 / OWASP JWT cheat sheet: never let a token choose its own key.
FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "crit"})
# 128 bits of randomness in the jti (OWASP ASVS 4.0.3 V3.2.2 asks for at least 64).
JTI_BYTES = 16
# 256 bits for refresh, reset, verification tokens and API-key secrets.
OPAQUE_TOKEN_BYTES = 32

BASE62 = string.ascii_letters + string.digits
API_KEY_PREFIX_LENGTH = 8
# ceil(256 / log2(62)) = 43 characters carry at least 256 bits.
API_KEY_SECRET_LENGTH = math.ceil(256 / math.log2(62))
API_KEY_PATTERN = re.compile(
    rf"uc_([A-Za-z0-9]{{{API_KEY_PREFIX_LENGTH}}})_([A-Za-z0-9]{{{API_KEY_SECRET_LENGTH}}})"
)


def token_digest(token: str) -> bytes:
    """The SHA-256 digest under which an opaque token is stored.

    A fast hash is right here (unlike passwords): the token carries 256 bits
    of randomness, so there is nothing to brute-force.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def new_opaque_token() -> str:
    """A url-safe random token with 256 bits of entropy."""
    return secrets.token_urlsafe(OPAQUE_TOKEN_BYTES)


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def format_api_key(prefix: str, secret: str) -> str:
    return f"uc_{prefix}_{secret}"


def generate_api_key() -> tuple[str, str]:
    """A new ``(prefix, secret)`` pair; show the user :func:`format_api_key` of it once."""
    return _random_base62(API_KEY_PREFIX_LENGTH), _random_base62(API_KEY_SECRET_LENGTH)


def parse_api_key(key: object) -> tuple[str, str] | None:
    """Split a key into ``(prefix, secret)``, or ``None`` if it is malformed.

    Malformed keys are rejected here, before any store query.
    """
    if not isinstance(key, str):
        return None
    match = API_KEY_PATTERN.fullmatch(key)
    return None if match is None else (match.group(1), match.group(2))


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


@attrs.frozen(kw_only=True)
class AccessClaims:
    """The verified content of an access token."""

    user_id: int
    jti: str
    token_version: int
    issued_at: datetime
    expires_at: datetime
    roles: frozenset[str] | None = None
    # When the user last proved a credential (OIDC Core §2 ``auth_time``): set on
    # tokens a login issues, absent on refreshed ones (fresh authentication).
    auth_time: datetime | None = None


class _Key:
    """One verification (and maybe signing) key, loaded once."""

    __slots__ = ("kid", "signing", "verifying")

    def __init__(self, kid: str | None, signing: Any, verifying: Any):
        self.kid = kid
        self.signing = signing
        self.verifying = verifying

    def __repr__(self) -> str:
        return f"_Key(kid={self.kid!r})"


def _load_keys(settings: Settings) -> list[_Key]:
    algorithm = settings.algorithm
    if not settings.signing_keys:
        secret = settings.secret_key_bytes
        if secret is None:
            raise ValueError("Settings.secret_key is required to sign access tokens")
        return [_Key(None, secret, secret)]
    keys = []
    for key in settings.signing_keys:
        if algorithm in HMAC_ALGORITHMS:
            assert key.private_key is not None  # checked by SigningKey
            raw = key.private_key
            hmac_key = raw.encode() if isinstance(raw, str) else raw
            keys.append(_Key(key.kid, hmac_key, hmac_key))
        else:
            keys.append(_Key(key.kid, *_load_asymmetric(key.private_key, key.public_key)))
    return keys


def _load_asymmetric(private_pem: str | bytes | None, public_pem: str | bytes | None) -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "asymmetric JWT algorithms need the cryptography package: "
            "pip install 'usercore[crypto]'"
        ) from exc

    def as_bytes(pem: str | bytes) -> bytes:
        return pem.encode() if isinstance(pem, str) else pem

    private = (
        None
        if private_pem is None
        else serialization.load_pem_private_key(as_bytes(private_pem), password=None)
    )
    if public_pem is not None:
        public = serialization.load_pem_public_key(as_bytes(public_pem))
    else:
        assert private is not None
        public = private.public_key()
    return private, public


class AccessTokenCodec:
    """Issues and verifies access tokens for one :class:`~usercore.Settings`.

    Time comes from ``clock`` (aware UTC), so tests move time instead of
    sleeping; pyjwt's own clock is not used for ``exp``/``nbf``/``iat``.
    """

    def __init__(self, settings: Settings, clock: Clock):
        self._settings = settings
        self._clock = clock
        self._keys = _load_keys(settings)
        self._by_kid = {key.kid: key for key in self._keys}
        self._algorithms = [settings.algorithm]
        self._leeway = settings.token_leeway.total_seconds()
        self._ttl = settings.access_token_ttl
        self._jwt = jwt.PyJWT(
            options={
                # Time claims are checked against the injected clock below.
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": list(REQUIRED_CLAIMS),
                "enforce_minimum_key_length": True,
            }
        )
        signer = self._keys[0]
        self._sign_headers: dict[str, Any] = {"typ": ACCESS_HEADER_TYPE}
        if signer.kid is not None:
            self._sign_headers["kid"] = signer.kid

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    def issue(
        self,
        *,
        user_id: int,
        token_version: int,
        roles: Iterable[str] | None = None,
        auth_time: datetime | None = None,
    ) -> tuple[str, AccessClaims]:
        """A signed access token for ``user_id`` and the claims it carries.

        ``auth_time`` (when the user authenticated) is carried as the OIDC
        ``auth_time`` claim, in whole seconds, when given.
        """
        now = self._clock()
        expires_at = now + self._ttl
        jti = secrets.token_urlsafe(JTI_BYTES)
        payload: dict[str, Any] = {
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": str(user_id),
            "iat": _timestamp(now),
            "nbf": _timestamp(now),
            "exp": _timestamp(expires_at),
            "jti": jti,
            "typ": ACCESS_TYPE,
            "ver": token_version,
        }
        role_set = None if roles is None else frozenset(roles)
        if role_set is not None:
            payload["roles"] = sorted(role_set)
        if auth_time is not None:
            payload["auth_time"] = _timestamp(auth_time)
        token = self._jwt.encode(
            payload,
            self._keys[0].signing,
            algorithm=self._settings.algorithm,
            headers=self._sign_headers,
        )
        claims = AccessClaims(
            user_id=user_id,
            jti=jti,
            token_version=token_version,
            issued_at=datetime.fromtimestamp(payload["iat"], timezone.utc),
            expires_at=datetime.fromtimestamp(payload["exp"], timezone.utc),
            roles=role_set,
            auth_time=None
            if auth_time is None
            else datetime.fromtimestamp(payload["auth_time"], timezone.utc),
        )
        return token, claims

    def verify(self, token: object) -> AccessClaims:
        """Verify signature, header, claims and times; raise ``TokenError`` on any failure."""
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise _reject("not a token string")
        if not token.isascii():
            # A JWS compact serialization is base64url and dots only (RFC 7515 §7.1).
            raise _reject("non-ASCII token")
        if len(self._keys) == 1:
            # One key: no need to read the header before verifying (a second
            # parse of the token would cost as much as the HMAC itself).
            key = self._keys[0]
        else:
            kid = _peek_kid(token)
            found = self._by_kid.get(kid) if isinstance(kid, str) else None
            if found is None:
                raise _reject("unknown kid")
            key = found
        try:
            decoded = self._jwt.decode_complete(
                token,
                key.verifying,
                algorithms=self._algorithms,
                audience=self._settings.audience,
                issuer=self._settings.issuer,
            )
        except jwt.PyJWTError as exc:
            raise _reject(type(exc).__name__) from None
        header = decoded["header"]
        # Checked on the verified header, so the two can never disagree.
        forbidden = FORBIDDEN_HEADERS.intersection(header)
        if forbidden:
            raise _reject(f"header carries {sorted(forbidden)}")
        if header.get("kid") != key.kid:
            raise _reject("unknown kid")
        return self._claims(decoded["payload"])

    def _claims(self, payload: Mapping[str, Any]) -> AccessClaims:
        if payload.get("typ") != ACCESS_TYPE:
            raise _reject("wrong token type")
        now = self._clock().timestamp()
        exp, nbf, iat = payload["exp"], payload["nbf"], payload["iat"]
        if not all(_is_number(value) for value in (exp, nbf, iat)):
            raise _reject("non-numeric time claim")
        if now >= exp + self._leeway:
            raise _reject("expired")
        if now < nbf - self._leeway or now < iat - self._leeway:
            raise _reject("not yet valid")
        sub, jti, version = payload["sub"], payload["jti"], payload.get("ver")
        if not isinstance(sub, str) or not sub.isascii() or not sub.isdigit() or len(sub) > 19:
            raise _reject("bad subject")
        if not isinstance(jti, str) or not jti:
            raise _reject("bad jti")
        if not isinstance(version, int) or isinstance(version, bool):
            raise _reject("bad token version")
        roles = payload.get("roles")
        role_set = (
            frozenset(roles)
            if isinstance(roles, list) and all(isinstance(r, str) for r in roles)
            else None
        )
        auth_time: Any = payload.get("auth_time")
        return AccessClaims(
            user_id=int(sub),
            jti=jti,
            token_version=version,
            issued_at=datetime.fromtimestamp(iat, timezone.utc),
            expires_at=datetime.fromtimestamp(exp, timezone.utc),
            roles=role_set,
            # Whole seconds, as issued; a malformed or future auth_time is no
            # proof of anything: not fresh (and bounded by iat, so never overflows).
            auth_time=datetime.fromtimestamp(auth_time, timezone.utc)
            if isinstance(auth_time, int)
            and not isinstance(auth_time, bool)
            and 0 <= auth_time <= iat
            else None,
        )


def _peek_kid(token: str) -> object:
    """The ``kid`` of a token's header, unverified, or ``None`` if unreadable.

    Only used to choose among configured keys; the header is verified with the
    signature right after.
    """
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        return None
    return header.get("kid") if isinstance(header, dict) else None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _reject(reason: str) -> TokenError:
    """The one opaque error; the reason is logged (never the token itself)."""
    logger.info("token rejected: %s", reason)
    return TokenError()


# --------------------------------------------------------------------------
# The store-backed token service: sessions, revocation, one-time tokens, keys
# --------------------------------------------------------------------------

PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose name, not a secret
EMAIL_VERIFICATION = "email_verification"
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
    material = "\0".join((purpose, user.email, user.password_hash or "", str(user.id)))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def _is_plausible_opaque(token: object) -> bool:
    return isinstance(token, str) and 0 < len(token) <= MAX_OPAQUE_TOKEN_LENGTH


class TokenService:
    """Sessions on a store: token pairs, refresh rotation, revocation, one-time tokens, API keys.

    Methods that take ``tx`` run inside the caller's unit of work so a login,
    a rehash and the new refresh token commit together.  Methods without it
    open their own transactions and, where a rejection must still write (a
    replayed refresh token revokes its family), commit before raising.
    """

    def __init__(self, store: Store, settings: Settings, clock: Clock):
        self._store = store
        self._settings = settings
        self._clock = clock
        self.codec = AccessTokenCodec(settings, clock)

    # -- access and refresh tokens ------------------------------------------

    def issue_pair(self, tx: UnitOfWork, user: User, *, family_id: str | None = None) -> TokenPair:
        """A new access token and a refresh token opening a new family (a login:
        the access token carries ``auth_time``, now)."""
        now = self._clock()
        refresh = self._add_refresh(
            tx,
            user,
            family_id=family_id or secrets.token_urlsafe(JTI_BYTES),
            expires_at=now + self._settings.refresh_token_ttl,
        )
        return self._pair(user, refresh, auth_time=now)

    def _pair(
        self, user: User, refresh_token: str, *, auth_time: datetime | None = None
    ) -> TokenPair:
        # A refresh proves possession of a token, not of a credential: refreshed
        # access tokens carry no auth_time, so they are never "fresh".
        access, _ = self.codec.issue(
            user_id=user.id, token_version=user.token_version, roles=user.roles, auth_time=auth_time
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
        user exists, is active and still has the token's version (one indexed
        lookup each)."""
        claims = self.codec.verify(access_token)
        with self._store.transaction(readonly=True) as tx:
            if tx.revoked_tokens.is_revoked(claims.jti):
                raise _reject("revoked jti")
            user = tx.users.get(claims.user_id)
        if user is None:
            raise _reject("unknown user")
        if not user.is_active:
            raise _reject("inactive user")
        if user.token_version != claims.token_version:
            raise _reject("old token version")
        return claims, user

    def authenticate(self, access_token: object) -> Principal:
        """The principal an access token stands for; ``TokenError`` otherwise."""
        claims, user = self._session(access_token)
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
        return outcome

    def _rotate(self, tx: UnitOfWork, digest: bytes, now: datetime) -> tuple[TokenPair, User] | str:
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
        if not tx.refresh_tokens.mark_used(digest, now):
            # Lost a race with a concurrent refresh of the same token: a replay.
            tx.refresh_tokens.revoke_family(record.family_id, now)
            return "concurrent refresh: family revoked"
        new = self._add_refresh(tx, user, family_id=record.family_id, expires_at=record.expires_at)
        return self._pair(user, new), user

    def logout(self, access_token: object, refresh_token: object = None) -> int:
        """Revoke the access token's ``jti`` until it expires, and the refresh family.

        Returns the user id.  ``TokenError`` if the access token is not valid.
        """
        claims, user = self._session(access_token)
        now = self._clock()
        with self._store.transaction() as tx:
            tx.revoked_tokens.add(claims.jti, claims.expires_at)
            if _is_plausible_opaque(refresh_token):
                assert isinstance(refresh_token, str)
                record = tx.refresh_tokens.get(token_digest(refresh_token))
                if record is not None and record.user_id == user.id:
                    tx.refresh_tokens.revoke_family(record.family_id, now)
        return user.id

    def revoke_user_sessions(self, tx: UnitOfWork, user_id: int) -> None:
        """Revoke every refresh token and every API key of a user (the caller bumps
        the token version).

        Every credential change goes through here (sign-out everywhere, password
        reset and change, an administrator's ``set_password``, deactivation), so
        a key minted with a stolen session cannot outlive the owner's recovery
        (OWASP ASVS 4.0.3 V3.3.3, V2.5.x).
        """
        now = self._clock()
        tx.refresh_tokens.revoke_user(user_id, now)
        tx.api_keys.revoke_user(user_id, now)

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
        ttl = (
            self._settings.password_reset_ttl
            if purpose == PASSWORD_RESET
            else self._settings.email_verification_ttl
        )
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
            with self._store.transaction() as tx:
                current = tx.api_keys.get(record.id)
                if current is not None:
                    tx.api_keys.update(attrs.evolve(current, last_used_at=now))
        return Principal(
            user_id=user.id,
            roles=user.roles,
            scopes=record.scopes if record.scopes is not None else None,
            token_id=f"apikey:{record.id}",
            method="api_key",
            user=user,
        )
