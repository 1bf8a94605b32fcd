"""The FastAPI adapter: the REST API of DESIGN §8 as an ``APIRouter`` or a whole app.

``create_app(core)`` serves everything under ``/api/v1`` with an OpenAPI
document at ``/openapi.json`` (Swagger UI at ``/docs``, whose "Authorize"
button logs in with the OAuth2 password form).  ``create_router(core)``
mounts the routes in an app of your own; ``init_app(app, core)`` then gives
that app usercore's error envelope and lets its own routes use the
dependencies :func:`current_principal`, :func:`optional_principal` and
:func:`require`::

    app = FastAPI()
    init_app(app, core)
    app.include_router(create_router(core, prefix="/api/v1"))

    @app.get("/reports")
    def reports(principal: Annotated[Principal, Depends(require("reports:read"))]): ...

Endpoints are plain ``def`` functions (the core is synchronous; FastAPI runs
them in its thread pool).  Their typed parameters and pydantic models declare
and check the input for the OpenAPI document; the neutral layer
(:class:`usercore.web.HttpApi`) then serves the request exactly as the Flask
adapter does.  Input FastAPI refuses is answered ``400 validation_failed``
with the same per-field messages, never FastAPI's default 422.
"""

import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

try:
    from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
    from fastapi.exceptions import RequestValidationError
    from fastapi.routing import APIRoute
    from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "usercore.web.fastapi needs FastAPI: pip install 'usercore[fastapi]'"
    ) from exc

from usercore.domain import Principal
from usercore.errors import AuthenticationError, UsercoreError, ValidationError
from usercore.services import UserCore
from usercore.web._core import (
    MAX_BODY_BYTES,
    NO_BODY,
    HttpRequest,
    HttpResponse,
    authenticate,
    error_response,
    http_error_response,
    internal_error_response,
    request_id_of,
)
from usercore.web._routes import (
    MAX_EXPIRES_IN,
    MAX_PAGE,
    MAX_PER_PAGE,
    EmailVerificationHook,
    HttpApi,
    PasswordResetHook,
)

__all__ = [
    "ErrorResponse",
    "UserOut",
    "create_app",
    "create_router",
    "current_principal",
    "init_app",
    "optional_principal",
    "require",
]

logger = logging.getLogger("usercore.web")

DEFAULT_PREFIX = "/api/v1"


# -- request bodies ---------------------------------------------------------------


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional() -> Any:
    """An optional field that, when sent, must not be ``null``.

    pydantic never validates defaults, so ``None`` marks "not sent"; the
    schema shows no default.  Endpoints dump with ``exclude_unset``.
    """
    return Field(default=None, json_schema_extra=_drop_default)


class _Body(BaseModel):
    # strict: JSON types are not coerced ("5" is not 5); unknown fields are refused.
    model_config = ConfigDict(extra="forbid", strict=True)


class RegisterRequest(_Body):
    email: str
    password: str
    username: str | None = None
    name: str | None = None


class LoginRequest(_Body):
    """Exactly one of ``email``, ``username`` or ``identifier`` (either of the first two)."""

    email: str = _optional()
    username: str = _optional()
    identifier: str = _optional()
    password: str


class OAuth2PasswordForm(BaseModel):
    """The OAuth2 password grant form (RFC 6749 §4.3.2); only documents the form."""

    grant_type: Literal["password"] | None = None
    username: str
    password: str
    scope: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


class RefreshRequest(_Body):
    refresh_token: str


class LogoutRequest(_Body):
    refresh_token: str | None = None


class PasswordResetRequest(_Body):
    email: str


class PasswordResetConfirm(_Body):
    token: str
    new_password: str


class EmptyBody(_Body):
    pass


class TokenBody(_Body):
    token: str


class UserCreate(_Body):
    """``role`` or ``roles`` (not both); the default is ``["user"]``."""

    email: str
    password: str | None = None
    username: str | None = None
    name: str | None = None
    role: str = _optional()
    roles: list[str] = _optional()
    status: Literal["active", "inactive"] = _optional()


class UserUpdate(_Body):
    """Only the fields sent change; ``role``/``roles`` and ``status`` need an administrator."""

    email: str = _optional()
    username: str | None = None
    name: str | None = None
    role: str = _optional()
    roles: list[str] = _optional()
    status: Literal["active", "inactive"] = _optional()
    current_password: str = _optional()


