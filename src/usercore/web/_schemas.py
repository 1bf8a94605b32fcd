"""Every input and output of the REST API, declared once as pydantic models.

Both adapters validate requests with these models (FastAPI natively, Flask by
calling :func:`validate`), and :func:`validation_details` turns pydantic's
errors into usercore's ``details`` (``{field: [messages]}``) for both, so the
two answer refused input with the same words.  Adding a body field to an
operation is one edit: a field on its model here.

Importing this module imports pydantic (both web extras bring it); the core
never imports it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic import ValidationError as PydanticValidationError

from usercore.custom_fields import CustomField
from usercore.errors import ValidationError
from usercore.web._core import is_json_media_type, media_type

__all__ = [
    "MAX_EXPIRES_IN",
    "MAX_PAGE",
    "MAX_PER_PAGE",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyOut",
    "ErrorResponse",
    "LoginRequest",
    "OAuth2PasswordForm",
    "body_value",
    "custom_models",
    "custom_values",
    "login_input",
    "validate",
    "validation_details",
]

MAX_PER_PAGE = 100
MAX_PAGE = 10**9
# Ten years, the longest API-key lifetime the core accepts.
MAX_EXPIRES_IN = 3650 * 24 * 3600

_SURROGATES = re.compile("[\ud800-\udfff]")


def _unicode(value: str) -> str:
    # JSON may escape a lone surrogate ("\ud800"); no store can hold it.
    if _SURROGATES.search(value):
        raise ValueError("must be valid Unicode text")
    return value


Text = Annotated[str, AfterValidator(_unicode)]
"""A string that is valid Unicode text (no lone surrogates)."""
Texts = list[Text]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional() -> Any:
    """An optional field that, when sent, must not be ``null``.

    pydantic never validates defaults, so ``None`` marks "not sent"; the
    schema shows no default.  Handlers read ``model_dump(exclude_unset=True)``.
    """
    return Field(default=None, json_schema_extra=_drop_default)


class Body(BaseModel):
    """A JSON request body: types are not coerced ("5" is not 5), unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def given(self) -> dict[str, Any]:
        """The built-in fields the client sent (absent optional fields stay
        absent); :func:`custom_values` gives the custom ones."""
        return {
            name: value
            for name, value in self.model_dump(exclude_unset=True).items()
            if not name.startswith(_CUSTOM_PREFIX)
        }


class Query(BaseModel):
    """Query parameters: text converted to each field's type; unknown ones ignored."""


# -- custom fields --------------------------------------------------------------------

# A custom field's attribute on a model: prefixed, so that no declared name can
# shadow a pydantic attribute ("copy", "json", "schema"...); clients see the
# declared name, which is the field's alias.
_CUSTOM_PREFIX = "custom__"


def _custom_type(field: CustomField) -> Any:
    return Text if field.type is str else field.type


def _custom_field(field: CustomField, *, required: bool, nullable: bool) -> tuple[Any, Any]:
    kind = _custom_type(field)
    extra: dict[str, Any] = {}
    if field.choices is not None:
        extra["enum"] = list(field.choices)
    info = Field(
        default=... if required else None,
        alias=field.name,
        description=field.description or None,
        json_schema_extra=extra or (None if required else _drop_default),
    )
    return (kind | None if nullable else kind), info


def _extended(
    base: type[BaseModel], fields: Sequence[tuple[CustomField, bool, bool]]
) -> type[BaseModel]:
    """``base`` with the custom ``fields`` added (each with ``required`` and ``nullable``)."""
    if not fields:
        return base
    definitions: dict[str, Any] = {
        _CUSTOM_PREFIX + field.name: _custom_field(field, required=required, nullable=nullable)
        for field, required, nullable in fields
    }
    model: type[BaseModel] = create_model(
        base.__name__, __base__=base, __module__=__name__, **definitions
    )
    return model


