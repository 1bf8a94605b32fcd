"""SQLiteStore across processes: concurrent writers, and a writer killed mid-stream."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from usercore.ports import UserFilter
from usercore.storage import SQLiteStore

pytestmark = pytest.mark.slow

# Each worker registers the same emails in its own order, one transaction each.
# They start together (a line on stdin is the starting shot) on a file that
# does not exist yet, so they also race to create and migrate it.
REGISTER = """
import sys
import time
from datetime import datetime, timezone

from usercore.domain import User
from usercore.errors import ConflictError
from usercore.storage import SQLiteStore

path, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
now = datetime.now(timezone.utc)
created = conflicts = 0
print("ready", flush=True)
sys.stdin.readline()
with SQLiteStore(path) as store:
    for n in range(count):
        number = (n * 7 + worker * 31) % count  # 7 is coprime with count: a permutation
        user = User(id=0, email=f"user{number}@example.com", created_at=now, updated_at=now)
        try:
            with store.transaction() as tx:
                tx.users.add(user)
            created += 1
        except ConflictError:
            conflicts += 1
        time.sleep(0.001)  # like a server between requests: lets the others in
print(created, conflicts)
"""

# Writes forever, single users and batches alternately; prints a line only
# after the transaction's COMMIT returned: that line is the acknowledgement.
WRITE_FOREVER = """
import sys
from datetime import datetime, timezone

from usercore.domain import User
from usercore.storage import SQLiteStore

now = datetime.now(timezone.utc)
store = SQLiteStore(sys.argv[1])
n = 0
while True:
    batch = 1 if n % 2 else 50
    users = [
        User(id=0, email=f"user{n}-{i}@example.com", name="x" * 300, created_at=now, updated_at=now)
        for i in range(batch)
    ]
    with store.transaction() as tx:
        tx.users.add_many(users)
    print(n, batch, flush=True)
    n += 1
"""


def run_python(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as raw:
        return str(raw.execute("PRAGMA integrity_check").fetchone()[0])


def test_four_processes_registering_the_same_emails_create_each_exactly_once(
    tmp_path: Path,
) -> None:
    path, count = tmp_path / "users.db", 200
    workers = [run_python(REGISTER, path, worker, count) for worker in range(4)]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
    for worker in workers:  # the starting shot, to all before waiting for any
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = [worker.communicate(timeout=120) for worker in workers]

    for worker, (_, stderr) in zip(workers, results, strict=True):
        assert "database is locked" not in stderr
        assert worker.returncode == 0, stderr
    outcomes = [[int(field) for field in stdout.split()] for stdout, _ in results]
    assert sum(created for created, _ in outcomes) == count
    assert all(created + conflicts == count for created, conflicts in outcomes)
    with sqlite3.connect(path) as raw:
        emails = [row[0] for row in raw.execute("SELECT email FROM users")]
    assert sorted(emails) == sorted(f"user{n}@example.com" for n in range(count))
    assert integrity(path) == "ok"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_every_acknowledged_write_survives_a_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    writer = run_python(WRITE_FOREVER, path)
    assert writer.stdout is not None
    acknowledged: list[list[int]] = []
    try:
        for line in writer.stdout:
            acknowledged.append([int(field) for field in line.split()])
            if len(acknowledged) == 60:
                os.kill(writer.pid, signal.SIGKILL)  # mid-stream: it is already writing more
                break
        # Lines the writer printed before it died are acknowledgements too.
        acknowledged += [[int(field) for field in line.split()] for line in writer.stdout]
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == -signal.SIGKILL

    assert integrity(path) == "ok"  # the WAL is replayed on open
    with SQLiteStore(path) as store, store.transaction(readonly=True) as tx:
        for n, batch in acknowledged:
            for i in range(batch):
                assert tx.users.get_by_email(f"user{n}-{i}@example.com") is not None, (n, i)
        stored = tx.users.count(filter=UserFilter())
    acknowledged_users = sum(batch for _, batch in acknowledged)
    # At most the one transaction in flight when the signal landed may also be there.
    assert acknowledged_users <= stored <= acknowledged_users + 50
    assert integrity(path) == "ok"
