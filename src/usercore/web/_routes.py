"""The REST API of DESIGN §8 as one table: route -> input rules -> facade call.

:data:`ROUTES` lists every route (method, paths with aliases, success status,
what it reads) and the function that serves it.  :class:`HttpApi` binds the
table to a :class:`~usercore.UserCore` and serves one request at a time:
parse and check the input, authenticate, call the facade with the principal
(which checks the policy itself), and answer JSON.  The adapters only
translate requests and responses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from usercore.domain import SYSTEM, Page, Principal, User
from usercore.errors import AuthenticationError, ConflictError, UsercoreError, ValidationError
from usercore.services import UserCore
from usercore.web._core import (
    NO_BODY,
    FieldSpec,
    HeaderLookup,
    HttpRequest,
    HttpResponse,
    authenticate,
    bearer_token,
    check_fields,
    error_response,
    internal_error_response,
    parse_body,
    parse_params,
    request_id_of,
)

__all__ = [
    "ROUTES",
    "Call",
    "EmailVerificationHook",
    "HttpApi",
    "PasswordResetHook",
    "Route",
]

logger = logging.getLogger("usercore.web")

PasswordResetHook = Callable[[str, str], object]
"""``on_password_reset(email, token)``: deliver a reset token (e.g. email a link)."""
EmailVerificationHook = Callable[[User, str], object]
"""``on_email_verification(user, token)``: deliver a verification token."""

MAX_PER_PAGE = 100
MAX_PAGE = 10**9
# Ten years, the longest API-key lifetime the core accepts.
MAX_EXPIRES_IN = 3650 * 24 * 3600
OAUTH2_FORM_FIELDS = frozenset(
    {"grant_type", "username", "password", "scope", "client_id", "client_secret"}
)
RESET_ACCEPTED = {
    "message": "If an active account has this address, a password reset token was sent to it."
}
VERIFICATION_ACCEPTED = {"message": "A verification token was sent to your email address."}
# Settings.registration_enumeration_safe: a new and a taken address get this same answer.
REGISTRATION_ACCEPTED = {
    "message": "If this address can be registered, a message was sent to it with what to do next."
}


@attrs.frozen
class Call:
    """A request whose input has been checked: what a route's handler works with."""

    api: HttpApi
    request: HttpRequest
    principal: Principal | None
    path: dict[str, Any]
    query: dict[str, Any]
    body: dict[str, Any]

    @property
    def actor(self) -> Principal:
        """The authenticated principal (routes that need one never run without it)."""
        assert self.principal is not None
        return self.principal


Handler = Callable[[Call], HttpResponse]


@attrs.frozen
class Route:
    """One operation: ``methods`` on ``paths`` (the first canonical, the rest aliases).

    ``auth`` says whether a principal is required; ``body`` is ``None`` for
    routes without a body, else the fields it takes (``body_required`` says
    whether it may be empty).  ``form`` routes also take the OAuth2 password
    form.  ``status`` is the success status.
    """

    name: str
    methods: tuple[str, ...]
    paths: tuple[str, ...]
    status: int
    summary: str
    handler: Handler
    auth: bool = True
    path_params: Mapping[str, FieldSpec] = attrs.field(factory=dict)
    query: Mapping[str, FieldSpec] = attrs.field(factory=dict)
    body: Mapping[str, FieldSpec] | None = None
    body_required: bool = True
    form: bool = False


