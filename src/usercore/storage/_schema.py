"""What every adapter shares about the data model, whatever it stores it in.

- ``ROLES_VERSION_KEY``: the meta key counting role writes.
- ``UNIQUE_RULES``: each uniqueness rule of the model, the field a
  :class:`~usercore.errors.ConflictError` names for it and its message.  The
  memory store raises these errors itself; the SQL adapters look a violated
  constraint up here, SQLite by ``table.column``, PostgreSQL by constraint name.

The schemas themselves (SQLite's ``PRAGMA user_version`` migrations,
PostgreSQL's ``usercore_migrations``) stay with their adapter.
"""

from __future__ import annotations

import re

import attrs

from usercore.custom_fields import CUSTOM_FIELD_NAME, CustomField
from usercore.domain.permissions import BUILTIN_PERMISSIONS
from usercore.errors import ConflictError

__all__ = [
    "BUILTIN_NAMES_SQL",
    "CUSTOM_INDEX_PREFIX",
    "ROLES_VERSION_KEY",
    "UNIQUE_RULES",
    "UniqueRule",
    "conflict",
    "custom_conflict",
    "custom_index_conflict",
    "custom_index_name",
    "sql_identifier",
]

ROLES_VERSION_KEY = "usercore.roles_version"

BUILTIN_NAMES_SQL = ", ".join(f"'{permission.name}'" for permission in BUILTIN_PERMISSIONS)
"""The built-in permission names as a SQL list (constants of ours, never input):
the migration that creates the permissions table stores the application
permissions roles already grant, leaving these out."""


@attrs.frozen
class UniqueRule:
    """One uniqueness rule: where SQL keeps it and what a violation is called."""

    table: str
    column: str
    constraint: str
    """The PostgreSQL constraint (or unique index) name."""
    field: str
    message: str

    def error(self) -> ConflictError:
        return ConflictError(self.message, field=self.field)


_TOKEN_EXISTS = "the token already exists"  # noqa: S105 - a message, not a secret

UNIQUE_RULES = (
    UniqueRule(
        "users", "email_key", "users_email_key", "email", "a user with this email already exists"
    ),
    UniqueRule(
        "users",
        "username_key",
        "users_username_key",
        "username",
        "a user with this username already exists",
    ),
    UniqueRule("roles", "name", "roles_pkey", "name", "a role with this name already exists"),
    UniqueRule(
        "permissions",
        "name",
        "permissions_pkey",
        "name",
        "a permission with this name is already registered",
    ),
    UniqueRule(
        "api_keys",
        "prefix",
        "api_keys_prefix",
        "prefix",
        "an API key with this prefix already exists",
    ),
    UniqueRule("refresh_tokens", "token_hash", "refresh_tokens_pkey", "token_hash", _TOKEN_EXISTS),
    UniqueRule(
        "one_time_tokens", "token_hash", "one_time_tokens_pkey", "token_hash", _TOKEN_EXISTS
    ),
)


def conflict(table: str, column: str) -> ConflictError:
    """The error for a duplicate ``table.column`` (the memory store raises it itself)."""
    for rule in UNIQUE_RULES:
        if rule.table == table and rule.column == column:
            return rule.error()
    raise KeyError(f"{table}.{column} has no uniqueness rule")


# Custom fields (usercore.custom_fields): the ``unique`` and ``indexed`` ones
# get an index on the users table named after the field, created when a store
# adopts the declaration and dropped when the declaration no longer asks for
# it.  Names are declared identifiers (CUSTOM_FIELD_NAME), never request text.
CUSTOM_INDEX_PREFIX = "users_custom_"
_UNIQUE_SUFFIX = "_key"


_SQL_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")


def sql_identifier(name: str) -> str:
    """``name``, if it is a lower-case identifier PostgreSQL and SQLite take
    unquoted (at most 63 characters); else ``ValueError``.  The one gate for a
    name written into SQL text (OWASP ASVS 4.0.3 V5.3.5): custom field and
    index names, which come from the declaration, never from a request."""
    if not isinstance(name, str) or not _SQL_IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a SQL identifier usercore writes")
    return name


def custom_index_name(field: CustomField) -> str:
    """The index a store keeps for ``field``: ``users_custom_<name>`` or, for a
    unique field, ``users_custom_<name>_key``."""
    suffix = _UNIQUE_SUFFIX if field.unique else ""
    return f"{CUSTOM_INDEX_PREFIX}{field.name}{suffix}"


def custom_conflict(name: str) -> ConflictError:
    """The error for a duplicate value of the unique custom field ``name``."""
    return ConflictError(f"a user with this {name} already exists", field=name)


def custom_index_conflict(index: str) -> ConflictError | None:
    """The error for a violated custom unique index named ``index``, or ``None``."""
    if index.startswith(CUSTOM_INDEX_PREFIX) and index.endswith(_UNIQUE_SUFFIX):
        name = index[len(CUSTOM_INDEX_PREFIX) : -len(_UNIQUE_SUFFIX)]
        if CUSTOM_FIELD_NAME.fullmatch(name):
            return custom_conflict(name)
    return None
