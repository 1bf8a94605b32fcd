"""The REST API as data: named operations and the route table that mounts them.

Each :class:`Operation` is declared once: its input model (body or query,
from :mod:`usercore.web._schemas`), its path parameters, its output model,
its success status, whether it needs a principal, and a plain handler
``(call, principal, input, **path) -> result``.  :data:`V1_ROUTES` maps
``(method, path)`` to an operation name; both adapters build their routes
from these two tables, so another route table (an API profile) is only more
data over the same operations.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import attrs
from pydantic import BaseModel

from usercore.custom_fields import CustomField
from usercore.domain import SYSTEM, ApiKey, Page, Permission, Principal, Role, TokenPair, User
from usercore.errors import (
    AuthenticationError,
    ConflictError,
    EmailNotVerified,
    ValidationError,
)
from usercore.services import UserCore
from usercore.web import _schemas as s
from usercore.web._core import (
    CookieLookup,
    CookieSessions,
    Credential,
    HashAdmission,
    HeaderLookup,
)

__all__ = [
    "OPERATIONS",
    "PATH_PARAMS",
    "V1_ROUTES",
    "Answer",
    "Api",
    "Call",
    "EmailVerificationHook",
    "InvitationHook",
    "Operation",
    "PasswordResetHook",
    "fill_refresh_token",
    "ignores_credential",
    "owner_id_of",
    "render",
    "session_cookies",
    "with_custom_fields",
]

logger = logging.getLogger("usercore.web")

PasswordResetHook = Callable[[str, str], object]
"""``on_password_reset(email, token)``: deliver a reset token (e.g. email a link)."""
EmailVerificationHook = Callable[[User, str], object]
"""``on_email_verification(user, token)``: deliver a verification token."""
InvitationHook = Callable[[User, str], object]
"""``on_invitation(user, token)``: deliver an invitation to the pending account's email."""

RESET_ACCEPTED = {
    "message": "If an active account has this address, a password reset token was sent to it."
}
VERIFICATION_ACCEPTED = {"message": "A verification token was sent to your email address."}
LOGGED_OUT = {"message": "Logged out."}
REGISTRATION_ACCEPTED = {
    "message": "If this address can be registered, a message was sent to it with what to do next."
}

PATH_PARAMS: Mapping[str, tuple[type, str]] = {
    "user_id": (int, "The user's id"),
    "key_id": (int, "The API key's id"),
    "name": (str, "The role's name"),
}
"""Every path parameter of the API: its type and description."""


READ_THREADS = 40
"""Threads for the ``inline`` operations on a store that reads over the network:
as many as FastAPI's thread pool allows (anyio's default limit), so while the
store is down as many of them wait for a connection (each at most the store's
``timeout``) as did in that pool."""


class Api:
    """The operations bound to a facade and the hooks that deliver one-time tokens.

    ``on_password_reset(email, token)``, ``on_email_verification(user,
    token)`` and ``on_invitation(user, token)`` deliver the tokens the API
    never returns (a real application emails a link); without them the
    tokens are dropped.  A hook that raises
    is logged and the answer is unchanged, so a failing mailer cannot reveal
    which addresses have accounts.
    """

    def __init__(
        self,
        core: UserCore,
        *,
        on_password_reset: PasswordResetHook | None = None,
        on_email_verification: EmailVerificationHook | None = None,
        on_invitation: InvitationHook | None = None,
    ):
        self.core = core
        self.on_password_reset = on_password_reset
        self.on_email_verification = on_email_verification
        self.on_invitation = on_invitation
        #: Admits the requests that may hash a password (see :class:`HashAdmission`).
        self.admission = HashAdmission.of(core)
        self._lock = threading.Lock()
        self._reads: ThreadPoolExecutor | None = None

    @property
    def reads(self) -> ThreadPoolExecutor:
        """The threads of the ``inline`` operations on a store that reads over
        the network (``GET /auth/me`` on PostgreSQL): at most
        :data:`READ_THREADS`, each started when a call finds none idle."""
        if self._reads is None:
            with self._lock:
                if self._reads is None:
                    self._reads = ThreadPoolExecutor(
                        READ_THREADS, thread_name_prefix="usercore-read"
                    )
        return self._reads

    def deliver(self, what: str, hook: Callable[..., object] | None, *args: Any) -> None:
        """Hand a one-time token to its hook; a missing or failing hook is only logged."""
        if hook is None:
            logger.warning("no on_%s hook is configured: the token was not delivered", what)
            return
        try:
            hook(*args)
        except Exception:
            logger.exception("the on_%s hook failed", what)