class HttpApi:
    """The REST API bound to a facade; framework adapters call :meth:`dispatch`.

    ``on_password_reset(email, token)`` and ``on_email_verification(user,
    token)`` deliver the one-time tokens that the API never returns (a real
    application emails a link); without them the tokens are dropped.  A hook
    that raises is logged and the answer is unchanged, so a failing mailer
    cannot reveal which addresses have accounts.
    """

    def __init__(
        self,
        core: UserCore,
        *,
        on_password_reset: PasswordResetHook | None = None,
        on_email_verification: EmailVerificationHook | None = None,
    ):
        self.core = core
        self.on_password_reset = on_password_reset
        self.on_email_verification = on_email_verification
        self.routes: tuple[Route, ...] = ROUTES
        self._by_name = {route.name: route for route in ROUTES}

    def route(self, name: str) -> Route:
        """The route called ``name`` (``KeyError`` if there is none)."""
        return self._by_name[name]

    def authenticate(self, headers: HeaderLookup) -> Principal | None:
        """The principal of a request's credentials (see :func:`usercore.web.authenticate`)."""
        return authenticate(self.core, headers)

    def problems(self, name: str, request: HttpRequest) -> dict[str, list[str]]:
        """Every problem with a request's input for route ``name`` (empty when fine).

        Checks only; never calls the facade.  The FastAPI adapter asks this
        when pydantic refuses a request, so both adapters word errors alike.
        """
        try:
            _, problems = self._parse(self._by_name[name], request)
        except ValidationError as exc:
            return exc.errors
        return problems

    def dispatch(self, name: str, request: HttpRequest) -> HttpResponse:
        """Serve ``request`` on route ``name``: never raises, always answers.

        Input problems are a 400 listing every field, failures of the facade
        their own status, and anything unexpected a generic 500 that is
        logged with a request id.
        """
        route = self._by_name[name]
        try:
            inputs, problems = self._parse(route, request)
            if problems:
                raise ValidationError(problems)
            principal = authenticate(self.core, request.headers) if route.auth else None
            if route.auth and principal is None:
                raise AuthenticationError("Authentication required.")
            path, query, body = inputs
            return route.handler(Call(self, request, principal, path, query, body))
        except UsercoreError as exc:
            if exc.http_status < 500:
                return error_response(exc)
            return self._internal_error(route, request, exc)
        except Exception as exc:
            return self._internal_error(route, request, exc)

    def _parse(
        self, route: Route, request: HttpRequest
    ) -> tuple[tuple[dict[str, Any], dict[str, Any], dict[str, Any]], dict[str, list[str]]]:
        problems: dict[str, list[str]] = {}
        path = parse_params(request.path_params, route.path_params, problems)
        query = parse_params(request.query, route.query, problems) if route.query else {}
        body: dict[str, Any] = {}
        if route.body is not None:
            value = request.body
            if value is NO_BODY:
                value = parse_body(
                    request.raw_body,
                    request.content_type,
                    form_fields=OAUTH2_FORM_FIELDS if route.form else frozenset(),
                )
            if value is NO_BODY or value is None:
                if route.body_required:
                    problems["body"] = ["is required"]
            elif route.form and request.body is NO_BODY and _is_form(request.content_type):
                body = _oauth2_form(value, problems)
            else:
                body = check_fields(value, route.body, problems)
        return (path, query, body), problems

    def _internal_error(self, route: Route, request: HttpRequest, exc: Exception) -> HttpResponse:
        request_id = request_id_of(request.headers)
        logger.error(
            "unexpected error in %s %s [request %s]",
            request.method,
            route.paths[0],
            request_id,
            exc_info=exc,
        )
        return internal_error_response(request_id)

    def deliver(self, what: str, hook: Callable[..., object] | None, *args: Any) -> None:
        """Hand a one-time token to its hook; a missing or failing hook is only logged."""
        if hook is None:
            logger.warning("no on_%s hook is configured: the token was not delivered", what)
            return
        try:
            hook(*args)
        except Exception:
            logger.exception("the on_%s hook failed", what)


def _is_form(content_type: str | None) -> bool:
    return (content_type or "").partition(";")[0].strip().lower() == (
        "application/x-www-form-urlencoded"
    )


def _oauth2_form(form: dict[str, str], problems: dict[str, list[str]]) -> dict[str, Any]:
    """The login fields of an OAuth2 password form (RFC 6749 §4.3.2)."""
    grant_type = form.get("grant_type", "")
    if grant_type not in ("", "password"):
        problems["grant_type"] = ["must be 'password'"]
    body: dict[str, Any] = {}
    for field in ("username", "password"):
        if form.get(field):
            body[field] = form[field]
        else:
            problems[field] = ["is required"]
    return body


# -- responses ------------------------------------------------------------------


def _ok(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, body)


