"""The command line under faults: one line on stderr, a documented exit status,
no traceback, and nothing written that should not be."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from usercore import SYSTEM, UsercoreError, cli

from .conftest import Runner, open_db


def python_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usercore.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


# -- --db ---------------------------------------------------------------------------------


def test_two_slashes_after_sqlite_get_a_suggestion(run: Runner) -> None:
    status, _, err = run("users", "list", "--db", "sqlite://x.db")
    assert status == cli.EXIT_USAGE
    assert "sqlite:///x.db" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("value", [":memory:", "memory://", "sqlite:///:memory:"])
@pytest.mark.parametrize(
    "argv", [["users", "list"], ["migrate"], ["import", "x.jsonl"], ["export"], ["purge"]]
)
def test_an_in_memory_database_is_refused_where_nothing_would_persist(
    run: Runner, value: str, argv: list[str]
) -> None:
    status, _, err = run(*argv, "--db", value)
    assert status == cli.EXIT_USAGE
    assert "in-memory database is gone" in err
    assert f"`usercore {' '.join(word for word in argv if 'jsonl' not in word)}` ends" in err
    assert "memory:// is for serve" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["users", "show", "1"],
        ["users", "disable", "1"],
        ["roles", "list"],
        ["permissions", "list"],
        ["api-keys", "list", "1"],
        ["export"],
        ["purge"],
    ],
)
def test_commands_that_read_never_create_a_database(
    run: Runner, tmp_path: Path, argv: list[str]
) -> None:
    missing = tmp_path / "typo.db"
    status, out, err = run(*argv, "--db", str(missing))
    assert (status, out) == (cli.EXIT_DATABASE, "")
    assert f"no database at {missing} (nothing was created)" in err
    assert f"usercore migrate --db {missing}" in err
    assert not missing.exists()


# -- damaged and read-only files ------------------------------------------------------------


def damage(path: Path) -> None:
    """Overwrite the middle of the file with garbage (the header stays valid)."""
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size // 2)
        handle.write(b"\xde\xad\xbe\xef" * (size // 8))


@pytest.fixture
def big_db(db: Path) -> Path:
    with open_db(db) as core:
        core.users.import_users(
            SYSTEM, [{"email": f"user{i}@example.com", "name": "x" * 200} for i in range(400)]
        )
    return db


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_a_damaged_file_is_refused_at_start(
    run: Runner, big_db: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("uvicorn")
    import uvicorn

    monkeypatch.setenv(cli.SECRET_KEY_ENV, "s" * 40)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served a damaged file"))
    damage(big_db)
    status, out, err = run(command, "--db", str(big_db))
    assert status == cli.EXIT_DATABASE
    assert "up to date" not in out
    assert err.startswith(f"usercore: error: {big_db} is damaged: ")
    assert "restore it from a backup" in err
    assert err.count("\n") == 1


def test_a_truncated_file_is_refused_by_migrate(run: Runner, big_db: Path) -> None:
    with big_db.open("r+b") as handle:
        handle.truncate(big_db.stat().st_size // 3)
    status, out, err = run("migrate", "--db", str(big_db))
    assert (status, out) == (cli.EXIT_DATABASE, "")
    assert "is damaged" in err


def test_a_file_of_garbage_is_refused(run: Runner, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    for argv in (["migrate"], ["users", "list"]):
        status, _, err = run(*argv, "--db", str(garbage))
        assert status == cli.EXIT_DATABASE
        assert "is damaged: file is not a database" in err


def test_reading_a_damaged_file_ends_in_one_line(big_db: Path) -> None:
    damage(big_db)
    result = python_cli("users", "list", "--db", str(big_db))
    assert result.returncode == cli.EXIT_DATABASE
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("usercore: error: ")


def test_a_file_without_write_permission_is_refused_even_for_root(
    run: Runner, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("uvicorn")
    import uvicorn

    monkeypatch.setenv(cli.SECRET_KEY_ENV, "s" * 40)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served a read-only file"))
    before = db.read_bytes()
    db.chmod(0o444)
    try:
        for argv in (["migrate"], ["serve"], ["create-admin", "--email", "x@example.com"]):
            status, _, err = (
                run(*argv, "--db", str(db), "--password-stdin", stdin="p" * 20)
                if (argv[0] == "create-admin")
                else run(*argv, "--db", str(db))
            )
            assert status == cli.EXIT_DATABASE, err
            assert err == f"usercore: error: {db} is read-only (mode 0444)\n"
        # Reading is fine.
        assert run("users", "list", "--db", str(db))[0] == 0
    finally:
        db.chmod(0o644)
    assert db.read_bytes() == before


@pytest.fixture
def immutable_db(db: Path) -> Iterator[Path]:
    """A file the kernel refuses to write, even for root (``chattr +i``)."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed")
    made = subprocess.run([chattr, "+i", str(db)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"the filesystem or the capabilities do not allow chattr +i: {made.stderr!r}")
    try:
        yield db
    finally:
        subprocess.run([chattr, "-i", str(db)], check=True)


def test_an_immutable_file_is_refused_by_the_write_probe(run: Runner, immutable_db: Path) -> None:
    status, out, err = run("migrate", "--db", str(immutable_db))
    assert (status, out) == (cli.EXIT_DATABASE, "")
    assert err.startswith(f"usercore: error: {immutable_db} cannot be written: ")
    assert err.count("\n") == 1


# -- locks and pipes ---------------------------------------------------------------------------


def test_a_locked_database_is_one_line(
    run: Runner, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "PROBE_TIMEOUT", 0.2)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        status, _, err = run("users", "disable", "ada", "--db", str(db))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert status == cli.EXIT_DATABASE
    assert err == f"usercore: error: {db} is locked by another process; try again when it is done\n"


def test_a_store_fault_mid_command_is_one_line(
    run: Runner, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from usercore.services.users import UserService

    def locked(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(UserService, "set_status", locked)
    status, _, err = run("users", "disable", "ada", "--db", str(db))
    assert status == cli.EXIT_DATABASE
    assert err == (
        "usercore: error: the database is locked by another process; try again when it is done\n"
    )


def test_a_closed_pipe_ends_the_listing_quietly(db: Path) -> None:
    with open_db(db) as core:
        core.users.import_users(SYSTEM, [{"email": f"u{i}@example.com"} for i in range(3000)])
    listing = subprocess.Popen(
        [sys.executable, "-m", "usercore.cli", "users", "list", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None
    assert listing.stderr is not None
    listing.stdout.readline()
    listing.stdout.close()  # what `| head -1` does
    errors = threading.Thread(target=lambda: setattr(listing, "err", listing.stderr.read()))
    errors.start()
    assert listing.wait(timeout=120) == cli.EXIT_BROKEN_PIPE
    errors.join()
    assert getattr(listing, "err", b"") == b""


class FakeStoreUnavailable(UsercoreError):
    code = "store_unavailable"


@pytest.mark.parametrize(
    ("cause", "message"),
    [
        (sqlite3.OperationalError("database or disk is full"), "database error: database or "
         "disk is full"),
        (None, "the database is unavailable (try later)"),
    ],
)  # fmt: skip
def test_a_store_unavailable_error_names_its_cause(
    run: Runner,
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    cause: Exception | None,
    message: str,
) -> None:
    from usercore.services.users import UserService

    def unavailable(*args: object, **kwargs: object) -> None:
        raise FakeStoreUnavailable("try later") from cause

    monkeypatch.setattr(UserService, "set_status", unavailable)
    status, _, err = run("users", "enable", "ada", "--db", str(db))
    assert status == cli.EXIT_DATABASE
    assert err == f"usercore: error: {message}\n"
