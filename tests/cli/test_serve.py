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
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
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
