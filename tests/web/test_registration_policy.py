"""The registration policy over HTTP, on both adapters: closed and invite-only
registration, a verified email before login, ``POST /permissions``."""

from __future__ import annotations

from typing import Any

import argon2
import pytest

from usercore import SYSTEM, Settings, UserCore

from .clients import ADAPTERS, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Client, Outbox


def make_client(adapter: str, outbox: Outbox, **settings: Any) -> Client:
    core = UserCore.open(
        "memory://", settings=Settings(argon2_profile=argon2.profiles.CHEAPEST, **settings)
    )
    core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
    return Client(adapter, core, outbox)


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- closed and invite-only ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/auth/register", "/register"])
def test_closed_registration_is_a_403_with_its_own_code(adapter: str, path: str) -> None:
    client = make_client(adapter, Outbox(), registration="closed")
    reply = client.post(path, json={"email": "ada@example.com", "password": PASSWORD})
    assert (403, "registration_closed", {}) == (reply.status, reply.code, reply.details)
    assert [ADMIN_EMAIL] == [user.email for user in client.core.users.list(SYSTEM).items]


def test_an_administrator_still_creates_users_when_closed(adapter: str) -> None:
    client = make_client(adapter, Outbox(), registration="closed")
    admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    reply = client.post(
        "/users", json={"email": "ada@example.com", "password": PASSWORD}, token=admin
    )
    assert 201 == reply.status


@pytest.mark.parametrize("profile", ["v1", "classic", "ums", "rails"])
def test_every_profile_that_registers_is_closed_too(adapter: str, profile: str) -> None:
    core = UserCore.open(
        "memory://",
        settings=Settings(argon2_profile=argon2.profiles.CHEAPEST, registration="closed"),
    )
    from usercore.web._profiles import profile_named

    served = profile_named(profile)
    path = next(p for m, p, op in served.routes if op == "register" and m == "POST")
    body = {"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}
    if adapter == "fastapi":
        from fastapi.testclient import TestClient

        from usercore.web.fastapi import create_app

        response = TestClient(create_app(core, profile=profile)).post(served.base + path, json=body)
        status, text = response.status_code, response.text
    else:
        from usercore.web.flask import create_app as create_flask_app

        flask_response = (
            create_flask_app(core, profile=profile)
            .test_client()
            .post(served.base + path, json=body)
        )
        status, text = flask_response.status_code, flask_response.get_data(as_text=True)
    assert 403 == status
    assert [] == core.users.list(SYSTEM).items
    assert "ada@example.com" not in text


def test_an_invitation_registers_over_http(adapter: str) -> None:
    client = make_client(adapter, Outbox(), registration="invite")
    _, token = client.core.users.invite(SYSTEM, email="ada@example.com")
    refused = client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    assert (403, "registration_closed") == (refused.status, refused.code)
    wrong = client.post(
        "/auth/register",
        json={"email": "eve@example.com", "password": PASSWORD, "invitation": token},
    )
    assert (401, "invalid_token") == (wrong.status, wrong.code)
    reply = client.post(
        "/auth/register",
        json={"email": "ada@example.com", "password": PASSWORD, "invitation": token},
    )
    assert 201 == reply.status
    assert (True, "active") == (reply.body["email_verified"], reply.body["status"])
    replay = client.post(
        "/auth/register",
        json={"email": "ada@example.com", "password": PASSWORD, "invitation": token},
    )
    assert (401, "invalid_token") == (replay.status, replay.code)
    assert client.login("ada@example.com")


def test_open_registration_is_unchanged(adapter: str) -> None:
    client = make_client(adapter, Outbox())
    assert "ada@example.com" == client.register("ada@example.com")["email"]


# -- a verified email before login ------------------------------------------------------------


def test_login_waits_for_a_verified_email_and_resends_the_token(adapter: str) -> None:
    outbox = Outbox()
    client = make_client(adapter, outbox, require_verified_email=True)
    user = client.register("ada@example.com")
    assert ["ada@example.com"] == [sent.email for sent, _ in outbox.verifications]
    refused = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert (403, "email_not_verified", {}) == (refused.status, refused.code, refused.details)
    assert "access_token" not in refused.raw.decode()
    assert 2 == len(outbox.verifications)  # a fresh one, the first is void
    wrong = client.post(
        "/auth/login", json={"email": "ada@example.com", "password": "a wrong long password"}
    )
    assert (401, "invalid_credentials") == (wrong.status, wrong.code)
    assert 2 == len(outbox.verifications)  # nothing sent without the password
    first = client.post("/auth/verify-email/confirm", json={"token": outbox.verifications[0][1]})
    assert 401 == first.status
    confirmed = client.post(
        "/auth/verify-email/confirm", json={"token": outbox.verifications[-1][1]}
    )
    assert (200, user["id"]) == (confirmed.status, confirmed.body["id"])
    assert client.login("ada@example.com")


def test_refresh_answers_email_not_verified_after_an_address_change(adapter: str) -> None:
    outbox = Outbox()
    client = make_client(adapter, outbox, require_verified_email=True)
    user = client.register("ada@example.com")
    client.post("/auth/verify-email/confirm", json={"token": outbox.verifications[-1][1]})
    pair = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD}).body
    changed = client.patch(
        f"/users/{user['id']}", json={"email": "ada@new.example"}, token=pair["access_token"]
    )
    assert 200 == changed.status, changed.body
    reply = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert (403, "email_not_verified") == (reply.status, reply.code)


