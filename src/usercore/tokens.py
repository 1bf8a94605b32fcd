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

import hashlib
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

from usercore.errors import TokenError
from usercore.ports import Clock
from usercore.settings import HMAC_ALGORITHMS, Settings

__all__ = [
    "API_KEY_PATTERN",
    "AccessClaims",
    "AccessTokenCodec",
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
    ) -> tuple[str, AccessClaims]:
        """A signed access token for ``user_id`` and the claims it carries."""
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
        )
        return token, claims

    def verify(self, token: object) -> AccessClaims:
        """Verify signature, header, claims and times; raise ``TokenError`` on any failure."""
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise _reject("not a token string")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _reject("malformed header") from None
        forbidden = FORBIDDEN_HEADERS.intersection(header)
        if forbidden:
            raise _reject(f"header carries {sorted(forbidden)}")
        kid = header.get("kid")
        key = self._by_kid.get(kid) if kid is None or isinstance(kid, str) else None
        if key is None:
            raise _reject("unknown kid")
        try:
            payload = self._jwt.decode(
                token,
                key.verifying,
                algorithms=self._algorithms,
                audience=self._settings.audience,
                issuer=self._settings.issuer,
            )
        except jwt.PyJWTError as exc:
            raise _reject(type(exc).__name__) from None
        return self._claims(payload)

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
        return AccessClaims(
            user_id=int(sub),
            jti=jti,
            token_version=version,
            issued_at=datetime.fromtimestamp(iat, timezone.utc),
            expires_at=datetime.fromtimestamp(exp, timezone.utc),
            roles=role_set,
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _reject(reason: str) -> TokenError:
    """The one opaque error; the reason is logged (never the token itself)."""
    logger.info("token rejected: %s", reason)
    return TokenError()