@functools.cache
def custom_models(declared: tuple[CustomField, ...]) -> Mapping[Any, Any]:
    """The models of the operations that carry users, extended with the declared
    custom fields (``Settings.custom_fields``), by the model they replace.

    Register takes the ``registrable`` fields (required when the field is and
    has no default), create and invite take every field, update takes every field
    (``null`` clears an optional one), the user listing filters by each, and
    a user in an answer shows each.  Types are the declared ones, strict like
    every body ("1" is not 1); the core checks the rest of each declaration.
    """
    if not declared:
        return {}
    needed = [(f, f.required and f.default is None, not f.required) for f in declared]
    user_out = _extended(UserOut, [(f, True, True) for f in declared])
    users: Any = list[user_out]  # type: ignore[valid-type]
    page = create_model("UserPage", __base__=UserPage, __module__=__name__, items=users)
    registered = create_model(
        "RegisteredOut", __base__=RegisteredOut, __module__=__name__, user=user_out
    )
    return {
        RegisterRequest: _extended(RegisterRequest, [n for n in needed if n[0].registrable]),
        UserCreate: _extended(UserCreate, needed),
        InvitationCreate: _extended(InvitationCreate, needed),
        UserUpdate: _extended(UserUpdate, [(f, False, True) for f in declared]),
        UserListQuery: _extended(UserListQuery, [(f, False, False) for f in declared]),
        UserOut: user_out,
        list[UserOut]: users,
        UserPage: page,
        RegisteredOut: registered,
    }


def custom_values(value: BaseModel | None) -> dict[str, Any]:
    """The custom fields a request gave (by declared name), from a model of
    :func:`custom_models`; empty for any other."""
    if value is None:
        return {}
    return {
        name.removeprefix(_CUSTOM_PREFIX): field_value
        for name, field_value in value.model_dump(exclude_unset=True).items()
        if name.startswith(_CUSTOM_PREFIX)
    }


# -- request bodies -----------------------------------------------------------------


class RegisterRequest(Body):
    """``email`` or ``username`` (an account identified by its username alone), or both;
    ``invitation``: the token of an administrator's invitation (``Settings.registration``)."""

    email: Text = _optional()
    password: Text
    username: Text | None = None
    name: Text | None = None
    invitation: Text = _optional()


class LoginRequest(Body):
    """Exactly one of ``email``, ``username`` or ``identifier`` (either of the first two)."""

    email: Text = _optional()
    username: Text = _optional()
    identifier: Text = _optional()
    password: Text


class OAuth2PasswordForm(BaseModel):
    """The OAuth2 password grant form (RFC 6749 §4.3.2)."""

    model_config = ConfigDict(extra="forbid")

    grant_type: Literal["password"] | None = None
    username: Text
    password: Text
    scope: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


class RefreshRequest(Body):
    """``refresh_token`` may be left out when the refresh cookie carries it."""

    refresh_token: Text = _optional()


class LogoutRequest(Body):
    refresh_token: Text | None = None


class PasswordResetRequest(Body):
    email: Text


class PasswordResetConfirm(Body):
    token: Text
    new_password: Text


class EmptyBody(Body):
    pass


class TokenBody(Body):
    token: Text


class UserCreate(Body):
    """``role`` or ``roles`` (not both); the default is ``["user"]``.  ``email`` or
    ``username`` (or both) identifies the account."""

    email: Text = _optional()
    password: Text | None = None
    username: Text | None = None
    name: Text | None = None
    role: Text = _optional()
    roles: Texts = _optional()
    status: Literal["active", "inactive"] = _optional()


class InvitationCreate(Body):
    """The address to invite and the account's roles (``role`` or ``roles``; default
    ``["user"]``); the invitation token goes to the address, never into the answer."""

    email: Text
    username: Text | None = None
    name: Text | None = None
    role: Text = _optional()
    roles: Texts = _optional()


class UserUpdate(Body):
    """Only the fields sent change; ``role``/``roles`` and ``status`` need an administrator."""

    email: Text = _optional()
    username: Text | None = None
    name: Text | None = None
    role: Text = _optional()
    roles: Texts = _optional()
    status: Literal["active", "inactive"] = _optional()
    # One's own (with fresh authentication) or, as an administrator, anyone's.
    password: Text = _optional()
    # Fresh authentication for one's own email or password change (SECURITY.md).
    current_password: Text = _optional()


class RolesBody(Body):
    roles: Texts
    # Fresh authentication for changing another account's roles.
    current_password: Text = _optional()


class PasswordChange(Body):
    """With ``current_password``: one's own change; without: an administrator's reset."""

    current_password: Text = _optional()
    new_password: Text


class ApiKeyCreate(Body):
    name: Text
    scopes: Texts | None = None
    expires_in: int | None = Field(default=None, ge=1, le=MAX_EXPIRES_IN)
    # Fresh authentication: creating a key needs a recent login or the password.
    current_password: Text = _optional()


class RoleCreate(Body):
    name: Text
    permissions: Texts = _optional()
    inherits: Texts = _optional()
    description: Text = _optional()


class PermissionCreate(Body):
    """An application permission, ``resource:action``, that roles may then grant."""

    name: Text
    description: Text = _optional()


