"""The SQLite schema, as numbered migrations recorded in ``PRAGMA user_version``.

Migration ``n`` takes a database from version ``n - 1`` to ``n``; they run in
order, inside one ``BEGIN IMMEDIATE`` transaction, when a store opens the file.
Never edit a released migration: append a new one.

Layout decisions (see docs/storage.md):

- Datetimes are INTEGER microseconds since the Unix epoch, UTC: exact round
  trips, cheap comparisons for the purges.
- ``users.email_key``/``username_key``/``name_key`` hold the case-folded forms;
  uniqueness and search use them, the display forms are kept as given.
- ``users.roles`` keeps the role names (a sorted JSON array) so that reading a
  user is one row; ``user_roles`` mirrors it for the indexed role filter.  Both
  are written by the same repository call.  ``user_roles.role`` does not
  reference ``roles``: the services check role names, and deleting a role in
  use is their decision (``users.remove_role``).
- ``AUTOINCREMENT`` on ids: a deleted user's id is never handed out again (a
  stale token naming it can never reach a new account, and keyset cursors
  stay meaningful).
"""

# S608 flags the f-strings below that join our own constant table name in.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3

from usercore.storage._schema import BUILTIN_NAMES_SQL

__all__ = ["APPLICATION_ID", "LATEST_VERSION", "MIGRATIONS", "SEARCH_INDEX", "TRIGRAM_AVAILABLE"]

# PRAGMA application_id marks the file as a usercore database ("UCOR"), so a
# store refuses to migrate somebody else's SQLite file.
APPLICATION_ID = 0x55434F52