@attrs.frozen
class Call:
    """What a handler may use besides its input: the bound API and the request's credential."""

    api: Api
    credential: Credential | None = None
    #: Who sent the request (the remote address): the lockout counts per client.
    client: str | None = None

    @property
    def core(self) -> UserCore:
        return self.api.core


Handler = Callable[..., Any]


@attrs.frozen
class Operation:
    """One operation of the API, declared once.

    ``input`` is the model of the body (``source="body"``) or of the query
    string (``source="query"``), ``None`` when it takes neither; ``path``
    names its path parameters (see :data:`PATH_PARAMS`).  ``auth`` says
    whether a principal is required.  ``issues_secrets`` marks answers that
    carry a token or key (sent with ``Cache-Control: no-store``, RFC 6749
    §5.1); ``sets_session`` marks those whose token pair may become cookies.

    ``hashes`` says whether the operation computes a password hash: ``True``
    always, or the names of the input fields whose presence makes it hash
    (a ``current_password`` check, a new password).  Adapters admit such
    requests through :class:`~usercore.web._core.HashAdmission`, so a flood of
    them is refused at once instead of occupying the threads every other
    request needs.  ``inline`` marks an operation that is only the credential
    check and one indexed read: an adapter may run it without a thread hop on
    a store whose reads are in-process (``inline_reads``).
    """

    name: str
    summary: str
    status: int
    handler: Handler
    input: type[BaseModel] | None = None
    source: Literal["body", "query"] = "body"
    body_required: bool = True
    path: tuple[str, ...] = ()
    auth: bool = True
    output: Any = None
    errors: tuple[int, ...] = ()
    issues_secrets: bool = False
    sets_session: bool = False
    hashes: bool | tuple[str, ...] = False
    inline: bool = False

    def may_hash(self, value: Any) -> bool:
        """Whether answering ``value`` (the parsed input, ``None`` if not parsed yet)
        may compute a password hash."""
        if isinstance(self.hashes, bool):
            return self.hashes
        sent = getattr(value, "model_fields_set", ())
        return any(field in sent for field in self.hashes)

    def run(self, call: Call, principal: Principal | None, value: Any, path: Any) -> Any:
        """Call the handler; 401 when a principal is required and missing."""
        if self.auth and principal is None:
            raise AuthenticationError("Authentication required.")
        if value is None and self.input is not None:
            value = self.input()  # an optional body left out: every field unset
        return self.handler(call, principal, value, **path)


def with_custom_fields(operation: Operation, declared: tuple[CustomField, ...]) -> Operation:
    """``operation`` with its input and output models extended by the declared
    custom fields (see :func:`usercore.web._schemas.custom_models`): both
    adapters validate, and FastAPI documents, what the app declared."""
    models = s.custom_models(declared)
    if not models:
        return operation
    changes: dict[str, Any] = {}
    if operation.input in models:
        changes["input"] = models[operation.input]
    if operation.output in models:
        changes["output"] = models[operation.output]
    return attrs.evolve(operation, **changes) if changes else operation


def owner_id_of(
    owner: str | Callable[[Mapping[str, Any]], int | None] | None,
    path_params: Mapping[str, Any],
) -> int | None:
    """The owner's user id for ``require(..., owner=...)``: a path parameter's
    value (``None`` when it is not an integer) or what the callable makes of
    the path parameters."""
    if owner is None:
        return None
    if callable(owner):
        return owner(path_params)
    value = path_params.get(owner)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


# -- browser sessions -------------------------------------------------------------


