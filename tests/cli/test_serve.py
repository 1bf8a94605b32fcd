"""``usercore serve``: what it hands to uvicorn, and what it refuses before that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from usercore import cli

from .conftest import Runner

uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    monkeypatch.setenv(cli.SECRET_KEY_ENV, "s" * 40)
    return calls


def test_no_proxy_is_trusted_by_default(
    run: Runner, db: Path, served: list[dict[str, Any]]
) -> None:
    status, _, err = run("serve", "--db", str(db))
    assert status == 0, err
    assert served[0]["proxy_headers"] is False
    assert served[0]["forwarded_allow_ips"] == ""


def test_named_proxies_are_trusted(run: Runner, db: Path, served: list[dict[str, Any]]) -> None:
    status, _, _ = run("serve", "--db", str(db), "--forwarded-allow-ips", "10.0.0.1,10.0.0.2")
    assert status == 0
    assert served[0]["proxy_headers"] is True
    assert served[0]["forwarded_allow_ips"] == "10.0.0.1,10.0.0.2"


def test_serve_accepts_memory_and_creates_a_new_file(
    run: Runner, tmp_path: Path, served: list[dict[str, Any]]
) -> None:
    assert run("serve", "--db", "memory://")[0] == 0
    assert run("serve", "--db", ":memory:")[0] == 0
    fresh = tmp_path / "fresh.db"
    assert run("serve", "--db", str(fresh))[0] == 0
    assert fresh.exists()
    assert len(served) == 3


def test_web_options_reach_the_app(run: Runner, db: Path, served: list[dict[str, Any]]) -> None:
    """--cors-origin, --cors-allow-credentials, --no-docs and --docs-ui shape the served app."""
    from fastapi.testclient import TestClient

    origin = "https://app.example.com"
    assert 0 == run("serve", "--db", str(db))[0]
    assert 0 == run("serve", "--db", str(db), "--docs-ui")[0]
    argv = ("--cors-origin", origin, "--cors-allow-credentials", "--no-docs")
    assert 0 == run("serve", "--db", str(db), *argv)[0]
    default, with_ui, locked_down = (TestClient(call["app"]) for call in served)
    assert 200 == default.get("/openapi.json").status_code
    assert 404 == default.get("/docs").status_code
    assert 200 == with_ui.get("/docs").status_code
    assert 404 == locked_down.get("/openapi.json").status_code
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    answer = locked_down.options("/api/v1/auth/login", headers=preflight)
    assert answer.headers.get("access-control-allow-origin") == origin
    assert answer.headers.get("access-control-allow-credentials") == "true"
    refused = default.options("/api/v1/auth/login", headers=preflight)
    assert refused.headers.get("access-control-allow-origin") is None


def test_profiles_are_listed_with_their_base_path_and_document(run: Runner) -> None:
    status, out, _ = run("serve", "--list-profiles")
    assert status == 0
    rows = [line.split("\t") for line in out.splitlines()]
    assert [row[:2] for row in rows] == [
        ["v1", "/api/v1"],
        ["classic", "/"],
        ["ums", "/"],
        ["rbac", "/api"],
        ["rails", "/api/v1"],
    ]
    assert rows[3][2].startswith("003_")


def test_profiles_reach_the_app_and_clashing_ones_are_refused(
    run: Runner, db: Path, served: list[dict[str, Any]]
) -> None:
    from fastapi.testclient import TestClient

    assert 0 == run("serve", "--db", str(db), "--profile", "rbac", "--profile", "classic")[0]
    paths = TestClient(served[0]["app"]).get("/openapi.json").json()["paths"]
    assert {"/api/auth/login", "/login", "/users"} <= set(paths)
    assert "/api/v1/users" not in paths
    status, _, err = run("serve", "--db", str(db), "--profile", "v1", "--profile", "rails")
    assert status == cli.EXIT_USAGE
    assert "'v1' and 'rails' both serve" in err
    status, _, err = run("serve", "--db", str(db), "--profile", "soap")
    assert (status, "unknown API profile 'soap'" in err) == (cli.EXIT_USAGE, True)
    assert len(served) == 1
