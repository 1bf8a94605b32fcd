"""The framework-neutral HTTP primitives: responses, credentials, cookies, errors.

Nothing here imports a web framework or pydantic.  The adapters read a
request's credentials with :func:`authenticate` (bearer token, API key or
session cookie, with the CSRF check for cookies), answer errors with
:func:`error_response`, and add :data:`SECURITY_HEADERS` (and
:data:`NO_STORE_HEADERS` on answers that carry a secret) to what they send.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from typing import Any, Literal, Protocol, cast

import attrs

from usercore.domain import Principal, TokenPair
from usercore.errors import (
    AccountLocked,
    AuthenticationError,
    Overloaded,
    PermissionDenied,
    TokenError,
    UsercoreError,
)
from usercore.ports import AwaitedTokenReads
from usercore.services import UserCore

__all__ = [
    "HASH_THREAD_NICENESS",
    "MAX_BODY_BYTES",
    "NO_STORE_HEADERS",
    "SAFE_METHODS",
    "SECURITY_HEADERS",
    "CookieLookup",
    "CookieSessions",
    "Cors",
    "Credential",
    "CsrfFailed",
    "HashAdmission",
    "HeaderLookup",
    "HttpResponse",
    "answer_headers",
    "authenticate",
    "awaited_reads",
    "bearer_token",
    "credential_of",
    "encode_json",
    "error_response",
    "http_error_response",
    "identify",
    "inline_reads",
    "internal_error_response",
    "is_json_media_type",
    "media_type",
    "principal_awaited",
    "principal_of",
    "request_id_of",
]

logger = logging.getLogger("usercore.web")

# No request body the API takes comes near this; larger ones are refused (413)
# before they are parsed.
MAX_BODY_BYTES = 1024 * 1024

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

SECURITY_HEADERS: Mapping[str, str] = {
    # OWASP Secure Headers / ASVS 4.0.3 V14.4.4, V14.4.5, V14.4.7: JSON is never
    # sniffed as HTML, no Referer leaks a URL, no page may frame the API.
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}
"""Sent on every answer of usercore's routes."""

NO_STORE_HEADERS: Mapping[str, str] = {
    # RFC 6749 §5.1: answers carrying tokens MUST NOT be cached.
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}
"""Sent on every answer that carries a token or a key."""

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class HeaderLookup(Protocol):
    """Case-insensitive header access, as Starlette's and Werkzeug's headers give."""

    def get(self, key: str, /) -> str | None: ...


class CookieLookup(Protocol):
    """Cookie access by name, as Starlette's and Werkzeug's cookie mappings give."""

    def get(self, key: str, /) -> str | None: ...


@attrs.frozen
class HttpResponse:
    """A status, a JSON body (``None`` for no body), extra headers and ``Set-Cookie`` values."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    cookies: tuple[str, ...] = ()

    def content(self) -> bytes:
        """The body as JSON bytes (empty when there is no body)."""
        return b"" if self.body is None else encode_json(self.body)


def encode_json(value: Any) -> bytes:
    """Compact JSON.  ASCII escapes keep any text (even a stray surrogate) encodable."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


def media_type(content_type: str | None) -> tuple[str, str]:
    """The ``(main, sub)`` media type of a ``Content-Type`` value, lower-cased
    (``("text", "plain")`` when it is missing or malformed, as RFC 2045 says)."""
    message = Message()
    message["content-type"] = content_type or ""
    return message.get_content_maintype(), message.get_content_subtype()


def is_json_media_type(content_type: str | None) -> bool:
    """True for ``application/json`` and ``application/*+json`` (RFC 6839)."""
    main, sub = media_type(content_type)
    return main == "application" and (sub == "json" or sub.endswith("+json"))


# -- browser sessions ------------------------------------------------------------


def _prefixed(prefix: str, name: str, sessions: CookieSessions) -> str:
    return prefix + name if sessions.secure else name