_V1 = (
    """
    CREATE TABLE users (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        email          TEXT    NOT NULL,
        email_key      TEXT    NOT NULL,
        username       TEXT,
        username_key   TEXT,
        name           TEXT,
        name_key       TEXT,
        roles          TEXT    NOT NULL DEFAULT '[]',
        status         TEXT    NOT NULL CHECK (status IN ('active', 'inactive')),
        email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        last_login_at  INTEGER,
        password_hash  TEXT,
        failed_logins  INTEGER NOT NULL DEFAULT 0,
        locked_until   INTEGER,
        token_version  INTEGER NOT NULL DEFAULT 0,
        version        INTEGER NOT NULL DEFAULT 1
    )
    """,
    # SQLite checks the most recently created unique index first, so a row that
    # duplicates both keys reports the email (MemoryStore checks in this order too).
    "CREATE UNIQUE INDEX users_username_key ON users (username_key)",
    "CREATE UNIQUE INDEX users_email_key ON users (email_key)",
    "CREATE INDEX users_status ON users (status, id)",
    """
    CREATE TABLE user_roles (
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        role    TEXT    NOT NULL,
        PRIMARY KEY (user_id, role)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX user_roles_role ON user_roles (role, user_id)",
    """
    CREATE TABLE roles (
        name        TEXT NOT NULL PRIMARY KEY,
        permissions TEXT NOT NULL,
        inherits    TEXT NOT NULL,
        description TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE refresh_tokens (
        token_hash    BLOB    NOT NULL PRIMARY KEY,
        family_id     TEXT    NOT NULL,
        user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        token_version INTEGER NOT NULL,
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        used_at       INTEGER,
        revoked_at    INTEGER
    ) WITHOUT ROWID
    """,
    "CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id)",
    "CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id)",
    "CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at)",
    """
    CREATE TABLE revoked_tokens (
        jti        TEXT    NOT NULL PRIMARY KEY,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at)",
    """
    CREATE TABLE api_keys (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name         TEXT    NOT NULL,
        prefix       TEXT    NOT NULL,
        scopes       TEXT,
        secret_hash  BLOB    NOT NULL,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER,
        last_used_at INTEGER,
        revoked_at   INTEGER
    )
    """,
    "CREATE UNIQUE INDEX api_keys_prefix ON api_keys (prefix)",
    "CREATE INDEX api_keys_user ON api_keys (user_id, id)",
    """
    CREATE TABLE one_time_tokens (
        token_hash BLOB    NOT NULL PRIMARY KEY,
        purpose    TEXT    NOT NULL,
        user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        binding    TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
    ) WITHOUT ROWID
    """,
    "CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id, purpose)",
    "CREATE INDEX one_time_tokens_expires ON one_time_tokens (expires_at)",
    """
    CREATE TABLE login_attempts (
        key          TEXT    NOT NULL PRIMARY KEY,
        failures     INTEGER NOT NULL,
        locked_until INTEGER,
        updated_at   INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX login_attempts_locked ON login_attempts (locked_until)",
    """
    CREATE TABLE meta (
        key   TEXT NOT NULL PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    "INSERT INTO meta (key, value) VALUES ('usercore.roles_version', '0')",
    "PRAGMA application_id = 1430474578",  # APPLICATION_ID
)


def _trigram_available() -> bool:
    """Whether this SQLite has FTS5 with the trigram tokenizer (3.34+, FTS5 compiled in)."""
    if sqlite3.sqlite_version_info < (3, 34, 0):
        return False
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE probe USING fts5(a, tokenize='trigram')")
    except sqlite3.Error:
        return False
    finally:
        probe.close()
    return True


TRIGRAM_AVAILABLE = _trigram_available()
"""FTS5's trigram tokenizer exists in the linked SQLite: migration 2 builds the search index."""

SEARCH_INDEX = "users_search"
"""The FTS5 table indexing ``users.email_key``/``username_key``/``name_key`` by trigrams."""


# Migration 2: what makes listings flat at a million users (docs/storage.md,
# "Scale").  Both are kept by triggers, so they change in the very statement
# (and transaction) that changes a user or a role grant, whoever writes.
#
# - ``user_counts``: one row per status ("status:active") and per role
#   ("role:admin") with its number of users; ``count()`` reads one or two rows
#   instead of scanning.
# - ``users_search``: an FTS5 index of the three search keys with the trigram
#   tokenizer, case-sensitive because the keys are case-folded already.  A
#   phrase query of three or more characters finds exactly the rows whose key
#   contains it (substring semantics, as ``instr``).  External content: the
#   index stores trigrams only, the text stays in ``users``.
def _counter_trigger(name: str, event: str, minus: str, plus: str) -> str:
    """A trigger on ``event`` taking one from the counter keyed ``minus`` and adding
    one to the counter keyed ``plus`` (SQL key expressions; ``""``: none)."""
    take = f"UPDATE user_counts SET n = n - 1 WHERE key = {minus};" if minus else ""
    add = (
        f"INSERT INTO user_counts (key, n) VALUES ({plus}, 1) "
        "ON CONFLICT (key) DO UPDATE SET n = n + 1;"
        if plus
        else ""
    )
    return f"CREATE TRIGGER {name} {event} BEGIN {take} {add} END"


_COUNTERS = (
    """
    CREATE TABLE user_counts (
        key TEXT    NOT NULL PRIMARY KEY,
        n   INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    _counter_trigger(
        "user_counts_user_insert", "AFTER INSERT ON users", "", "'status:' || new.status"
    ),
    _counter_trigger(
        "user_counts_user_delete", "AFTER DELETE ON users", "'status:' || old.status", ""
    ),
    _counter_trigger(
        "user_counts_user_status",
        "AFTER UPDATE OF status ON users WHEN old.status IS NOT new.status",
        "'status:' || old.status",
        "'status:' || new.status",
    ),
    _counter_trigger(
        "user_counts_role_insert", "AFTER INSERT ON user_roles", "", "'role:' || new.role"
    ),
    _counter_trigger(
        "user_counts_role_delete", "AFTER DELETE ON user_roles", "'role:' || old.role", ""
    ),
    """
    INSERT INTO user_counts (key, n)
    SELECT 'status:' || status, count(*) FROM users GROUP BY status
    UNION ALL
    SELECT 'role:' || role, count(*) FROM user_roles GROUP BY role
    """,
)
_SEARCH_ROW = "rowid, email_key, username_key, name_key"
_SEARCH_INDEX = (
    f"""
    CREATE VIRTUAL TABLE {SEARCH_INDEX} USING fts5 (
        email_key, username_key, name_key,
        content = 'users', content_rowid = 'id',
        tokenize = 'trigram case_sensitive 1'
    )
    """,
    f"""
    CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
        INSERT INTO {SEARCH_INDEX} ({_SEARCH_ROW})
        VALUES (new.id, new.email_key, new.username_key, new.name_key);
    END
    """,
    f"""
    CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
        INSERT INTO {SEARCH_INDEX} ({SEARCH_INDEX}, {_SEARCH_ROW})
        VALUES ('delete', old.id, old.email_key, old.username_key, old.name_key);
    END
    """,
    f"""
    CREATE TRIGGER users_search_update AFTER UPDATE OF email_key, username_key, name_key ON users
    BEGIN
        INSERT INTO {SEARCH_INDEX} ({SEARCH_INDEX}, {_SEARCH_ROW})
        VALUES ('delete', old.id, old.email_key, old.username_key, old.name_key);
        INSERT INTO {SEARCH_INDEX} ({_SEARCH_ROW})
        VALUES (new.id, new.email_key, new.username_key, new.name_key);
    END
    """,
    f"INSERT INTO {SEARCH_INDEX} ({SEARCH_INDEX}) VALUES ('rebuild')",
)
# Without the trigram tokenizer (SQLite < 3.34, or FTS5 left out of the
# build) the migration skips the index and search keeps scanning with
# instr(); a file migrated so keeps scanning after an SQLite upgrade.
_V2 = _COUNTERS + (_SEARCH_INDEX if TRIGRAM_AVAILABLE else ())

# Accounts identified by their username alone: users.email and email_key may be
# NULL (a unique index admits any number of NULLs).  SQLite cannot drop a NOT
# NULL constraint with ALTER TABLE, and rebuilding the table would fire the
# ON DELETE CASCADE of every table referencing it; removing a NOT NULL
# constraint by editing the stored schema is the procedure the SQLite manual
# allows for it (https://www.sqlite.org/lang_altertable.html#otheralter): no
# stored row can violate the looser table.  RESET reloads the schema on this
# connection; creating and dropping a table bumps the schema cookie so every
# other connection reloads it too.
_EMAIL_OPTIONAL = (
    "PRAGMA writable_schema = ON",
    """
    UPDATE sqlite_schema
       SET sql = replace(
               replace(sql, 'email          TEXT    NOT NULL,', 'email          TEXT,'),
               'email_key      TEXT    NOT NULL,', 'email_key      TEXT,')
     WHERE type = 'table' AND name = 'users'
    """,
    "PRAGMA writable_schema = RESET",
    "CREATE TABLE usercore_schema_reload (x INTEGER)",
    "DROP TABLE usercore_schema_reload",
)

# Migration 4: the application's custom fields (usercore.custom_fields), a
# JSON object per user.  Their indexes follow the declaration, not a migration
# (SQLiteStore.declare_custom_fields): expression indexes on json_extract().
_CUSTOM_FIELDS = ("ALTER TABLE users ADD COLUMN custom_fields TEXT NOT NULL DEFAULT '{}'",)

# The application permissions registered at run time (core.permissions.register,
# POST /permissions, serve --permissions), shared by every process on the file.
# The built-in permissions live in the code, not here.  A file from before
# keeps working: the application permissions its roles grant (registered in
# each process back then) are stored, `resource:action` of every concrete
# grant, so those roles stay editable by any process.
_PERMISSIONS = (
    """
    CREATE TABLE permissions (
        name        TEXT    NOT NULL PRIMARY KEY,
        description TEXT    NOT NULL,
        created_at  INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    f"""
    INSERT INTO permissions (name, description, created_at)
    SELECT DISTINCT name, '', CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
    FROM (
        SELECT CASE WHEN g.value LIKE '%:%:own' THEN substr(g.value, 1, length(g.value) - 4)
                    ELSE g.value END AS name
        FROM roles, json_each(roles.permissions) AS g
        WHERE g.value <> '*' AND g.value NOT LIKE '%:*' AND g.value NOT LIKE '%:*:own'
    )
    WHERE name NOT IN ({BUILTIN_NAMES_SQL})
    """,
)

# Migration 3: accounts identified by their username alone; 4: custom fields;
# 5: the registered permissions.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    _V1,
    _V2,
    _EMAIL_OPTIONAL,
    _CUSTOM_FIELDS,
    _PERMISSIONS,
)
"""``MIGRATIONS[n - 1]`` holds the statements of migration ``n``."""

LATEST_VERSION = len(MIGRATIONS)
