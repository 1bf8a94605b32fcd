"""Entities of the user-management domain.

Standard library and attrs only: no I/O, no imports from the rest of usercore.
Every entity is frozen; change one with :func:`attrs.evolve`.  Secrets (password
hashes, key digests, token text) are excluded from ``repr`` and from every
``to_public`` shape.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs

__all__ = [
    "SYSTEM",
    "ApiKey",
    "CustomFieldValues",
    "Decision",
    "Page",
    "Permission",
    "Principal",
    "Role",
    "TokenPair",
    "User",
    "UserStatus",
    "email_key",
    "highest_role",
    "isoformat",
    "username_key",
]

T = TypeVar("T")


class UserStatus(str, enum.Enum):
    """Whether an account may sign in."""

    ACTIVE = "active"
    INACTIVE = "inactive"

    def __str__(self) -> str:
        return self.value


def email_key(email: str) -> str:
    """The case-insensitive uniqueness key of an (already normalized) email address."""
    return unicodedata.normalize("NFKC", email).casefold()


def username_key(username: str) -> str:
    """The case-insensitive uniqueness key of a username (NFKC, then case-folded)."""
    return unicodedata.normalize("NFKC", username).casefold()


def isoformat(moment: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 with a ``Z`` suffix (the JSON form), or ``None``."""
    if moment is None:
        return None
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# Ranks for ``User.to_public()["role"]``: the single-role APIs usercore replaces
# expect one role; we report the most powerful one a user holds.
_ROLE_RANK = {"admin": 0, "user": 2}


def highest_role(roles: Iterable[str]) -> str | None:
    """The most privileged role of a set: ``admin``, then app roles by name, then ``user``."""
    ordered = sorted(roles, key=lambda name: (_ROLE_RANK.get(name, 1), name))
    return ordered[0] if ordered else None


def _to_frozenset(value: Iterable[str]) -> frozenset[str]:
    return value if isinstance(value, frozenset) else frozenset(value)


def _optional_frozenset(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else _to_frozenset(value)


class CustomFieldValues(Mapping[str, Any]):
    """A user's custom field values (``docs/custom-fields.md``): read-only,
    name to JSON scalar (``None`` when unset); change them with
    ``attrs.evolve(user, custom_fields=values.changed({...}))``.

    ``defaulted`` names the fields that hold no stored value and read as
    their declared default: a store writes them back as unset, so the
    default stays a reading, never copied into the account by an unrelated
    write.  It takes no part in equality.
    """

    __slots__ = ("_values", "defaulted")

    def __init__(
        self,
        values: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
        *,
        defaulted: Iterable[str] = (),
    ) -> None:
        self._values = dict(values)
        self.defaulted = frozenset(defaulted)

    def changed(self, changes: Mapping[str, Any]) -> CustomFieldValues:
        """These values with ``changes`` applied; a changed field is no longer
        ``defaulted`` (setting the default itself stores it)."""
        return CustomFieldValues(
            {**self._values, **changes}, defaulted=self.defaulted.difference(changes)
        )

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            # Type-exact: True is not 1, 1 is not 1.0.
            return {k: (type(v), v) for k, v in self._values.items()} == {
                k: (type(v), v) for k, v in other.items()
            }
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._values.items()))

    def __repr__(self) -> str:
        return f"CustomFieldValues({self._values!r})"

    def stored(self) -> dict[str, Any]:
        """The values as a store writes them: the ``defaulted`` ones unset (``None``)."""
        return {
            name: None if name in self.defaulted else value for name, value in self._values.items()
        }


_NO_CUSTOM_VALUES = CustomFieldValues()


def _to_custom_values(value: Mapping[str, Any]) -> CustomFieldValues:
    if isinstance(value, CustomFieldValues):
        return value
    # Most users of most apps: one shared empty mapping, no copy per read.
    return CustomFieldValues(value) if value else _NO_CUSTOM_VALUES