@attrs.frozen
class CookieSessions:
    """Cookie transport for browsers, beside bearer tokens.

    With it, login and refresh also set the access token (``access_cookie``)
    and the refresh token (``refresh_cookie``, sent only under the prefix's
    ``/auth`` routes, where refresh and logout read it) as ``HttpOnly``
    cookies, and a readable ``csrf_cookie``.  A request authenticated by
    cookie with an unsafe method must echo that cookie in ``csrf_header``
    (the double-submit pattern of the OWASP CSRF Prevention Cheat Sheet);
    bearer and API-key requests never need it.  ``secure=False`` only for
    plain-HTTP development.

    The default names carry the browser-enforced prefixes when ``secure``:
    ``__Host-usercore_access`` and ``__Host-usercore_csrf`` (no sibling
    subdomain can set or shadow them: "cookie tossing") and
    ``__Secure-usercore_refresh`` (its narrow ``Path`` rules out
    ``__Host-``).  Without ``secure`` a browser would refuse prefixed
    cookies, so the plain names are used.
    """

    secure: bool = attrs.field(default=True, kw_only=True)
    access_cookie: str = attrs.field(
        default=attrs.Factory(lambda self: _prefixed("__Host-", "usercore_access", self), True),
        kw_only=True,
    )
    refresh_cookie: str = attrs.field(
        default=attrs.Factory(lambda self: _prefixed("__Secure-", "usercore_refresh", self), True),
        kw_only=True,
    )
    csrf_cookie: str = attrs.field(
        default=attrs.Factory(lambda self: _prefixed("__Host-", "usercore_csrf", self), True),
        kw_only=True,
    )
    csrf_header: str = attrs.field(default="X-CSRF-Token", kw_only=True)
    same_site: Literal["Lax", "Strict"] = "Lax"
    refresh_max_age: int = 14 * 24 * 3600

    def __attrs_post_init__(self) -> None:
        # Browsers drop a prefixed cookie that breaks its prefix's rules
        # (RFC 6265bis §4.1.3): the session would silently never open.
        names = (self.access_cookie, self.refresh_cookie, self.csrf_cookie)
        if not self.secure and any(n.startswith(("__Host-", "__Secure-")) for n in names):
            raise ValueError("__Host- and __Secure- cookie names need secure=True")
        if self.refresh_cookie.startswith("__Host-"):
            raise ValueError(
                "the refresh cookie's Path is the auth routes, which __Host- forbids: use __Secure-"
            )

    def _cookie(self, name: str, value: str, path: str, max_age: int, http_only: bool) -> str:
        parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}"]
        if http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        parts.append(f"SameSite={self.same_site}")
        return "; ".join(parts)

    def set_cookies(self, pair: TokenPair, prefix: str) -> tuple[str, ...]:
        """The ``Set-Cookie`` values that open (or renew) a session with ``pair``."""
        return (
            self._cookie(self.access_cookie, pair.access_token, "/", pair.expires_in, True),
            self._cookie(
                self.refresh_cookie,
                pair.refresh_token,
                f"{prefix}/auth",
                self.refresh_max_age,
                True,
            ),
            # Readable by the page's script, which echoes it in csrf_header.
            self._cookie(
                self.csrf_cookie, secrets.token_urlsafe(32), "/", self.refresh_max_age, False
            ),
        )

    def clear_cookies(self, prefix: str) -> tuple[str, ...]:
        """The ``Set-Cookie`` values that end a session in the browser."""
        return (
            self._cookie(self.access_cookie, "", "/", 0, True),
            self._cookie(self.refresh_cookie, "", f"{prefix}/auth", 0, True),
            self._cookie(self.csrf_cookie, "", "/", 0, False),
        )

    def _echoes_csrf(self, headers: HeaderLookup, cookies: CookieLookup) -> bool:
        cookie = cookies.get(self.csrf_cookie) or ""
        header = headers.get(self.csrf_header) or ""
        return bool(cookie) and hmac.compare_digest(cookie.encode(), header.encode())

    def may_open(self, headers: HeaderLookup, cookies: CookieLookup) -> bool:
        """Whether an answer to this request may set the session cookies.

        Only when the request could not have been forged by another site: it
        declares a JSON media type (not CORS-safelisted, so a browser sends it
        cross-origin only after a preflight, which unlisted origins fail) or
        it echoes the CSRF cookie (a cookie refresh).  A plain form post or a
        body without a media type is a "simple" request any page can send:
        answering it with cookies would sign the victim's browser in to the
        attacker's account (login CSRF, OWASP CSRF Prevention Cheat Sheet).
        Such a login still answers its tokens in the body (the OAuth2
        password form of API tools).
        """
        return is_json_media_type(headers.get("content-type")) or self._echoes_csrf(
            headers, cookies
        )

    def check_csrf(self, method: str, headers: HeaderLookup, cookies: CookieLookup) -> None:
        """Raise ``CsrfFailed`` unless a cookie-authenticated unsafe request echoes
        the CSRF cookie in the CSRF header (compared in constant time)."""
        if method.upper() in SAFE_METHODS:
            return
        if not self._echoes_csrf(headers, cookies):
            raise CsrfFailed(
                f"A request authenticated by cookie must echo the {self.csrf_cookie} cookie "
                f"in the {self.csrf_header} header."
            )


