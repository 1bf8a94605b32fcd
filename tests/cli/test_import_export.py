"""``usercore export`` and ``usercore import``: round trips, parallel hashing,
formats, progress, and an import the store stops half-way."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import attrs
import pytest

from usercore import SYSTEM, CustomField, Settings, UserCore, UserStatus, cli
from usercore.services.users import UserService

from .conftest import PASSWORD, Runner, open_db


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_export_round_trips_through_import(run: Runner, db: Path, tmp_path: Path) -> None:
    dump = tmp_path / "users.jsonl"
    status, out, err = run("export", "--output", str(dump), "--db", str(db))
    assert (status, out) == (0, "")
    assert err == "usercore: exported 3 users\n"
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    records = [json.loads(line) for line in dump.read_text().splitlines()]
    assert records[1] == {
        "email": "ada@example.com",
        "username": "Ada",
        "name": "Ada Lovelace",
        "roles": ["user"],
        "status": "active",
        "password_hash": records[1]["password_hash"],
    }
    assert records[1]["password_hash"].startswith("$argon2id$")
    assert "password_hash" not in records[0]  # created without a password
    copy = tmp_path / "copy.db"
    status, out, _ = run("import", str(dump), "--db", str(copy))
    assert (status, out) == (0, "created 3, skipped 0 (already exist), failed 0\n")
    with open_db(db) as original, open_db(copy) as imported:
        before = list(original.users.iter_all(SYSTEM))
        after = list(imported.users.iter_all(SYSTEM))
        fields = ("email", "username", "name", "roles", "status", "password_hash")
        assert [[getattr(u, f) for f in fields] for u in after] == [
            [getattr(u, f) for f in fields] for u in before
        ]
        assert imported.auth.login("ada", PASSWORD).token_type == "bearer"
        assert after[2].status is UserStatus.INACTIVE
    # Exporting to standard output gives the same lines; an existing file is not overwritten.
    status, out, _ = run("export", "--db", str(db))
    assert out == dump.read_text()
    status, _, err = run("export", "--output", str(dump), "--db", str(db))
    assert status == cli.EXIT_USAGE
    assert "must not exist" in err


def test_accounts_without_an_email_and_verified_addresses_survive_the_round_trip(
    run: Runner, db: Path, tmp_path: Path
) -> None:
    """An account known by its username alone and a verified address come back
    as they were (before, the first was refused by import and every address
    came back unverified)."""
    with open_db(db) as core:
        core.users.create(SYSTEM, username="nomail", password=PASSWORD)
        ada = core.users.get_by_email(SYSTEM, "ada@example.com")
        with core.store.transaction() as tx:
            tx.users.update(attrs.evolve(tx.users.get(ada.id), email_verified=True))
    dump = tmp_path / "users.jsonl"
    assert run("export", "--output", str(dump), "--db", str(db))[0] == 0
    records = [json.loads(line) for line in dump.read_text().splitlines()]
    assert records[1]["email_verified"] is True
    assert "email_verified" not in records[0]
    assert "email" not in records[3]
    assert records[3]["username"] == "nomail"
    copy = tmp_path / "copy.db"
    status, out, _ = run("import", str(dump), "--db", str(copy))
    assert (status, out) == (0, "created 4, skipped 0 (already exist), failed 0\n")
    with open_db(db) as original, open_db(copy) as imported:
        fields = ("email", "email_verified", "username", "name", "roles", "status")
        fields += ("password_hash",)
        before = [[getattr(u, f) for f in fields] for u in original.users.iter_all(SYSTEM)]
        after = [[getattr(u, f) for f in fields] for u in imported.users.iter_all(SYSTEM)]
        assert after == before
        assert imported.auth.login("nomail", PASSWORD).token_type == "bearer"


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"name": "Nobody"}, "email", "is required"),
        ({"email": "a@example.com", "email_verified": "yes"}, "email_verified", "true or false"),
        ({"username": "solo", "email_verified": True}, "email_verified", "needs an email"),
    ],
)
def test_import_refuses_an_unidentified_record_and_a_bad_verified_flag(
    record: dict[str, object], field: str, message: str
) -> None:
    with UserCore.open("memory://") as core:
        report = core.users.import_users(SYSTEM, [record])
        assert report.created == 0
        ((index, error),) = report.errors
        assert index == 0
        assert message in " ".join(error.errors[field])
        assert list(core.users.iter_all(SYSTEM)) == []


def test_a_csv_import_may_name_accounts_by_username_and_carry_verified_flags(
    run: Runner, tmp_path: Path
) -> None:
    source = tmp_path / "users.csv"
    source.write_text(
        "username,email,email_verified,password\n"
        f"solo,,,{PASSWORD}\n"
        f"ada,ada@example.com,TRUE,{PASSWORD}\n"
        f"bob,bob@example.com,false,{PASSWORD}\n"
    )
    copy = tmp_path / "copy.db"
    status, out, _ = run("import", str(source), "--db", str(copy), "--jobs", "1")
    assert (status, out) == (0, "created 3, skipped 0 (already exist), failed 0\n")
    with open_db(copy) as core:
        users = {u.username: u for u in core.users.iter_all(SYSTEM)}
        assert users["solo"].email is None
        assert (users["ada"].email_verified, users["bob"].email_verified) == (True, False)


WEAK = "password"


def plain_records() -> list[dict[str, object]]:
    return [
        {"email": "one@example.com", "username": "one", "password": "first good passphrase 1"},
        {"email": "two@example.com", "password": WEAK},  # against the policy
        {"email": "bad-email", "password": "second good passphrase 2"},
        {"email": "three@example.com", "password": "third good passphrase 3", "roles": ["admin"]},
        {"email": "four@example.com", "password": "x" * 5, "password_hash": "$argon2id$x"},
        {"email": "five@example.com", "name": "No Password"},
        {"email": "one@example.com", "password": "duplicate passphrase 11"},
    ]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_plain_passwords_import_alike_with_and_without_the_pool(
    run: Runner, tmp_path: Path, jobs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[int] = []
    submit = cli.HashPool.submit

    def spy(self: cli.HashPool, records: list[dict[str, object]]) -> object:
        used.append(self.jobs)
        return submit(self, records)

    monkeypatch.setattr(cli.HashPool, "submit", spy)
    source = write_jsonl(tmp_path / "plain.jsonl", plain_records())
    db = tmp_path / "users.db"
    status, out, err = run(
        "import", str(source), "--db", str(db), "--jobs", jobs, "--batch-size", "3"
    )
    assert status == 1
    assert used == [int(jobs)] * 3
    lines = out.splitlines()
    assert lines[0] == "created 3, skipped 1 (already exist), failed 3"
    assert lines[1].startswith("line 2: password: ")
    assert lines[2] == "line 3: email: must be a valid email address"
    assert lines[3].startswith("line 5: password: ")
    assert "passphrase" not in out + err
    with open_db(db) as core:
        assert core.auth.login("one", "first good passphrase 1").token_type == "bearer"
        assert core.auth.login("three@example.com", "third good passphrase 3").token_type
        hashes = [user.password_hash for user in core.users.iter_all(SYSTEM)]
        assert [h[:10] if h else h for h in hashes] == ["$argon2id$", "$argon2id$", None]


def test_the_pool_hashes_in_worker_processes(tmp_path: Path) -> None:
    pool = cli.HashPool(open_db(tmp_path / "x.db").settings, 2)
    try:
        records = [{"email": "a@example.com", "password": "a good long passphrase"}]
        prepared = pool.submit(records)()
        assert pool._executor is not None
        assert set(prepared[0]) == {"email", "password_hash"}
        assert prepared[0]["password_hash"].startswith("$argon2id$")
        assert records[0]["password"] == "a good long passphrase"  # the input is untouched
    finally:
        pool.close()


@pytest.mark.parametrize("name", ["users.txt", "users", "users.xlsx"])
def test_an_unknown_extension_needs_format(run: Runner, tmp_path: Path, name: str) -> None:
    source = tmp_path / name
    source.write_text('{"email": "a@example.com"}\n')
    db = tmp_path / "users.db"
    status, out, err = run("import", str(source), "--db", str(db))
    assert (status, out) == (cli.EXIT_USAGE, "")
    assert "give --format jsonl or --format csv" in err
    assert not db.exists()
    status, out, _ = run("import", str(source), "--db", str(db), "--format", "jsonl")
    assert out.startswith("created 1,")


def test_standard_input_needs_format(run: Runner, tmp_path: Path) -> None:
    status, _, err = run("import", "-", "--db", str(tmp_path / "u.db"), stdin="{}\n")
    assert status == cli.EXIT_USAGE
    assert "--format" in err


def test_progress_shows_rate_and_eta_and_ends_the_line(
    run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_jsonl(
        tmp_path / "users.jsonl", [{"email": f"u{i}@example.com"} for i in range(20)]
    )
    status, _, err = run("import", str(source), "--db", str(tmp_path / "u.db"), "--progress")
    assert status == 0
    last = err.rstrip("\n").rsplit("\r", 1)[-1]
    assert "100%" in last
    assert "lines/s" in last
    assert "ETA 0:00" in last
    assert err.endswith("\n")
    progress = cli.Progress(1000, enabled=False)
    progress._started -= 10  # ten seconds in, a quarter done
    progress.update(250, 500)
    assert progress.text(progress._started + 10).endswith("500 lines  50 lines/s  ETA 0:30")


def test_an_import_the_store_stops_reports_what_it_did(
    run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_jsonl(
        tmp_path / "users.jsonl",
        [{"email": f"u{i}@example.com"} for i in range(5)] + [{"email": "bad"}]
        + [{"email": f"v{i}@example.com"} for i in range(10)],
    )  # fmt: skip
    real = UserService.import_users
    calls: list[int] = []

    def disk_fills(self: UserService, *args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(UserService, "import_users", disk_fills)
    db = tmp_path / "users.db"
    status, out, err = run("import", str(source), "--db", str(db), "--batch-size", "4")
    assert status == cli.EXIT_DATABASE
    assert out.splitlines() == [
        "created 7, skipped 0 (already exist), failed 1",
        "line 6: email: must be a valid email address",
    ]
    assert err == (
        "usercore: error: the import stopped at line 9: database error: database or disk is "
        "full; the 7 accounts created before it are kept, nothing from line 9 on was written "
        "(run the import again: existing accounts are skipped)\n"
    )
    monkeypatch.setattr(UserService, "import_users", real)
    status, out, _ = run("import", str(source), "--db", str(db), "--batch-size", "4")
    assert out.splitlines()[0] == "created 8, skipped 7 (already exist), failed 1"


def test_an_import_into_a_read_only_database_ends_in_one_line(
    run: Runner, tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "check_sqlite", lambda *args, **kwargs: None)  # skip the probe
    source = write_jsonl(tmp_path / "users.jsonl", [{"email": "new@example.com"}])
    db.chmod(0o444)
    uri = f"file:{db}?mode=ro"
    monkeypatch.setattr(cli, "database_url", lambda value: f"sqlite:///{db}")
    real_connect = sqlite3.connect

    def read_only(database: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        if str(database) == str(db):
            kwargs["uri"] = True
            return real_connect(uri, *args, **kwargs)  # type: ignore[arg-type]
        return real_connect(database, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", read_only)
    try:
        status, _out, err = run("import", str(source), "--db", str(db))
    finally:
        db.chmod(0o644)
    assert status == cli.EXIT_DATABASE
    assert "Traceback" not in err
    assert err.startswith("usercore: error: ")
    assert err.count("\n") == 1


# -- custom fields --------------------------------------------------------------------

CUSTOM_FIELDS = (
    CustomField(name="tenant_id", required=True, registrable=True, indexed=True),
    CustomField(name="seats", type=int, validator=lambda seats: None),
    CustomField(name="beta", type=bool),
)
"""Read by ``--custom-fields tests.cli.test_import_export:CUSTOM_FIELDS``."""
SPEC = f"{__name__}:CUSTOM_FIELDS"


def test_custom_fields_round_trip_through_export_and_import(run: Runner, tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    settings = Settings(secret_key="k" * 40, custom_fields=CUSTOM_FIELDS)
    with UserCore.open(f"sqlite:///{source}", settings=settings) as core:
        core.users.create(
            SYSTEM, email="ada@example.com", custom_fields={"tenant_id": "acme", "seats": 3}
        )
    dump = tmp_path / "users.jsonl"
    assert run("export", "--custom-fields", SPEC, "-o", str(dump), "--db", str(source))[0] == 0
    record = json.loads(dump.read_text())
    assert (record["tenant_id"], record["seats"]) == ("acme", 3)
    assert "beta" not in record  # unset values are left out
    status, _, err = run("import", str(dump), "--custom-fields", SPEC, "--db", str(target))
    assert status == 0, err
    with UserCore.open(f"sqlite:///{target}", settings=settings) as core:
        (ada,) = core.users.list(SYSTEM, custom_fields={"tenant_id": "acme"}).items
    assert dict(ada.custom_fields) == {"tenant_id": "acme", "seats": 3, "beta": None}


def test_without_the_declaration_export_leaves_custom_fields_out(
    run: Runner, tmp_path: Path
) -> None:
    source = tmp_path / "source.db"
    settings = Settings(secret_key="k" * 40, custom_fields=CUSTOM_FIELDS)
    with UserCore.open(f"sqlite:///{source}", settings=settings) as core:
        core.users.create(SYSTEM, email="ada@example.com", custom_fields={"tenant_id": "acme"})
    status, out, _ = run("export", "--db", str(source))
    assert status == 0
    assert "tenant_id" not in json.loads(out)


def test_csv_import_converts_custom_columns_and_checks_each_record(
    run: Runner, tmp_path: Path
) -> None:
    target = tmp_path / "target.db"
    csv_file = tmp_path / "users.csv"
    csv_file.write_text(
        "email,tenant_id,seats,beta\n"
        "ada@example.com,acme,3,true\n"
        "bob@example.com,acme,many,false\n"
        "eve@example.com,,1,false\n"
    )
    status, out, _ = run("import", str(csv_file), "--custom-fields", SPEC, "--db", str(target))
    assert status == 1
    assert "line 3: seats: must be an integer" in out
    assert "line 4: tenant_id: is required" in out
    settings = Settings(secret_key="k" * 40, custom_fields=CUSTOM_FIELDS)
    with UserCore.open(f"sqlite:///{target}", settings=settings) as core:
        users = core.users.list(SYSTEM).items
    assert [(u.email, dict(u.custom_fields)) for u in users] == [
        ("ada@example.com", {"tenant_id": "acme", "seats": 3, "beta": True})
    ]


def test_an_unknown_custom_fields_spec_is_a_usage_error(run: Runner, db: Path) -> None:
    status, _, err = run("export", "--custom-fields", "no_such_module:X", "--db", str(db))
    assert status == 2
    assert "--custom-fields" in err
