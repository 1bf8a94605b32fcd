"""``kill -9`` under load: every acknowledged write survives; an import keeps whole batches.

Issue 17 item 8.  Durability comes from SQLite's transactions (WAL, a commit
is acknowledged only once it is durable for the process); these tests kill the
process at a random moment and look at the file afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import argon2
import pytest

from usercore.passwords import PasswordHasher

from .conftest import Server

pytestmark = [pytest.mark.faults, pytest.mark.slow]

LOAD_SECONDS = 3.0
WRITERS = 6


def emails_in(path: Path) -> set[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return {row[0] for row in connection.execute("SELECT email FROM users")}


def test_kill_9_under_registration_load_loses_no_acknowledged_write(
    serve: type[Server], tmp_path: Path
) -> None:
    path = tmp_path / "users.db"
    server = serve(str(path))
    server.start()
    acknowledged: list[str] = []
    answers: list[int] = []
    stop = threading.Event()

    def register(writer: int) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            email = f"w{writer}-{number}@example.com"
            try:
                status, _, _ = server.register(email, timeout=10)
            except OSError:  # killed mid-request: not acknowledged
                return
            answers.append(status)
            if status == 201:
                acknowledged.append(email)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(LOAD_SECONDS)  # mid-load: requests in flight when the kill lands
    server.kill()
    stop.set()
    for thread in threads:
        thread.join()

    assert acknowledged, "no registration was acknowledged before the kill"
    assert set(answers) <= {201, 503}, answers  # shed (503) under load, never 500
    stored = emails_in(path)
    assert set(acknowledged) <= stored, "an acknowledged registration was lost"
    # The database is intact and a new server serves it.
    restarted = serve(str(path), key=server.key)
    restarted.start()
    assert restarted.register("after-restart@example.com")[0] == 201


def _records(count: int) -> str:
    # A prehashed password: the import then does no argon2 work and is I/O-bound.
    password_hash = PasswordHasher(argon2.profiles.CHEAPEST).hash("correct horse battery")
    return "".join(
        json.dumps({"email": f"user{n}@example.com", "password_hash": password_hash}) + "\n"
        for n in range(count)
    )


def _import(path: Path, source: Path, key: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "usercore.cli", "import", str(source), "--db", str(path)]
    command += ["--batch-size", str(BATCH), "--no-progress"]
    env = {**os.environ, "USERCORE_SECRET_KEY": key}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


BATCH = 250
RECORDS = 20_000


def _count(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as connection:
            return int(connection.execute("SELECT count(*) FROM users").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_kill_9_mid_import_keeps_whole_batches_and_a_rerun_resumes(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    source = tmp_path / "users.jsonl"
    source.write_text(_records(RECORDS))
    key = "k" * 43
    importing = _import(path, source, key)
    deadline = time.monotonic() + 60
    while _count(path) < 2 * BATCH and time.monotonic() < deadline:
        assert importing.poll() is None, importing.communicate()
        time.sleep(0.01)
    importing.send_signal(signal.SIGKILL)
    importing.communicate(timeout=30)

    kept = _count(path)
    assert 0 < kept < RECORDS, "the import was not killed midway"
    assert kept % BATCH == 0, f"{kept} users: a batch was half written"

    rerun = _import(path, source, key)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()
    assert _count(path) == RECORDS
    assert emails_in(path) == {f"user{n}@example.com" for n in range(RECORDS)}