@attrs.frozen(kw_only=True)
class User:
    """A user account.

    ``password_hash``, ``failed_logins``, ``locked_until``, ``token_version``
    and ``version`` serve the services and stores; they never leave the library
    through ``repr`` or :meth:`to_public`.
    """

    id: int
    # None: an account identified by its username alone (one of the two is always set).
    email: str | None = None
    username: str | None = None
    name: str | None = None
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_to_frozenset)
    status: UserStatus = attrs.field(default=UserStatus.ACTIVE, converter=UserStatus)
    email_verified: bool = False
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = None
    # The application's declared fields (Settings.custom_fields), every one
    # of them as stores read it back, None when unset.
    custom_fields: CustomFieldValues = attrs.field(
        default=_NO_CUSTOM_VALUES, converter=_to_custom_values
    )
    password_hash: str | None = attrs.field(default=None, repr=False)
    failed_logins: int = attrs.field(default=0, repr=False)
    locked_until: datetime | None = attrs.field(default=None, repr=False)
    token_version: int = attrs.field(default=0, repr=False)
    version: int = attrs.field(default=0, repr=False)

    @property
    def email_key(self) -> str | None:
        """The case-insensitive key the store keeps unique, or ``None`` without an email."""
        return None if self.email is None else email_key(self.email)

    @property
    def username_key(self) -> str | None:
        """The case-insensitive username key, or ``None`` without a username."""
        return None if self.username is None else username_key(self.username)

    @property
    def is_active(self) -> bool:
        return self.status is UserStatus.ACTIVE

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    @property
    def role(self) -> str | None:
        """The most privileged role held (see :func:`highest_role`)."""
        return highest_role(self.roles)

    def to_public(self) -> dict[str, Any]:
        """The public JSON shape of a user; never contains a password or hash.

        Custom fields are top-level keys beside the built-in ones (their names
        never clash: ``CustomField`` refuses built-in names).
        """
        return {
            "id": self.id,
            "email": self.email,
            "username": self.username,
            "name": self.name,
            "role": self.role,
            "roles": sorted(self.roles),
            "status": self.status.value,
            "email_verified": self.email_verified,
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
            "last_login_at": isoformat(self.last_login_at),
            **self.custom_fields,
        }


@attrs.frozen(kw_only=True)
class Role:
    """A named set of permissions, which may inherit other roles' permissions."""

    name: str
    permissions: frozenset[str] = attrs.field(default=frozenset(), converter=_to_frozenset)
    inherits: frozenset[str] = attrs.field(default=frozenset(), converter=_to_frozenset)
    description: str = ""

    def to_public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "permissions": sorted(self.permissions),
            "inherits": sorted(self.inherits),
            "description": self.description,
        }


@attrs.frozen(kw_only=True)
class Permission:
    """A permission the registry knows, e.g. ``users:update``."""

    name: str
    description: str = ""
    created_at: datetime | None = attrs.field(default=None, eq=False)
    """When it was registered in the store (``None`` for the built-in ones, which
    are not stored); not part of its identity."""

    def to_public(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description}


@attrs.frozen(kw_only=True)
class Principal:
    """Who is acting: an authenticated user (by token or API key) or :data:`SYSTEM`.

    ``scopes`` is ``None`` when unrestricted; an API key's principal carries
    the key's scopes and can never do more than they allow.  ``user`` is the
    account as loaded when the credential was authenticated (``None`` for
    :data:`SYSTEM` and hand-made principals): a snapshot for the request that
    authenticated it, not a substitute for ``core.users.get`` later on.
    """

    user_id: int | None
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_to_frozenset)
    scopes: frozenset[str] | None = attrs.field(default=None, converter=_optional_frozenset)
    token_id: str | None = None
    method: str = "token"
    user: User | None = attrs.field(default=None, repr=False, eq=False)
    auth_time: datetime | None = None
    """When the user last proved a credential (a login), for fresh-authentication
    checks; ``None`` for refreshed tokens, API keys and hand-made principals."""

    @property
    def is_system(self) -> bool:
        """True only for the trusted in-process principal, for which every check passes."""
        return self.method == "system"


SYSTEM = Principal(user_id=None, method="system")
"""The trusted principal for in-process calls (scripts, migrations, the CLI)."""


@attrs.frozen(kw_only=True)
class TokenPair:
    """What a login or refresh returns; the token texts are kept out of ``repr``."""

    access_token: str = attrs.field(repr=False)
    refresh_token: str = attrs.field(repr=False)
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2.0 token type, not a secret
    expires_in: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }


@attrs.frozen(kw_only=True)
class ApiKey:
    """An API key's record.  The secret itself is shown once, at creation, and never stored."""

    id: int
    user_id: int
    name: str
    prefix: str
    scopes: frozenset[str] | None = attrs.field(default=None, converter=_optional_frozenset)
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    secret_hash: bytes = attrs.field(default=b"", repr=False)

    def is_usable_at(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": None if self.scopes is None else sorted(self.scopes),
            "created_at": isoformat(self.created_at),
            "expires_at": isoformat(self.expires_at),
            "last_used_at": isoformat(self.last_used_at),
            "revoked_at": isoformat(self.revoked_at),
        }


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page of a listing.

    ``next_cursor`` continues a keyset walk (stable under inserts and deletes);
    ``page``/``total`` are filled when the caller asked by page number.
    """

    items: list[T]
    per_page: int
    page: int | None = None
    total: int | None = None
    next_cursor: str | None = None


@attrs.frozen(kw_only=True)
class Decision:
    """The answer of ``policy.explain``: whether, and through which grant and role chain.

    ``chain`` reads from the principal's role down to the grant, e.g.
    ``("user", "editor", "viewer", "reports:read")``.
    """

    allowed: bool
    permission: str
    grant: str | None = None
    chain: tuple[str, ...] = ()
    rule: str = ""

    def __bool__(self) -> bool:
        return self.allowed
