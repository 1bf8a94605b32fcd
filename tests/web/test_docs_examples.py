"""The Python examples of docs/http.md run, and do what the page says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "http.md"
MARKER = "<!-- example: tests/web/test_docs_examples.py runs this block -->"
BLOCK = re.compile(re.escape(MARKER) + r"\n```python\n(.*?)```", re.DOTALL)


def examples() -> list[str]:
    found = BLOCK.findall(DOCS.read_text(encoding="utf-8"))
    assert len(found) == 3
    return found


def run(index: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(examples()[index], f"docs/http.md example {index}", "exec"), namespace)  # noqa: S102
    return namespace


def test_the_fastapi_owner_example_protects_notes_by_owner() -> None:
    from fastapi.testclient import TestClient

    namespace = run(0)
    core, client = namespace["core"], TestClient(namespace["app"])
    ada = core.users.register(email="ada@example.com", password="correct horse battery")
    core.users.register(email="bob@example.com", password="correct horse battery")
    token = core.auth.login("ada@example.com", "correct horse battery").access_token
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/users/{ada.id}/notes", headers=headers).json()["owner"] == ada.id
    assert client.get(f"/users/{ada.id + 1}/notes", headers=headers).status_code == 403
    assert client.get("/hello").json() == {"hello": "stranger"}
    assert client.get("/hello", headers=headers).json() == {"hello": ada.id}


def test_the_flask_owner_example_protects_notes_by_owner() -> None:
    namespace = run(1)
    core, client = namespace["core"], namespace["app"].test_client()
    ada = core.users.register(email="ada@example.com", password="correct horse battery")
    token = core.auth.login("ada@example.com", "correct horse battery").access_token
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/users/{ada.id}/notes", headers=headers).json["by"] == ada.id
    assert client.get(f"/users/{ada.id + 1}/notes", headers=headers).status_code == 403
    assert client.get(f"/users/{ada.id}/notes").status_code == 401


@pytest.mark.parametrize("origin", ["https://app.example.com", "https://evil.example"])
def test_the_cors_and_sessions_example_answers_only_its_origin(origin: str) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(run(2)["app"])
    reply = client.options(
        "/api/v1/auth/login",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    allowed = origin == "https://app.example.com"
    assert reply.status_code == (204 if allowed else 403)
    assert (reply.headers.get("access-control-allow-origin") == origin) is allowed