class CsrfFailed(PermissionDenied):
    """A cookie-authenticated unsafe request without the matching CSRF token (403)."""

    code = "csrf_failed"


@attrs.frozen
class Cors:
    """Cross-origin access for browsers on ``origins`` (exact ``scheme://host[:port]``).

    A preflight from a listed origin is answered 204 with the allowed
    methods and headers; from any other origin 403.  Answers to a listed
    origin carry ``Access-Control-Allow-Origin`` (and, with
    ``allow_credentials``, ``Access-Control-Allow-Credentials`` so cookie
    sessions work across origins).  Never ``*`` with credentials (Fetch
    standard, CORS protocol).
    """

    origins: tuple[str, ...]
    allow_credentials: bool = False
    sessions: CookieSessions | None = None
    max_age: int = 600

    @classmethod
    def of(
        cls, origins: Sequence[str], allow_credentials: bool, sessions: CookieSessions | None
    ) -> Cors | None:
        """The CORS policy for ``origins``, ``None`` (no cross-origin access) when empty."""
        return cls(tuple(origins), allow_credentials, sessions) if origins else None

    def _allowed(self, headers: HeaderLookup) -> str | None:
        origin = headers.get("origin")
        return origin if origin is not None and origin in self.origins else None

    def headers(self, headers: HeaderLookup) -> dict[str, str]:
        """The CORS headers of an answer to this request (none for other origins)."""
        origin = self._allowed(headers)
        if origin is None:
            return {"Vary": "Origin"} if headers.get("origin") else {}
        answer = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if self.allow_credentials:
            answer["Access-Control-Allow-Credentials"] = "true"
        return answer

    def preflight(self, method: str, headers: HeaderLookup) -> HttpResponse | None:
        """The answer to a CORS preflight, ``None`` when the request is not one."""
        if method != "OPTIONS" or headers.get("access-control-request-method") is None:
            return None
        if self._allowed(headers) is None:
            return http_error_response(403)
        allowed = ["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"]
        if self.sessions is not None:
            allowed.append(self.sessions.csrf_header)
        return HttpResponse(
            204,
            None,
            {
                **self.headers(headers),
                "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
                "Access-Control-Allow-Headers": ", ".join(allowed),
                "Access-Control-Max-Age": str(self.max_age),
            },
        )


def answer_headers(cors: Cors | None, headers: HeaderLookup) -> dict[str, str]:
    """The headers every answer of usercore's routes carries: security and CORS."""
    extra = dict(SECURITY_HEADERS)
    if cors is not None:
        extra.update(cors.headers(headers))
    return extra


# -- credentials ------------------------------------------------------------------


@attrs.frozen
class Credential:
    """The credential a request carries: its text and where it came from."""

    token: str = attrs.field(repr=False)
    source: Literal["bearer", "api_key", "cookie"]


def bearer_token(headers: HeaderLookup) -> str | None:
    """The credentials of ``Authorization: Bearer <credentials>``, or ``None`` without one.

    Raises ``AuthenticationError`` for another scheme or an empty value.
    """
    authorization = headers.get("authorization")
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise AuthenticationError("Use 'Authorization: Bearer <token>' or an X-API-Key header.")
    return credentials


def credential_of(
    headers: HeaderLookup,
    cookies: CookieLookup | None = None,
    sessions: CookieSessions | None = None,
) -> Credential | None:
    """The request's credential: ``Authorization: Bearer``, then ``X-API-Key``,
    then (with cookie sessions) the access-token cookie; ``None`` without one."""
    token = bearer_token(headers)
    if token is not None:
        return Credential(token, "api_key" if token.startswith("uc_") else "bearer")
    key = headers.get("x-api-key")
    if key is not None:
        return Credential(key.strip(), "api_key")
    if sessions is not None and cookies is not None:
        cookie = cookies.get(sessions.access_cookie)
        if cookie:
            return Credential(cookie, "cookie")
    return None


