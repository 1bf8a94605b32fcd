"""Document 004 (``/api/v1`` users with ``name``, ``role``, ``status``; Rails-style
errors), followed literally: the ``rails`` profile.  The document describes no
login; the profile serves the canonical ``/auth/*`` under ``/api/v1``."""

from __future__ import annotations

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api

PROFILE = "rails"
FIELDS = {"id", "name", "email", "role", "created_at", "updated_at", "status"}


def admin_token(api: Api) -> str:
    reply = api.post("/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert reply.status == 200
    token: str = reply.body["access_token"]
    return token


def test_create_update_delete_as_the_document_shows_them(api: Api) -> None:
    token = admin_token(api)
    created = api.post(
        "/api/v1/users",
        {"name": "Jane Smith", "email": "jane.smith@example.com", "role": "user"},
        token,
    )
    assert created.status in (200, 201)
    assert FIELDS <= set(created.body)
    assert isinstance(created.body["id"], int)
    assert (created.body["name"], created.body["role"], created.body["status"]) == (
        "Jane Smith",
        "user",
        "active",
    )
    user_id = created.body["id"]

    updated = api.put(f"/api/v1/users/{user_id}", {"name": "Jane Doe", "role": "admin"}, token)
    assert updated.status == 200
    assert (updated.body["name"], updated.body["email"], updated.body["role"]) == (
        "Jane Doe",
        "jane.smith@example.com",
        "admin",
    )

    deleted = api.delete(f"/api/v1/users/{user_id}", token)
    assert (deleted.status, deleted.body) == (200, {"success": True, "message": "User deleted"})
    missing = api.get(f"/api/v1/users/{user_id}", token)
    assert (missing.status, missing.body) == (
        404,
        {"error": "Not found", "message": "User not found"},
    )


def test_validation_errors(api: Api) -> None:
    token = admin_token(api)
    blank = api.post("/api/v1/users", {"role": "user"}, token)
    assert blank.status == 400
    assert blank.body == {
        "error": "Validation failed",
        "messages": {"name": ["can't be blank"], "email": ["can't be blank"]},
    }
    invalid = api.post("/api/v1/users", {"name": "X", "email": "not-an-email"}, token)
    assert invalid.status == 400
    assert invalid.body == {
        "error": "Validation failed",
        "messages": {"email": ["must be a valid email address"]},
    }
