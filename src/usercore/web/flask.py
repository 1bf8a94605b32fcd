"""The Flask adapter: the REST API of DESIGN §8 as a blueprint or a whole app.

``create_app(core)`` serves everything under ``/api/v1``; ``create_blueprint(core)``
mounts the routes in an app of your own (``app.register_blueprint(bp,
url_prefix="/api/v1")``).  Views of your own use :func:`login_required`,
:func:`permission_required` and :func:`current_principal`::

    @app.get("/reports")
    @permission_required("reports:read")
    def reports():
        principal = current_principal()
        ...

Every view is a thin translation: the neutral layer
(:class:`usercore.web.HttpApi`) parses and checks the input, authenticates,
calls the facade and builds the answer, exactly as for FastAPI.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

try:
    import flask
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("usercore.web.flask needs Flask: pip install 'usercore[flask]'") from exc

from usercore.domain import Principal
from usercore.errors import AuthenticationError, UsercoreError
from usercore.services import UserCore
from usercore.web._core import (
    MAX_BODY_BYTES,
    HttpRequest,
    HttpResponse,
    authenticate,
    error_response,
    http_error_response,
    internal_error_response,
    request_id_of,
)
from usercore.web._routes import EmailVerificationHook, HttpApi, PasswordResetHook

__all__ = [
    "create_app",
    "create_blueprint",
    "current_principal",
    "init_app",
    "login_required",
    "permission_required",
]

logger = logging.getLogger("usercore.web")

DEFAULT_PREFIX = "/api/v1"
EXTENSION = "usercore"
_PRINCIPAL = "usercore_principal"

F = TypeVar("F", bound=Callable[..., Any])


def _response(response: HttpResponse) -> flask.Response:
    if response.body is None:
        answer = flask.Response(status=response.status, headers=dict(response.headers))
        del answer.headers["Content-Type"]
        return answer
    return flask.Response(
        response.content(),
        status=response.status,
        headers=dict(response.headers),
        mimetype="application/json",
    )


def _flask_rule(path: str) -> str:
    return path.replace("{", "<").replace("}", ">")


def _view(api: HttpApi, name: str, reads_body: bool) -> Callable[..., flask.Response]:
    def view(**path_params: str) -> flask.Response:
        request = flask.request
        raw_body = b""
        if reads_body:
            length = request.content_length
            try:
                # Bounded even without Content-Length (a chunked body).
                if length is None or length <= MAX_BODY_BYTES:
                    raw_body = request.stream.read(MAX_BODY_BYTES + 1)
            except RequestEntityTooLarge:  # the app's MAX_CONTENT_LENGTH is lower
                raw_body = b""
                length = MAX_BODY_BYTES + 1
            if len(raw_body) > MAX_BODY_BYTES or (length is not None and length > MAX_BODY_BYTES):
                return _response(http_error_response(413))
        http_request = HttpRequest(
            method=request.method,
            headers=request.headers,
            path_params=path_params,
            query=request.args,
            raw_body=raw_body,
            content_type=request.content_type,
            client=request.remote_addr,
        )
        return _response(api.dispatch(name, http_request))

    view.__name__ = name
    return view


def create_blueprint(
    core: UserCore,
    *,
    name: str = "usercore",
    on_password_reset: PasswordResetHook | None = None,
    on_email_verification: EmailVerificationHook | None = None,
) -> flask.Blueprint:
    """The usercore routes of DESIGN §8 as a blueprint (mount it with a ``url_prefix``).

    Registering it also sets ``core`` up for :func:`login_required` and
    friends.  ``on_password_reset(email, token)`` and
    ``on_email_verification(user, token)`` deliver the one-time tokens,
    which the API never returns.
    """
    api = HttpApi(
        core, on_password_reset=on_password_reset, on_email_verification=on_email_verification
    )
    blueprint = flask.Blueprint(name, __name__)
    for route in api.routes:
        view = _view(api, route.name, route.body is not None)
        for path in route.paths:
            blueprint.add_url_rule(
                _flask_rule(path), endpoint=route.name, view_func=view, methods=list(route.methods)
            )

    def remember_core(state: flask.blueprints.BlueprintSetupState) -> None:
        state.app.extensions.setdefault(EXTENSION, core)

    blueprint.record_once(remember_core)
    return blueprint


def _usercore_error(exc: UsercoreError) -> flask.Response:
    if exc.http_status >= 500:
        return _unexpected_error(exc)
    return _response(error_response(exc))


def _http_error(exc: HTTPException) -> flask.Response:
    if exc.code is None or exc.code >= 500:
        return _unexpected_error(exc)
    headers = {
        key: value for key, value in exc.get_headers() if key.lower() not in ("content-type",)
    }
    return _response(http_error_response(exc.code, headers))


def _unexpected_error(exc: Exception) -> flask.Response:
    request_id = request_id_of(flask.request.headers)
    logger.error(
        "unexpected error in %s %s [request %s]",
        flask.request.method,
        flask.request.path,
        request_id,
        exc_info=exc,
    )
    return _response(internal_error_response(request_id))


def init_app(app: flask.Flask, core: UserCore) -> None:
    """Set ``core`` up on ``app`` for the decorators, and answer every error,
    including Flask's own (404, 405, 413) and unexpected ones, with usercore's
    envelope ``{"error": {"code", "message", "details"}}``."""
    app.extensions[EXTENSION] = core
    app.register_error_handler(UsercoreError, _usercore_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def create_app(
    core: UserCore,
    *,
    prefix: str = DEFAULT_PREFIX,
    on_password_reset: PasswordResetHook | None = None,
    on_email_verification: EmailVerificationHook | None = None,
) -> flask.Flask:
    """A Flask app serving the usercore API under ``prefix``."""
    app = flask.Flask("usercore")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    init_app(app, core)
    app.register_blueprint(
        create_blueprint(
            core,
            on_password_reset=on_password_reset,
            on_email_verification=on_email_verification,
        ),
        url_prefix=prefix,
    )
    return app


# -- for the application's own views ------------------------------------------------


def _core() -> UserCore:
    core = flask.current_app.extensions.get(EXTENSION)
    if not isinstance(core, UserCore):
        raise RuntimeError(
            "usercore is not set up on this app: register create_blueprint(core) "
            "or call usercore.web.flask.init_app(app, core)"
        )
    return core


def current_principal() -> Principal | None:
    """The principal of the current request, ``None`` when it has no credentials.

    Credentials that are present but invalid raise ``TokenError`` (answered
    401 by :func:`init_app`'s handlers); the answer is kept for the request.
    """
    if _PRINCIPAL in flask.g:
        principal: Principal | None = flask.g.get(_PRINCIPAL)
        return principal
    principal = authenticate(_core(), flask.request.headers)
    setattr(flask.g, _PRINCIPAL, principal)
    return principal


def _authorize(permission: str | None) -> flask.Response | None:
    """``None`` when the request may go on, else the error answer."""
    try:
        principal = current_principal()
        if principal is None:
            raise AuthenticationError("Authentication required.")
        if permission is not None:
            _core().policy.require(principal, permission)
    except UsercoreError as exc:
        return _response(error_response(exc))
    return None


def login_required(view: F) -> F:
    """Decorator: answer 401 unless the request carries valid credentials."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refusal = _authorize(None)
        return refusal if refusal is not None else view(*args, **kwargs)

    return cast(F, wrapper)


def permission_required(permission: str) -> Callable[[F], F]:
    """Decorator factory: 401 without valid credentials, 403 unless the policy
    allows the principal ``permission``."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refusal = _authorize(permission)
            return refusal if refusal is not None else view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