def authenticate(
    core: UserCore,
    headers: HeaderLookup,
    cookies: CookieLookup | None = None,
    *,
    method: str = "GET",
    sessions: CookieSessions | None = None,
) -> Principal | None:
    """The principal a request's credentials stand for, ``None`` when it has none.

    ``Authorization: Bearer <jwt>`` is an access token, ``Authorization:
    Bearer uc_…`` and ``X-API-Key: uc_…`` are API keys; with ``sessions``,
    the access-token cookie counts too, and an unsafe ``method`` by cookie
    must pass the CSRF check (``CsrfFailed``, 403).  Credentials that are
    present but not valid raise ``TokenError`` (never silently anonymous).
    """
    return identify(core, headers, cookies, method=method, sessions=sessions)[1]


def identify(
    core: UserCore,
    headers: HeaderLookup,
    cookies: CookieLookup | None,
    *,
    method: str,
    sessions: CookieSessions | None,
) -> tuple[Credential | None, Principal | None]:
    """The request's credential and the principal it stands for (see :func:`authenticate`)."""
    credential = credential_of(headers, cookies, sessions)
    if credential is None:
        return None, None
    return credential, principal_of(
        core, credential, headers, cookies, method=method, sessions=sessions
    )


def principal_of(
    core: UserCore,
    credential: Credential,
    headers: HeaderLookup,
    cookies: CookieLookup | None,
    *,
    method: str,
    sessions: CookieSessions | None,
) -> Principal:
    """The principal of ``credential`` (see :func:`authenticate`)."""
    if credential.source == "api_key":
        return core.auth.authenticate_api_key(credential.token)
    _check_cookie(credential, headers, cookies, method=method, sessions=sessions)
    return core.auth.authenticate(credential.token)


async def principal_awaited(
    core: UserCore,
    reads: AwaitedTokenReads,
    credential: Credential,
    headers: HeaderLookup,
    cookies: CookieLookup | None,
    *,
    method: str,
    sessions: CookieSessions | None,
) -> Principal:
    """:func:`principal_of` for an access token (not an API key), its store
    read awaited on the event loop through ``reads`` (see :func:`awaited_reads`)."""
    if credential.source == "api_key":
        raise ValueError("an API key is authenticated by principal_of")
    _check_cookie(credential, headers, cookies, method=method, sessions=sessions)
    return await core.auth._authenticate_awaited(credential.token, reads)


def _check_cookie(
    credential: Credential,
    headers: HeaderLookup,
    cookies: CookieLookup | None,
    *,
    method: str,
    sessions: CookieSessions | None,
) -> None:
    if credential.source == "cookie" and sessions is not None and cookies is not None:
        sessions.check_csrf(method, headers, cookies)


# -- scheduling ------------------------------------------------------------------


def inline_reads(core: UserCore) -> bool:
    """Whether ``core``'s store reads in process (memory, SQLite): a credential
    check and one indexed read then take microseconds and may run on an event
    loop; a store behind a network socket (PostgreSQL) says ``False``."""
    return getattr(core.store, "inline_reads", False) is True


def awaited_reads(core: UserCore) -> AwaitedTokenReads | None:
    """``core``'s store when it can await a token check's read on the event loop
    (:class:`~usercore.ports.AwaitedTokenReads`: PostgreSQL), else ``None``."""
    store = core.store
    if callable(getattr(store, "read_for_token", None)):
        return cast(AwaitedTokenReads, store)
    return None


# How much less CPU priority the hashing threads get than the event loop: a
# hash (and the lane threads Argon2 starts from it, which inherit the value)
# then takes the cores the loop leaves, so cheap requests are answered first.
HASH_THREAD_NICENESS = 10


def _lower_priority() -> None:
    """Lower the calling thread's CPU priority (Linux: niceness is per thread)."""
    # Not Linux, or not allowed: the thread runs as is.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICENESS)


