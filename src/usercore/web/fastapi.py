"""The FastAPI adapter: the usercore REST API as an ``APIRouter`` or a whole app.

``create_app(core)`` serves everything under ``/api/v1``.  In an app of your
own, ``auth = init_app(app, core)`` sets usercore up and returns the
:class:`Auth` whose dependencies protect your routes; mount the API with
``app.include_router(create_router(core, prefix="/api/v1"))``::

    app = FastAPI()
    auth = init_app(app, core)
    app.include_router(create_router(core, prefix="/api/v1"))

    @app.get("/notes/{user_id}")
    def notes(
        principal: Annotated[Principal, Depends(auth.require("notes:read", owner="user_id"))],
    ): ...

Every endpoint is built from the operation table (``usercore.web._operations``):
it takes its pydantic input model and ``Depends`` on the principal, so
FastAPI itself validates the input and documents the operation, its security
schemes and its answers.  The core is synchronous; an endpoint runs it where it
costs least (docs/http.md, "Where requests run"): on the event loop for a
credential check and one in-process read (``GET /auth/me`` on memory or
SQLite), on a bounded pool of its own for an operation that hashes a password
(refused at once with 503 when that pool is full), on a read pool of its own
for that check and read over the network (``GET /auth/me`` on PostgreSQL), in
FastAPI's thread pool otherwise.
"""

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from functools import partial
from typing import Annotated, Any

try:
    from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request
    from fastapi import Security as SecurityParam
    from fastapi.exception_handlers import (
        http_exception_handler,
        request_validation_exception_handler,
    )
    from fastapi.exceptions import RequestValidationError
    from fastapi.routing import APIRoute
    from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "usercore.web.fastapi needs FastAPI: pip install 'usercore[fastapi]'"
    ) from exc

from usercore.domain import Principal
from usercore.errors import AuthenticationError, Overloaded, UsercoreError, ValidationError
from usercore.services import UserCore
from usercore.web._core import (
    MAX_BODY_BYTES,
    NO_STORE_HEADERS,
    SECURITY_HEADERS,
    CookieSessions,
    Cors,
    Credential,
    HashAdmission,
    HttpResponse,
    answer_headers,
    awaited_reads,
    credential_of,
    http_error_response,
    identify,
    inline_reads,
    internal_error_response,
    is_unexpected,
    principal_awaited,
    principal_of,
    request_id_of,
)
from usercore.web._operations import (
    PATH_PARAMS,
    Api,
    Call,
    EmailVerificationHook,
    InvitationHook,
    Operation,
    PasswordResetHook,
    fill_refresh_token,
    ignores_credential,
    owner_id_of,
    session_cookies,
    with_custom_fields,
)
from usercore.web._profiles import PROFILES, V1, Profile, ProfileChoice, Route, profiles_of
from usercore.web._schemas import (
    ErrorResponse,
    LoginRequest,
    OAuth2PasswordForm,
    UserOut,
    login_input,
    validation_details,
)

__all__ = [
    "PROFILES",
    "AsyncAuth",
    "Auth",
    "CookieSessions",
    "ErrorResponse",
    "Profile",
    "UserOut",
    "add_health_routes",
    "create_app",
    "create_router",
    "current_principal",
    "init_app",
    "optional_principal",
    "require",
]

logger = logging.getLogger("usercore.web")

# How long before the policy's next store probe an operation stops running on
# the event loop after an awaited token check (seconds): more than the few
# hundred microseconds between the check of Policy.refresh_due and the
# operation's permission check, however the loop's thread is scheduled.
_POLICY_PROBE_MARGIN = 0.02

DEFAULT_PREFIX = "/api/v1"
_OPERATION = "usercore_operation"
_PROFILE = "usercore_profile"
_PRINCIPAL = "usercore_principal"
_CREDENTIAL = "usercore_credential"
_DIRECT = "usercore_direct"
_SHED = "usercore_shed"
# Set on the scope by the guard: the request has the body cap and the headers.
_GUARDED = "usercore_guarded"
# A refused client also gives its connection back: a flood of keep-alive
# connections asking again at once would otherwise keep the event loop busy.
_SHED_HEADERS = {"Connection": "close"}