def ignores_credential(operation: Operation, credential: Credential | None) -> bool:
    """Whether ``operation`` answers anonymously despite ``credential``: a session
    cookie sent to an operation that needs no credential (register, login,
    refresh, password reset and the confirmations; logout reads its credential).

    The browser sends its cookie everywhere, also when it is dead (the session
    signed out everywhere or the password changed on another device); checking
    it there kept the owner from logging in again or recovering the account
    (401 ``invalid_token``, 403 ``csrf_failed``).  An explicit bearer token or
    API key is still checked, and refused when not valid.
    """
    return (
        credential is not None
        and credential.source == "cookie"
        and not operation.auth
        and operation.name != "logout"
    )


def fill_refresh_token(
    sessions: CookieSessions,
    operation: Operation,
    value: Any,
    method: str,
    headers: HeaderLookup,
    cookies: CookieLookup,
) -> Any:
    """For refresh and logout: the refresh token from the refresh cookie when the
    body leaves it out (after the CSRF check, as for any cookie-authenticated
    unsafe request)."""
    if operation.name not in ("refresh", "logout"):
        return value
    if value is not None and getattr(value, "refresh_token", None) is not None:
        return value
    cookie = cookies.get(sessions.refresh_cookie)
    if not cookie:
        return value
    sessions.check_csrf(method, headers, cookies)
    assert operation.input is not None
    return operation.input(refresh_token=cookie)


def session_cookies(
    sessions: CookieSessions | None,
    operation: Operation,
    result: Any,
    prefix: str,
    headers: HeaderLookup,
    cookies: CookieLookup,
) -> tuple[str, ...]:
    """The ``Set-Cookie`` values an operation's answer carries with cookie sessions
    (a session is opened only for a request no other site could have forged:
    :meth:`CookieSessions.may_open`)."""
    if sessions is None:
        return ()
    if operation.sets_session and isinstance(result, TokenPair):
        if not sessions.may_open(headers, cookies):
            return ()
        return sessions.set_cookies(result, prefix)
    if operation.name == "logout":
        return sessions.clear_cookies(prefix)
    return ()


# -- rendering ------------------------------------------------------------------


@attrs.frozen
class Answer:
    """A handler's result with a status other than its operation's usual one."""

    status: int
    body: Any


def render(result: Any) -> Any:
    """The JSON of a handler's result (``None``: no body)."""
    if isinstance(result, (User, Role, Permission, ApiKey)):
        return result.to_public()
    if isinstance(result, TokenPair):
        return result.to_dict()
    if isinstance(result, Page):
        return {
            "items": [user.to_public() for user in result.items],
            "page": result.page,
            "per_page": result.per_page,
            "total": result.total,
            "next_cursor": result.next_cursor,
        }
    if isinstance(result, list):
        return [render(item) for item in result]
    return result


# -- handlers -------------------------------------------------------------------


def _roles_of(body: Mapping[str, Any]) -> list[str] | None:
    """``roles: [...]`` or ``role: "..."`` (one of them), or ``None`` when neither."""
    if "role" in body and "roles" in body:
        raise ValidationError.single("role", "give either role or roles, not both")
    if "role" in body:
        return [body["role"]]
    roles = body.get("roles")
    return None if roles is None else list(roles)


def register(call: Call, _: Principal | None, body: s.RegisterRequest) -> User | Answer:
    core = call.core
    # Settings.registration_enumeration_safe: a taken email answers exactly like a
    # new one; the service tells the existing address (user.duplicate_registration_attempted).
    safe = core.settings.registration_enumeration_safe
    try:
        user = core.users.register(
            email=body.email,
            password=body.password,
            username=body.username,
            name=body.name,
            custom_fields=s.custom_values(body),
            invitation=body.invitation,
        )
    except ConflictError as exc:
        if safe and exc.field == "email":
            return Answer(202, REGISTRATION_ACCEPTED)
        raise
    if core.settings.require_verified_email and user.email and not user.email_verified:
        # The account cannot log in before it verifies its address: send the token now.
        send_verification(call, SYSTEM, user.id)
    return Answer(202, REGISTRATION_ACCEPTED) if safe else user