class RolesBody(_Body):
    roles: list[str]
    current_password: str = _optional()


class PasswordChange(_Body):
    """With ``current_password``: one's own change; without: an administrator's reset."""

    current_password: str = _optional()
    new_password: str


class ApiKeyCreate(_Body):
    name: str
    scopes: list[str] | None = None
    expires_in: int | None = Field(default=None, ge=1, le=MAX_EXPIRES_IN)
    current_password: str = _optional()


class RoleCreate(_Body):
    name: str
    permissions: list[str] = _optional()
    inherits: list[str] = _optional()
    description: str = _optional()


class RoleUpdate(_Body):
    permissions: list[str] = _optional()
    inherits: list[str] = _optional()
    description: str = _optional()


class PermissionsBody(_Body):
    permissions: list[str]


# -- response bodies (documentation: endpoints answer with ready JSON) -------------


class UserOut(BaseModel):
    id: int
    email: str
    username: str | None
    name: str | None
    role: str | None = Field(description="The most privileged role held")
    roles: list[str]
    status: Literal["active", "inactive"]
    email_verified: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


class UserPage(BaseModel):
    items: list[UserOut]
    page: int | None
    per_page: int
    total: int | None
    next_cursor: str | None


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int = Field(description="Seconds until the access token expires")


class AcceptedOut(BaseModel):
    message: str


class RoleOut(BaseModel):
    name: str
    permissions: list[str]
    inherits: list[str]
    description: str


class PermissionOut(BaseModel):
    name: str
    description: str


class ApiKeyOut(BaseModel):
    id: int
    user_id: int
    name: str
    prefix: str
    scopes: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(BaseModel):
    api_key: ApiKeyOut
    key: str = Field(description="The key itself: shown in this answer only")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable snake_case code, e.g. validation_failed")
    message: str
    details: dict[str, Any] = Field(
        description="For validation_failed: each field mapped to its messages"
    )


class ErrorResponse(BaseModel):
    """Every error: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody


_ERROR_DESCRIPTIONS = {
    400: "The input is not valid; details map each field to its problems",
    401: "Missing or invalid credentials",
    403: "Authenticated, but not allowed",
    404: "Not found",
    409: "Conflicts with an existing resource (duplicate email, username or role)",
    429: "Locked after too many failed logins; retry after Retry-After seconds",
    500: "Unexpected error (logged with the request id in details)",
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "integer"}}},
    500: {"X-Request-ID": {"schema": {"type": "string"}}},
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    documented: dict[int | str, dict[str, Any]] = {}
    for status in sorted({400, 500, *statuses}):
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[status]}
        if status in _ERROR_HEADERS:
            entry["headers"] = _ERROR_HEADERS[status]
        documented[status] = entry
    # A range also keeps FastAPI from documenting a 422 that is never sent.
    documented["4XX"] = {
        "model": ErrorResponse,
        "description": "Another client error, e.g. 413 for a body over 1 MiB",
    }
    return documented


# -- translation ---------------------------------------------------------------------


def _response(response: HttpResponse) -> Response:
    if response.body is None:
        return Response(status_code=response.status, headers=dict(response.headers))
    return Response(
        response.content(),
        status_code=response.status,
        headers=dict(response.headers),
        media_type="application/json",
    )


_PYDANTIC_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "list_type": "must be a list",
    "model_attributes_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "json_invalid": "is not valid JSON",
}


def validation_problems(errors: Sequence[Any]) -> dict[str, list[str]]:
    """pydantic's errors as usercore's details: each top-level field -> its messages."""
    problems: dict[str, list[str]] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        kind = error.get("type", "")
        field = "body" if kind == "json_invalid" or len(loc) < 2 else str(loc[1])
        message = _PYDANTIC_MESSAGES.get(kind) or str(error.get("msg", "is not valid"))
        messages = problems.setdefault(field, [])
        if message not in messages:
            messages.append(message)
    return problems


async def _raw_body(request: Request) -> bytes:
    return await request.body()


def _neutral_request(request: Request, body: Any = NO_BODY, raw_body: bytes = b"") -> HttpRequest:
    return HttpRequest(
        method=request.method,
        headers=request.headers,
        path_params=request.path_params,
        query=request.query_params,
        body=body,
        raw_body=raw_body,
        content_type=request.headers.get("content-type"),
    )


def _route_class(api: HttpApi) -> type[APIRoute]:
    """Routes that answer refused input as the neutral layer words it, and call
    endpoints that take nothing but the request without FastAPI's solving."""

    class UsercoreRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            name = self.name
            endpoint = self.endpoint
            dependant = self.dependant
            if dependant.request_param_name and not (
                dependant.path_params
                or dependant.query_params
                or dependant.header_params
                or dependant.cookie_params
                or dependant.body_params
                or dependant.dependencies
            ):
                # The endpoint takes nothing but the request (GET /auth/me...):
                # FastAPI would have nothing to solve or check, so call it in
                # the thread pool directly, without the per-request ceremony.
                async def call_directly(request: Request) -> Response:
                    response: Response = await run_in_threadpool(endpoint, request)
                    return response

                return call_directly

            async def handle(request: Request) -> Response:
                length = request.headers.get("content-length", "")
                if length.isdigit() and int(length) > MAX_BODY_BYTES:
                    return _response(http_error_response(413))
                try:
                    return await handler(request)
                except RequestValidationError as exc:
                    problems = await neutral_problems(request) or validation_problems(exc.errors())
                    return _response(error_response(ValidationError(problems)))
                except StarletteHTTPException as exc:
                    # FastAPI answers a body it cannot parse at all (too deeply
                    # nested JSON, a broken form) with a bare 400.
                    unparsable = await neutral_problems(request) if exc.status_code == 400 else {}
                    if unparsable:
                        return _response(error_response(ValidationError(unparsable)))
                    return _response(http_error_response(exc.status_code, exc.headers))

            async def neutral_problems(request: Request) -> dict[str, list[str]]:
                # Ask the neutral layer, so the messages match the Flask adapter's.
                return api.problems(name, _neutral_request(request, raw_body=await request.body()))

            return handle

    return UsercoreRoute