_ERROR_DESCRIPTIONS = {
    400: "The input is not valid; details map each field to its problems",
    401: "Missing or invalid credentials",
    403: "Authenticated, but not allowed (or a cookie request without its CSRF token)",
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


def _errors(model: Any, *statuses: int) -> dict[int | str, dict[str, Any]]:
    documented: dict[int | str, dict[str, Any]] = {}
    for status in sorted({400, 500, *statuses}):
        entry: dict[str, Any] = {"model": model, "description": _ERROR_DESCRIPTIONS[status]}
        if status in _ERROR_HEADERS:
            entry["headers"] = _ERROR_HEADERS[status]
        documented[status] = entry
    # A range also keeps FastAPI from documenting a 422 that is never sent.
    documented["4XX"] = {
        "model": model,
        "description": "Another client error, e.g. 413 for a body over 1 MiB",
    }
    return documented


def _response(response: HttpResponse, extra: Mapping[str, str] | None = None) -> Response:
    headers = {**response.headers, **(extra or {})}
    if response.body is None:
        answer = Response(status_code=response.status, headers=headers)
    else:
        answer = Response(
            response.content(),
            status_code=response.status,
            headers=headers,
            media_type="application/json",
        )
    for cookie in response.cookies:
        answer.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))
    return answer


# -- protecting routes ------------------------------------------------------------


_API_KEY_SCHEME = APIKeyHeader(name="X-API-Key", scheme_name="usercore_api_key", auto_error=False)


class _CredentialScheme(OAuth2PasswordBearer):
    """The OAuth2 password scheme of the document (Swagger's "Authorize" logs in at
    the real prefix), whose value is the request's credential of any kind.

    usercore's own endpoints depend on it alone: one dependency that declares
    both security schemes and reads the credential without I/O; the endpoint
    authenticates it in its thread.
    """

    def __init__(self, token_url: str, sessions: CookieSessions | None):
        super().__init__(tokenUrl=token_url, scheme_name="usercore_token", auto_error=False)
        self.sessions = sessions

    async def __call__(  # type: ignore[override]
        self,
        request: Request,
        _key: Annotated[str | None, SecurityParam(_API_KEY_SCHEME)] = None,
    ) -> Credential | None:
        return credential_of(request.headers, request.cookies, self.sessions)