# -- POST /permissions ---------------------------------------------------------------------------


def test_an_administrator_registers_a_permission(client: Client, admin: str) -> None:
    reply = client.post(
        "/permissions", json={"name": "reports:read", "description": "Read reports"}, token=admin
    )
    assert (201, {"name": "reports:read", "description": "Read reports"}) == (
        reply.status,
        reply.body,
    )
    listed = client.get("/permissions", token=admin).body
    assert {"name": "reports:read", "description": "Read reports"} in listed
    role = client.post(
        "/roles", json={"name": "analyst", "permissions": ["reports:*"]}, token=admin
    )
    assert 201 == role.status


def test_a_permission_registered_through_one_server_is_known_to_another_and_kept(
    adapter: str, tmp_path: Any
) -> None:
    """Two servers on one database (two workers, two hosts): a permission
    registered through one is listed and grantable through the other, then
    and after both restart."""
    url = f"sqlite:///{tmp_path / 'users.db'}"
    settings = Settings(secret_key="k" * 40, argon2_profile=argon2.profiles.CHEAPEST)

    def serve() -> Client:
        return Client(adapter, UserCore.open(url, settings=settings), Outbox())

    first = serve()
    first.core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
    second = serve()  # started before the registration
    body = {"name": "reports:read", "description": "Read reports"}
    assert (
        201
        == first.post(
            "/permissions", json=body, token=first.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        ).status
    )
    token = second.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert body in second.get("/permissions", token=token).body
    role = {"name": "analyst", "permissions": ["reports:read"]}
    assert 201 == second.post("/roles", json=role, token=token).status
    again = second.post("/permissions", json=body, token=token)
    assert (409, {"field": "name"}) == (again.status, again.details)
    first.core.close()
    second.core.close()
    restarted = serve()
    token = restarted.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert body in restarted.get("/permissions", token=token).body
    role = {"name": "auditor", "permissions": ["reports:read"]}
    assert 201 == restarted.post("/roles", json=role, token=token).status
    restarted.core.close()


def test_registering_a_permission_twice_is_a_409(client: Client, admin: str) -> None:
    assert 201 == client.post("/permissions", json={"name": "reports:read"}, token=admin).status
    again = client.post("/permissions", json={"name": "reports:read"}, token=admin)
    assert (409, "conflict", {"field": "name"}) == (again.status, again.code, again.details)
    builtin = client.post("/permissions", json={"name": "users:read"}, token=admin)
    assert 409 == builtin.status


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "*"}, ["name"]),
        ({"name": "reports:*"}, ["name"]),
        ({"name": "reports:read:own"}, ["name"]),
        ({"name": "reports"}, ["name"]),
        ({"name": "reports:read", "description": "d" * 501}, ["description"]),
        ({"name": 5}, ["name"]),
        ({}, ["name"]),
        ({"name": "reports:read", "extra": 1}, ["extra"]),
    ],
)
def test_a_bad_permission_is_a_400_per_field_and_nothing_changes(
    client: Client, admin: str, body: dict[str, Any], fields: list[str]
) -> None:
    before = client.get("/permissions", token=admin).body
    reply = client.post("/permissions", json=body, token=admin)
    assert (400, "validation_failed", fields) == (reply.status, reply.code, list(reply.details))
    assert before == client.get("/permissions", token=admin).body


