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
the precise reason goes to the ``usercore.tokens`` log, and no token text ever does.

This module is the pure codec and the key formats: no store, no state beyond
the codec's verification cache.  What keeps state (refresh families,
revocation, one-time tokens, API-key authentication) is
:class:`usercore.services.sessions.SessionService`.
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
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import jwt

from usercore.errors import TokenError
from usercore.ports import Clock, system_clock
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

logger = logging.getLogger("usercore.tokens")

ACCESS_TYPE = "access"
# RFC 8725 §3.11 explicit typing; RFC 9068 §2.1 names this media type for access
# tokens and §4 makes resource servers check it.  Media types compare
# case-insensitively and may drop the "application/" prefix (RFC 7515 §4.1.9).
ACCESS_HEADER_TYPE = "at+jwt"
ACCEPTED_HEADER_TYPES = frozenset({ACCESS_HEADER_TYPE, "application/" + ACCESS_HEADER_TYPE})
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "sub", "jti", "iss", "aud")
# RFC 8725 §3.10 / OWASP JWT cheat sheet: never let a token choose its own key.
# ``crit`` names extensions we would have to understand (RFC 7515 §4.1.11: we
# understand none, so any is refused) and ``b64`` asks for an unencoded payload
# (RFC 7797), which access tokens never use.
FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "crit", "b64"})
MAX_TOKEN_LENGTH = 8192
# Time claims outside [1970, 9999] cannot be a real instant: refused before any
# arithmetic or datetime conversion could overflow (exp=1e20, 2**70, NaN, inf).
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z
# User ids are 64-bit signed integers in every store.
MAX_USER_ID = 2**63 - 1
HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
# ECDSA signatures are malleable: with (r, s), (r, n - s) verifies too, so
# anyone holding a token could spell a second text of it.  Tokens are issued
# with the low s and a high s is refused, keeping one text per token.  The
# group orders n of P-256 and P-384 (SEC 2 §2.4.2, §2.5.1).
ECDSA_ORDERS = {
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "ES384": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
}
# Verified tokens remembered by their exact text (see ``AccessTokenCodec``).
VERIFIED_CACHE_SIZE = 4096
# Header segments of verified tokens, with the key they name: a deployment
# signs with one or a few headers, so the first few are all it needs.
ACCEPTED_HEADERS_SIZE = 16
BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
# A JWS compact serialization (RFC 7515 §7.1) is three base64url segments
# without padding (RFC 7515 §2) joined by dots, the signature never empty
# (``alg: none`` has none).  Deleting these bytes from a token must leave
# nothing: one C-level pass, where a regular expression walks the token in
# the interpreter's matcher.
COMPACT_JWS_BYTES = (BASE64URL + ".").encode("ascii")
# base64url -> base64, so ``binascii`` decodes a segment without the
# ``str.translate`` of ``base64.urlsafe_b64decode``.
URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
STANDARD_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
PADDING = (b"", b"", b"==", b"=")
OPEN_BRACE = ord("{")
# json.loads' own decoder (the default options) and its whitespace (RFC 8259 §2).
_RAW_DECODE = json.JSONDecoder().raw_decode
JSON_WHITESPACE = " \t\n\r"
_STR_TYPE = frozenset({str})
_NUMBER_TYPES = frozenset({int, float})
# The last character of a canonical unpadded base64url segment leaves its
# unused low bits zero (4 bits when length % 4 == 2, 2 bits when == 3).
CANONICAL_LAST = {
    2: frozenset(BASE64URL[::16]),
    3: frozenset(BASE64URL[::4]),
}
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
    """The verified content of an access token.

    ``iat`` and ``exp`` are the token's own NumericDates (seconds since the
    epoch, RFC 7519 §2); :attr:`issued_at` and :attr:`expires_at` are the
    same instants as aware datetimes, made when asked for: checking a token
    never needs them, so verifying one does not build them.
    """

    user_id: int
    jti: str
    token_version: int
    iat: float
    exp: float
    roles: frozenset[str] | None = None
    #: The refresh family (session) the token was issued for (``sid`` claim).
    family_id: str | None = None
    # When the user last proved a credential (OIDC Core §2 ``auth_time``): set on
    # tokens a login issues, absent on refreshed ones (fresh authentication).
    auth_time: datetime | None = None

    @property
    def issued_at(self) -> datetime:
        """When the token was issued (``iat``), in UTC."""
        return datetime.fromtimestamp(self.iat, timezone.utc)

    @property
    def expires_at(self) -> datetime:
        """When the token expires (``exp``, before any leeway), in UTC."""
        return datetime.fromtimestamp(self.exp, timezone.utc)


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
        return [_checked_hmac_key(algorithm, _Key(None, secret, secret))]
    keys = []
    for key in settings.signing_keys:
        if algorithm in HMAC_ALGORITHMS:
            assert key.private_key is not None  # checked by SigningKey
            raw = key.private_key
            hmac_key = raw.encode() if isinstance(raw, str) else raw
            keys.append(_checked_hmac_key(algorithm, _Key(key.kid, hmac_key, hmac_key)))
        else:
            keys.append(_Key(key.kid, *_load_asymmetric(key.private_key, key.public_key)))
    return keys