def send_verification(call: Call, actor: Principal, user_id: int) -> None:
    """Issue an email-verification token for ``user_id`` (as ``actor``) and hand
    it to the ``on_email_verification`` hook."""
    core = call.core
    token = core.auth.request_email_verification(actor, user_id)
    # The hook is trusted application code: it gets the account as the system sees it.
    user = core.users.get(SYSTEM, user_id)
    call.api.deliver("email_verification", call.api.on_email_verification, user, token)


def login(call: Call, _: Principal | None, body: s.LoginRequest) -> TokenPair:
    given = [field for field in ("identifier", "email", "username") if field in body.given()]
    if len(given) > 1:
        raise ValidationError.single("identifier", "give one of email, username or identifier")
    if not given:
        raise ValidationError.single("identifier", "give email, username or identifier")
    try:
        return call.core.auth.login(getattr(body, given[0]), body.password, client=call.client)
    except EmailNotVerified as exc:
        # Only the password's owner gets here: a fresh verification token goes
        # to the account's address (at most one per few minutes), so an
        # expired or lost one is no dead end.
        auth = call.core.auth
        if exc.user_id is not None and auth.may_resend_verification(exc.user_id):
            send_verification(call, SYSTEM, exc.user_id)
        raise


def refresh(call: Call, _: Principal | None, body: s.RefreshRequest) -> TokenPair:
    if body.refresh_token is None:
        raise ValidationError.single("refresh_token", "is required")
    return call.core.auth.refresh(body.refresh_token)


def logout(call: Call, _: Principal | None, body: s.LogoutRequest) -> dict[str, str]:
    credential = call.credential
    if credential is None:
        raise AuthenticationError("Authentication required.")
    if credential.source == "api_key":
        raise ValidationError.single(
            "authorization",
            "logout ends a token session; revoke an API key with DELETE /api-keys/{key_id}",
        )
    call.core.auth.logout(credential.token, body.refresh_token)
    return LOGGED_OUT


def me(call: Call, actor: Principal, _: None) -> User:
    assert actor.user_id is not None
    core = call.core
    if actor.user is not None and actor.user.id == actor.user_id:
        # The account was loaded a moment ago to authenticate this very request:
        # check the permission, skip a second read.
        core.policy.require(actor, "users:read", owner_id=actor.user_id)
        return actor.user
    return core.users.get(actor, actor.user_id)


def request_password_reset(
    call: Call, _: Principal | None, body: s.PasswordResetRequest
) -> dict[str, str]:
    token = call.core.auth.request_password_reset(body.email)
    if token is not None:
        # The stored address, never the typed one (a look-alike could differ).
        recipient = call.core.auth.reset_recipient(token)
        call.api.deliver("password_reset", call.api.on_password_reset, recipient, token)
    return RESET_ACCEPTED


def reset_password(call: Call, _: Principal | None, body: s.PasswordResetConfirm) -> None:
    call.core.auth.reset_password(body.token, body.new_password)


def request_email_verification(call: Call, actor: Principal, _: Any) -> dict[str, str]:
    assert actor.user_id is not None
    core = call.core
    # The policy first: a refused request must not use up the account's resend.
    core.policy.require(actor, "users:update", owner_id=actor.user_id)
    # The resend limit of refused logins (one mail per account per few minutes):
    # whoever registered somebody else's address must not flood it from here
    # either (OWASP ASVS 4.0.3 V11.1.4).  Within the limit the token mailed
    # before stays valid.
    if core.auth.may_resend_verification(actor.user_id):
        send_verification(call, actor, actor.user_id)
    return VERIFICATION_ACCEPTED


def verify_email(call: Call, _: Principal | None, body: s.TokenBody) -> User:
    return call.core.auth.verify_email(body.token)


def list_users(call: Call, actor: Principal, query: s.UserListQuery) -> Page[User]:
    try:
        return call.core.users.list(
            actor,
            page=query.page,
            per_page=query.per_page,
            cursor=query.cursor,
            role=query.role,
            status=query.status,
            search=query.q,
            custom_fields=s.custom_values(query),
        )
    except ValidationError as exc:
        # The facade says "search" where the query string says "q".
        if "search" not in exc.errors:
            raise
        errors = dict(exc.errors)
        errors["q"] = errors.pop("search")
        raise ValidationError(errors) from None


