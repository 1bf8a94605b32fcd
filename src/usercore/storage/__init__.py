"""Storage adapters: implementations of :mod:`usercore.ports`.

- :class:`MemoryStore`: everything in process memory (tests, demos).
- :class:`SQLiteStore`: one SQLite file (stdlib ``sqlite3``).

Both are standard library only and cheap to import.  The PostgreSQL adapter
lives in ``usercore.storage.postgres`` and is never imported from here, so
that ``psycopg`` stays optional.
"""

from usercore.storage.memory import MemoryStore
from usercore.storage.sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore"]