def _checked_hmac_key(algorithm: str, key: _Key) -> _Key:
    """RFC 7518 §3.2: an HMAC key is at least as long as the hash output (32,
    48, 64 bytes); refused at start, so no path ever verifies with a short one."""
    digest_size = HMAC_DIGESTS[algorithm]().digest_size
    if len(key.verifying) < digest_size:
        raise ValueError(f"{algorithm} needs a key of at least {digest_size} bytes (RFC 7518 §3.2)")
    return key


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


class _Verified:
    """A verified token's claims and the instants between which they hold."""

    __slots__ = ("claims", "not_after", "not_before")

    def __init__(self, claims: AccessClaims, not_before: float, not_after: float):
        self.claims = claims
        self.not_before = not_before
        self.not_after = not_after


class AccessTokenCodec:
    """Issues and verifies access tokens for one :class:`~usercore.Settings`.

    Time comes from ``clock`` (aware UTC), so tests move time instead of
    sleeping; pyjwt's own clock is not used for ``exp``/``nbf``/``iat``.

    Verification has two interchangeable paths behind one front (token shape)
    and one back (header rules, :meth:`_claims`): for the HMAC algorithms a
    narrow path on the standard library, for the others pyjwt.  pyjwt stays
    the reference: ``fast_path=False`` uses it for every algorithm, and a
    differential property test holds both paths to the same verdict on every
    token.  A verified token is remembered by its exact text (at most
    ``cache_size`` of them, until they expire): presenting it again re-checks
    only the time window, which is the one thing that changes.  Revocation and
    the user's state are not the codec's business; the token service checks
    them on every call.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        *,
        fast_path: bool = True,
        cache_size: int = VERIFIED_CACHE_SIZE,
    ):
        self._settings = settings
        self._clock = clock
        # Seconds since the epoch, what every check compares: from time.time()
        # for the system clock (the same instant without building a datetime).
        self._seconds: Callable[[], float] = (
            time.time if clock is system_clock else lambda: clock().timestamp()
        )
        self._keys = _load_keys(settings)
        self._by_kid = {key.kid: key for key in self._keys}
        self._algorithm = settings.algorithm
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
        self._digest = HMAC_DIGESTS.get(settings.algorithm) if fast_path else None
        # HMAC state after the key, per key: each token copies it instead of
        # hashing the key again.
        self._macs = (
            {}
            if self._digest is None
            else {key.kid: hmac.new(key.verifying, digestmod=self._digest) for key in self._keys}
        )
        self._cache: dict[str, _Verified] = {}
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._headers: dict[str, _Key] = {}
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
        family_id: str | None = None,
        auth_time: datetime | None = None,
    ) -> tuple[str, AccessClaims]:
        """A signed access token for ``user_id`` and the claims it carries.

        ``family_id`` names the session (refresh family) in the ``sid`` claim
        (OpenID Connect Front-Channel Logout §3 uses ``sid`` the same way), so
        logging out with the access token alone can end the whole session.
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
        if family_id is not None:
            payload["sid"] = family_id
        if auth_time is not None:
            payload["auth_time"] = _timestamp(auth_time)
        token = _low_s(
            self._jwt.encode(
                payload,
                self._keys[0].signing,
                algorithm=self._settings.algorithm,
                headers=self._sign_headers,
            ),
            ECDSA_ORDERS.get(self._algorithm),
        )
        claims = AccessClaims(
            user_id=user_id,
            jti=jti,
            token_version=token_version,
            iat=payload["iat"],
            exp=payload["exp"],
            roles=role_set,
            family_id=family_id,
            auth_time=None
            if auth_time is None
            else datetime.fromtimestamp(payload["auth_time"], timezone.utc),
        )
        return token, claims

    def verify(self, token: object) -> AccessClaims:
        """Verify signature, header, claims and times; raise ``TokenError`` on any failure."""
        if not isinstance(token, str):
            raise _reject("not a token string")
        if len(token) > MAX_TOKEN_LENGTH:
            # Before the cache lookup hashes it: the size is the attacker's choice.
            raise _reject("token too long")
        now = self._seconds()
        known = self._cache.get(token)
        if known is None:
            known = self._verify_signed(token)
            self._remember(token, known, now)
        if now >= known.not_after:
            raise _reject("expired")
        if now < known.not_before:
            raise _reject("not yet valid")
        return known.claims

    def _verify_signed(self, token: str) -> _Verified:
        segments = token.split(".")
        if not token.isascii():
            raise _reject("not a compact JWS")
        text = token.encode("ascii")
        if len(segments) != 3 or not all(segments) or text.translate(None, COMPACT_JWS_BYTES):
            # base64url and dots only, no padding (RFC 7515 §2, §7.1).
            raise _reject("not a compact JWS")
        header_segment, payload_segment, signature = segments
        if not (
            _is_canonical(header_segment)
            and _is_canonical(payload_segment)
            and _is_canonical(signature)
        ):
            # Unused low bits set: a second spelling of the same bytes.
            raise _reject("non-canonical base64url")
        key = self._headers.get(header_segment)
        new_header = key is None
        if key is None:
            key = self._key_for(_json_object(_b64decode(text[: len(header_segment)])))
        if self._digest is None:
            order = ECDSA_ORDERS.get(self._algorithm)
            if order is not None and _low_s(token, order) != token:
                raise _reject("high-s ECDSA signature")
            payload = self._decode_with_pyjwt(token, key)
        else:
            signed = len(header_segment) + 1 + len(payload_segment)
            mac = self._macs[key.kid].copy()
            mac.update(text[:signed])
            # Canonical base64url both sides (the front, CANONICAL_LAST), so
            # comparing the text compares the bytes.
            if not hmac.compare_digest(text[signed + 1 :], _b64encode_bytes(mac.digest())):
                raise _reject("bad signature")
            payload = _json_object(_b64decode(text[len(header_segment) + 1 : signed]))
            self._check_registered(payload)
        verified = self._verified(payload)
        if new_header and len(self._headers) < ACCEPTED_HEADERS_SIZE:
            # Only after the signature and every claim held: a header memo
            # filled by forgers (any header passing the rules, with a wrong
            # MAC) would be switched off for every genuine token.
            self._headers[header_segment] = key
        return verified

    def _key_for(self, header: Mapping[str, Any]) -> _Key:
        """The configured key a header names, after every header rule.

        RFC 8725 §3.1: the algorithm is the configured one, never the token's
        choice; §3.10: no header may carry or point at a key; §3.11 and RFC
        9068 §4: the header's ``typ`` says "access token".
        """
        if header.get("alg") != self._algorithm:
            raise _reject("algorithm not allowed")
        forbidden = FORBIDDEN_HEADERS.intersection(header)
        if forbidden:
            raise _reject(f"header carries {sorted(forbidden)}")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCEPTED_HEADER_TYPES:
            raise _reject("wrong header type")
        kid = header.get("kid")
        if "kid" in header and not isinstance(kid, str):
            raise _reject("unknown kid")
        key = self._by_kid.get(kid)
        if key is None:
            raise _reject("unknown kid")
        return key

    def _decode_with_pyjwt(self, token: str, key: _Key) -> dict[str, Any]:
        """The reference path: signature and registered claims by pyjwt."""
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
        # The header was read before verifying, to choose the key; the same
        # rules on the verified header, so the two can never disagree.
        if self._key_for(decoded["header"]) is not key:
            raise _reject("unknown kid")
        payload: dict[str, Any] = decoded["payload"]
        return payload

    def _check_registered(self, payload: Mapping[str, Any]) -> None:
        """pyjwt's claim rules, for the fast path: required claims present and
        not null, ``iss`` equal, ``aud`` the audience or a list of strings
        holding it (RFC 7519 §4.1.1, §4.1.3)."""
        if None in map(payload.get, REQUIRED_CLAIMS):  # one pass in C
            missing = next(claim for claim in REQUIRED_CLAIMS if payload.get(claim) is None)
            raise _reject(f"missing {missing}")
        if payload["iss"] != self._settings.issuer:
            raise _reject("wrong issuer")
        audience = payload["aud"]
        if audience != self._settings.audience and not (
            isinstance(audience, list)
            and all(isinstance(item, str) for item in audience)
            and self._settings.audience in audience
        ):
            raise _reject("wrong audience")

    def _verified(self, payload: Mapping[str, Any]) -> _Verified:
        claims = self._claims(payload)
        # _claims checked the three are numbers in range.
        return _Verified(
            claims,
            not_before=max(payload["nbf"], payload["iat"]) - self._leeway,
            not_after=payload["exp"] + self._leeway,
        )

    def _remember(self, token: str, verified: _Verified, now: float) -> None:
        """Keep a verified token, bounded: the oldest goes first.

        Every access token lives ``access_token_ttl``, so the oldest entry is
        also the first to expire; an expired one still met is refused by the
        time check in :meth:`verify`.
        """
        if self._cache_size <= 0 or now >= verified.not_after:
            return
        with self._cache_lock:
            cache = self._cache
            while len(cache) >= self._cache_size:
                del cache[next(iter(cache))]
            cache[token] = verified

    def _claims(self, payload: Mapping[str, Any]) -> AccessClaims:
        """The one place a verified payload becomes :class:`AccessClaims`."""
        if payload.get("typ") != ACCESS_TYPE:
            raise _reject("wrong token type")
        exp, nbf, iat = payload["exp"], payload["nbf"], payload["iat"]
        # Numbers (JSON decodes to exact types: a bool is not one), compared
        # before any arithmetic: 2**70 + 30.0 or fromtimestamp(1e20) would overflow.
        if not (
            type(exp) in _NUMBER_TYPES
            and type(nbf) in _NUMBER_TYPES
            and type(iat) in _NUMBER_TYPES
            and 0 <= exp <= MAX_TIMESTAMP
            and 0 <= nbf <= MAX_TIMESTAMP
            and 0 <= iat <= MAX_TIMESTAMP
        ):
            raise _reject("time claim not a number in range")
        sub, jti, version = payload["sub"], payload["jti"], payload.get("ver")
        if not isinstance(sub, str) or not sub.isascii() or not sub.isdigit() or len(sub) > 19:
            raise _reject("bad subject")
        user_id = int(sub)
        if user_id > MAX_USER_ID:
            raise _reject("bad subject")
        if not isinstance(jti, str) or not jti:
            raise _reject("bad jti")
        if not isinstance(version, int) or isinstance(version, bool):
            raise _reject("bad token version")
        roles = payload.get("roles")
        # JSON decodes to exact types: the set of the items' types is {str}
        # (or empty) exactly when every role is a string.
        role_set = (
            frozenset(roles)
            if isinstance(roles, list) and set(map(type, roles)) <= _STR_TYPE
            else None
        )
        sid = payload.get("sid")
        auth_time: Any = payload.get("auth_time")
        return AccessClaims(
            user_id=user_id,
            jti=jti,
            token_version=version,
            iat=iat,
            exp=exp,
            roles=role_set,
            family_id=sid if isinstance(sid, str) and sid else None,
            # Whole seconds, as issued; a malformed or future auth_time is no
            # proof of anything: not fresh (and bounded by iat, so never overflows).
            auth_time=datetime.fromtimestamp(auth_time, timezone.utc)
            if isinstance(auth_time, int)
            and not isinstance(auth_time, bool)
            and 0 <= auth_time <= iat
            else None,
        )