def create_user(call: Call, actor: Principal, body: s.UserCreate) -> User:
    roles = _roles_of(body.given())
    return call.core.users.create(
        actor,
        email=body.email,
        password=body.password,
        username=body.username,
        name=body.name,
        roles=("user",) if roles is None else roles,
        status=body.status or "active",
        custom_fields=s.custom_values(body),
    )


def invite_user(call: Call, actor: Principal, body: s.InvitationCreate) -> User:
    roles = _roles_of(body.given())
    user, token = call.core.users.invite(
        actor,
        email=body.email,
        username=body.username,
        name=body.name,
        roles=("user",) if roles is None else roles,
        custom_fields=s.custom_values(body),
    )
    # The token goes to the invited address only, never into the answer.
    call.api.deliver("invitation", call.api.on_invitation, user, token)
    return user


def get_user(call: Call, actor: Principal, _: None, user_id: int) -> User:
    return call.core.users.get(actor, user_id)


def update_user(call: Call, actor: Principal, body: s.UserUpdate, user_id: int) -> User:
    changes = body.given()
    if "role" in changes:
        # ``role: "..."`` is an HTTP shorthand for ``roles: ["..."]``.
        changes["roles"] = _roles_of(changes)
        del changes["role"]
    custom = s.custom_values(body)
    if custom:
        changes["custom_fields"] = custom
    return call.core.users.update(actor, user_id, client=call.client, **changes)


def delete_user(call: Call, actor: Principal, _: None, user_id: int) -> None:
    call.core.users.delete(actor, user_id)


def set_user_roles(call: Call, actor: Principal, body: s.RolesBody, user_id: int) -> User:
    return call.core.users.assign_roles(
        actor, user_id, body.roles, current_password=body.current_password, client=call.client
    )


def set_user_password(call: Call, actor: Principal, body: s.PasswordChange, user_id: int) -> None:
    users = call.core.users
    if body.current_password is not None:
        users.change_password(
            actor,
            user_id,
            current_password=body.current_password,
            new_password=body.new_password,
            client=call.client,
        )
    else:
        users.set_password(actor, user_id, body.new_password)


def create_api_key(
    call: Call, actor: Principal, body: s.ApiKeyCreate, user_id: int
) -> dict[str, Any]:
    record, key = call.core.api_keys.create(
        actor,
        user_id,
        name=body.name,
        scopes=body.scopes,
        expires_in=body.expires_in,
        current_password=body.current_password,
        client=call.client,
    )
    return {"api_key": record.to_public(), "key": key}


def list_api_keys(call: Call, actor: Principal, _: None, user_id: int) -> list[ApiKey]:
    return call.core.api_keys.list(actor, user_id)


def revoke_api_key(call: Call, actor: Principal, _: None, key_id: int) -> None:
    call.core.api_keys.revoke(actor, key_id)


def list_roles(call: Call, actor: Principal, _: None) -> list[Role]:
    return list(call.core.roles.list(actor))


def create_role(call: Call, actor: Principal, body: s.RoleCreate) -> Role:
    return call.core.roles.create(
        actor,
        body.name,
        permissions=body.permissions or (),
        inherits=body.inherits or (),
        description=body.description or "",
    )


def get_role(call: Call, actor: Principal, _: None, name: str) -> Role:
    return call.core.roles.get(actor, name)


def update_role(call: Call, actor: Principal, body: s.RoleUpdate, name: str) -> Role:
    return call.core.roles.update(
        actor,
        name,
        permissions=body.permissions,
        inherits=body.inherits,
        description=body.description,
    )


def delete_role(call: Call, actor: Principal, query: s.RoleDeleteQuery, name: str) -> None:
    call.core.roles.delete(actor, name, force=query.force)


def set_role_permissions(call: Call, actor: Principal, body: s.PermissionsBody, name: str) -> Role:
    return call.core.roles.set_permissions(actor, name, body.permissions)


def list_permissions(call: Call, actor: Principal, _: None) -> list[Permission]:
    return call.core.permissions.list(actor)


def create_permission(call: Call, actor: Principal, body: s.PermissionCreate) -> Permission:
    return call.core.permissions.register(actor, body.name, body.description or "", exist_ok=False)