NO_CONTENT = HttpResponse(204)


def page_body(page: Page[User]) -> dict[str, Any]:
    """The JSON of a page of users."""
    return {
        "items": [user.to_public() for user in page.items],
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
        "next_cursor": page.next_cursor,
    }


def _roles_of(body: Mapping[str, Any]) -> list[str] | None:
    """``roles: [...]`` or ``role: "..."`` (one of them), or ``None`` when neither."""
    if "role" in body and "roles" in body:
        raise ValidationError.single("role", "give either role or roles, not both")
    if "role" in body:
        return [body["role"]]
    roles = body.get("roles")
    return None if roles is None else list(roles)


# -- handlers -------------------------------------------------------------------


def register(call: Call) -> HttpResponse:
    body = call.body
    core = call.api.core
    # Enumeration-safe mode: a taken email answers exactly like a new one (the
    # service tells the existing address through the user.registration_duplicate event).
    safe = core.settings.registration_enumeration_safe
    try:
        user = core.users.register(
            email=body["email"],
            password=body["password"],
            username=body.get("username"),
            name=body.get("name"),
        )
    except ConflictError as exc:
        if safe and exc.field == "email":
            return _ok(REGISTRATION_ACCEPTED, 202)
        raise
    if safe:
        return _ok(REGISTRATION_ACCEPTED, 202)
    return _ok(user.to_public(), 201)


def login(call: Call) -> HttpResponse:
    body = call.body
    given = [field for field in ("identifier", "email", "username") if field in body]
    if len(given) > 1:
        raise ValidationError.single("identifier", "give one of email, username or identifier")
    if not given:
        raise ValidationError.single("identifier", "give email, username or identifier")
    pair = call.api.core.auth.login(body[given[0]], body["password"])
    return _ok(pair.to_dict())


def refresh(call: Call) -> HttpResponse:
    return _ok(call.api.core.auth.refresh(call.body["refresh_token"]).to_dict())


def logout(call: Call) -> HttpResponse:
    token = bearer_token(call.request.headers)
    if token is None:
        raise AuthenticationError("Authentication required.")
    if token.startswith("uc_"):
        raise ValidationError.single(
            "authorization",
            "logout ends a token session; revoke an API key with DELETE /api-keys/{key_id}",
        )
    call.api.core.auth.logout(token, call.body.get("refresh_token"))
    return NO_CONTENT


def me(call: Call) -> HttpResponse:
    actor = call.actor
    assert actor.user_id is not None
    core = call.api.core
    if actor.user is not None and actor.user.id == actor.user_id:
        # The account was loaded a moment ago to authenticate this very request:
        # check the permission, skip a second read.
        core.policy.require(actor, "users:read", owner_id=actor.user_id)
        return _ok(actor.user.to_public())
    return _ok(core.users.get(actor, actor.user_id).to_public())


def request_password_reset(call: Call) -> HttpResponse:
    email = call.body["email"]
    token = call.api.core.auth.request_password_reset(email)
    if token is not None:
        # The stored address, never the typed one (issue 12 item 2).
        recipient = call.api.core.auth.reset_recipient(token)
        call.api.deliver("password_reset", call.api.on_password_reset, recipient, token)
    return _ok(RESET_ACCEPTED, 202)


def reset_password(call: Call) -> HttpResponse:
    call.api.core.auth.reset_password(call.body["token"], call.body["new_password"])
    return NO_CONTENT


def request_email_verification(call: Call) -> HttpResponse:
    actor = call.actor
    assert actor.user_id is not None
    core = call.api.core
    token = core.auth.request_email_verification(actor, actor.user_id)
    # The hook is trusted application code: it gets the account as the system sees it.
    user = core.users.get(SYSTEM, actor.user_id)
    call.api.deliver("email_verification", call.api.on_email_verification, user, token)
    return _ok(VERIFICATION_ACCEPTED, 202)


def verify_email(call: Call) -> HttpResponse:
    return _ok(call.api.core.auth.verify_email(call.body["token"]).to_public())


