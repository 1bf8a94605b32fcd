"""A full, comparable snapshot of everything a store holds.

``dump(store)`` answers "what is in this store right now?" in one shape for
every adapter: ``{table name: [row dicts]}``.

- ``SQLiteStore``: every table listed in ``sqlite_master`` (``sqlite_sequence``
  included, so a consumed AUTOINCREMENT id shows) read through a *separate*
  read-only ``sqlite3`` connection, so what is compared is what the file holds
  (committed data), not what the store's own connection believes; plus the
  schema pragmas.  Rows are sorted, so the order SQLite returns them in does
  not matter.
- ``MemoryStore``: a copy of every table and index it keeps (``_users``,
  ``_emails``, ``_sequences``...).  Its ordered index ``_user_ids`` keeps its
  order, so a rollback that restores it wrongly shows.

Both also check that the store is at rest: no transaction left open.  Any
other store type, or a MemoryStore attribute this module does not know, is an
error: a dump that silently skips state would make every "unchanged" check
vacuous.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from usercore.ports import Store
from usercore.storage.memory import MemoryStore
from usercore.storage.sqlite import SQLiteStore

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
    # A failed login counts toward lockout (DESIGN §6): the account's counter
    # and lock (and its optimistic-lock version, bumped by that update), or
    # the throttle of an unknown identifier.
    "users": ("failed_logins", "locked_until", "version"),
    "login_attempts": ALL_COLUMNS,
}
"""What a failed ``auth.login`` may change."""

REFRESH_REVOCATION_STATE: Mapping[str, Collection[str] | str] = {
    # A replayed refresh token (or one of a gone, inactive or logged-out user)
    # revokes its whole family before the error is raised (DESIGN §6).
    "refresh_tokens": ("revoked_at",),
}
"""What a failed ``auth.refresh`` may change."""

# MemoryStore attributes holding data, and those that are transaction machinery.
_MEMORY_TABLES: Final = (
    "_sequences",
    "_users",
    "_user_ids",
    "_emails",
    "_usernames",
    "_roles",
    "_refresh_tokens",
    "_revoked_tokens",
    "_api_keys",
    "_prefixes",
    "_one_time_tokens",
    "_login_attempts",
    "_meta",
)
_MEMORY_MACHINERY: Final = frozenset(
    {"_lock", "_depth", "_readonly", "_owner", "_closed", "_undo", "_uow"}
)


def dump(store: Store) -> Dump:
    """Everything ``store`` holds, as ``{table: rows}``; see the module docstring."""
    if type(store) is SQLiteStore:
        return _dump_sqlite(store)
    if type(store) is MemoryStore:
        return _dump_memory(store)
    raise TypeError(
        f"tests/hardening/dump.py cannot dump a {type(store).__name__}: "
        "teach it this store before relying on 'the store is unchanged' checks"
    )


def _sort_key(row: Row) -> str:
    # Columns mix None, ints, text and bytes, which do not order against each
    # other; their reprs do, and equal rows have equal reprs.
    return repr(sorted(row.items()))


def _dump_sqlite(store: SQLiteStore) -> Dump:
    _check_sqlite_at_rest(store)
    uri = Path(store.path).resolve().as_uri() + "?mode=ro"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        connection.execute("BEGIN")  # one consistent snapshot of all tables
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        result: Dump = {}
        for name in names:
            quoted = '"' + name.replace('"', '""') + '"'
            cursor = connection.execute(f"SELECT * FROM {quoted}")
            columns = [column[0] for column in cursor.description]
            rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
            result[name] = sorted(rows, key=_sort_key)
        result["pragma"] = [
            {
                "user_version": connection.execute("PRAGMA user_version").fetchone()[0],
                "application_id": connection.execute("PRAGMA application_id").fetchone()[0],
            }
        ]
        connection.execute("COMMIT")
    finally:
        connection.close()
    return result


def _check_sqlite_at_rest(store: SQLiteStore) -> None:
    try:
        entries = list(store._connections)
    except AttributeError as exc:  # pragma: no cover - only when SQLiteStore changes
        raise TypeError(
            "tests/hardening/dump.py: SQLiteStore no longer has _connections; "
            "update the at-rest check"
        ) from exc
    for entry in entries:
        if entry.connection.in_transaction or entry.uow.depth:
            raise AssertionError(f"{store!r} left a transaction open")


def _dump_memory(store: MemoryStore) -> Dump:
    state = vars(store)
    unknown = sorted(set(state) - set(_MEMORY_TABLES) - _MEMORY_MACHINERY)
    missing = sorted(set(_MEMORY_TABLES) - set(state))
    if unknown or missing:
        raise TypeError(
            "tests/hardening/dump.py does not know MemoryStore's attributes "
            f"(new: {unknown}, gone: {missing}); teach it before relying on it"
        )
    if store._depth or store._undo or store._readonly or store._owner is not None:
        raise AssertionError(f"{store!r} left a transaction open")
    result: Dump = {}
    for attribute in _MEMORY_TABLES:
        table = state[attribute]
        name = attribute.lstrip("_")
        if isinstance(table, dict):
            rows = [{"key": key, **_memory_row(value)} for key, value in table.items()]
            result[name] = sorted(rows, key=_sort_key)
        elif isinstance(table, list):
            result[name] = [{"value": value} for value in table]  # the order is state too
        else:  # pragma: no cover - only when MemoryStore changes
            raise TypeError(f"tests/hardening/dump.py cannot copy MemoryStore.{attribute}")
    return result


def _memory_row(value: object) -> Row:
    # Entities are frozen attrs classes holding immutable values (frozensets,
    # datetimes, bytes): a shallow asdict is a true copy.
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=False)  # type: ignore[arg-type]
    return {"value": value}


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
