"""Document 001 (User Management System: ``/users``, ``/auth/*``, ``name``), followed literally."""

from __future__ import annotations

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api

PROFILE = "ums"


def login(api: Api, email: str, password: str) -> str:
    reply = api.post("/auth/login", {"email": email, "password": password})
    assert reply.status == 200
    assert isinstance(reply.body, dict)
    token = reply.body["access_token"]  # "A JSON object containing an access token"
    assert isinstance(token, str)
    return token


def test_register_returns_a_token(api: Api) -> None:
    reply = api.post(
        "/auth/register",
        {"name": "Jane Doe", "email": "jane@example.com", "password": "correct horse staple 9"},
    )
    assert reply.status in (200, 201)
    assert isinstance(reply.body, dict)
    assert isinstance(reply.body["access_token"], str)
    me = api.get(f"/users/{reply.body['user']['id']}", reply.body["access_token"])
    assert me.status == 200
    assert me.body["name"] == "Jane Doe"
    login(api, "jane@example.com", "correct horse staple 9")


def test_register_without_email_is_400(api: Api) -> None:
    reply = api.post("/auth/register", {"name": "No Mail", "password": "a strong password 123"})
    assert reply.status == 400


def test_login_without_credentials_is_401(api: Api) -> None:
    assert api.post("/auth/login", {}).status == 401
    assert api.post("/auth/login", {"email": ADMIN_EMAIL}).status == 401
    assert api.post("/auth/login", {"email": ADMIN_EMAIL, "password": "wrong"}).status == 401


def test_the_user_endpoints_as_the_document_shows_them(api: Api) -> None:
    token = login(api, ADMIN_EMAIL, ADMIN_PASSWORD)
    created = api.post(
        "/users",
        {"name": "John Doe", "email": "john@example.com", "password": "a strong password 123"},
        token,
    )
    assert created.status == 201
    assert isinstance(created.body, dict)
    user_id = created.body["id"]
    assert created.body["name"] == "John Doe"

    for number in range(3):
        api.post(
            "/users",
            {
                "name": f"Page {number}",
                "email": f"page{number}@example.com",
                "password": "a strong password 123",
            },
            token,
        )
    page = api.get("/users?page=2&per_page=2", token)
    assert page.status == 200
    assert isinstance(page.body, list)  # "A JSON array of user objects"
    assert len(page.body) == 2
    assert int(page.headers["X-Total-Count"]) >= 5
    assert 'rel="next"' in page.headers["Link"]
    assert 'rel="prev"' in page.headers["Link"]
    assert isinstance(api.get("/users", token).body, list)

    one = api.get(f"/users/{user_id}", token)
    assert one.status == 200
    assert one.body["email"] == "john@example.com"

    updated = api.put(
        f"/users/{user_id}",
        {"name": "Johnny", "email": "johnny@example.com", "password": "a new password 1"},
        token,
    )
    assert updated.status == 200
    assert (updated.body["name"], updated.body["email"]) == ("Johnny", "johnny@example.com")
    login(api, "johnny@example.com", "a new password 1")

    deleted = api.delete(f"/users/{user_id}", token)
    assert deleted.status == 200
    assert isinstance(deleted.body, dict)  # "indicating whether the operation was successful"
    assert deleted.body["success"] is True
    assert api.get("/users/123456", token).status == 404


def test_create_needs_name_email_and_password(api: Api) -> None:
    token = login(api, ADMIN_EMAIL, ADMIN_PASSWORD)
    reply = api.post(
        "/users", {"email": "noname@example.com", "password": "a strong password 123"}, token
    )
    assert reply.status == 400
    reply = api.post("/users", {"name": "No Password", "email": "nopw@example.com"}, token)
    assert reply.status == 400
