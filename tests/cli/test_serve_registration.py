"""``usercore serve --permissions FILE``, ``--registration`` and
``--require-verified-email``: what reaches the served app, and what is refused
before anything is served."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from usercore import SYSTEM, cli

from .conftest import PASSWORD, Runner, open_db

uvicorn = pytest.importorskip("uvicorn")

with warnings.catch_warnings():
    # Starlette asks for httpx2, which is not a dependency; its TestClient works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

ADMIN = {"email": "root@example.com", "password": "the admin's long passphrase"}


@pytest.fixture
def admin_db(tmp_path: Path) -> Path:
    path = tmp_path / "users.db"
    with open_db(path) as core:
        core.users.create(SYSTEM, roles=["admin"], **ADMIN)
    return path


@pytest.fixture
def serve_and(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Callable[[TestClient], Any]], list[Any]]:
    """Run a check against the app uvicorn would have served, while it is up."""
    monkeypatch.setenv(cli.SECRET_KEY_ENV, "s" * 40)
    results: list[Any] = []

    def arrange(check: Callable[[TestClient], Any]) -> list[Any]:
        def run(app: Any, **_: Any) -> None:
            with TestClient(app) as client:
                results.append(check(client))

        monkeypatch.setattr(uvicorn, "run", run)
        return results

    return arrange


def permission_names(client: TestClient) -> dict[str, str]:
    token = client.post("/api/v1/auth/login", json=ADMIN).json()["access_token"]
    listed = client.get("/api/v1/permissions", headers={"Authorization": f"Bearer {token}"})
    return {item["name"]: item["description"] for item in listed.json()}


@pytest.mark.parametrize(
    "content",
    [
        {"reports:read": "Read reports", "reports:export": ""},
        ["reports:read", "reports:export"],
    ],
)
def test_serve_registers_the_permissions_of_the_file(
    run: Runner,
    admin_db: Path,
    tmp_path: Path,
    serve_and: Callable[..., list[Any]],
    content: Any,
) -> None:
    path = tmp_path / "permissions.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    results = serve_and(permission_names)
    for _ in range(2):  # idempotent: the second start registers nothing new
        status, _, err = run("serve", "--db", str(admin_db), "--permissions", str(path))
        assert 0 == status, err
    for names in results:
        assert {"reports:read", "reports:export"} <= set(names)
        assert "users:read" in names
    if isinstance(content, dict):
        assert "Read reports" == results[0]["reports:read"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "cannot read it"),
        ("{not json", "not valid JSON"),
        ("42", "must be a JSON list of names or an object of name: description"),
        ('["reports:read", 5]', "must be a JSON list of names"),
        ('{"reports:read": 5}', "must be a JSON list of names"),
        ('["*"]', "'*': name: register a concrete resource:action, not a wildcard"),
        ('["reports:read:own"]', "'reports:read:own': name: register resource:action"),
        ('["Reports"]', "'Reports': name: must look like resource:action"),
        ('{"reports": {"read": 1}}', "must be a JSON list of names or an object"),
        ('[["reports:read"]]', "must be a JSON list of names or an object"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON: nested too deeply"),
    ],
)
def test_a_bad_permissions_file_is_one_line_and_exit_2_before_serving(
    run: Runner,
    admin_db: Path,
    tmp_path: Path,
    serve_and: Callable[..., list[Any]],
    text: str | None,
    problem: str,
) -> None:
    path = tmp_path / "permissions.json"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    served = serve_and(permission_names)
    status, out, err = run("serve", "--db", str(admin_db), "--permissions", str(path))
    assert (cli.EXIT_USAGE, "") == (status, out)
    assert 1 == len(err.strip().splitlines()), err
    assert err.startswith(f"usercore: error: --permissions {path}: "), err
    assert problem in err
    assert [] == served


def test_registration_policy_options_reach_the_app(
    run: Runner, admin_db: Path, serve_and: Callable[..., list[Any]]
) -> None:
    def check(client: TestClient) -> tuple[int, int]:
        body = {"email": "ada@example.com", "password": PASSWORD}
        registered = client.post("/api/v1/auth/register", json=body).status_code
        return registered, client.post("/api/v1/auth/login", json=body).status_code

    results = serve_and(check)
    assert 0 == run("serve", "--db", str(admin_db), "--registration", "closed")[0]
    assert 0 == run("serve", "--db", str(admin_db), "--require-verified-email")[0]
    assert 0 == run("serve", "--db", str(admin_db))[0]
    closed, unverified, default = results
    assert (403, 401) == closed
    assert (201, 403) == unverified
    assert (409, 200) == default  # the account from the second run; open by default


@pytest.mark.slow
def test_every_worker_knows_the_permissions_of_the_file_and_those_registered_over_http(
    admin_db: Path, tmp_path: Path
) -> None:
    """With --workers 2 the permissions live in the database: the file's, stored
    once before the workers start, and one registered over HTTP by whichever
    worker took the request, are listed and grantable by every worker."""
    import os

    import httpx

    from tests.web.live import serving

    path = tmp_path / "permissions.json"
    path.write_text('{"reports:read": "Read reports"}', encoding="utf-8")
    env = {**os.environ, cli.SECRET_KEY_ENV: "s" * 40}
    argv = ("--db", str(admin_db), "--workers", "2", "--permissions", str(path))
    with serving(argv, env=env, workdir=tmp_path, log=tmp_path / "serve.log") as base:
        api = f"{base}/api/v1"
        token = httpx.post(f"{api}/auth/login", json=ADMIN, timeout=30).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        body = {"name": "reports:export", "description": "Export reports"}
        created = httpx.post(f"{api}/permissions", json=body, headers=headers, timeout=30)
        assert 201 == created.status_code, created.text
        for n in range(20):  # new connections: the kernel spreads them over both workers
            listed = httpx.get(f"{api}/permissions", headers=headers, timeout=30).json()
            assert {"reports:read", "reports:export"} <= {p["name"] for p in listed}
            role = {"name": f"analyst-{n}", "permissions": ["reports:read", "reports:export"]}
            answer = httpx.post(f"{api}/roles", json=role, headers=headers, timeout=30)
            assert 201 == answer.status_code, answer.text
    with open_db(admin_db) as core:  # and after the server is gone
        assert {"reports:read", "reports:export"} <= {p.name for p in core.permissions.list()}


def test_serve_mails_invitations_and_registration_takes_them(
    run: Runner, admin_db: Path, tmp_path: Path, serve_and: Callable[..., list[Any]]
) -> None:
    def invite(client: TestClient) -> int:
        token = client.post("/api/v1/auth/login", json=ADMIN).json()["access_token"]
        answer = client.post(
            "/api/v1/invitations",
            json={"email": "ada@example.com"},
            headers={"Authorization": f"Bearer {token}"},
        )
        return answer.status_code

    def accept(client: TestClient) -> tuple[int, int]:
        import email
        import re
        from urllib.parse import parse_qs, urlsplit

        [saved] = outbox.glob("*.eml")
        message = email.message_from_bytes(saved.read_bytes())
        text = message.get_payload(0).get_payload(decode=True)
        [link] = re.findall(r"https://app\.example/join\?\S+", text.decode())
        [token] = parse_qs(urlsplit(link).query)["token"]
        body = {"email": "ada@example.com", "password": PASSWORD, "invitation": token}
        registered = client.post("/api/v1/auth/register", json=body).status_code
        plain = {"email": "eve@example.com", "password": PASSWORD}
        return registered, client.post("/api/v1/auth/register", json=plain).status_code

    outbox = tmp_path / "outbox"
    argv = (
        *("serve", "--db", str(admin_db), "--registration", "invite"),
        *("--mail-url", f"file://{outbox}"),
        *("--reset-url", "https://app.example/reset?token={token}"),
        *("--verification-url", "https://app.example/verify?token={token}"),
        *("--invitation-url", "https://app.example/join?token={token}"),
    )
    serve_and(invite)
    assert 0 == run(*argv)[0]
    results = serve_and(accept)
    assert 0 == run(*argv)[0]
    assert [201, (201, 403)] == results  # invited; registered with it, refused without


def test_invite_only_serving_needs_an_invitation_page(run: Runner, admin_db: Path) -> None:
    status, _, err = run("serve", "--db", str(admin_db), "--registration", "invite")
    assert cli.EXIT_USAGE == status
    assert "--registration invite needs --invitation-url" in err


def test_a_description_the_registry_refuses_stops_serve_in_one_line(
    run: Runner, admin_db: Path, tmp_path: Path, serve_and: Callable[..., list[Any]]
) -> None:
    path = tmp_path / "permissions.json"
    path.write_text(json.dumps({"reports:read": "x" * 501}), encoding="utf-8")
    served = serve_and(permission_names)
    status, _, err = run("serve", "--db", str(admin_db), "--permissions", str(path))
    assert cli.EXIT_USAGE == status
    assert "'reports:read': description: must be at most 500 characters" in err
    assert [] == served


def test_a_file_the_stores_registry_has_no_room_for_stops_serve_in_one_line(
    run: Runner,
    admin_db: Path,
    tmp_path: Path,
    serve_and: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every name is valid, but the store's registry is bounded: exit 2, no traceback."""
    from usercore import policy

    monkeypatch.setattr(policy, "MAX_REGISTERED_PERMISSIONS", len(policy.BUILTIN_PERMISSIONS) + 1)
    path = tmp_path / "permissions.json"
    path.write_text(json.dumps(["reports:read", "reports:export"]), encoding="utf-8")
    served = serve_and(permission_names)
    status, out, err = run("serve", "--db", str(admin_db), "--permissions", str(path))
    assert (cli.EXIT_USAGE, "") == (status, out)
    assert [
        f"usercore: error: --permissions {path}: name: the registry holds at most "
        f"{policy.MAX_REGISTERED_PERMISSIONS} permissions"
    ] == err.strip().splitlines()
    assert [] == served
