"""``usercore serve --custom-fields MODULE:NAME``: every worker serves the
application's custom fields (validated, stored, answered, filterable)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from usercore import SYSTEM, cli

from .conftest import PASSWORD, Runner, open_db

pytest.importorskip("uvicorn")

ADMIN = {"email": "root@example.com", "password": "the admin's long passphrase"}
APP = """
from usercore import CustomField

FIELDS = (
    CustomField(name="tenant_id", required=True, registrable=True, indexed=True),
    CustomField(name="employee_no", unique=True, registrable=True),
)
"""


@pytest.mark.slow
def test_every_worker_serves_the_declared_custom_fields(tmp_path: Path) -> None:
    import httpx

    from tests.web.live import serving

    (tmp_path / "notesapp.py").write_text(APP, encoding="utf-8")
    db = tmp_path / "users.db"
    with open_db(db) as core:
        core.users.create(SYSTEM, roles=["admin"], **ADMIN)
    env = {**os.environ, cli.SECRET_KEY_ENV: "s" * 40}
    argv = ("--db", str(db), "--workers", "2", "--custom-fields", "notesapp:FIELDS")
    with serving(argv, env=env, workdir=tmp_path, log=tmp_path / "serve.log") as base:
        api = f"{base}/api/v1"
        schema = httpx.get(f"{base}/openapi.json", timeout=30).json()
        assert "tenant_id" in str(schema["components"]["schemas"])
        missing = httpx.post(
            f"{api}/auth/register", json={"email": "eve@example.com", "password": PASSWORD}
        )
        assert 400 == missing.status_code, missing.text
        for number, email in enumerate(("ada@example.com", "bob@example.com")):
            body = {"email": email, "password": PASSWORD, "tenant_id": "acme"}
            answer = httpx.post(
                f"{api}/auth/register", json={**body, "employee_no": f"E{number}"}, timeout=30
            )
            assert 201 == answer.status_code, answer.text
        taken = httpx.post(
            f"{api}/auth/register",
            json={
                "email": "cy@example.com",
                "password": PASSWORD,
                "tenant_id": "x",
                "employee_no": "E0",
            },
            timeout=30,
        )
        assert (409, "employee_no") == (
            taken.status_code,
            taken.json()["error"]["details"]["field"],
        )
        token = httpx.post(f"{api}/auth/login", json=ADMIN, timeout=30).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(10):  # new connections: the kernel spreads them over both workers
            listed = httpx.get(f"{api}/users", params={"tenant_id": "acme"}, headers=headers)
            assert 200 == listed.status_code, listed.text
            assert ["ada@example.com", "bob@example.com"] == sorted(
                user["email"] for user in listed.json()["items"]
            )


def test_a_bad_custom_field_declaration_stops_serve_with_one_line(
    run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status, _, err = run("serve", "--db", str(tmp_path / "u.db"), "--custom-fields", "nosuchmod:X")
    assert 2 == status
    assert "--custom-fields nosuchmod:X" in err
    assert 1 == len(err.strip().splitlines())
    assert not (tmp_path / "u.db").exists()


@pytest.mark.parametrize(
    ("module", "problem"),
    [
        ("x = (\n", "SyntaxError: '(' was never closed"),
        ("raise RuntimeError('the config needs DATABASE_URL')", "RuntimeError: the config needs"),
        ("import sys\nsys.exit(3)", "SystemExit: 3"),
    ],
)
def test_a_declaration_module_that_fails_to_import_stops_serve_with_one_line(
    run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, problem: str
) -> None:
    """The application's own import error is named, not shown as a traceback."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "brokenapp.py").write_text(module, encoding="utf-8")
    monkeypatch.delitem(sys.modules, "brokenapp", raising=False)
    status, _, err = run("serve", "--db", str(tmp_path / "u.db"), "--custom-fields", "brokenapp:X")
    assert 2 == status
    [line] = err.strip().splitlines()
    assert line.startswith("usercore: error: --custom-fields brokenapp:X: cannot load it: "), line
    assert problem in line
    assert not (tmp_path / "u.db").exists()