def test_only_holders_of_permissions_register_may_register(client: Client, ada: Any) -> None:
    anonymous = client.post("/permissions", json={"name": "reports:read"})
    assert 401 == anonymous.status
    user = client.post("/permissions", json={"name": "reports:read"}, token=ada.token)
    assert (403, "permission_denied") == (user.status, user.code)
    assert "reports:read" not in [p.name for p in client.core.permissions.list()]


def test_post_permissions_is_in_the_openapi_document(core: UserCore) -> None:
    from fastapi.testclient import TestClient

    from usercore.web.fastapi import create_app

    document = TestClient(create_app(core)).get("/openapi.json").json()
    operation = document["paths"]["/api/v1/permissions"]["post"]
    assert {"201", "400", "401", "403", "409"} <= set(operation["responses"])
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/PermissionCreate")
    register = document["paths"]["/api/v1/auth/register"]["post"]
    assert "403" in register["responses"]


# -- POST /invitations ---------------------------------------------------------------------------


def make_inviting_client(adapter: str) -> tuple[Client, list[tuple[Any, str]]]:
    invited: list[tuple[Any, str]] = []
    core = UserCore.open(
        "memory://",
        settings=Settings(argon2_profile=argon2.profiles.CHEAPEST, registration="invite"),
    )
    core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
    client = Client(adapter, core, Outbox())
    hooks = {"on_invitation": lambda user, token: invited.append((user, token))}
    if adapter == "fastapi":
        from fastapi.testclient import TestClient

        from usercore.web.fastapi import create_app

        client.app = create_app(core, **hooks)
        client._fastapi = TestClient(client.app, raise_server_exceptions=False)
    else:
        from usercore.web.flask import create_app as create_flask_app

        client.app = create_flask_app(core, **hooks)
        client._flask = client.app.test_client()
    return client, invited


def test_an_administrator_invites_over_http_and_the_token_is_only_mailed(adapter: str) -> None:
    client, invited = make_inviting_client(adapter)
    admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    reply = client.post(
        "/invitations", json={"email": "ada@example.com", "role": "user"}, token=admin
    )
    assert (201, "inactive", False) == (
        reply.status,
        reply.body["status"],
        reply.body["email_verified"],
    )
    [(user, token)] = invited
    assert ("ada@example.com", reply.body["id"]) == (user.email, user.id)
    assert token not in reply.raw.decode()
    registered = client.post(
        "/auth/register",
        json={"email": "ada@example.com", "password": PASSWORD, "invitation": token},
    )
    assert (201, "active") == (registered.status, registered.body["status"])
    taken = client.post("/invitations", json={"email": "ada@example.com"}, token=admin)
    assert (409, "conflict") == (taken.status, taken.code)


def test_only_administrators_invite(adapter: str) -> None:
    client, invited = make_inviting_client(adapter)
    client.core.users.create(SYSTEM, email="bob@example.com", password=PASSWORD)
    bob = client.login("bob@example.com")
    assert 401 == client.post("/invitations", json={"email": "eve@example.com"}).status
    reply = client.post("/invitations", json={"email": "eve@example.com"}, token=bob)
    assert (403, "permission_denied") == (reply.status, reply.code)
    bad = client.post(
        "/invitations",
        json={"email": "not an email"},
        token=client.login(ADMIN_EMAIL, ADMIN_PASSWORD),
    )
    assert (400, ["email"]) == (bad.status, list(bad.details))
    assert [] == invited
    assert ["bob@example.com", ADMIN_EMAIL] == sorted(
        u.email or "" for u in client.core.users.list(SYSTEM).items
    )


def test_the_ums_registration_answers_no_tokens_until_the_email_is_verified() -> None:
    """The ums document's registration answers tokens; an unverified account gets none."""
    from usercore.web.flask import create_app as create_flask_app

    verifications: list[tuple[Any, str]] = []
    core = UserCore.open(
        "memory://",
        settings=Settings(argon2_profile=argon2.profiles.CHEAPEST, require_verified_email=True),
    )
    app = create_flask_app(
        core,
        profile="ums",
        on_email_verification=lambda user, token: verifications.append((user, token)),
    )
    body = {"name": "Ada", "email": "ada@example.com", "password": PASSWORD}
    response = app.test_client().post("/auth/register", json=body)
    assert 201 == response.status_code
    answer = response.get_json()
    assert ["user"] == list(answer)
    assert "ada@example.com" == answer["user"]["email"]
    assert ["ada@example.com"] == [user.email for user, _ in verifications]
