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

import attrs

from usercore.errors import ConflictError

__all__ = ["ROLES_VERSION_KEY", "UNIQUE_RULES", "UniqueRule", "conflict"]

ROLES_VERSION_KEY = "usercore.roles_version"


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