# -- dependencies for applications' own routes ---------------------------------------

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl=f"{DEFAULT_PREFIX}/auth/login", scheme_name="usercore_token", auto_error=False
)
api_key_scheme = APIKeyHeader(name="X-API-Key", scheme_name="usercore_api_key", auto_error=False)


def _core(request: Request) -> UserCore:
    core = getattr(request.app.state, "usercore", None)
    if not isinstance(core, UserCore):
        raise RuntimeError(
            "usercore is not set up on this app: call usercore.web.fastapi.init_app(app, core)"
        )
    return core


def optional_principal(
    request: Request,
    _token: Annotated[str | None, Security(oauth2_scheme)],
    _key: Annotated[str | None, Security(api_key_scheme)],
) -> Principal | None:
    """Dependency: the request's principal, ``None`` without credentials.

    Invalid credentials are refused (401), never treated as anonymous.
    """
    return authenticate(_core(request), request.headers)


def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    """Dependency: the request's principal; 401 without valid credentials."""
    if principal is None:
        raise AuthenticationError("Authentication required.")
    return principal


def require(permission: str) -> Callable[..., Principal]:
    """Dependency factory: the principal, if the policy allows it ``permission`` (else 403).

    ``Depends(require("reports:read"))``.  Register the permission first
    (``core.permissions.register``) so roles can grant it.
    """

    def dependency(
        request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        _core(request).policy.require(principal, permission)
        return principal

    dependency.__name__ = f"require_{permission.replace(':', '_').replace('*', 'any')}"
    return dependency


# -- the app ------------------------------------------------------------------------


async def _usercore_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UsercoreError)
    if exc.http_status >= 500:
        return await _unexpected_error(request, exc)
    return _response(error_response(exc))


