"""The Flask adapter: the usercore REST API as a blueprint or a whole app.

``create_app(core)`` serves everything under ``/api/v1``.  In an app of your
own, ``auth = init_app(app, core)`` sets usercore up and returns the
:class:`Auth` that protects your views; mount the API with
``app.register_blueprint(create_blueprint(core), url_prefix="/api/v1")``::

    auth = init_app(app, core)

    @app.get("/notes/<int:user_id>")
    @auth.require("notes:read", owner="user_id")
    def notes(user_id: int):
        principal = auth.principal()
        ...

Views are built from the same operation table as the FastAPI endpoints and
validate the same pydantic models, so both adapters accept and refuse the
same requests with the same answers.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

try:
    import flask
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("usercore.web.flask needs Flask: pip install 'usercore[flask]'") from exc

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from usercore.domain import Principal
from usercore.errors import AuthenticationError, UsercoreError, ValidationError
from usercore.services import UserCore
from usercore.web._core import (
    MAX_BODY_BYTES,
    NO_STORE_HEADERS,
    SECURITY_HEADERS,
    CookieSessions,
    Cors,
    HttpResponse,
    answer_headers,
    credential_of,
    http_error_response,
    identify,
    internal_error_response,
    is_unexpected,
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
from usercore.web._schemas import body_value, login_input, validation_details

__all__ = [
    "PROFILES",
    "Auth",
    "CookieSessions",
    "Profile",
    "create_app",
    "create_blueprint",
    "current_principal",
    "init_app",
    "login_required",
    "optional_principal",
    "permission_required",
]

logger = logging.getLogger("usercore.web")

DEFAULT_PREFIX = "/api/v1"
EXTENSION = "usercore"
PROFILES_EXTENSION = "usercore_profiles"
_PRINCIPAL = "usercore_principal"
_CREDENTIAL = "usercore_credential"

F = TypeVar("F", bound=Callable[..., Any])
_PATH_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(kind) for name, (kind, _) in PATH_PARAMS.items()
}


def _response(response: HttpResponse) -> flask.Response:
    if response.body is None:
        answer = flask.Response(status=response.status, headers=dict(response.headers))
        del answer.headers["Content-Type"]
    else:
        answer = flask.Response(
            response.content(),
            status=response.status,
            headers=dict(response.headers),
            mimetype="application/json",
        )
    for cookie in response.cookies:
        answer.headers.add("Set-Cookie", cookie)
    return answer


# -- protecting views ---------------------------------------------------------------


class Auth:
    """usercore's helpers for an app's own views (returned by :func:`init_app`).

    ``auth.principal()`` is the request's :class:`~usercore.Principal`
    (``AuthenticationError``, answered 401, without valid credentials),
    ``auth.optional_principal()`` the principal or ``None`` without
    credentials (invalid ones are still 401), and the decorator
    ``@auth.require(permission, owner=...)`` lets a view run only if the
    policy allows ``permission`` (403 otherwise).  ``owner`` names a view
    argument holding the owner's user id, or is a callable from the view
    arguments to that id, so ``:own`` grants apply.  The same semantics as
    the FastAPI adapter's ``Auth``.
    """

    def __init__(self, core: UserCore, *, sessions: CookieSessions | None = None):
        self.core = core
        self.sessions = sessions

    def optional_principal(self) -> Principal | None:
        """The request's principal, ``None`` without credentials (kept for the request)."""
        if _PRINCIPAL in flask.g:
            found: Principal | None = flask.g.get(_PRINCIPAL)
            return found
        request = flask.request
        credential, found = identify(
            self.core,
            request.headers,
            request.cookies,
            method=request.method,
            sessions=self.sessions,
        )
        setattr(flask.g, _CREDENTIAL, credential)
        setattr(flask.g, _PRINCIPAL, found)
        return found

    def principal(self) -> Principal:
        """The request's principal; ``AuthenticationError`` (401) without valid credentials."""
        found = self.optional_principal()
        if found is None:
            raise AuthenticationError("Authentication required.")
        return found

    def require(
        self,
        permission: str | None = None,
        *,
        owner: str | Callable[[Mapping[str, Any]], int | None] | None = None,
    ) -> Callable[[F], F]:
        """Decorator: 401 without valid credentials, 403 unless the policy allows
        ``permission`` (``None``: any authenticated principal)."""

        def decorator(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    principal = self.principal()
                    if permission is not None:
                        owner_id = owner_id_of(owner, kwargs)
                        self.core.policy.require(principal, permission, owner_id=owner_id)
                except UsercoreError as exc:
                    return _error(exc)
                return view(*args, **kwargs)

            return cast(F, wrapper)

        return decorator


def _auth() -> Auth:
    auth = flask.current_app.extensions.get(EXTENSION)
    if not isinstance(auth, Auth):
        raise RuntimeError(
            "usercore is not set up on this app: call usercore.web.flask.init_app(app, core)"
        )
    return auth


def optional_principal() -> Principal | None:
    """The current request's principal, ``None`` without credentials (see :class:`Auth`)."""
    return _auth().optional_principal()


def current_principal() -> Principal:
    """The current request's principal; 401 without valid credentials (see :class:`Auth`)."""
    return _auth().principal()


def login_required(view: F) -> F:
    """Decorator: answer 401 unless the request carries valid credentials."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _auth().require()(view)(*args, **kwargs)

    return cast(F, wrapper)


def permission_required(
    permission: str, *, owner: str | Callable[[Mapping[str, Any]], int | None] | None = None
) -> Callable[[F], F]:
    """Decorator factory: 401 without valid credentials, 403 unless allowed ``permission``."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return _auth().require(permission, owner=owner)(view)(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


# -- errors ---------------------------------------------------------------------------


def _profile() -> Profile:
    """The profile whose shapes the answer takes: the matched blueprint's, else the app's."""
    known: Mapping[str | None, Profile] = flask.current_app.extensions.get(PROFILES_EXTENSION, {})
    return known.get(flask.request.blueprint) or known.get(None) or V1


def _error(
    exc: UsercoreError, profile: Profile | None = None, operation: str | None = None
) -> flask.Response:
    if is_unexpected(exc):
        return _unexpected_error(exc)
    if profile is None:
        profile = _profile()
    return _response(profile.error(exc, operation))


def _http_error(exc: HTTPException) -> flask.Response:
    if exc.code is None or exc.code >= 500:
        return _unexpected_error(exc)
    headers = {
        key: value for key, value in exc.get_headers() if key.lower() not in ("content-type",)
    }
    return _response(_profile().reshape(http_error_response(exc.code, headers)))


def _unexpected_error(exc: Exception) -> flask.Response:
    request_id = request_id_of(flask.request.headers)
    logger.error(
        "unexpected error in %s %s [request %s]",
        flask.request.method,
        flask.request.path,
        request_id,
        exc_info=exc,
    )
    return _response(_profile().reshape(internal_error_response(request_id)))


# -- the operations as views -------------------------------------------------------------


def _flask_rule(path: str) -> str:
    return path.replace("{", "<").replace("}", ">")


def _read_body() -> bytes | None:
    """The request body, ``None`` when it is over the cap (bounded even when chunked)."""
    request = flask.request
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return None
    try:
        raw: bytes = request.stream.read(MAX_BODY_BYTES + 1)
        # A chunked body under the app's MAX_CONTENT_LENGTH stops at the limit
        # without an error: one more byte tells whether there was more.
        if length is None and len(raw) <= MAX_BODY_BYTES and request.stream.read(1):
            return None
    except RequestEntityTooLarge:  # over the app's MAX_CONTENT_LENGTH
        return None
    return None if len(raw) > MAX_BODY_BYTES else raw


def _input(
    operation: Operation, raw: bytes, path_params: Mapping[str, str]
) -> tuple[Any, dict[str, Any]]:
    """The operation's input and path parameters, every problem reported at once
    (as FastAPI does: path, query and body together)."""
    errors: list[Any] = []
    path: dict[str, Any] = {}
    for name in operation.path:
        try:
            path[name] = _PATH_ADAPTERS[name].validate_python(path_params[name])
        except PydanticValidationError as exc:
            errors.extend({**error, "loc": ("path", name)} for error in exc.errors())
    value: Any = None
    model = operation.input
    if operation.name == "login":
        value = login_input(raw, flask.request.content_type)
    elif model is not None:
        if operation.source == "query":
            args = flask.request.args
            source: Any = {key: args.getlist(key)[-1] for key in args}
        else:
            source = body_value(raw, flask.request.content_type)
        try:
            if source is not None or operation.source == "query":
                value = model.model_validate(source)
            elif operation.body_required:
                errors.append({"type": "missing", "loc": ("body",)})
        except PydanticValidationError as exc:
            errors.extend(
                {**error, "loc": (operation.source, *error["loc"])} for error in exc.errors()
            )
    if errors:
        raise ValidationError(validation_details(errors))
    return value, path


def _view(
    api: Api,
    auth: Auth,
    operation: Operation,
    sessions: CookieSessions | None,
    paths: Sequence[str],
    profile: Profile,
) -> Callable[..., flask.Response]:
    # Set with the answer: cheaper than adding them one by one afterwards.
    secret_headers = {**SECURITY_HEADERS, **(NO_STORE_HEADERS if operation.issues_secrets else {})}
    reads_body = operation.source == "body" and operation.input is not None

    def view(**path_params: str) -> flask.Response:
        request = flask.request
        try:
            raw = b""
            if reads_body:
                capped = _read_body()
                if capped is None:
                    return _response(http_error_response(413))
                raw = capped
                if raw and operation.name != "login":
                    # A body that does not parse is refused before anything else, as FastAPI does.
                    body_value(raw, request.content_type)
            value, path = _input(operation, raw, path_params)
            credential = None
            principal = None
            if not ignores_credential(
                operation, credential_of(request.headers, request.cookies, sessions)
            ):
                principal = auth.optional_principal()
                credential = flask.g.get(_CREDENTIAL)
            if sessions is not None:
                value = fill_refresh_token(
                    sessions, operation, value, request.method, request.headers, request.cookies
                )
            call = Call(api, credential, request.remote_addr)
            result = operation.run(call, principal, value, path)
            return _response(
                profile.answer(
                    operation,
                    result,
                    request.path,
                    secret_headers,
                    () if sessions is None else _cookies(sessions, operation, result, paths),
                )
            )
        except UsercoreError as exc:
            return _error(exc, profile, operation.name)
        except Exception as exc:
            return _unexpected_error(exc)

    view.__name__ = operation.name
    return view


def _cookies(
    sessions: CookieSessions, operation: Operation, result: Any, paths: Sequence[str]
) -> tuple[str, ...]:
    request = flask.request
    return session_cookies(
        sessions, operation, result, _mount_prefix(paths), request.headers, request.cookies
    )


def _mount_prefix(paths: Sequence[str]) -> str:
    """The prefix the blueprint is mounted under, from the rule that matched."""
    rule = flask.request.url_rule
    matched = rule.rule if rule is not None else ""
    for path in paths:
        relative = _flask_rule(path)
        if matched.endswith(relative):
            return matched[: len(matched) - len(relative)]
    return ""


def create_blueprint(
    core: UserCore,
    *,
    name: str = "usercore",
    on_password_reset: PasswordResetHook | None = None,
    on_email_verification: EmailVerificationHook | None = None,
    on_invitation: InvitationHook | None = None,
    sessions: CookieSessions | None = None,
    routes: Sequence[Route] | None = None,
    profile: str | Profile = V1,
) -> flask.Blueprint:
    """The usercore routes as a blueprint (mount it with a ``url_prefix``).

    ``on_password_reset(email, token)``, ``on_email_verification(user,
    token)`` and ``on_invitation(user, token)`` deliver the one-time tokens,
    which the API never returns;
    ``sessions`` turns on the cookie transport; ``profile`` (a name of
    ``PROFILES`` or a :class:`~usercore.web._profiles.Profile`) gives the
    route table and the shapes of the answers, ``routes`` replaces its route
    table.  Registering it on an app without :func:`init_app` sets ``core``
    up for :class:`Auth`'s module-level helpers.
    """
    (chosen,) = profiles_of(profile)
    table = chosen.routes if routes is None else routes
    api = Api(
        core,
        on_password_reset=on_password_reset,
        on_email_verification=on_email_verification,
        on_invitation=on_invitation,
    )
    auth = Auth(core, sessions=sessions)
    blueprint = flask.Blueprint(name, __name__)
    views: dict[str, Callable[..., flask.Response]] = {}
    rules: dict[str, list[str]] = {}
    for method, path, operation_name in table:
        if operation_name not in views:
            paths = [path for _, path, name in table if name == operation_name]
            operation = with_custom_fields(
                chosen.operation(operation_name), core.settings.custom_fields
            )
            views[operation_name] = _view(api, auth, operation, sessions, paths, chosen)
        rules.setdefault(f"{operation_name} {path}", []).append(method)
    for key, methods in rules.items():
        operation_name, path = key.split(" ", 1)
        blueprint.add_url_rule(
            _flask_rule(path),
            endpoint=operation_name,
            view_func=views[operation_name],
            methods=methods,
        )

    def remember_core(state: flask.blueprints.BlueprintSetupState) -> None:
        state.app.extensions.setdefault(EXTENSION, auth)
        state.app.extensions.setdefault(PROFILES_EXTENSION, {})[name] = chosen

    blueprint.record_once(remember_core)
    return blueprint


def init_app(
    app: flask.Flask,
    core: UserCore,
    *,
    prefix: str = DEFAULT_PREFIX,
    sessions: CookieSessions | None = None,
    cors_origins: Sequence[str] = (),
    cors_allow_credentials: bool = False,
    format_all_errors: bool = False,
) -> Auth:
    """Set ``core`` up on ``app`` and return the :class:`Auth` for its own views.

    Installs: an error handler for ``UsercoreError`` (usercore's envelope),
    and for requests under ``prefix`` a ``before_request`` answering CORS
    preflights for ``cors_origins`` and an ``after_request`` adding security
    headers and CORS headers.  The app's own ``HTTPException`` handlers and
    answers are left alone; ``format_all_errors=True`` gives every error of
    the app (404, 405, 413, unexpected ones) usercore's envelope.
    """
    auth = Auth(core, sessions=sessions)
    app.extensions[EXTENSION] = auth
    app.register_error_handler(UsercoreError, _error)
    if format_all_errors:
        app.register_error_handler(HTTPException, _http_error)
        app.register_error_handler(Exception, _unexpected_error)
    cors = Cors.of(cors_origins, cors_allow_credentials, sessions)

    def guarded() -> bool:
        return format_all_errors or flask.request.path.startswith(prefix)

    def preflight() -> flask.Response | None:
        if cors is None or not guarded():
            return None
        answer = cors.preflight(flask.request.method, flask.request.headers)
        return None if answer is None else _response(answer)

    def secure(response: flask.Response) -> flask.Response:
        if not guarded():
            return response
        headers = response.headers
        if cors is None and "X-Content-Type-Options" in headers:
            return response  # a usercore view's answer: already complete
        for key, value in answer_headers(cors, flask.request.headers).items():
            if key not in headers:
                headers[key] = value
        return response

    app.before_request(preflight)
    app.after_request(secure)
    return auth


def create_app(
    core: UserCore,
    *,
    prefix: str | None = None,
    profile: ProfileChoice = V1,
    on_password_reset: PasswordResetHook | None = None,
    on_email_verification: EmailVerificationHook | None = None,
    on_invitation: InvitationHook | None = None,
    sessions: CookieSessions | None = None,
    cors_origins: Sequence[str] = (),
    cors_allow_credentials: bool = False,
) -> flask.Flask:
    """A Flask app serving the usercore API; every error in the shape of its profile.

    ``profile`` is the API served (``"v1"``, ``"classic"``, ``"ums"``,
    ``"rbac"``, ``"rails"``, a :class:`~usercore.web._profiles.Profile`, or
    several whose paths do not clash), each under its base path, or under
    ``prefix`` when one is given.
    """
    chosen = profiles_of(profile, prefix)
    app = flask.Flask("usercore")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # Errors outside every blueprint (an unknown path) take the first profile's shape.
    app.extensions[PROFILES_EXTENSION] = {None: chosen[0]}
    init_app(
        app,
        core,
        prefix=chosen[0].base,
        sessions=sessions,
        cors_origins=cors_origins,
        cors_allow_credentials=cors_allow_credentials,
        format_all_errors=True,
    )
    for index, served in enumerate(chosen):
        app.register_blueprint(
            create_blueprint(
                core,
                name="usercore" if index == 0 else f"usercore_{served.name}",
                on_password_reset=on_password_reset,
                on_email_verification=on_email_verification,
                on_invitation=on_invitation,
                sessions=sessions,
                profile=served,
            ),
            url_prefix=served.base,
        )
    return app