class RoleUpdate(Body):
    permissions: Texts = _optional()
    inherits: Texts = _optional()
    description: Text = _optional()


class PermissionsBody(Body):
    permissions: Texts


# -- query parameters ------------------------------------------------------------------


class UserListQuery(Query):
    page: int | None = Field(None, ge=1, le=MAX_PAGE, description="Page number (adds total)")
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE, description="Users per page")
    cursor: Text | None = Field(None, description="next_cursor of the previous page")
    role: Text | None = Field(None, description="Only users holding this role")
    status: Literal["active", "inactive"] | None = Field(None, description="Only this status")
    q: Text | None = Field(None, description="Substring of email, username or name")


class RoleDeleteQuery(Query):
    force: bool = Field(False, description="Remove the role from its holders")


# -- response bodies (documentation: handlers answer with ready JSON) -------------------


class UserOut(BaseModel):
    id: int
    email: str | None = Field(description="null for an account identified by its username")
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


class SuccessOut(BaseModel):
    success: bool
    message: str


class TokenOut(TokenPairOut):
    token: str = Field(description="The access token again, as the document names it")


class RegisteredOut(TokenOut):
    user: UserOut


class MessageError(BaseModel):
    """An error as ``{"message"}`` (``errors``: each refused field and its problems)."""

    message: str
    errors: dict[str, list[str]] | None = None
    error: str | None = Field(None, description="On a 500: the id under which it was logged")


class RailsError(BaseModel):
    """An error as ``{"error", "message"}`` or ``{"error": "Validation failed", "messages"}``."""

    error: str
    message: str | None = None
    messages: dict[str, list[str]] | None = None


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


# -- validation -------------------------------------------------------------------------

_MESSAGES = {
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
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind in ("model_attributes_type", "model_type") and isinstance(error.get("input"), bytes):
        # FastAPI hands a body of another media type over as bytes.
        return "must be a JSON object (send Content-Type: application/json)"
    known = _MESSAGES.get(kind)
    if known is not None:
        return known
    message = str(error.get("msg", "is not valid"))
    # "Value error, must be ..." from our validators; "Input should be ..." from pydantic.
    message = message.removeprefix("Value error, ")
    return message.replace("Input should be", "must be", 1)


def validation_details(errors: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """pydantic's (or FastAPI's) errors as usercore's details: top-level field -> messages.

    A location starts with its source (``body``, ``query``, ``path``) as
    FastAPI reports it; an error about the body as a whole is filed under
    ``body``.
    """
    details: dict[str, list[str]] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if loc and loc[0] in _SOURCES:
            loc = loc[1:]
        kind = error.get("type", "")
        field = "body" if kind == "json_invalid" or not loc else str(loc[0])
        messages = details.setdefault(field, [])
        message = _message(error)
        if message not in messages:
            messages.append(message)
    return details


def validate(model: type[BaseModel], value: Any) -> Any:
    """``value`` as an instance of ``model``; raises usercore's ``ValidationError``."""
    try:
        return model.model_validate(value)
    except PydanticValidationError as exc:
        raise ValidationError(validation_details(exc.errors())) from None


def is_form(content_type: str | None) -> bool:
    """True for ``application/x-www-form-urlencoded``."""
    return media_type(content_type) == ("application", "x-www-form-urlencoded")


def body_value(raw: bytes, content_type: str | None) -> Any:
    """A request body as FastAPI reads it: ``None`` when empty, JSON when the media
    type is JSON (or absent), else the bytes themselves (which no model accepts).

    Raises ``ValidationError`` on ``body`` for JSON that does not parse.
    """
    if not raw:
        return None
    if content_type and not is_json_media_type(content_type):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8 and over-long integer literals.
        raise ValidationError.single("body", "is not valid JSON") from None


def login_input(raw: bytes, content_type: str | None) -> LoginRequest:
    """The login body: JSON (:class:`LoginRequest`) or the OAuth2 password form.

    The one operation that takes two media types, so the docs' "Authorize"
    button (which posts the form) works.
    """
    if is_form(content_type):
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError):
            raise ValidationError.single("body", "is not a valid form") from None
        form: OAuth2PasswordForm = validate(OAuth2PasswordForm, dict(pairs))
        problems: dict[str, list[str]] = {
            field: ["is required"] for field in ("username", "password") if not getattr(form, field)
        }
        if problems:
            raise ValidationError(problems)
        return LoginRequest(username=form.username, password=form.password)
    value = body_value(raw, content_type)
    if value is None:
        raise ValidationError.single("body", "is required")
    result: LoginRequest = validate(LoginRequest, value)
    return result