async def _request_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _response(error_response(ValidationError(validation_problems(exc.errors()))))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return _response(http_error_response(exc.status_code, exc.headers))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    request_id = request_id_of(request.headers)
    logger.error(
        "unexpected error in %s %s [request %s]",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return _response(internal_error_response(request_id))


def init_app(app: FastAPI, core: UserCore) -> None:
    """Set ``core`` up on ``app``: the dependencies find it, and every error,
    including FastAPI's own (validation, 404, 405) and unexpected ones, is
    answered with usercore's envelope ``{"error": {"code", "message", "details"}}``."""
    app.state.usercore = core
    app.add_exception_handler(UsercoreError, _usercore_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def create_app(
    core: UserCore,
    *,
    prefix: str = DEFAULT_PREFIX,
    on_password_reset: PasswordResetHook | None = None,
    on_email_verification: EmailVerificationHook | None = None,
    title: str = "usercore",
) -> FastAPI:
    """A FastAPI app serving the usercore API under ``prefix``.

    ``on_password_reset(email, token)`` and ``on_email_verification(user,
    token)`` deliver the one-time tokens, which the API never returns.
    """
    from usercore import __version__

    app = FastAPI(title=title, version=__version__)
    init_app(app, core)
    # Straight onto the app's router: an included router is matched twice per request.
    _add_routes(
        app.router,
        HttpApi(
            core, on_password_reset=on_password_reset, on_email_verification=on_email_verification
        ),
        prefix,
    )
    return app


UserId = Annotated[int, Path(description="The user's id")]
KeyId = Annotated[int, Path(description="The API key's id")]
RoleName = Annotated[str, Path(description="The role's name")]


def create_router(
    core: UserCore,
    *,
    prefix: str = "",
    on_password_reset: PasswordResetHook | None = None,
    on_email_verification: EmailVerificationHook | None = None,
) -> APIRouter:
    """The usercore routes of DESIGN §8 as an ``APIRouter`` under ``prefix``.

    The routes answer their own errors with usercore's envelope; call
    :func:`init_app` too so the dependencies work on the app's other routes.
    """
    router = APIRouter()
    _add_routes(
        router,
        HttpApi(
            core, on_password_reset=on_password_reset, on_email_verification=on_email_verification
        ),
        prefix,
    )
    return router


def _add_routes(router: APIRouter, api: HttpApi, prefix: str) -> None:
    route_class = _route_class(api)
    token_scheme = OAuth2PasswordBearer(
        tokenUrl=f"{prefix}/auth/login", scheme_name="usercore_token", auto_error=False
    )
    # Authenticated operations name the schemes in the document only: the
    # neutral layer reads the headers itself, and two security dependencies
    # would cost every request a tenth of its time.  logout() declares both
    # as parameters, which puts them in the document's components.
    secured: dict[str, Any] = {
        "security": [{token_scheme.scheme_name: []}, {api_key_scheme.scheme_name: []}]
    }
    added: set[str] = set()

    def add(
        name: str,
        endpoint: Callable[..., Response],
        errors: tuple[int, ...],
        response_model: Any = None,
        **extra: Any,
    ) -> None:
        route = api.route(name)
        if route.auth:
            extra["openapi_extra"] = {**extra.get("openapi_extra", {}), **secured}
        for index, path in enumerate(route.paths):
            alias = f" (alias of {route.paths[0]})" if index else ""
            summary = route.summary + alias
            for method in route.methods:
                router.add_api_route(
                    prefix + path,
                    endpoint,
                    methods=[method],
                    status_code=route.status,
                    response_model=response_model,
                    responses=_errors(*errors, *((401, 403) if route.auth else ())),
                    name=name,
                    summary=summary,
                    route_class_override=route_class,
                    **extra,
                )
        added.add(name)

    def run(name: str, request: Request, body: BaseModel | None = None) -> Response:
        data = NO_BODY if body is None else body.model_dump(exclude_unset=True)
        return _response(api.dispatch(name, _neutral_request(request, data)))

    # Typed parameters below declare and check the input for the OpenAPI
    # document; run() hands the request to the neutral layer, which reads it.

    def register(request: Request, body: RegisterRequest) -> Response:
        return run("register", request, body)

    def login(request: Request, raw_body: Annotated[bytes, Depends(_raw_body)]) -> Response:
        # JSON or the OAuth2 password form, so the docs' "Authorize" button works.
        return _response(api.dispatch("login", _neutral_request(request, raw_body=raw_body)))

    def refresh(request: Request, body: RefreshRequest) -> Response:
        return run("refresh", request, body)

    def logout(
        request: Request,
        _token: Annotated[str | None, Security(token_scheme)],
        _key: Annotated[str | None, Security(api_key_scheme)],
        body: LogoutRequest | None = None,
    ) -> Response:
        return run("logout", request, body)

    def me(request: Request) -> Response:
        return run("me", request)

    def request_password_reset(request: Request, body: PasswordResetRequest) -> Response:
        return run("request_password_reset", request, body)

    def reset_password(request: Request, body: PasswordResetConfirm) -> Response:
        return run("reset_password", request, body)

    def request_email_verification(request: Request, body: EmptyBody | None = None) -> Response:
        return run("request_email_verification", request, body)

    def verify_email(request: Request, body: TokenBody) -> Response:
        return run("verify_email", request, body)

    def list_users(
        request: Request,
        page: Annotated[
            int | None, Query(ge=1, le=MAX_PAGE, description="Page number (adds total)")
        ] = None,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE, description="Users per page")] = 20,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
        role: Annotated[str | None, Query(description="Only users holding this role")] = None,
        status: Annotated[
            Literal["active", "inactive"] | None, Query(description="Only this status")
        ] = None,
        q: Annotated[str | None, Query(description="Substring of email, username or name")] = None,
    ) -> Response:
        return run("list_users", request)

    def create_user(request: Request, body: UserCreate) -> Response:
        return run("create_user", request, body)

    def get_user(request: Request, user_id: UserId) -> Response:
        return run("get_user", request)

    def update_user(request: Request, user_id: UserId, body: UserUpdate) -> Response:
        return run("update_user", request, body)

    def delete_user(request: Request, user_id: UserId) -> Response:
        return run("delete_user", request)

    def set_user_roles(request: Request, user_id: UserId, body: RolesBody) -> Response:
        return run("set_user_roles", request, body)

    def set_user_password(request: Request, user_id: UserId, body: PasswordChange) -> Response:
        return run("set_user_password", request, body)

    def create_api_key(request: Request, user_id: UserId, body: ApiKeyCreate) -> Response:
        return run("create_api_key", request, body)

    def list_api_keys(request: Request, user_id: UserId) -> Response:
        return run("list_api_keys", request)

    def revoke_api_key(request: Request, key_id: KeyId) -> Response:
        return run("revoke_api_key", request)

    def list_roles(request: Request) -> Response:
        return run("list_roles", request)

    def create_role(request: Request, body: RoleCreate) -> Response:
        return run("create_role", request, body)

    def get_role(request: Request, name: RoleName) -> Response:
        return run("get_role", request)

    def update_role(request: Request, name: RoleName, body: RoleUpdate) -> Response:
        return run("update_role", request, body)

    def delete_role(
        request: Request,
        name: RoleName,
        force: Annotated[bool, Query(description="Remove the role from its holders")] = False,
    ) -> Response:
        return run("delete_role", request)

    def set_role_permissions(request: Request, name: RoleName, body: PermissionsBody) -> Response:
        return run("set_role_permissions", request, body)

    def list_permissions(request: Request) -> Response:
        return run("list_permissions", request)

    login_body = {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": OAuth2PasswordForm.model_json_schema()},
        },
    }
    # /users/me before /users/{user_id}: the first matching route wins.
    add("register", register, (409,), UserOut)
    add("login", login, (401, 429), TokenPairOut, openapi_extra={"requestBody": login_body})
    add("refresh", refresh, (401,), TokenPairOut)
    add("logout", logout, (401,))
    add("me", me, (404,), UserOut)
    add("request_password_reset", request_password_reset, (), AcceptedOut)
    add("reset_password", reset_password, (401,))
    add("request_email_verification", request_email_verification, (404,), AcceptedOut)
    add("verify_email", verify_email, (401,), UserOut)
    add("list_users", list_users, (), UserPage)
    add("create_user", create_user, (409,), UserOut)
    add("get_user", get_user, (404,), UserOut)
    add("update_user", update_user, (404, 409), UserOut)
    add("delete_user", delete_user, (404,))
    add("set_user_roles", set_user_roles, (404,), UserOut)
    add("set_user_password", set_user_password, (404,))
    add("create_api_key", create_api_key, (404,), ApiKeyCreated)
    add("list_api_keys", list_api_keys, (), list[ApiKeyOut])
    add("revoke_api_key", revoke_api_key, (404,))
    add("list_roles", list_roles, (), list[RoleOut])
    add("create_role", create_role, (409,), RoleOut)
    add("get_role", get_role, (404,), RoleOut)
    add("update_role", update_role, (404,), RoleOut)
    add("delete_role", delete_role, (404, 409))
    add("set_role_permissions", set_role_permissions, (404,), RoleOut)
    add("list_permissions", list_permissions, (), list[PermissionOut])
    missing = {route.name for route in api.routes} - added
    assert not missing, f"routes without a FastAPI endpoint: {sorted(missing)}"