class Auth:
    """usercore's dependencies for an app's own routes (returned by :func:`init_app`).

    ``Depends(auth.principal)`` is the request's :class:`~usercore.Principal`
    (401 without valid credentials), ``Depends(auth.optional_principal)`` the
    principal or ``None`` without credentials (invalid ones are still 401),
    and ``Depends(auth.require(permission, owner=...))`` the principal if the
    policy allows ``permission`` (403 otherwise).  ``owner`` names a path
    parameter holding the owner's user id, or is a callable from the path
    parameters to that id, so ``:own`` grants apply.  Credentials are
    ``Authorization: Bearer``, ``X-API-Key`` or, with cookie ``sessions``,
    the access-token cookie (unsafe methods then need the CSRF header).
    The security schemes point at ``{prefix}/auth/login``.
    """

    def __init__(
        self,
        core: UserCore,
        *,
        prefix: str = DEFAULT_PREFIX,
        sessions: CookieSessions | None = None,
    ):
        self.core = core
        self.sessions = sessions
        token_scheme = OAuth2PasswordBearer(
            tokenUrl=f"{prefix}/auth/login", scheme_name="usercore_token", auto_error=False
        )
        key_scheme = _API_KEY_SCHEME

        def optional_principal(
            request: Request,
            _token: Annotated[str | None, SecurityParam(token_scheme)],
            _key: Annotated[str | None, SecurityParam(key_scheme)],
        ) -> Principal | None:
            return self._principal(request)

        # One dependency each (not one on top of the other): every level of
        # dependencies costs each request a solving pass.
        def principal(
            request: Request,
            _token: Annotated[str | None, SecurityParam(token_scheme)],
            _key: Annotated[str | None, SecurityParam(key_scheme)],
        ) -> Principal:
            found = self._principal(request)
            if found is None:
                raise AuthenticationError("Authentication required.")
            return found

        self.credential: Callable[..., Awaitable[Credential | None]] = _CredentialScheme(
            f"{prefix}/auth/login", sessions
        )
        self.optional_principal: Callable[..., Principal | None] = optional_principal
        self.principal: Callable[..., Principal] = principal

    def _principal(self, request: Request) -> Principal | None:
        state = request.state
        if hasattr(state, _PRINCIPAL):
            found: Principal | None = getattr(state, _PRINCIPAL)
            return found
        credential, found = identify(
            self.core,
            request.headers,
            request.cookies,
            method=request.method,
            sessions=self.sessions,
        )
        setattr(state, _CREDENTIAL, credential)
        setattr(state, _PRINCIPAL, found)
        return found

    def require(
        self,
        permission: str,
        *,
        owner: str | Callable[[Mapping[str, Any]], int | None] | None = None,
    ) -> Callable[..., Principal]:
        """A dependency: the principal, if the policy allows it ``permission`` (else 403).

        ``owner="user_id"`` (a path parameter) or ``owner=lambda params: ...``
        gives the id of the resource's owner, so a ``:own`` grant suffices
        when the principal is that owner.
        """

        def dependency(
            request: Request, principal: Annotated[Principal, Depends(self.principal)]
        ) -> Principal:
            owner_id = owner_id_of(owner, request.path_params)
            self.core.policy.require(principal, permission, owner_id=owner_id)
            return principal

        dependency.__name__ = f"require_{permission.replace(':', '_').replace('*', 'any')}"
        return dependency


def _auth(request: Request) -> Auth:
    auth = getattr(request.app.state, "usercore_auth", None)
    if not isinstance(auth, Auth):
        raise RuntimeError(
            "usercore is not set up on this app: call usercore.web.fastapi.init_app(app, core)"
        )
    return auth


def optional_principal(request: Request) -> Principal | None:
    """Dependency: the request's principal, ``None`` without credentials (see :class:`Auth`)."""
    return _auth(request)._principal(request)


def current_principal(request: Request) -> Principal:
    """Dependency: the request's principal; 401 without valid credentials (see :class:`Auth`)."""
    principal = optional_principal(request)
    if principal is None:
        raise AuthenticationError("Authentication required.")
    return principal


def require(
    permission: str, *, owner: str | Callable[[Mapping[str, Any]], int | None] | None = None
) -> Callable[..., Principal]:
    """Dependency factory: the principal if allowed ``permission`` (see :meth:`Auth.require`)."""

    def dependency(request: Request) -> Principal:
        principal = current_principal(request)
        owner_id = owner_id_of(owner, request.path_params)
        _auth(request).core.policy.require(principal, permission, owner_id=owner_id)
        return principal

    dependency.__name__ = f"require_{permission.replace(':', '_').replace('*', 'any')}"
    return dependency


# -- errors and the ASGI guard ---------------------------------------------------------


def _is_usercore_route(request: Request) -> bool:
    route = request.scope.get("route")
    return getattr(getattr(route, "endpoint", None), _OPERATION, None) is not None


def _profile_of(request: Request) -> Profile:
    """The profile whose shapes the answer takes: the matched route's, else the app's."""
    route = request.scope.get("route")
    found = getattr(getattr(route, "endpoint", None), _PROFILE, None)
    if found is None:
        found = getattr(request.app.state, _PROFILE, None)
    return found if isinstance(found, Profile) else V1


