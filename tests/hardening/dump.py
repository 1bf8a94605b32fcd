"""A full, comparable snapshot of everything a store holds, read through the ports.

``dump(store)`` answers "what is in this store right now?" in one shape for
every adapter: ``{table name: [row dicts]}``, read in one read-only unit of
work through the public repository methods only (every user, and per user
their API keys, refresh and one-time tokens; every role, registered
permission, revocation, login throttle and meta value; the schema version).
No private attribute is read, so a new adapter, or a new field inside one,
needs no change here.

The unit of work runs in a thread of its own, which checks that the store is
at rest: a transaction left open by the calling thread holds MemoryStore's
lock (the dump then times out) and is invisible to SQLite's other
connections and PostgreSQL's other sessions, which read committed data only.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from typing import Any, Final

import attrs

from usercore.ports import Store, UserFilter

__all__ = [
    "ALL_COLUMNS",
    "LOGIN_FAILURE_STATE",
    "REFRESH_REVOCATION_STATE",
    "Dump",
    "diff",
    "dump",
    "without",
]

Row = dict[str, Any]
Dump = dict[str, list[Row]]

ALL_COLUMNS: Final = "*"
"""In a :func:`without` mask: ignore the whole table."""

LOGIN_FAILURE_STATE: Mapping[str, Collection[str] | str] = {
    # A failed login counts toward lockout: the account's counter and lock
    # (and its optimistic-lock version, bumped by that update), or the
    # throttle of an unknown identifier.
    "users": ("failed_logins", "locked_until", "version"),
    "login_attempts": ALL_COLUMNS,
}
"""What a failed ``auth.login`` may change."""

REFRESH_REVOCATION_STATE: Mapping[str, Collection[str] | str] = {
    # A replayed refresh token (or one of a gone, inactive or logged-out user)
    # revokes its whole family before the error is raised.
    "refresh_tokens": ("revoked_at",),
}
"""What a failed ``auth.refresh`` may change."""

_AT_REST_TIMEOUT: Final = 10.0
"""Seconds the dump waits for its unit of work before calling the store busy."""


def dump(store: Store, *, timeout: float = _AT_REST_TIMEOUT) -> Dump:
    """Everything ``store`` holds, as ``{table: rows}``; see the module docstring."""
    result: list[Dump] = []
    failure: list[BaseException] = []

    def read() -> None:
        try:
            result.append(_read(store))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    reader = threading.Thread(target=read, name="dump", daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        raise AssertionError(f"{store!r} left a transaction open (the dump could not read)")
    if failure:
        raise failure[0]
    return result[0]


def _read(store: Store) -> Dump:
    with store.transaction(readonly=True) as tx:
        users = tx.users.list(after=None, limit=1_000_000, filter=UserFilter())
        ids = [user.id for user in users]
        return {
            "users": _rows(users),
            "roles": _rows(tx.roles.list()),
            "permissions": _rows(tx.permissions.list()),
            "api_keys": _rows(key for user_id in ids for key in tx.api_keys.list_for_user(user_id)),
            "refresh_tokens": _rows(
                token for user_id in ids for token in tx.refresh_tokens.list_for_user(user_id)
            ),
            "one_time_tokens": _rows(
                token for user_id in ids for token in tx.one_time_tokens.list_for_user(user_id)
            ),
            "revoked_tokens": _rows(tx.revoked_tokens.list()),
            "login_attempts": _rows(tx.login_attempts.list()),
            "meta": [{"key": key, "value": value} for key, value in tx.meta.items().items()]
            + [{"key": "schema_version", "value": tx.meta.schema_version()}],
        }


def _rows(records: Any) -> list[Row]:
    # Records are frozen attrs classes holding immutable values (frozensets,
    # datetimes, bytes): a shallow asdict is a true copy.
    return sorted((attrs.asdict(record, recurse=False) for record in records), key=_sort_key)


def _sort_key(row: Row) -> str:
    # Columns mix None, ints, text and bytes, which do not order against each
    # other; their reprs do, and equal rows have equal reprs.
    return repr(sorted(row.items()))


def without(snapshot: Dump, mask: Mapping[str, Collection[str] | str]) -> Dump:
    """``snapshot`` with the masked columns (or whole tables, ``ALL_COLUMNS``) left out."""
    result: Dump = {}
    for name, rows in snapshot.items():
        columns = mask.get(name)
        if columns == ALL_COLUMNS:
            continue
        if columns is None:
            result[name] = rows
            continue
        kept = [{k: v for k, v in row.items() if k not in columns} for row in rows]
        result[name] = sorted(kept, key=_sort_key)
    return result


def diff(before: Dump, after: Dump) -> str:
    """A short human account of what changed between two dumps (for assertion messages)."""
    lines = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, []), after.get(name, [])
        if old == new:
            continue
        gone = [row for row in old if row not in new]
        added = [row for row in new if row not in old]
        lines.append(f"table {name}: -{len(gone)} +{len(added)} rows")
        lines.extend(f"  - {row!r:.300}" for row in gone[:3])
        lines.extend(f"  + {row!r:.300}" for row in added[:3])
    return "\n".join(lines) or "no difference"
