"""API profiles: the source API documents served faithfully, as data over the operations.

A :class:`Profile` says which operations are mounted at which paths under
which base path, how a list, a delete, a logout, a token answer and an error
are rendered, and which extra input rules apply (e.g. ``name`` required on
create).  Every profile reuses the operations of
:mod:`usercore.web._operations`: the handlers, the permission checks and the
input models are the same; only the route table and the shapes of the
answers differ.  See ``docs/profiles.md``.
"""

from __future__ import annotations

import http
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlencode

import attrs

from usercore.domain import Page, TokenPair, User
from usercore.errors import (
    AuthenticationError,
    EmailNotVerified,
    UsercoreError,
    ValidationError,
)
from usercore.services.users import registration_allowed
from usercore.web import _schemas as s
from usercore.web._core import HttpResponse, error_response
from usercore.web._operations import OPERATIONS, V1_ROUTES, Answer, Call, Operation, render

__all__ = [
    "PROFILES",
    "Profile",
    "ProfileChoice",
    "Route",
    "clashes",
    "profile_named",
    "profiles_of",
]

Route = tuple[str, str, str]
ListShape = Literal["page", "array"]
ErrorShape = Literal["envelope", "message", "rails"]


@attrs.frozen
class Profile:
    """One API document served as its clients expect.

    ``routes`` are ``(method, path, operation)`` relative to ``base``.
    ``list_shape="array"`` answers lists as a JSON array with the pagination
    in ``Link`` (RFC 8288) and ``X-Total-Count`` headers.  ``deleted`` is the
    body of a delete's answer (``None``: 204 without a body).
    ``error_shape`` is usercore's envelope, ``{"message"}`` or the
    ``{"error", "messages"}`` of Rails-style APIs.  ``token_field`` adds
    ``token`` (the access token) to token answers; ``register_tokens`` makes
    registration answer the account and a token pair.  ``required`` lists,
    per operation, body fields the document requires beyond usercore's own
    rules; ``login_failure_is_401`` answers a login without credentials 401.
    """

    name: str
    document: str
    base: str
    routes: tuple[Route, ...]
    list_shape: ListShape = "page"
    deleted: Mapping[str, Any] | None = None
    error_shape: ErrorShape = "envelope"
    token_field: bool = False
    register_tokens: bool = False
    required: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    login_failure_is_401: bool = False

    # -- operations ---------------------------------------------------------------

    def operation(self, name: str) -> Operation:
        """The operation ``name`` as this profile serves it: its status, output model
        and handler (with this profile's input rules) adjusted."""
        base = OPERATIONS[name]
        changes: dict[str, Any] = {}
        required = self.required.get(name, ())
        tokens = name == "register" and self.register_tokens
        if required or tokens:
            changes["handler"] = _checked(base, required, tokens)
        if name == "list_users" and self.list_shape == "array":
            changes["output"] = list[s.UserOut]
            changes["handler"] = _numbered(base)
        if name == "delete_user" and self.deleted is not None:
            changes["status"] = 200
            changes["output"] = s.SuccessOut if "success" in self.deleted else s.AcceptedOut
        if name in ("login", "refresh") and self.token_field:
            changes["output"] = s.TokenOut
        if name == "register" and self.register_tokens:
            changes["output"] = s.RegisteredOut
            changes["issues_secrets"] = True
        return attrs.evolve(base, **changes) if changes else base

    def answer(
        self,
        operation: Operation,
        result: Any,
        path: str = "",
        headers: Mapping[str, str] | None = None,
        cookies: tuple[str, ...] = (),
    ) -> HttpResponse:
        """The status, JSON body and headers of an operation's result, with
        ``headers`` and ``cookies`` added (``path``: the request's path, for the
        ``Link`` header of a list)."""
        status, body, extra = operation.status, None, {}
        if isinstance(result, Answer):
            status, body = result.status, render(result.body)
        elif isinstance(result, Page) and self.list_shape == "array":
            body, extra = render(result.items), _page_headers(result, path)
        elif result is None and operation.name == "delete_user" and self.deleted is not None:
            body = dict(self.deleted)
        elif isinstance(result, TokenPair) and self.token_field:
            body = _with_token(result.to_dict())
        else:
            body = render(result)
        return HttpResponse(status, body, {**extra, **(headers or {})}, cookies)

    # -- errors -------------------------------------------------------------------

    def error(self, exc: UsercoreError, operation: str | None = None) -> HttpResponse:
        """The answer to ``exc`` in this profile's error shape."""
        if self.login_failure_is_401 and operation == "login" and isinstance(exc, ValidationError):
            # The document: "401 Unauthorized ... Missing credentials in the login request".
            exc = AuthenticationError("Authentication failed.")
        return self.reshape(error_response(exc))

    def reshape(self, response: HttpResponse) -> HttpResponse:
        """An answer in usercore's envelope reshaped as this profile's errors look."""
        envelope = response.body.get("error") if isinstance(response.body, dict) else None
        if self.error_shape == "envelope" or not isinstance(envelope, dict):
            return response
        body = _shaped(self.error_shape, response.status, envelope)
        return attrs.evolve(response, body=body)

    @property
    def error_model(self) -> Any:
        """The pydantic model documenting this profile's errors."""
        return {"envelope": s.ErrorResponse, "message": s.MessageError, "rails": s.RailsError}[
            self.error_shape
        ]

    @property
    def paths(self) -> tuple[tuple[str, str], ...]:
        """Every ``(method, full path)`` served."""
        return tuple((method, self.base + path) for method, path, _ in self.routes)