class HashAdmission:
    """Admission of password-hashing requests, decided before any thread is taken.

    At most ``slots + queue`` of them (``Settings.max_concurrent_hashes`` and
    ``hash_queue_length``, the numbers of the core's
    :class:`~usercore.passwords.HashLimiter`) are admitted at once; they run
    on a pool of their own threads (:attr:`executor`), where the limiter
    lets ``slots`` hash and queues the rest for at most
    ``hash_queue_timeout``.  One more is refused at once with
    :class:`~usercore.errors.Overloaded` (HTTP 503 + ``Retry-After``) by
    :meth:`enter`, on the caller's thread: a login flood never holds the
    threads that other requests need (CWE-400).
    """

    def __init__(self, slots: int, queue: int, retry_after: int = 1) -> None:
        self.capacity = slots + queue
        self.retry_after = max(1, retry_after)
        self._lock = threading.Lock()
        self._admitted = 0
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def of(cls, core: UserCore) -> HashAdmission:
        """The admission for ``core``'s settings (the sizes of its hash limiter)."""
        settings = core.settings
        timeout = settings.hash_queue_timeout.total_seconds()
        return cls(
            settings.max_concurrent_hashes,
            settings.hash_queue_length,
            retry_after=max(1, int(timeout + 0.999)),
        )

    @property
    def admitted(self) -> int:
        """Requests admitted and not yet finished."""
        return self._admitted

    @property
    def full(self) -> bool:
        """Whether :meth:`enter` would refuse now (a hint for refusing early)."""
        return self._admitted >= self.capacity

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The pool the admitted requests run on (one thread per admitted request)."""
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self.capacity,
                        thread_name_prefix="usercore-hash",
                        initializer=_lower_priority,
                    )
        return self._executor

    def enter(self) -> None:
        """Admit one request, or raise ``Overloaded`` at once when full (then :meth:`leave`)."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise Overloaded(retry_after=self.retry_after)
            self._admitted += 1

    def leave(self) -> None:
        """An admitted request finished (or was not started)."""
        with self._lock:
            self._admitted -= 1


# -- errors ---------------------------------------------------------------------


def request_id_of(headers: HeaderLookup) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a new one."""
    given = headers.get("x-request-id")
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def is_unexpected(exc: UsercoreError) -> bool:
    """A 5xx other than 503: a bug, logged and answered generically.  A 503
    (``StoreUnavailable``, a failed mail delivery) is transient and said so."""
    return exc.http_status >= 500 and exc.http_status != 503


def error_response(exc: UsercoreError) -> HttpResponse:
    """The envelope ``{"error": {"code", "message", "details"}}`` at the error's status.

    401 answers carry ``WWW-Authenticate: Bearer`` (RFC 6750 §3), ``AccountLocked``
    a ``Retry-After``.  A 5xx error is logged and answered generically.
    """
    status = exc.http_status
    if is_unexpected(exc):
        logger.error("usercore error %s answered as 500: %s", exc.code, exc.message)
        return internal_error_response(uuid.uuid4().hex)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = (
            'Bearer error="invalid_token"' if isinstance(exc, TokenError) else "Bearer"
        )
    if isinstance(exc, AccountLocked) or status == 503:
        headers["Retry-After"] = str(getattr(exc, "retry_after", 1))
    return HttpResponse(status, {"error": exc.to_dict()}, headers)


def internal_error_response(request_id: str) -> HttpResponse:
    """The generic 500 answer: no internals, only the id under which the error was logged."""
    return HttpResponse(
        500,
        {
            "error": {
                "code": "internal_error",
                "message": "An internal error occurred.",
                "details": {"request_id": request_id},
            }
        },
        {"X-Request-ID": request_id},
    )


_HTTP_CODES = {
    400: ("bad_request", "The request is not valid."),
    401: ("authentication_failed", "Authentication failed."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "The requested resource was not found."),
    405: ("method_not_allowed", "The method is not allowed for this resource."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "The request body's media type is not supported."),
}


def http_error_response(status: int, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """The envelope for a framework-level HTTP error (unknown route, wrong method...)."""
    if status >= 500:
        return internal_error_response(uuid.uuid4().hex)
    code, message = _HTTP_CODES.get(status, ("http_error", "The request could not be served."))
    return HttpResponse(
        status,
        {"error": {"code": code, "message": message, "details": {}}},
        dict(headers or {}),
    )