def _unexpected(request: Request, exc: BaseException) -> Response:
    request_id = request_id_of(request.headers)
    logger.error(
        "unexpected error in %s %s [request %s]",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return _response(
        _profile_of(request).reshape(internal_error_response(request_id)), SECURITY_HEADERS
    )


def _usercore_response(request: Request, exc: UsercoreError) -> Response:
    if is_unexpected(exc):
        return _unexpected(request, exc)
    route = request.scope.get("route")
    operation = getattr(getattr(route, "endpoint", None), _OPERATION, None)
    return _response(_profile_of(request).error(exc, operation), SECURITY_HEADERS)


async def _delegate(handler: Callable[..., Any], request: Request, exc: Exception) -> Response:
    """Hand an error to the app's own handler (sync or async)."""
    answer = handler(request, exc)
    if inspect.isawaitable(answer):
        answer = await answer
    assert isinstance(answer, Response)
    return answer


def _install_error_handlers(app: FastAPI, format_all_errors: bool) -> None:
    """usercore's envelope for usercore's errors; the app's own errors stay the app's."""
    handlers = app.exception_handlers
    previous_validation = handlers.get(RequestValidationError, request_validation_exception_handler)
    previous_http = handlers.get(StarletteHTTPException, http_exception_handler)

    async def usercore_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UsercoreError)
        return _usercore_response(request, exc)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if format_all_errors or _is_usercore_route(request):
            details = validation_details(exc.errors())
            return _usercore_response(request, ValidationError(details))
        return await _delegate(previous_validation, request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not (format_all_errors or _is_usercore_route(request)):
            return await _delegate(previous_http, request, exc)
        if exc.status_code == 400 and _is_usercore_route(request):
            # FastAPI answers a body it cannot parse at all (too deeply nested
            # JSON, bytes that are not UTF-8) with a bare 400.
            return _usercore_response(request, ValidationError.single("body", "is not valid JSON"))
        answer = http_error_response(exc.status_code, exc.headers)
        return _response(_profile_of(request).reshape(answer), SECURITY_HEADERS)

    handlers.setdefault(UsercoreError, usercore_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    if format_all_errors:
        app.add_exception_handler(Exception, _unexpected)


# The only request headers the guard looks at.
_GUARD_READS = frozenset({b"content-length", b"origin", b"access-control-request-method"})
_SECURITY_RAW = [
    (key.lower().encode("latin-1"), value.encode("latin-1"))
    for key, value in SECURITY_HEADERS.items()
]


def _declares_too_long(length: str) -> bool:
    """Whether a ``Content-Length`` value announces a body over the cap."""
    return length.isdigit() and int(length) > MAX_BODY_BYTES


def _capped(receive: Receive) -> Receive:
    """``receive``, refusing (413) a body once more than the cap has streamed in."""
    received = 0

    async def capped_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise HTTPException(413)
        return message

    return capped_receive


def _with_headers(send: Send, raw_extra: list[tuple[bytes, bytes]]) -> Send:
    """``send``, adding ``raw_extra`` to the answer's headers it does not set."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            sent = message.get("headers", [])
            present = {key.lower() for key, _ in sent}
            added = [(key, value) for key, value in raw_extra if key not in present]
            message = {**message, "headers": [*sent, *added]}
        await send(message)

    return send_with_headers


class _Guard:
    """ASGI middleware under ``prefix``: security headers on every answer, CORS,
    and the 1 MiB body cap counted while the body streams in (a chunked body
    without ``Content-Length`` is cut off, not read to its end)."""

    def __init__(self, app: ASGIApp, *, prefix: str, cors: Cors | None, everywhere: bool):
        self.app = app
        self.prefix = prefix
        self.cors = cors
        self.everywhere = everywhere
        self._shed: dict[tuple[str, str], tuple[HashAdmission, Response]] | None = None

    def _shed_of(self, scope: Scope) -> tuple[HashAdmission, Response] | None:
        """The admission and 503 of the hashing route at this exact method and
        path (a login under a flood is refused here, before routing)."""
        if self._shed is None:
            routes = getattr(scope.get("app"), "routes", ())
            self._shed = {
                (method, route.path): route.shed
                for route in routes
                if isinstance(route, _Route) and route.shed is not None
                for method in route.methods or ()
            }
        return self._shed.get((scope["method"], scope["path"])) if self._shed else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (
            self.everywhere or scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        scope[_GUARDED] = True
        headers = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope["headers"]
            if key in _GUARD_READS
        }
        if self.cors is not None:
            preflight = self.cors.preflight(scope["method"], headers)
            if preflight is not None:
                await _Guard._send(send, preflight)
                return
        extra = answer_headers(self.cors, headers)
        if _declares_too_long(headers.get("content-length", "")):
            await _Guard._send(send, http_error_response(413), extra)
            return
        raw_extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        shed = self._shed_of(scope)
        if shed is not None and shed[0].full:
            await shed[1](scope, receive, _with_headers(send, raw_extra))
            return
        await self.app(scope, _capped(receive), _with_headers(send, raw_extra))

    @staticmethod
    async def _send(send: Send, response: HttpResponse, extra: Mapping[str, str] = {}) -> None:
        answer = _response(response, {**SECURITY_HEADERS, **extra})

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await answer({"type": "http"}, no_body, send)


# -- the operations as endpoints ---------------------------------------------------------


def _endpoint(
    api: Api,
    auth: Auth,
    operation: Operation,
    prefix: str,
    sessions: CookieSessions | None,
    profile: Profile,
) -> Callable[..., Any]:
    """A FastAPI endpoint for ``operation``: typed path parameters, the input model
    (``Body`` or ``Query``) and the principal as a dependency, with a signature
    FastAPI reads like any hand-written one."""
    parameters = [inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)]
    for name in operation.path:
        kind, description = PATH_PARAMS[name]
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[kind, Path(description=description)],
            )
        )
    # The credential is read on the event loop (no I/O) and authenticated in
    # the endpoint's thread, so a request crosses into the thread pool once.
    parameters.append(
        inspect.Parameter(
            "credential",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[Credential | None, Depends(auth.credential)],
        )
    )
    model = operation.input
    if model is not None and operation.name != "login":
        marker = Query() if operation.source == "query" else Body()
        required = operation.source == "query" or operation.body_required
        parameters.append(
            inspect.Parameter(
                "value",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[model if required else model | None, marker],
                default=inspect.Parameter.empty if required else None,
            )
        )
    secret_headers = NO_STORE_HEADERS if operation.issues_secrets else {}

    def run(
        request: Request,
        credential: Credential | None,
        value: Any,
        path: Any,
        principal: Principal | None = None,
    ) -> Response:
        """The operation's answer; ``principal`` is ``credential``'s when already known."""
        if ignores_credential(operation, credential):
            credential = None
        try:
            if credential is not None and principal is None:
                principal = principal_of(
                    api.core,
                    credential,
                    request.headers,
                    request.cookies,
                    method=request.method,
                    sessions=sessions,
                )
            if operation.name == "login":
                value = login_input(_body_of(request), request.headers.get("content-type"))
            call = Call(api, credential, request.client.host if request.client else None)
            if sessions is not None:
                value = fill_refresh_token(
                    sessions, operation, value, request.method, request.headers, request.cookies
                )
            result = operation.run(call, principal, value, path)
            answer = profile.answer(
                operation,
                result,
                request.url.path,
                secret_headers,
                session_cookies(
                    sessions, operation, result, prefix, request.headers, request.cookies
                ),
            )
        except Exception as exc:
            return failed(request, exc)
        return _response(answer)

    def failed(request: Request, exc: Exception) -> Response:
        if isinstance(exc, UsercoreError) and not is_unexpected(exc):
            return _response(profile.error(exc, operation.name))
        return _unexpected(request, exc)

    # Where the work runs: on the event loop when it is a credential check and
    # one in-process read (microseconds), or when that read is awaited there
    # (an access token on PostgreSQL: a socket the loop waits on, no thread);
    # on the hashing pool, admitted or refused at once, when it may hash a
    # password; else in a thread: a check and read over the network that is
    # not awaited (an API key) on the read pool (a cheaper hop than FastAPI's
    # pool, which adds a capacity limiter and a cancel scope to each call),
    # everything else in FastAPI's pool.
    inline = operation.inline and inline_reads(api.core)
    awaited = awaited_reads(api.core) if operation.inline and not inline else None
    reads = api.reads if operation.inline and not inline else None

    async def endpoint(**kwargs: Any) -> Response:
        request: Request = kwargs.pop("request")
        credential = kwargs.pop("credential")
        value = kwargs.pop("value", None)
        if inline:
            return run(request, credential, value, kwargs)
        if (
            awaited is not None
            and credential is not None
            and credential.source != "api_key"
            and not ignores_credential(operation, credential)
        ):
            try:
                principal = await principal_awaited(
                    api.core,
                    awaited,
                    credential,
                    request.headers,
                    request.cookies,
                    method=request.method,
                    sessions=sessions,
                )
            except Exception as exc:
                return failed(request, exc)
            if not api.core.policy.refresh_due(within=_POLICY_PROBE_MARGIN):
                return run(request, credential, value, kwargs, principal)
            # The permission check would read the store first: not on the loop.
            return await run_in_threadpool(run, request, credential, value, kwargs, principal)
        if operation.may_hash(value):
            return await _hashing(
                api.admission, request, partial(run, request, credential, value, kwargs), profile
            )
        if reads is not None:
            context = contextvars.copy_context()
            work = partial(context.run, run, request, credential, value, kwargs)
            return await asyncio.get_running_loop().run_in_executor(reads, work)
        return await run_in_threadpool(run, request, credential, value, kwargs)

    if model is None and not operation.path:

        async def direct(request: Request) -> Response:
            # Nothing to validate: the route calls this without FastAPI's
            # dependency solving (the credential scheme is still documented).
            return await endpoint(request=request, credential=await auth.credential(request))

        setattr(endpoint, _DIRECT, direct)
    if operation.hashes is True:
        # Refused before the body is read or anything is solved, when full.
        overloaded = profile.error(Overloaded(retry_after=api.admission.retry_after))
        setattr(endpoint, _SHED, (api.admission, _response(overloaded, _SHED_HEADERS)))

    endpoint.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    endpoint.__name__ = operation.name
    setattr(endpoint, _OPERATION, operation.name)
    setattr(endpoint, _PROFILE, profile)
    return endpoint


async def _hashing(
    admission: HashAdmission, request: Request, work: Callable[[], Response], profile: Profile
) -> Response:
    """Run ``work`` (an operation that may hash a password) on the hashing pool,
    or answer 503 + ``Retry-After`` at once when the pool is full; a client that
    has gone away is not worked for."""
    try:
        admission.enter()
    except Overloaded as exc:
        return _response(profile.error(exc))
    try:
        gone = await request.is_disconnected()
    except BaseException:
        admission.leave()
        raise
    if gone:
        admission.leave()
        return _response(profile.error(Overloaded(retry_after=admission.retry_after)))
    context = contextvars.copy_context()

    def job() -> Response:
        try:
            return context.run(work)
        finally:
            admission.leave()

    return await asyncio.get_running_loop().run_in_executor(admission.executor, job)


class _Route(APIRoute):
    """A FastAPI route whose endpoint may offer a direct handler (``_DIRECT``):
    one that takes nothing but the request, called without dependency solving;
    and, for an operation that always hashes, the admission and the 503 to
    answer at once while it is full (``_SHED``), before FastAPI reads the body:
    under a flood, each refusal costs the event loop as little as it can."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.shed: tuple[HashAdmission, Response] | None = getattr(endpoint, _SHED, None)
        profile = getattr(endpoint, _PROFILE, V1)
        self.too_large = _response(profile.reshape(http_error_response(413)), SECURITY_HEADERS)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not scope.get(_GUARDED):
            # Mounted outside init_app's prefix: the guard did not see this
            # request, yet a usercore route never takes a body over the cap
            # nor answers without the security headers (ASVS 4.0.3 V12.1.1, V14.4).
            length = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
            if _declares_too_long(length.decode("latin-1")):
                await self.too_large(scope, receive, send)
                return
            receive, send = _capped(receive), _with_headers(send, _SECURITY_RAW)
        if self.shed is not None and self.shed[0].full and scope["method"] in (self.methods or ()):
            await self.shed[1](scope, receive, send)
            return
        await super().handle(scope, receive, send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        direct: Callable[[Request], Coroutine[Any, Any, Response]] | None = getattr(
            self.endpoint, _DIRECT, None
        )
        return super().get_route_handler() if direct is None else direct


def _body_of(request: Request) -> bytes:
    body: bytes = request.scope.get("usercore_body", b"")
    return body


async def _read_login_body(request: Request) -> None:
    # login takes JSON or the OAuth2 password form, so it reads its body itself.
    request.scope["usercore_body"] = await request.body()


def create_router(
    core: UserCore,
    *,
    prefix: str = "",
    on_password_reset: PasswordResetHook | None = None,
    on_email_verification: EmailVerificationHook | None = None,
    on_invitation: InvitationHook | None = None,
    sessions: CookieSessions | None = None,
    routes: Sequence[Route] | None = None,
    profile: str | Profile = V1,
) -> APIRouter:
    """The usercore routes as an ``APIRouter`` under ``prefix``.

    Call :func:`init_app` on the app too: it answers usercore's errors with
    usercore's envelope.  ``profile`` (a name of ``PROFILES`` or a
    :class:`~usercore.web._profiles.Profile`) gives the route table and the
    shapes of the answers; ``routes`` replaces its route table (``(method,
    path, operation name)``); ``sessions`` turns on the cookie transport.
    """
    router = APIRouter()
    api = Api(
        core,
        on_password_reset=on_password_reset,
        on_email_verification=on_email_verification,
        on_invitation=on_invitation,
    )
    (chosen,) = profiles_of(profile)
    _add_routes(router, api, prefix, sessions, chosen, routes)
    return router


def _add_routes(
    router: APIRouter,
    api: Api,
    prefix: str,
    sessions: CookieSessions | None,
    profile: Profile,
    routes: Sequence[Route] | None = None,
) -> None:
    auth = Auth(api.core, prefix=prefix, sessions=sessions)
    endpoints: dict[str, Callable[..., Any]] = {}
    error_model = profile.error_model
    for method, path, name in profile.routes if routes is None else routes:
        operation = with_custom_fields(profile.operation(name), api.core.settings.custom_fields)
        if name not in endpoints:
            endpoints[name] = _endpoint(api, auth, operation, prefix, sessions, profile)
        extra: dict[str, Any] = {}
        if name == "login":
            extra["dependencies"] = [Depends(_read_login_body)]
            extra["openapi_extra"] = {"requestBody": _LOGIN_BODY}
        router.add_api_route(
            prefix + path,
            endpoints[name],
            methods=[method],
            status_code=operation.status,
            response_model=operation.output,
            responses=_errors(
                error_model, *operation.errors, *((401, 403) if operation.auth else ())
            ),
            name=name,
            summary=operation.summary,
            route_class_override=_Route,
            **extra,
        )


_LOGIN_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": LoginRequest.model_json_schema()},
        "application/x-www-form-urlencoded": {"schema": OAuth2PasswordForm.model_json_schema()},
    },
}


# -- the app ------------------------------------------------------------------------


def init_app(
    app: FastAPI,
    core: UserCore,
    *,
    prefix: str = DEFAULT_PREFIX,
    sessions: CookieSessions | None = None,
    cors_origins: Sequence[str] = (),
    cors_allow_credentials: bool = False,
    format_all_errors: bool = False,
) -> Auth:
    """Set ``core`` up on ``app`` and return the :class:`Auth` for its own routes.

    Installs: an exception handler for ``UsercoreError`` (usercore's
    envelope); handlers for ``RequestValidationError`` and ``HTTPException``
    that format only errors of usercore's routes and hand every other one to
    the handler the app had (FastAPI's by default); and, for paths under
    ``prefix``, a middleware adding security headers, CORS for
    ``cors_origins`` and the streamed 1 MiB body cap.  With
    ``format_all_errors=True`` every error of the app, including unexpected
    ones, gets usercore's envelope.
    """
    auth = Auth(core, prefix=prefix, sessions=sessions)
    app.state.usercore = core
    app.state.usercore_auth = auth
    _install_error_handlers(app, format_all_errors)
    cors = Cors.of(cors_origins, cors_allow_credentials, sessions)
    # With format_all_errors (create_app), the app is usercore's: every answer is guarded.
    app.add_middleware(_Guard, prefix=prefix, cors=cors, everywhere=format_all_errors)
    return auth


def create_app(
    core: UserCore,
    *,
    prefix: str | None = None,
    profile: ProfileChoice = V1,
    on_password_reset: PasswordResetHook | None = None,
    on_email_verification: EmailVerificationHook | None = None,
    on_invitation: InvitationHook | None = None,
    title: str = "usercore",
    docs: bool = True,
    docs_ui: bool = False,
    sessions: CookieSessions | None = None,
    cors_origins: Sequence[str] = (),
    cors_allow_credentials: bool = False,
) -> FastAPI:
    """A FastAPI app serving the usercore API under ``prefix``.

    ``on_password_reset(email, token)``, ``on_email_verification(user,
    token)`` and ``on_invitation(user, token)`` deliver the one-time tokens,
    which the API never returns.
    ``docs=False`` serves no ``/openapi.json``; ``docs_ui=True`` also serves
    Swagger UI at ``/docs`` (off by default: FastAPI loads it from a CDN
    without subresource integrity).
    ``sessions`` turns on the cookie transport (with CSRF protection),
    ``cors_origins`` lets those origins call the API from a browser.
    ``profile`` is the API served (``"v1"``, ``"classic"``, ``"ums"``,
    ``"rbac"``, ``"rails"``, a :class:`~usercore.web._profiles.Profile`, or
    several whose paths do not clash), each under its base path, or under
    ``prefix`` when one is given.
    """
    from usercore import __version__

    chosen = profiles_of(profile, prefix)
    bases = [served.base for served in chosen]

    app = FastAPI(
        title=title,
        version=__version__,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs and docs_ui else None,
        redoc_url=None,
    )
    init_app(
        app,
        core,
        prefix=bases[0],
        sessions=sessions,
        cors_origins=cors_origins,
        cors_allow_credentials=cors_allow_credentials,
        format_all_errors=True,
    )
    setattr(app.state, _PROFILE, chosen[0])
    api = Api(
        core,
        on_password_reset=on_password_reset,
        on_email_verification=on_email_verification,
        on_invitation=on_invitation,
    )
    for served, base in zip(chosen, bases, strict=True):
        # Straight onto the app's router: an included router is matched twice per request.
        _add_routes(app.router, api, base, sessions, served)
    return app


# -- health probes ----------------------------------------------------------------


def add_health_routes(app: FastAPI, core: UserCore) -> None:
    """``GET /healthz`` and ``GET /readyz`` at the app's root, outside any prefix
    and outside the OpenAPI document (they are for load balancers and
    orchestrators, documented in docs/deployment.md).

    ``/healthz`` (liveness) answers 200 without touching the store, from the
    event loop, so it answers even while every worker thread is busy.
    ``/readyz`` (readiness) makes one cheap read (the schema version): 200 when
    the store answers, 503 with ``Retry-After`` on ``StoreUnavailable``.
    Neither says more than its status: no versions, no store details.
    """
    from usercore.errors import StoreUnavailable

    no_store = {"Cache-Control": "no-store"}

    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', headers=no_store, media_type="application/json")

    def readyz() -> Response:
        try:
            with core.store.transaction(readonly=True) as tx:
                tx.meta.schema_version()
        except StoreUnavailable as exc:
            return Response(
                b'{"status":"unavailable"}',
                status_code=503,
                headers={**no_store, "Retry-After": str(exc.retry_after)},
                media_type="application/json",
            )
        return Response(b'{"status":"ready"}', headers=no_store, media_type="application/json")

    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz, methods=["GET"], include_in_schema=False)


from usercore.web._fastapi_async import AsyncAuth  # noqa: E402 - the async Auth, beside
