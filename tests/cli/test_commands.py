"""``usercore users …``, ``roles …``, ``permissions …``, ``api-keys …``, ``purge``:
each acts as the system principal and changes only what it says."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from usercore import SYSTEM, AuthenticationError, TokenError, UserStatus, cli

from .conftest import PASSWORD, Runner, open_db

NEW_PASSWORD = "a much better passphrase 42"


@pytest.mark.parametrize("ref", ["2", "ada@example.com", "ADA@example.com", "ada", "Ada"])
def test_users_show_finds_an_account_by_id_email_or_username(
    run: Runner, db: Path, ref: str
) -> None:
    status, out, _ = run("users", "show", ref, "--db", str(db), "--json")
    assert status == 0
    shown = json.loads(out)
    assert (shown["id"], shown["email"], shown["name"]) == (2, "ada@example.com", "Ada Lovelace")
    assert "password" not in out


def test_users_show_prints_fields_and_never_the_hash(run: Runner, db: Path) -> None:
    status, out, _ = run("users", "show", "ada", "--db", str(db))
    assert status == 0
    assert "email:" in out
    assert "ada@example.com" in out
    assert "api keys:        0 active" in out
    assert "argon2" not in out


@pytest.mark.parametrize("ref", ["99", "nobody@example.com", "nobody"])
def test_an_unknown_user_is_one_line_and_exit_1(run: Runner, db: Path, ref: str) -> None:
    status, out, err = run("users", "show", ref, "--db", str(db))
    assert (status, out) == (1, "")
    assert err == f"usercore: error: no user {ref!r}\n"


def test_disable_then_enable(run: Runner, db: Path) -> None:
    with open_db(db) as core:
        core.auth.login("ada", PASSWORD)
    status, out, _ = run("users", "disable", "ada", "--db", str(db))
    assert (status, out) == (0, "user #2 ada@example.com is inactive\n")
    with open_db(db) as core:
        assert core.users.get(SYSTEM, 2).status is UserStatus.INACTIVE
        with pytest.raises(AuthenticationError):
            core.auth.login("ada", PASSWORD)
    assert run("users", "enable", "2", "--db", str(db))[0] == 0
    with open_db(db) as core:
        assert core.users.get(SYSTEM, 2).status is UserStatus.ACTIVE
        assert core.auth.login("ada", PASSWORD).token_type == "bearer"


def test_delete_needs_yes(run: Runner, db: Path) -> None:
    status, _, err = run("users", "delete", "bob@example.com", "--db", str(db))
    assert status == 2
    assert "--yes" in err
    with open_db(db) as core:
        assert core.users.get(SYSTEM, 3).email == "bob@example.com"
    status, out, _ = run("users", "delete", "bob@example.com", "--yes", "--db", str(db))
    assert (status, out) == (0, "deleted user #3 bob@example.com\n")
    with open_db(db) as core:
        assert [user.id for user in core.users.iter_all(SYSTEM)] == [1, 2]


def test_set_password_from_stdin_revokes_sessions(run: Runner, db: Path) -> None:
    with open_db(db) as core:
        pair = core.auth.login("ada", PASSWORD)
    status, out, err = run(
        "users", "set-password", "ada", "--password-stdin", "--db", str(db), stdin=NEW_PASSWORD
    )
    assert status == 0, err
    assert "sessions were revoked" in out
    assert NEW_PASSWORD not in out + err
    with open_db(db) as core:
        assert core.auth.login("ada", NEW_PASSWORD).token_type == "bearer"
        with pytest.raises(TokenError):
            core.auth.refresh(pair.refresh_token)


def test_set_password_applies_the_policy(run: Runner, db: Path) -> None:
    status, _, err = run(
        "users", "set-password", "ada", "--password-stdin", "--db", str(db), stdin="short\n"
    )
    assert status == 1
    assert "new_password" in err
    assert "the password was not changed" in err
    with open_db(db) as core:
        assert core.auth.login("ada", PASSWORD).token_type == "bearer"


def test_set_password_without_a_terminal_needs_password_stdin(run: Runner, db: Path) -> None:
    status, _, err = run("users", "set-password", "ada", "--db", str(db), stdin="")
    assert status == 2
    assert "--password-stdin" in err


def test_users_roles_shows_sets_adds_and_removes(run: Runner, db: Path) -> None:
    assert run("users", "roles", "ada", "--db", str(db))[1] == "user #2 ada@example.com: user\n"
    status, out, _ = run("users", "roles", "ada", "--add", "admin", "--db", str(db))
    assert (status, out) == (0, "user #2 ada@example.com: admin, user\n")
    status, out, _ = run("users", "roles", "ada", "--remove", "user", "--db", str(db))
    assert out == "user #2 ada@example.com: admin\n"
    status, out, _ = run("users", "roles", "ada", "--set", "user", "--db", str(db))
    assert out == "user #2 ada@example.com: user\n"
    status, _, err = run("users", "roles", "ada", "--add", "wizard", "--db", str(db))
    assert status == 1
    assert "unknown role 'wizard'" in err
    with open_db(db) as core:
        assert core.users.get(SYSTEM, 2).roles == frozenset({"user"})


def test_roles_create_update_list_delete(run: Runner, db: Path) -> None:
    status, out, err = run(
        "roles", "create", "editor", "--permission", "users:read,roles:read",
        "--inherits", "user", "--description", "Edits", "--db", str(db),
    )  # fmt: skip
    assert status == 0, err
    assert out.startswith("created role editor")
    status, _, err = run("roles", "update", "editor", "--grant", "users:update", "--db", str(db))
    assert status == 0, err
    status, _, _ = run("roles", "update", "editor", "--revoke", "roles:read", "--db", str(db))
    status, out, _ = run("roles", "list", "--json", "--db", str(db))
    roles = {role["name"]: role for role in map(json.loads, out.splitlines())}
    assert set(roles) == {"admin", "editor", "user"}
    assert roles["editor"]["permissions"] == ["users:read", "users:update"]
    assert roles["editor"]["inherits"] == ["user"]
    assert run("users", "roles", "ada", "--add", "editor", "--db", str(db))[0] == 0
    status, _, err = run("roles", "delete", "editor", "--db", str(db))
    assert status == 1
    assert "in use" in err
    status, out, _ = run("roles", "delete", "editor", "--force", "--db", str(db))
    assert (status, out) == (0, "deleted role editor\n")
    with open_db(db) as core:
        assert core.users.get(SYSTEM, 2).roles == frozenset({"user"})


def test_roles_refuse_unknown_permissions_and_builtins(run: Runner, db: Path) -> None:
    status, _, err = run("roles", "create", "x", "--permission", "nope:read", "--db", str(db))
    assert status == 1
    assert "the role was not created" in err
    status, _, err = run("roles", "update", "admin", "--grant", "users:read", "--db", str(db))
    assert status == 1
    status, _, err = run("roles", "delete", "user", "--db", str(db))
    assert status == 1
    assert "built-in" in err


def test_permissions_add_grants_an_application_permission(run: Runner, db: Path) -> None:
    assert run("roles", "create", "author", "--db", str(db))[0] == 0
    status, out, err = run(
        "permissions", "add", "posts:publish", "--role", "author", "--db", str(db)
    )
    assert status == 0, err
    assert "posts:publish" in out
    status, out, _ = run("permissions", "list", "--json", "--db", str(db))
    names = [json.loads(line)["name"] for line in out.splitlines()]
    assert "posts:publish" in names
    assert "users:read" in names
    # A later command knows it from the role, so the role stays editable.
    status, _, err = run("roles", "update", "author", "--grant", "users:read", "--db", str(db))
    assert status == 0, err
    status, _, err = run("permissions", "add", "posts:*", "--role", "author", "--db", str(db))
    assert status == 1
    assert "the permission was not added" in err


def test_api_keys_list_and_revoke(run: Runner, db: Path) -> None:
    with open_db(db) as core:
        record, text = core.api_keys.create(SYSTEM, 2, name="deploy", expires_in=timedelta(days=1))
    status, out, _ = run("api-keys", "list", "ada", "--db", str(db))
    assert status == 0
    assert "deploy" in out
    assert "active" in out
    assert text not in out
    status, out, _ = run("api-keys", "revoke", str(record.id), "--db", str(db))
    assert (status, out) == (0, f"revoked API key #{record.id}\n")
    status, out, _ = run("api-keys", "list", "ada", "--json", "--db", str(db))
    assert json.loads(out)["revoked_at"] is not None
    status, _, _err = run("api-keys", "revoke", "999", "--db", str(db))
    assert status == 1


def test_purge_forgets_expired_tokens(run: Runner, db: Path) -> None:
    from datetime import UTC, datetime

    from usercore import Settings, UserCore

    month_ago = datetime.now(UTC) - timedelta(days=30)
    with UserCore.open(
        f"sqlite:///{db}", settings=Settings(secret_key="k" * 40), clock=lambda: month_ago
    ) as core:
        core.auth.login("ada", PASSWORD)  # its refresh token expired two weeks ago
    status, out, _ = run("purge", "--db", str(db))
    assert status == 0
    purged = int(out.split()[1])
    assert purged >= 1
    assert run("purge", "--db", str(db))[1] == "purged 0 expired records\n"


def test_purge_counts_what_went(run: Runner, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from usercore import UserCore

    monkeypatch.setattr(UserCore, "purge_expired", lambda self: 1)
    assert run("purge", "--db", str(db))[1] == "purged 1 expired record\n"


def every_command() -> list[list[str]]:
    import argparse

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> list[list[str]]:
        found = [path]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += walk(sub, [*path, name])
        return found

    return walk(cli.build_parser(), [])


@pytest.mark.parametrize("path", every_command(), ids=" ".join)
def test_every_command_has_help(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([*path, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: usercore {' '.join(path)}".rstrip())


def test_accounts_without_an_email_are_listed_shown_and_deleted_by_username(
    run: Runner, db: Path
) -> None:
    with open_db(db) as core:
        core.users.create(SYSTEM, username="svc-report", password=PASSWORD)
    status, out, _ = run("users", "list", "--db", str(db))
    assert status == 0
    assert any("svc-report" in line and " - " in line for line in out.splitlines())
    status, out, _ = run("users", "show", "svc-report", "--db", str(db), "--json")
    assert (status, json.loads(out)["email"]) == (0, None)
    status, out, _ = run("users", "delete", "svc-report", "--yes", "--db", str(db))
    assert status == 0
    assert "svc-report" in out