# -- the tables ---------------------------------------------------------------------

_OPERATIONS = (
    Operation(
        "register",
        "Create an account (self-service, role 'user')",
        201,
        register,
        s.RegisterRequest,
        auth=False,
        output=s.UserOut,
        errors=(401, 403, 409),
        hashes=True,
    ),
    Operation(
        "login",
        "Log in by email or username; returns an access and a refresh token",
        200,
        login,
        s.LoginRequest,
        auth=False,
        output=s.TokenPairOut,
        errors=(401, 403, 429),
        issues_secrets=True,
        sets_session=True,
        hashes=True,
    ),
    Operation(
        "refresh",
        "Trade a refresh token (body or refresh cookie) for a new pair; the old one is spent",
        200,
        refresh,
        s.RefreshRequest,
        body_required=False,
        auth=False,
        output=s.TokenPairOut,
        errors=(401, 403),
        issues_secrets=True,
        sets_session=True,
    ),
    Operation(
        "logout",
        "End the session: the access token (and the refresh token, if given) stop working",
        200,
        logout,
        s.LogoutRequest,
        body_required=False,
        auth=False,
        output=s.AcceptedOut,
        errors=(401,),
    ),
    Operation("me", "The current user", 200, me, output=s.UserOut, errors=(404,), inline=True),
    Operation(
        "request_password_reset",
        "Send a password reset token (the same answer whether or not the address is known)",
        202,
        request_password_reset,
        s.PasswordResetRequest,
        auth=False,
        output=s.AcceptedOut,
        issues_secrets=True,
    ),
    Operation(
        "reset_password",
        "Set a new password with a reset token; ends every session",
        204,
        reset_password,
        s.PasswordResetConfirm,
        auth=False,
        errors=(401,),
        issues_secrets=True,
        hashes=True,
    ),
    Operation(
        "request_email_verification",
        "Send the current user a token proving control of their email address",
        202,
        request_email_verification,
        s.EmptyBody,
        body_required=False,
        output=s.AcceptedOut,
        errors=(404,),
        issues_secrets=True,
    ),
    Operation(
        "verify_email",
        "Mark the email address verified with a verification token",
        200,
        verify_email,
        s.TokenBody,
        auth=False,
        output=s.UserOut,
        errors=(401,),
        issues_secrets=True,
    ),
    Operation(
        "list_users",
        "A page of users (by cursor, or by page number with a total)",
        200,
        list_users,
        s.UserListQuery,
        source="query",
        output=s.UserPage,
    ),
    Operation(
        "create_user",
        "Create a user as an administrator",
        201,
        create_user,
        s.UserCreate,
        output=s.UserOut,
        errors=(409,),
        hashes=("password",),
    ),
    Operation(
        "invite_user",
        "Invite an address to register: a pending account, its token sent to the address",
        201,
        invite_user,
        s.InvitationCreate,
        output=s.UserOut,
        errors=(403, 409),
    ),
    Operation(
        "get_user", "A user", 200, get_user, path=("user_id",), output=s.UserOut, errors=(404,)
    ),
    Operation(
        "update_user",
        "Change some fields of a user (PUT and PATCH are both partial)",
        200,
        update_user,
        s.UserUpdate,
        path=("user_id",),
        output=s.UserOut,
        errors=(404, 409),
        hashes=("password", "current_password"),
    ),
    Operation(
        "delete_user",
        "Delete a user, their sessions and API keys",
        204,
        delete_user,
        path=("user_id",),
        errors=(404,),
    ),
    Operation(
        "set_user_roles",
        "Replace a user's roles",
        200,
        set_user_roles,
        s.RolesBody,
        path=("user_id",),
        output=s.UserOut,
        errors=(404,),
        hashes=("current_password",),
    ),
    Operation(
        "set_user_password",
        "Change a password: one's own with current_password, anyone's as an administrator",
        204,
        set_user_password,
        s.PasswordChange,
        path=("user_id",),
        errors=(404,),
        hashes=True,
    ),
    Operation(
        "create_api_key",
        "Create an API key; the key text is in this answer only",
        201,
        create_api_key,
        s.ApiKeyCreate,
        path=("user_id",),
        output=s.ApiKeyCreated,
        errors=(404,),
        issues_secrets=True,
        hashes=("current_password",),
    ),
    Operation(
        "list_api_keys",
        "A user's API keys (never their secrets)",
        200,
        list_api_keys,
        path=("user_id",),
        output=list[s.ApiKeyOut],
    ),
    Operation(
        "revoke_api_key",
        "Revoke an API key",
        204,
        revoke_api_key,
        path=("key_id",),
        errors=(404,),
    ),
    Operation("list_roles", "Every role", 200, list_roles, output=list[s.RoleOut]),
    Operation(
        "create_role",
        "Create a role",
        201,
        create_role,
        s.RoleCreate,
        output=s.RoleOut,
        errors=(409,),
    ),
    Operation("get_role", "A role", 200, get_role, path=("name",), output=s.RoleOut, errors=(404,)),
    Operation(
        "update_role",
        "Change some of a role's permissions, inherited roles and description",
        200,
        update_role,
        s.RoleUpdate,
        path=("name",),
        output=s.RoleOut,
        errors=(404,),
    ),
    Operation(
        "delete_role",
        "Delete a role (force=true first takes it from its holders)",
        204,
        delete_role,
        s.RoleDeleteQuery,
        source="query",
        path=("name",),
        errors=(404, 409),
    ),
    Operation(
        "set_role_permissions",
        "Replace a role's permissions",
        200,
        set_role_permissions,
        s.PermissionsBody,
        path=("name",),
        output=s.RoleOut,
        errors=(404,),
    ),
    Operation(
        "list_permissions",
        "Every permission roles may grant",
        200,
        list_permissions,
        output=list[s.PermissionOut],
    ),
    Operation(
        "create_permission",
        "Register an application permission (resource:action) that roles may then grant",
        201,
        create_permission,
        s.PermissionCreate,
        output=s.PermissionOut,
        errors=(409,),
    ),
)

