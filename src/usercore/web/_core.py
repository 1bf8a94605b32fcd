"""The framework-neutral HTTP primitives: requests, responses, input rules, errors.

Nothing here imports a web framework.  An adapter turns its request into an
:class:`HttpRequest`, hands it to :meth:`usercore.web.HttpApi.dispatch`, and
turns the :class:`HttpResponse` back into its own response type.  Input is
parsed and checked here (path, query and body, every problem reported at once
under its field's name), so both adapters accept and refuse exactly the same
requests with exactly the same answers.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl

import attrs

from usercore.domain import Principal
from usercore.errors import (
    AccountLocked,
    AuthenticationError,
    TokenError,
    UsercoreError,
    ValidationError,
)
from usercore.services import UserCore

__all__ = [
    "FORM_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "MAX_BODY_BYTES",
    "NO_BODY",
    "FieldSpec",
    "HeaderLookup",
    "HttpRequest",
    "HttpResponse",
    "authenticate",
    "bearer_token",
    "check_fields",
    "encode_json",
    "error_response",
    "http_error_response",
    "internal_error_response",
    "parse_body",
    "parse_params",
    "request_id_of",
]

logger = logging.getLogger("usercore.web")

JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# No request body the API takes comes near this; larger ones are refused (413)
# before they are parsed.
MAX_BODY_BYTES = 1024 * 1024

Kind = Literal["string", "integer", "boolean", "strings"]

_KIND_MESSAGES: dict[str, str] = {
    "string": "must be a string",
    "integer": "must be an integer",
    "boolean": "must be a boolean",
    "strings": "must be a list of strings",
}
_INTEGER = re.compile(r"[+-]?[0-9]{1,40}")
_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SURROGATES = re.compile("[\ud800-\udfff]")


class _NoBody:
    """The marker for "the adapter did not parse the body; use ``raw_body``"."""

    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Any = _NoBody()


class HeaderLookup(Protocol):
    """Case-insensitive header access, as Starlette's and Werkzeug's headers give."""

    def get(self, key: str, /) -> str | None: ...


@attrs.frozen
class FieldSpec:
    """What one input field (path, query or body) may hold.

    ``kind`` is the JSON type (``strings`` is a list of strings); query and
    path values arrive as text and are converted to it.  ``required`` fields
    must be present, ``nullable`` ones may be ``null``; ``minimum``/``maximum``
    bound integers and ``choices`` lists the only strings allowed.
    """

    kind: Kind = "string"
    required: bool = False
    nullable: bool = False
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    description: str = ""

    def bounds_message(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"must be between {self.minimum} and {self.maximum}"
        if self.minimum is not None:
            return f"must be at least {self.minimum}"
        return f"must be at most {self.maximum}"

    def choices_message(self) -> str:
        quoted = [f"'{choice}'" for choice in self.choices]
        if len(quoted) == 2:
            return f"must be {quoted[0]} or {quoted[1]}"
        return f"must be one of {', '.join(quoted)}"


@attrs.frozen
class HttpRequest:
    """One request as the neutral layer sees it.

    ``path_params`` and ``query`` hold the raw text of each parameter;
    ``headers`` needs only a case-insensitive ``get``.  The body is either
    already parsed (``body``, a JSON value: FastAPI's pydantic models give
    that) or ``raw_body`` with its ``content_type``, which the route parses.
    """

    method: str
    headers: HeaderLookup
    path_params: Mapping[str, str] = attrs.field(factory=dict)
    query: Mapping[str, str] = attrs.field(factory=dict)
    body: Any = NO_BODY
    raw_body: bytes = b""
    content_type: str | None = None


@attrs.frozen
class HttpResponse:
    """A status, a JSON body (``None`` for no body) and extra headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)

    def content(self) -> bytes:
        """The body as JSON bytes (empty when there is no body)."""
        return b"" if self.body is None else encode_json(self.body)