def _low_s(token: str, order: int | None) -> str:
    """``token`` with its ECDSA signature ``r || s`` (RFC 7518 §3.4) in the
    low-s form (s at most n/2); unchanged for other algorithms, or when the
    signature has not the curve's length (then it fails to verify anyway)."""
    if order is None:
        return token
    head, _, signature = token.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    size = (order.bit_length() + 7) // 8
    if len(raw) != 2 * size:
        return token
    s = int.from_bytes(raw[size:], "big")
    if s <= order // 2:
        return token
    return f"{head}.{_b64encode(raw[:size] + (order - s).to_bytes(size, 'big'))}"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64encode_bytes(data: bytes) -> bytes:
    """Unpadded base64url of ``data``, as bytes (``binascii``: no ``str`` round trip)."""
    return binascii.b2a_base64(data, newline=False).translate(STANDARD_TO_URLSAFE).rstrip(b"=")


def _b64decode(segment: bytes) -> bytes:
    """The bytes of a base64url segment the front accepted (alphabet, length,
    canonical tail): ``base64.urlsafe_b64decode`` on ``binascii`` directly."""
    return binascii.a2b_base64(segment.translate(URLSAFE_TO_STANDARD) + PADDING[len(segment) % 4])


def _is_canonical(segment: str) -> bool:
    """Whether a segment of base64url characters is the one spelling of its bytes."""
    tail = len(segment) % 4
    return tail == 0 or (tail != 1 and segment[-1] in CANONICAL_LAST[tail])