OPERATIONS: Mapping[str, Operation] = {operation.name: operation for operation in _OPERATIONS}
"""Every operation of the API by name."""

V1_ROUTES: tuple[tuple[str, str, str], ...] = (
    # /users/me before /users/{user_id}: the first matching route wins.
    ("POST", "/auth/register", "register"),
    ("POST", "/register", "register"),
    ("POST", "/auth/login", "login"),
    ("POST", "/login", "login"),
    ("POST", "/auth/refresh", "refresh"),
    ("POST", "/auth/logout", "logout"),
    ("GET", "/auth/me", "me"),
    ("GET", "/users/me", "me"),
    ("POST", "/auth/password-reset", "request_password_reset"),
    ("POST", "/auth/password-reset/confirm", "reset_password"),
    ("POST", "/auth/verify-email", "request_email_verification"),
    ("POST", "/auth/verify-email/confirm", "verify_email"),
    ("GET", "/users", "list_users"),
    ("POST", "/users", "create_user"),
    ("POST", "/invitations", "invite_user"),
    ("GET", "/users/{user_id}", "get_user"),
    ("PUT", "/users/{user_id}", "update_user"),
    ("PATCH", "/users/{user_id}", "update_user"),
    ("DELETE", "/users/{user_id}", "delete_user"),
    ("POST", "/users/{user_id}/roles", "set_user_roles"),
    ("PUT", "/users/{user_id}/password", "set_user_password"),
    ("POST", "/users/{user_id}/api-keys", "create_api_key"),
    ("GET", "/users/{user_id}/api-keys", "list_api_keys"),
    ("DELETE", "/api-keys/{key_id}", "revoke_api_key"),
    ("GET", "/roles", "list_roles"),
    ("POST", "/roles", "create_role"),
    ("GET", "/roles/{name}", "get_role"),
    ("PATCH", "/roles/{name}", "update_role"),
    ("DELETE", "/roles/{name}", "delete_role"),
    ("PUT", "/roles/{name}/permissions", "set_role_permissions"),
    ("GET", "/permissions", "list_permissions"),
    ("POST", "/permissions", "create_permission"),
)
"""The canonical ``/api/v1`` API: ``(method, path, operation name)``, relative to the prefix."""