def encode_json(value: Any) -> bytes:
    """Compact JSON.  ASCII escapes keep any text (even a stray surrogate) encodable."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


# -- parsing ------------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == JSON_CONTENT_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def parse_body(
    raw: bytes, content_type: str | None, *, form_fields: frozenset[str] = frozenset()
) -> Any:
    """The JSON value of a request body, ``NO_BODY`` when it is empty.

    JSON needs ``Content-Type: application/json`` (or ``+json``), as FastAPI
    does.  With ``form_fields``, ``application/x-www-form-urlencoded`` is
    accepted too and becomes a dict of those fields (the OAuth2 password
    form).  Raises ``ValidationError`` on ``body`` otherwise.
    """
    if not raw:
        return NO_BODY
    media_type = _media_type(content_type)
    if form_fields and media_type == FORM_CONTENT_TYPE:
        return _parse_form(raw, form_fields)
    if not _is_json(media_type):
        expected = "JSON or an OAuth2 password form" if form_fields else "JSON"
        raise ValidationError.single(
            "body", f"must be {expected} (send Content-Type: {JSON_CONTENT_TYPE})"
        )
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8 and over-long integer literals.
        raise ValidationError.single("body", "is not valid JSON") from None


def _parse_form(raw: bytes, fields: frozenset[str]) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50
        )
    except (UnicodeDecodeError, ValueError):
        raise ValidationError.single("body", "is not a valid form") from None
    form: dict[str, str] = {}
    problems: dict[str, list[str]] = {}
    for key, value in pairs:
        if key not in fields:
            problems[key] = ["is not a known field"]
        elif key in form:
            problems[key] = ["is given more than once"]
        form[key] = value
    if problems:
        raise ValidationError(problems)
    return form


def _check_value(value: Any, spec: FieldSpec) -> list[str]:
    """Why ``value`` does not fit ``spec`` (empty when it does)."""
    if value is None:
        return [] if spec.nullable else [_KIND_MESSAGES[spec.kind]]
    kind = spec.kind
    if kind == "string":
        if not isinstance(value, str):
            return [_KIND_MESSAGES[kind]]
        if _SURROGATES.search(value):
            return ["must be valid Unicode text"]
        if spec.choices and value not in spec.choices:
            return [spec.choices_message()]
        return []
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [_KIND_MESSAGES[kind]]
        if (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            return [spec.bounds_message()]
        return []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [_KIND_MESSAGES[kind]]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return [_KIND_MESSAGES[kind]]
    if any(_SURROGATES.search(item) for item in value):
        return ["must be valid Unicode text"]
    return []


def check_fields(
    value: Any, specs: Mapping[str, FieldSpec], problems: dict[str, list[str]]
) -> dict[str, Any]:
    """Check a JSON object against ``specs``; adds every problem to ``problems``.

    Returns the fields that were given (absent optional fields stay absent, so
    a partial update changes only what was sent).
    """
    if not isinstance(value, dict):
        problems["body"] = ["must be a JSON object"]
        return {}
    for key in value:
        if key not in specs:
            problems[str(key)] = ["is not a known field"]
    given: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in value:
            if spec.required:
                problems[name] = ["is required"]
            continue
        field_problems = _check_value(value[name], spec)
        if field_problems:
            problems[name] = field_problems
        else:
            given[name] = value[name]
    return given


def _convert_text(text: str, spec: FieldSpec) -> tuple[Any, list[str]]:
    """A path or query parameter's text as ``spec.kind``, or the problems."""
    if spec.kind == "integer":
        stripped = text.strip()
        if not _INTEGER.fullmatch(stripped):
            return None, [_KIND_MESSAGES["integer"]]
        number = int(stripped)
        problems = _check_value(number, spec)
        return number, problems
    if spec.kind == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True, []
        if lowered in _FALSE:
            return False, []
        return None, [_KIND_MESSAGES["boolean"]]
    return text, _check_value(text, spec)


def parse_params(
    values: Mapping[str, str],
    specs: Mapping[str, FieldSpec],
    problems: dict[str, list[str]],
) -> dict[str, Any]:
    """Convert the declared path or query parameters; unknown ones are ignored."""
    parsed: dict[str, Any] = {}
    for name, spec in specs.items():
        text = values.get(name)
        if text is None:
            if spec.required:
                problems[name] = ["is required"]
            continue
        value, field_problems = _convert_text(text, spec)
        if field_problems:
            problems[name] = field_problems
        else:
            parsed[name] = value
    return parsed


# -- authentication -------------------------------------------------------------


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


def authenticate(core: UserCore, headers: HeaderLookup) -> Principal | None:
    """The principal a request's credentials stand for, ``None`` when it has none.

    ``Authorization: Bearer <jwt>`` is an access token, ``Authorization:
    Bearer uc_…`` and ``X-API-Key: uc_…`` are API keys.  Credentials that are
    present but not valid raise ``TokenError`` (never silently anonymous).
    """
    token = bearer_token(headers)
    if token is not None:
        if token.startswith("uc_"):
            return core.auth.authenticate_api_key(token)
        return core.auth.authenticate(token)
    key = headers.get("x-api-key")
    if key is not None:
        return core.auth.authenticate_api_key(key.strip())
    return None


# -- errors ---------------------------------------------------------------------


def request_id_of(headers: HeaderLookup) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a new one."""
    given = headers.get("x-request-id")
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def error_response(exc: UsercoreError) -> HttpResponse:
    """The envelope ``{"error": {"code", "message", "details"}}`` at the error's status.

    401 answers carry ``WWW-Authenticate: Bearer`` (RFC 6750 §3), ``AccountLocked``
    a ``Retry-After``.  A 5xx error is logged and answered generically.
    """
    status = exc.http_status
    if status >= 500 and status != 503:  # 503: StoreUnavailable, transient and said so
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