def _json_object(raw: bytes) -> dict[str, Any]:
    """A segment's bytes holding a JSON object, decoded as pyjwt does it
    (``json.loads`` on the bytes: same encodings, duplicate-key, whitespace
    and number rules); anything else is refused.

    ``json.loads`` of bytes first guesses their encoding (``json.detect_encoding``):
    bytes opening with ``{`` and then a non-NUL byte are UTF-8 by its rules,
    decoded here without the guess and parsed by the same decoder's
    ``raw_decode``, which is what ``json.loads`` ends in (text opening with
    ``{`` has no leading whitespace to skip; trailing JSON whitespace is all
    that may follow the object).  Any other opening goes to ``json.loads``.
    """
    try:
        if len(raw) > 1 and raw[0] == OPEN_BRACE and raw[1]:
            text = raw.decode("utf-8", "surrogatepass")
            value, end = _RAW_DECODE(text)
            if text[end:].strip(JSON_WHITESPACE):
                raise ValueError("extra data after the JSON value")
        else:
            value = json.loads(raw)
    except (ValueError, RecursionError):
        raise _reject("segment is not JSON") from None
    if not isinstance(value, dict):
        raise _reject("segment is not a JSON object")
    return value


def _reject(reason: str) -> TokenError:
    """The one opaque error; the reason is logged (never the token itself)."""
    logger.info("token rejected: %s", reason)
    return TokenError()


def __getattr__(name: str) -> Any:
    # ``TokenService`` lived here before sessions moved to the services layer;
    # importing it from here keeps working (resolved lazily: the services
    # import this module, not the reverse).
    if name == "TokenService":
        from usercore.services.sessions import SessionService

        return SessionService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