def _with_token(pair: dict[str, Any]) -> dict[str, Any]:
    return {"token": pair["access_token"], **pair}


def _checked(base: Operation, required: Sequence[str], register_tokens: bool) -> Any:
    """``base``'s handler behind this profile's required fields (and, for a
    registration that answers tokens, followed by a login)."""

    def handler(call: Call, principal: Any, value: Any, **path: Any) -> Any:
        given = value.given() if value is not None else {}
        missing = [field for field in required if given.get(field) in (None, "")]
        # A refused registration is refused before any rule, the document's too:
        # the same answer whatever the input (docs/registration.md).
        refused = base.name == "register" and not registration_allowed(
            call.core.settings, getattr(value, "invitation", None)
        )
        if missing and not refused:
            raise ValidationError({field: ["is required"] for field in missing})
        result = base.handler(call, principal, value, **path)
        if register_tokens and isinstance(result, User):
            # The new account signs in with what it just registered: the same
            # login path (lockout, rehash, events) as any other.
            identifier = value.email if value.email is not None else value.username
            try:
                pair = call.core.auth.login(identifier, value.password)
            except EmailNotVerified:
                # Settings.require_verified_email: the account, no tokens yet.
                return Answer(201, {"user": result.to_public()})
            return Answer(201, {"user": result.to_public(), **_with_token(pair.to_dict())})
        return result

    return handler


def _numbered(base: Operation) -> Any:
    """A list by page numbers (the total is what ``X-Total-Count`` reports)."""

    def handler(call: Call, principal: Any, query: s.UserListQuery, **path: Any) -> Any:
        if query.page is None and query.cursor is None:
            query = query.model_copy(update={"page": 1})
        return base.handler(call, principal, query, **path)

    return handler