def list_users(call: Call) -> HttpResponse:
    query = call.query
    try:
        page = call.api.core.users.list(
            call.actor,
            page=query.get("page"),
            per_page=query.get("per_page", 20),
            cursor=query.get("cursor"),
            role=query.get("role"),
            status=query.get("status"),
            search=query.get("q"),
        )
    except ValidationError as exc:
        # The facade says "search" where the query string says "q".
        if "search" not in exc.errors:
            raise
        errors = dict(exc.errors)
        errors["q"] = errors.pop("search")
        raise ValidationError(errors) from None
    return _ok(page_body(page))


def create_user(call: Call) -> HttpResponse:
    body = call.body
    roles = _roles_of(body)
    user = call.api.core.users.create(
        call.actor,
        email=body["email"],
        password=body.get("password"),
        username=body.get("username"),
        name=body.get("name"),
        roles=("user",) if roles is None else roles,
        status=body.get("status", "active"),
    )
    return _ok(user.to_public(), 201)


def get_user(call: Call) -> HttpResponse:
    return _ok(call.api.core.users.get(call.actor, call.path["user_id"]).to_public())


def update_user(call: Call) -> HttpResponse:
    user = call.api.core.users.update(call.actor, call.path["user_id"], **call.body)
    return _ok(user.to_public())


def delete_user(call: Call) -> HttpResponse:
    call.api.core.users.delete(call.actor, call.path["user_id"])
    return NO_CONTENT


def set_user_roles(call: Call) -> HttpResponse:
    user = call.api.core.users.assign_roles(
        call.actor,
        call.path["user_id"],
        call.body["roles"],
        current_password=call.body.get("current_password"),
    )
    return _ok(user.to_public())


def set_user_password(call: Call) -> HttpResponse:
    body = call.body
    users = call.api.core.users
    if "current_password" in body:
        users.change_password(
            call.actor,
            call.path["user_id"],
            current_password=body["current_password"],
            new_password=body["new_password"],
        )
    else:
        users.set_password(call.actor, call.path["user_id"], body["new_password"])
    return NO_CONTENT


def create_api_key(call: Call) -> HttpResponse:
    body = call.body
    record, key = call.api.core.api_keys.create(
        call.actor,
        call.path["user_id"],
        name=body["name"],
        scopes=body.get("scopes"),
        expires_in=body.get("expires_in"),
        current_password=body.get("current_password"),
    )
    return _ok({"api_key": record.to_public(), "key": key}, 201)


def list_api_keys(call: Call) -> HttpResponse:
    keys = call.api.core.api_keys.list(call.actor, call.path["user_id"])
    return _ok([key.to_public() for key in keys])


def revoke_api_key(call: Call) -> HttpResponse:
    call.api.core.api_keys.revoke(call.actor, call.path["key_id"])
    return NO_CONTENT


def list_roles(call: Call) -> HttpResponse:
    return _ok([role.to_public() for role in call.api.core.roles.list(call.actor)])


def create_role(call: Call) -> HttpResponse:
    body = call.body
    role = call.api.core.roles.create(
        call.actor,
        body["name"],
        permissions=body.get("permissions", ()),
        inherits=body.get("inherits", ()),
        description=body.get("description", ""),
    )
    return _ok(role.to_public(), 201)


def get_role(call: Call) -> HttpResponse:
    return _ok(call.api.core.roles.get(call.actor, call.path["name"]).to_public())


def update_role(call: Call) -> HttpResponse:
    body = call.body
    role = call.api.core.roles.update(
        call.actor,
        call.path["name"],
        permissions=body.get("permissions"),
        inherits=body.get("inherits"),
        description=body.get("description"),
    )
    return _ok(role.to_public())


def delete_role(call: Call) -> HttpResponse:
    call.api.core.roles.delete(call.actor, call.path["name"], force=call.query.get("force", False))
    return NO_CONTENT


def set_role_permissions(call: Call) -> HttpResponse:
    role = call.api.core.roles.set_permissions(
        call.actor, call.path["name"], call.body["permissions"]
    )
    return _ok(role.to_public())


