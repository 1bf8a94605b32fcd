"""The ``usercore`` command line: every command, its help, its exit statuses.

Commands run in process through ``main(argv)``; ``serve`` runs for real in
``tests/web/test_live_server.py``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from usercore import SYSTEM, Settings, UserCore, cli

PASSWORD = "correct horse battery staple"
LEGACY_PASSWORD = "legacy password 123"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def with_stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8"))


def open_db(path: Path) -> UserCore:
    return UserCore.open(f"sqlite:///{path}", settings=Settings(secret_key="k" * 40))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "users.db"


def django_hash(password: str) -> str:
    salt = "abcdefgh12345678"
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000)
    return f"pbkdf2_sha256$1000${salt}${base64.b64encode(digest).decode()}"


# -- help and usage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["serve", "--help"],
        ["create-admin", "--help"],
        ["users", "--help"],
        ["users", "list", "--help"],
        ["import", "--help"],
        ["migrate", "--help"],
    ],
)
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 0
    assert "usage: usercore" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["users"],
        ["create-admin"],
        ["serve", "--port", "70000"],
        ["serve", "--prefix", "api/"],
        ["users", "list", "--status", "banned"],
        ["import"],
    ],
)
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "usercore" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "message"),
    [("mysql://localhost/db", "unsupported URL scheme 'mysql'"), ("", "must not be empty")],
)
def test_a_bad_database_argument_exits_2(
    capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    status, _, err = run(capsys, "migrate", "--db", value)
    assert status == 2
    assert message in err


def test_a_directory_is_not_a_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run(capsys, "users", "list", "--db", str(tmp_path))
    assert status == 2
    assert "is a directory" in err


def test_database_urls_and_paths_name_the_same_store(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    assert cli.database_url(str(path)) == f"sqlite:///{path}"
    assert cli.database_url("relative.db") == "sqlite:///relative.db"
    assert cli.database_url("sqlite:///relative.db") == "sqlite:///relative.db"
    assert cli.database_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert cli.database_url("memory://") == "memory://"


def test_importing_the_cli_imports_no_web_framework() -> None:
    code = (
        "import sys, usercore.cli\n"
        "print([m for m in ('fastapi', 'uvicorn', 'starlette', 'flask') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# -- create-admin ---------------------------------------------------------------------------


def test_create_admin_reads_the_password_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    with_stdin(monkeypatch, PASSWORD + "\n")
    status, out, _ = run(
        capsys, "create-admin", "--db", str(db), "--email", "Root@Example.com",
        "--username", "root", "--name", "Root", "--password-stdin",
    )  # fmt: skip
    assert status == 0
    assert out == "created administrator #1 Root@example.com\n"
    with open_db(db) as core:
        user = core.users.get(SYSTEM, 1)
        assert (user.roles, user.username, user.name) == (frozenset({"admin"}), "root", "Root")
        assert core.auth.login("root", PASSWORD).token_type == "bearer"
    assert not db.with_suffix(".key").exists()


def test_create_admin_prompts_twice_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: next(answers))
    status, out, _ = run(capsys, "create-admin", "--db", str(db), "--email", "root@example.com")
    assert status == 0
    assert "created administrator" in out


def test_create_admin_refuses_passwords_that_differ(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: next(answers))
    status, _, err = run(capsys, "create-admin", "--db", str(db), "--email", "root@example.com")
    assert status == 1
    assert "do not match" in err


def test_create_admin_without_a_terminal_needs_password_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    with_stdin(monkeypatch, PASSWORD + "\n")
    status, _, err = run(capsys, "create-admin", "--db", str(db), "--email", "root@example.com")
    assert status == 2
    assert "--password-stdin" in err


@pytest.mark.parametrize(
    ("stdin", "status", "message"),
    [
        ("\n", 2, "no password on standard input"),
        ("short\n", 1, "password: "),
    ],
)
def test_create_admin_refuses_a_missing_or_weak_password(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    db: Path,
    stdin: str,
    status: int,
    message: str,
) -> None:
    with_stdin(monkeypatch, stdin)
    code, _, err = run(
        capsys, "create-admin", "--db", str(db), "--email", "root@example.com", "--password-stdin"
    )
    assert code == status
    assert message in err
    assert "short" not in err.replace("short\n", "")  # the password is never echoed


def test_create_admin_refuses_an_existing_email(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    for expected in (0, 1):
        with_stdin(monkeypatch, PASSWORD + "\n")
        status, _, err = run(
            capsys,
            "create-admin", "--db", str(db), "--email", "root@example.com", "--password-stdin",
        )  # fmt: skip
        assert status == expected
    assert "a user with this email already exists" in err


# -- users list ------------------------------------------------------------------------------


@pytest.fixture
def populated(db: Path) -> Path:
    with open_db(db) as core:
        core.users.create(SYSTEM, email="root@example.com", roles=["admin"])
        core.users.create(SYSTEM, email="ada@example.com", username="ada", name="Ada Lovelace")
        core.users.create(SYSTEM, email="bob@example.com", status="inactive")
    return db


def test_users_list_prints_a_table(capsys: pytest.CaptureFixture[str], populated: Path) -> None:
    status, out, err = run(capsys, "users", "list", "--db", str(populated))
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "email", "username", "roles", "status", "created"]
    assert [line.split()[1] for line in lines[1:]] == [
        "root@example.com",
        "ada@example.com",
        "bob@example.com",
    ]
    assert err.strip() == "usercore: 3 users"


def test_users_list_filters_and_prints_json_lines(
    capsys: pytest.CaptureFixture[str], populated: Path
) -> None:
    status, out, _ = run(
        capsys, "users", "list", "--db", str(populated), "--json", "--search", "LOVE"
    )
    assert status == 0
    [user] = [json.loads(line) for line in out.splitlines()]
    assert user["email"] == "ada@example.com"
    assert "password_hash" not in user
    _, out, _ = run(capsys, "users", "list", "--db", str(populated), "--role", "admin")
    assert len(out.splitlines()) == 2
    _, out, _ = run(capsys, "users", "list", "--db", str(populated), "--status", "inactive")
    assert "bob@example.com" in out
    assert "ada@example.com" not in out


def test_users_list_never_creates_a_database(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    status, _, err = run(capsys, "users", "list", "--db", str(db))
    assert status == cli.EXIT_DATABASE
    assert "no database at" in err
    assert not db.exists()


def test_users_list_walks_more_than_a_page(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    with open_db(db) as core:
        for i in range(130):
            core.users.create(SYSTEM, email=f"user{i}@example.com")
    status, out, _ = run(capsys, "users", "list", "--db", str(db), "--json")
    assert status == 0
    ids = [json.loads(line)["id"] for line in out.splitlines()]
    assert ids == list(range(1, 131))


# -- import ---------------------------------------------------------------------------------


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text(
        "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in records)
    )
    return path


def test_import_reports_created_skipped_and_failed_by_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, populated: Path
) -> None:
    source = write_jsonl(
        tmp_path / "users.jsonl",
        [
            {"email": "legacy@example.com", "password_hash": django_hash(LEGACY_PASSWORD)},
            {"email": "not-an-email", "password": PASSWORD},
            "{not json",
            "",
            {"email": "ada@example.com"},
            {"email": "new@example.com", "roles": ["admin"], "name": "New"},
            ["a list"],
            {"email": "x@example.com", "roles": ["wizard"]},
            {"email": "y@example.com", "password_hash": "md5$whatever"},
        ],
    )
    status, out, err = run(capsys, "import", str(source), "--db", str(populated))
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == "created 2, skipped 1 (already exist), failed 5"
    assert lines[1:] == [
        "line 2: email: must be a valid email address",
        "line 3: is not valid JSON",
        "line 7: is not a JSON object",
        "line 8: roles: unknown role 'wizard'",
        "line 9: password_hash: is not a supported password hash format",
    ]
    assert PASSWORD not in out + err
    with open_db(populated) as core:
        assert core.auth.login("legacy@example.com", LEGACY_PASSWORD).token_type == "bearer"
        new = core.users.get_by_email(SYSTEM, "new@example.com")
        assert (new.roles, new.name) == (frozenset({"admin"}), "New")


def test_import_reads_csv_with_a_header(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db: Path
) -> None:
    source = tmp_path / "users.csv"
    source.write_text(
        "\ufeffemail,username,name,roles,password_hash\n"
        f'ada@example.com,ada,"Lovelace, Ada",admin;user,{django_hash(LEGACY_PASSWORD)}\n'
        "bob@example.com,,,,\n"
        "\n"
        "carol@example.com,carol,Carol,user,x,extra\n"
    )
    status, out, _ = run(capsys, "import", str(source), "--db", str(db), "--batch-size", "1")
    assert status == 1
    assert out.splitlines() == [
        "created 2, skipped 0 (already exist), failed 1",
        "line 5: has more cells than the header",
    ]
    with open_db(db) as core:
        ada = core.users.get_by_email(SYSTEM, "ada@example.com")
        assert (ada.username, ada.name, ada.roles) == (
            "ada",
            "Lovelace, Ada",
            frozenset({"admin", "user"}),
        )
        assert core.users.get_by_email(SYSTEM, "bob@example.com").username is None
        assert core.auth.login("ada", LEGACY_PASSWORD).token_type == "bearer"


def test_import_refuses_a_csv_header_it_does_not_know(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db: Path
) -> None:
    source = tmp_path / "users.csv"
    source.write_text("mail,login\nada@example.com,ada\n")
    status, _, err = run(capsys, "import", str(source), "--db", str(db))
    assert status == 2
    assert "unknown: login, mail" in err


def test_import_all_good_exits_0_and_shows_progress_when_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db: Path
) -> None:
    source = write_jsonl(
        tmp_path / "users.jsonl",
        [{"email": f"user{i}@example.com", "password_hash": django_hash("x")} for i in range(50)],
    )
    status, out, err = run(capsys, "import", str(source), "--db", str(db), "--progress")
    assert status == 0
    assert out == "created 50, skipped 0 (already exist), failed 0\n"
    assert "importing [" in err
    assert "100%" in err
    assert err.endswith("\n")


def test_import_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    with_stdin(monkeypatch, json.dumps({"email": "ada@example.com"}) + "\n")
    status, out, err = run(
        capsys, "import", "-", "--format", "jsonl", "--db", str(db), "--no-progress"
    )
    assert status == 0
    assert out.startswith("created 1,")
    assert "importing" not in err


def test_import_of_a_missing_file_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db: Path
) -> None:
    status, _, err = run(capsys, "import", str(tmp_path / "nope.jsonl"), "--db", str(db))
    assert status == 2
    assert "cannot read" in err


def test_import_shows_at_most_fifty_failures(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db: Path
) -> None:
    source = write_jsonl(tmp_path / "bad.jsonl", ["nope"] * 60)
    status, out, _ = run(capsys, "import", str(source), "--db", str(db))
    assert status == 1
    assert out.splitlines()[-1] == "... and 10 more"


# -- migrate ----------------------------------------------------------------------------------


def test_migrate_creates_then_reports_the_schema_version(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    status, out, _ = run(capsys, "migrate", "--db", str(db))
    assert status == 0
    assert out.startswith(f"{db}: created at schema version ")
    version = int(out.rsplit(" ", 1)[1])
    status, out, _ = run(capsys, "migrate", "--db", f"sqlite:///{db}")
    assert status == 0
    assert out == f"{db}: schema version {version} (up to date)\n"
    with open_db(db) as core:
        assert {role.name for role in core.roles.list(SYSTEM)} == {"admin", "user"}


def test_migrate_refuses_a_file_that_is_not_a_usercore_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE things (id INTEGER)")
    connection.commit()
    connection.close()
    status, _, err = run(capsys, "migrate", "--db", str(other))
    assert status == 1
    assert "not a usercore database" in err


# -- the serving key ------------------------------------------------------------------------------


def test_the_key_is_generated_once_beside_the_database(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    monkeypatch.delenv(cli.SECRET_KEY_ENV, raising=False)
    key = cli.serving_key(f"sqlite:///{db}")
    key_file = db.with_suffix(".key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key is not None
    assert key_file.read_text().strip() == key
    assert "generated a signing key" in capsys.readouterr().err
    assert cli.serving_key(f"sqlite:///{db}") == key
    assert capsys.readouterr().err == ""


def test_a_readable_key_file_is_warned_about(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    monkeypatch.delenv(cli.SECRET_KEY_ENV, raising=False)
    key_file = db.with_suffix(".key")
    key_file.write_text("k" * 48 + "\n")
    os.chmod(key_file, 0o644)
    assert cli.serving_key(f"sqlite:///{db}") == "k" * 48
    assert "readable by other users" in capsys.readouterr().err


def test_the_environment_key_wins_and_must_be_long_enough(
    monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    monkeypatch.setenv(cli.SECRET_KEY_ENV, "e" * 40)
    assert cli.serving_key(f"sqlite:///{db}") == "e" * 40
    assert not db.with_suffix(".key").exists()
    monkeypatch.setenv(cli.SECRET_KEY_ENV, "short")
    with pytest.raises(cli.CommandError, match="at least 32 bytes") as raised:
        cli.serving_key(f"sqlite:///{db}")
    assert raised.value.status == 2


def test_postgres_needs_the_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.SECRET_KEY_ENV, raising=False)
    with pytest.raises(cli.CommandError, match=cli.SECRET_KEY_ENV):
        cli.serving_key("postgresql://user@localhost/users")
    assert cli.serving_key("memory://") is None