def _page_headers(page: Page[User], path: str) -> dict[str, str]:
    """``X-Total-Count`` and an RFC 8288 ``Link`` (first, prev, next, last) for a page."""
    headers: dict[str, str] = {}
    if page.total is not None:
        headers["X-Total-Count"] = str(page.total)
    if page.page is None:
        if page.next_cursor is not None:
            query = urlencode({"cursor": page.next_cursor, "per_page": page.per_page})
            headers["Link"] = f'<{path}?{query}>; rel="next"'
        return headers
    last = max(1, -(-(page.total or 0) // page.per_page))
    relations = [("first", 1)]
    if page.page > 1:
        relations.append(("prev", min(page.page - 1, last)))
    if page.page < last:
        relations.append(("next", page.page + 1))
    relations.append(("last", last))
    headers["Link"] = ", ".join(
        f'<{path}?{urlencode({"page": number, "per_page": page.per_page})}>; rel="{relation}"'
        for relation, number in relations
    )
    return headers


_RAILS_MESSAGES = {"is required": "can't be blank", "must not be empty": "can't be blank"}


def _rails_messages(field: str, messages: Iterable[str]) -> list[str]:
    out: list[str] = []
    for message in messages:
        text = _RAILS_MESSAGES.get(message)
        if text is None and field == "email":
            text = "must be a valid email address"
        text = text or message
        if text not in out:
            out.append(text)
    return out


def _title(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _shaped(shape: ErrorShape, status: int, envelope: Mapping[str, Any]) -> dict[str, Any]:
    message = str(envelope.get("message", "")).rstrip(".")
    details = envelope.get("details") or {}
    code = envelope.get("code")
    if shape == "rails":
        if code == "validation_failed":
            return {
                "error": "Validation failed",
                "messages": {
                    field: _rails_messages(field, messages) for field, messages in details.items()
                },
            }
        return {"error": _title(status).capitalize(), "message": message}
    body: dict[str, Any] = {"message": message}
    if code == "validation_failed":
        body["errors"] = dict(details)
    if status >= 500:
        body = {"message": "Internal server error", "error": details.get("request_id", "")}
    return body


# -- the profiles --------------------------------------------------------------------

_USERS: tuple[Route, ...] = (
    ("GET", "/users", "list_users"),
    ("POST", "/users", "create_user"),
    ("GET", "/users/{user_id}", "get_user"),
    ("PUT", "/users/{user_id}", "update_user"),
    ("DELETE", "/users/{user_id}", "delete_user"),
)

V1 = Profile(
    name="v1",
    document="002_aa2d12d98ecda538.txt (and usercore's own /api/v1)",
    base="/api/v1",
    routes=V1_ROUTES,
)

CLASSIC = Profile(
    name="classic",
    document="000_d51615f6427a8fff.txt",
    base="",
    routes=(*_USERS, ("POST", "/login", "login"), ("POST", "/register", "register")),
    list_shape="array",
    token_field=True,
)

UMS = Profile(
    name="ums",
    document="001_525ef8773831a53f.txt",
    base="",
    routes=(*_USERS, ("POST", "/auth/login", "login"), ("POST", "/auth/register", "register")),
    list_shape="array",
    deleted={"success": True, "message": "User deleted."},
    register_tokens=True,
    required={"create_user": ("name", "email", "password"), "register": ("name", "email")},
    login_failure_is_401=True,
)

RBAC = Profile(
    name="rbac",
    document="003_2fb371dff11f8898.txt",
    base="/api",
    routes=(
        ("POST", "/auth/login", "login"),
        *_USERS,
        ("POST", "/users/{user_id}/roles", "set_user_roles"),
        ("POST", "/roles", "create_role"),
        ("GET", "/roles", "list_roles"),
        ("PUT", "/roles/{name}/permissions", "set_role_permissions"),
        ("GET", "/permissions", "list_permissions"),
    ),
    list_shape="array",
    deleted={"message": "User deleted successfully"},
    error_shape="message",
    token_field=True,
    required={"create_user": ("username", "password")},
)

RAILS = Profile(
    name="rails",
    document="004_b314e78f1406d91f.txt",
    base="/api/v1",
    routes=(
        *_USERS,
        # The document describes no login: the canonical /auth/* operations
        # let its clients obtain tokens.
        *(route for route in V1_ROUTES if route[1].startswith("/auth/")),
    ),
    list_shape="array",
    deleted={"success": True, "message": "User deleted"},
    error_shape="rails",
    required={"create_user": ("name", "email")},
)

PROFILES: Mapping[str, Profile] = {
    profile.name: profile for profile in (V1, CLASSIC, UMS, RBAC, RAILS)
}
"""Every profile by name; ``v1`` is the default."""


def profile_named(name: str | Profile) -> Profile:
    """The profile ``name`` (a :class:`Profile` is returned as is); ``ValueError`` if unknown."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ValueError(f"unknown API profile {name!r} (known: {known})") from None


ProfileChoice = str | Profile | Sequence[str | Profile]
"""A profile's name, a profile, or several of them."""


def profiles_of(choice: ProfileChoice, prefix: str | None = None) -> tuple[Profile, ...]:
    """The profiles ``choice`` names (each under ``prefix`` when one is given).

    ``ValueError`` for an unknown name, no profile, or profiles whose routes
    clash (could answer the same request).
    """
    names = [choice] if isinstance(choice, (str, Profile)) else list(choice)
    chosen = tuple(profile_named(name) for name in names)
    if not chosen:
        raise ValueError("no API profile given")
    if prefix is not None:
        chosen = tuple(attrs.evolve(profile, base=prefix.rstrip("/")) for profile in chosen)
    problems = clashes(chosen)
    if problems:
        raise ValueError("these API profiles cannot be served together: " + "; ".join(problems))
    return chosen


def _segments(path: str) -> list[str | None]:
    """A path's segments, ``None`` for a parameter (which matches any segment)."""
    return [None if part.startswith("{") else part for part in path.strip("/").split("/")]


def _overlap(first: str, second: str) -> bool:
    a, b = _segments(first), _segments(second)
    return len(a) == len(b) and all(
        x is None or y is None or x == y for x, y in zip(a, b, strict=True)
    )


def clashes(profiles: Sequence[Profile]) -> list[str]:
    """Why ``profiles`` cannot be served together: one line per pair of profiles
    with a route that could answer the same request (empty when they can)."""
    problems: list[str] = []
    for index, first in enumerate(profiles):
        for second in profiles[index + 1 :]:
            for method, path in first.paths:
                clash = next(
                    (
                        other
                        for other_method, other in second.paths
                        if other_method == method and _overlap(path, other)
                    ),
                    None,
                )
                if clash is not None:
                    problems.append(
                        f"profiles {first.name!r} and {second.name!r} both serve "
                        f"{method} {clash if clash == path else f'{path} / {clash}'}"
                    )
                    break
    return problems