def list_permissions(call: Call) -> HttpResponse:
    core = call.api.core
    # core.permissions.list() takes no actor; the registry is for administrators.
    core.policy.require(call.actor, "permissions:read")
    return _ok([permission.to_public() for permission in core.permissions.list()])


# -- the table --------------------------------------------------------------------

_STRING = FieldSpec("string")
_REQUIRED_STRING = FieldSpec("string", required=True)
_NULLABLE_STRING = FieldSpec("string", nullable=True)
_STRINGS = FieldSpec("strings")
_STATUS = FieldSpec("string", choices=("active", "inactive"))
_USER_ID = {"user_id": FieldSpec("integer", required=True, description="The user's id")}
_KEY_ID = {"key_id": FieldSpec("integer", required=True, description="The API key's id")}
_ROLE_NAME = {"name": FieldSpec("string", required=True, description="The role's name")}
_PROFILE = {
    "email": _STRING,
    "username": _NULLABLE_STRING,
    "name": _NULLABLE_STRING,
    "role": _STRING,
    "roles": _STRINGS,
    "status": _STATUS,
}

ROUTES: tuple[Route, ...] = (
    Route(
        "register",
        ("POST",),
        ("/auth/register", "/register"),
        201,
        "Create an account (self-service, role 'user')",
        register,
        auth=False,
        body={
            "email": _REQUIRED_STRING,
            "password": _REQUIRED_STRING,
            "username": _NULLABLE_STRING,
            "name": _NULLABLE_STRING,
        },
    ),
    Route(
        "login",
        ("POST",),
        ("/auth/login", "/login"),
        200,
        "Log in by email or username; returns an access and a refresh token",
        login,
        auth=False,
        body={
            "email": _STRING,
            "username": _STRING,
            "identifier": _STRING,
            "password": _REQUIRED_STRING,
        },
        form=True,
    ),
    Route(
        "refresh",
        ("POST",),
        ("/auth/refresh",),
        200,
        "Trade a refresh token for a new token pair (the old one is spent)",
        refresh,
        auth=False,
        body={"refresh_token": _REQUIRED_STRING},
    ),
    Route(
        "logout",
        ("POST",),
        ("/auth/logout",),
        204,
        "End the session: the access token (and the refresh token, if given) stop working",
        logout,
        auth=False,
        body={"refresh_token": _NULLABLE_STRING},
        body_required=False,
    ),
    Route("me", ("GET",), ("/auth/me", "/users/me"), 200, "The current user", me),
    Route(
        "request_password_reset",
        ("POST",),
        ("/auth/password-reset",),
        202,
        "Send a password reset token (the same answer whether or not the address is known)",
        request_password_reset,
        auth=False,
        body={"email": _REQUIRED_STRING},
    ),
    Route(
        "reset_password",
        ("POST",),
        ("/auth/password-reset/confirm",),
        204,
        "Set a new password with a reset token; ends every session",
        reset_password,
        auth=False,
        body={"token": _REQUIRED_STRING, "new_password": _REQUIRED_STRING},
    ),
    Route(
        "request_email_verification",
        ("POST",),
        ("/auth/verify-email",),
        202,
        "Send the current user a token proving control of their email address",
        request_email_verification,
        body={},
        body_required=False,
    ),
    Route(
        "verify_email",
        ("POST",),
        ("/auth/verify-email/confirm",),
        200,
        "Mark the email address verified with a verification token",
        verify_email,
        auth=False,
        body={"token": _REQUIRED_STRING},
    ),
    Route(
        "list_users",
        ("GET",),
        ("/users",),
        200,
        "A page of users (by cursor, or by page number with a total)",
        list_users,
        query={
            "page": FieldSpec(
                "integer", minimum=1, maximum=MAX_PAGE, description="Page number (adds total)"
            ),
            "per_page": FieldSpec(
                "integer", minimum=1, maximum=MAX_PER_PAGE, description="Users per page"
            ),
            "cursor": FieldSpec(description="next_cursor of the previous page"),
            "role": FieldSpec(description="Only users holding this role"),
            "status": FieldSpec(choices=("active", "inactive"), description="Only this status"),
            "q": FieldSpec(description="Substring of email, username or name"),
        },
    ),
    Route(
        "create_user",
        ("POST",),
        ("/users",),
        201,
        "Create a user as an administrator",
        create_user,
        body={**_PROFILE, "email": _REQUIRED_STRING, "password": _NULLABLE_STRING},
    ),
    Route(
        "get_user",
        ("GET",),
        ("/users/{user_id}",),
        200,
        "A user",
        get_user,
        path_params=_USER_ID,
    ),
    Route(
        "update_user",
        ("PUT", "PATCH"),
        ("/users/{user_id}",),
        200,
        "Change some fields of a user (PUT and PATCH are both partial)",
        update_user,
        path_params=_USER_ID,
        # current_password: fresh authentication for one's own email change.
        body={**_PROFILE, "current_password": _STRING},
    ),
    Route(
        "delete_user",
        ("DELETE",),
        ("/users/{user_id}",),
        204,
        "Delete a user, their sessions and API keys",
        delete_user,
        path_params=_USER_ID,
    ),
    Route(
        "set_user_roles",
        ("POST",),
        ("/users/{user_id}/roles",),
        200,
        "Replace a user's roles",
        set_user_roles,
        path_params=_USER_ID,
        body={"roles": FieldSpec("strings", required=True), "current_password": _STRING},
    ),
    Route(
        "set_user_password",
        ("PUT",),
        ("/users/{user_id}/password",),
        204,
        "Change a password: one's own with current_password, anyone's as an administrator",
        set_user_password,
        path_params=_USER_ID,
        body={"current_password": _STRING, "new_password": _REQUIRED_STRING},
    ),
    Route(
        "create_api_key",
        ("POST",),
        ("/users/{user_id}/api-keys",),
        201,
        "Create an API key; the key text is in this answer only",
        create_api_key,
        path_params=_USER_ID,
        body={
            "name": _REQUIRED_STRING,
            "scopes": FieldSpec("strings", nullable=True),
            "expires_in": FieldSpec("integer", nullable=True, minimum=1, maximum=MAX_EXPIRES_IN),
            "current_password": _STRING,
        },
    ),
    Route(
        "list_api_keys",
        ("GET",),
        ("/users/{user_id}/api-keys",),
        200,
        "A user's API keys (never their secrets)",
        list_api_keys,
        path_params=_USER_ID,
    ),
    Route(
        "revoke_api_key",
        ("DELETE",),
        ("/api-keys/{key_id}",),
        204,
        "Revoke an API key",
        revoke_api_key,
        path_params=_KEY_ID,
    ),
    Route("list_roles", ("GET",), ("/roles",), 200, "Every role", list_roles),
    Route(
        "create_role",
        ("POST",),
        ("/roles",),
        201,
        "Create a role",
        create_role,
        body={
            "name": _REQUIRED_STRING,
            "permissions": _STRINGS,
            "inherits": _STRINGS,
            "description": _STRING,
        },
    ),
    Route(
        "get_role",
        ("GET",),
        ("/roles/{name}",),
        200,
        "A role",
        get_role,
        path_params=_ROLE_NAME,
    ),
    Route(
        "update_role",
        ("PATCH",),
        ("/roles/{name}",),
        200,
        "Change some of a role's permissions, inherited roles and description",
        update_role,
        path_params=_ROLE_NAME,
        body={"permissions": _STRINGS, "inherits": _STRINGS, "description": _STRING},
    ),
    Route(
        "delete_role",
        ("DELETE",),
        ("/roles/{name}",),
        204,
        "Delete a role (force=true first takes it from its holders)",
        delete_role,
        path_params=_ROLE_NAME,
        query={"force": FieldSpec("boolean", description="Remove the role from its holders")},
    ),
    Route(
        "set_role_permissions",
        ("PUT",),
        ("/roles/{name}/permissions",),
        200,
        "Replace a role's permissions",
        set_role_permissions,
        path_params=_ROLE_NAME,
        body={"permissions": FieldSpec("strings", required=True)},
    ),
    Route(
        "list_permissions",
        ("GET",),
        ("/permissions",),
        200,
        "Every permission roles may grant",
        list_permissions,
    ),
)
