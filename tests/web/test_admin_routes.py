"""DESIGN §8, API keys, roles and permissions, on both adapters."""

from __future__ import annotations

import pytest

from .clients import Account, Client

KEY_KEYS = {
    "id",
    "user_id",
    "name",
    "prefix",
    "scopes",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
}
ROLE_KEYS = {"name", "permissions", "inherits", "description"}


# -- API keys ------------------------------------------------------------------------


def test_an_api_key_is_shown_once_and_authenticates(client: Client, ada: Account) -> None:
    created = client.post(f"/users/{ada.id}/api-keys", json={"name": "ci"}, token=ada.token)
    assert created.status == 201
    assert set(created.body) == {"api_key", "key"}
    assert set(created.body["api_key"]) == KEY_KEYS
    key = created.body["key"]
    assert key.startswith("uc_")
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        me = client.get("/auth/me", headers=headers)
        assert me.status == 200
        assert me.body["id"] == ada.id
    listed = client.get(f"/users/{ada.id}/api-keys", token=ada.token)
    assert listed.status == 200
    assert [item["name"] for item in listed.body] == ["ci"]
    assert key.encode() not in listed.raw
    assert key.split("_")[-1].encode() not in listed.raw


def test_a_revoked_api_key_is_refused(client: Client, ada: Account) -> None:
    created = client.post(f"/users/{ada.id}/api-keys", json={"name": "ci"}, token=ada.token).body
    key_id = created["api_key"]["id"]
    assert client.delete(f"/api-keys/{key_id}", token=ada.token).status == 204
    reply = client.get("/auth/me", headers={"X-API-Key": created["key"]})
    assert reply.status == 401
    assert reply.code == "invalid_token"
    listed = client.get(f"/users/{ada.id}/api-keys", token=ada.token).body
    assert listed[0]["revoked_at"] is not None


def test_an_api_key_can_do_no_more_than_its_scopes(client: Client, admin: str) -> None:
    me = client.get("/auth/me", token=admin).body
    created = client.post(
        f"/users/{me['id']}/api-keys",
        json={"name": "read-self", "scopes": ["users:read:own"], "expires_in": 3600},
        token=admin,
    ).body
    assert created["api_key"]["scopes"] == ["users:read:own"]
    assert created["api_key"]["expires_at"] is not None
    key = {"X-API-Key": created["key"]}
    assert client.get("/auth/me", headers=key).status == 200
    assert client.get("/users", headers=key).status == 403


def test_an_api_key_cannot_log_out(client: Client, ada: Account) -> None:
    key = client.post(f"/users/{ada.id}/api-keys", json={"name": "ci"}, token=ada.token).body
    reply = client.post("/auth/logout", headers={"Authorization": f"Bearer {key['key']}"})
    assert reply.status == 400
    assert set(reply.details) == {"authorization"}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"name"}),
        ({"name": ""}, {"name"}),
        ({"name": "ci", "scopes": "users:read"}, {"scopes"}),
        ({"name": "ci", "scopes": ["not a permission"]}, {"scopes"}),
        ({"name": "ci", "expires_in": 0}, {"expires_in"}),
        ({"name": "ci", "expires_in": "3600"}, {"expires_in"}),
        ({"name": "ci", "expires_in": 10**12}, {"expires_in"}),
    ],
)
def test_creating_an_api_key_refuses_bad_input(
    client: Client, ada: Account, body: dict[str, object], fields: set[str]
) -> None:
    reply = client.post(f"/users/{ada.id}/api-keys", json=body, token=ada.token)
    assert reply.status == 400
    assert set(reply.details) == fields


def test_users_cannot_manage_other_users_keys(client: Client, ada: Account, bob: Account) -> None:
    bobs = client.post(f"/users/{bob.id}/api-keys", json={"name": "b"}, token=bob.token).body
    assert (
        client.post(f"/users/{bob.id}/api-keys", json={"name": "x"}, token=ada.token).status == 403
    )
    assert client.get(f"/users/{bob.id}/api-keys", token=ada.token).status == 403
    assert client.delete(f"/api-keys/{bobs['api_key']['id']}", token=ada.token).status == 403
    assert client.delete("/api-keys/9999", token=ada.token).status == 403
    assert client.delete("/api-keys/abc", token=ada.token).details == {
        "key_id": ["must be an integer"]
    }


def test_administrators_manage_anyones_keys(client: Client, admin: str, ada: Account) -> None:
    created = client.post(f"/users/{ada.id}/api-keys", json={"name": "ops"}, token=admin)
    assert created.status == 201
    assert client.get(f"/users/{ada.id}/api-keys", token=admin).status == 200
    assert client.delete(f"/api-keys/{created.body['api_key']['id']}", token=admin).status == 204
    assert client.delete("/api-keys/9999", token=admin).status == 404


# -- roles -------------------------------------------------------------------------------


def test_roles_are_listed_created_read_and_deleted(client: Client, admin: str) -> None:
    listed = client.get("/roles", token=admin)
    assert listed.status == 200
    assert {role["name"] for role in listed.body} == {"admin", "user"}
    assert all(set(role) == ROLE_KEYS for role in listed.body)
    created = client.post(
        "/roles",
        json={
            "name": "auditor",
            "permissions": ["users:read"],
            "inherits": ["user"],
            "description": "Reads accounts",
        },
        token=admin,
    )
    assert created.status == 201
    assert created.body == {
        "name": "auditor",
        "permissions": ["users:read"],
        "inherits": ["user"],
        "description": "Reads accounts",
    }
    assert client.get("/roles/auditor", token=admin).body == created.body
    assert client.delete("/roles/auditor", token=admin).status == 204
    assert client.get("/roles/auditor", token=admin).status == 404


def test_a_role_grants_its_permissions_at_once(client: Client, admin: str, ada: Account) -> None:
    client.post("/roles", json={"name": "auditor"}, token=admin)
    client.post(f"/users/{ada.id}/roles", json={"roles": ["user", "auditor"]}, token=admin)
    assert client.get("/users", token=ada.token).status == 403
    reply = client.put(
        "/roles/auditor/permissions", json={"permissions": ["users:read"]}, token=admin
    )
    assert reply.status == 200
    assert reply.body["permissions"] == ["users:read"]
    assert client.get("/users", token=ada.token).status == 200


def test_a_role_is_updated_partially(client: Client, admin: str) -> None:
    client.post("/roles", json={"name": "auditor", "permissions": ["users:read"]}, token=admin)
    reply = client.patch("/roles/auditor", json={"description": "Reads"}, token=admin)
    assert reply.status == 200
    assert reply.body["permissions"] == ["users:read"]
    assert reply.body["description"] == "Reads"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/roles", {"name": "Bad Name"}, 400, "name"),
        ("POST", "/roles", {"name": "x", "permissions": ["reports:reed"]}, 400, "permissions"),
        ("POST", "/roles", {"name": "x", "inherits": ["nope"]}, 400, "inherits"),
        ("POST", "/roles", {"name": "user"}, 409, "field"),
        ("POST", "/roles", {"permissions": []}, 400, "name"),
        ("PUT", "/roles/admin/permissions", {"permissions": []}, 400, "name"),
        ("PUT", "/roles/nope/permissions", {"permissions": []}, 404, None),
        ("PUT", "/roles/user/permissions", {"permissions": "users:read"}, 400, "permissions"),
        ("DELETE", "/roles/user", None, 409, "field"),
        ("DELETE", "/roles/nope", None, 404, None),
        ("DELETE", "/roles/user?force=maybe", None, 400, "force"),
    ],
)
def test_role_writes_refuse_bad_input(
    client: Client,
    admin: str,
    method: str,
    path: str,
    body: dict[str, object] | None,
    status: int,
    field: str | None,
) -> None:
    kwargs = {} if body is None else {"json": body}
    reply = client.request(method, path, token=admin, **kwargs)
    assert reply.status == status
    if field is not None:
        assert field in reply.details


def test_a_role_in_use_is_deleted_only_with_force(client: Client, admin: str, ada: Account) -> None:
    client.post("/roles", json={"name": "auditor"}, token=admin)
    client.post(f"/users/{ada.id}/roles", json={"roles": ["user", "auditor"]}, token=admin)
    refused = client.delete("/roles/auditor", token=admin)
    assert refused.status == 409
    assert client.delete("/roles/auditor?force=false", token=admin).status == 409
    assert client.delete("/roles/auditor?force=true", token=admin).status == 204
    assert client.get(f"/users/{ada.id}", token=admin).body["roles"] == ["user"]


def test_only_administrators_manage_roles(client: Client, ada: Account) -> None:
    assert client.get("/roles", token=ada.token).status == 403
    assert client.post("/roles", json={"name": "x"}, token=ada.token).status == 403
    assert client.get("/roles/user", token=ada.token).status == 403
    assert client.delete("/roles/user", token=ada.token).status == 403


# -- permissions ------------------------------------------------------------------------


def test_permissions_are_listed_for_administrators(
    client: Client, admin: str, ada: Account
) -> None:
    client.core.permissions.register("reports:read", "Read reports")
    reply = client.get("/permissions", token=admin)
    assert reply.status == 200
    assert all(set(item) == {"name", "description"} for item in reply.body)
    assert {"name": "reports:read", "description": "Read reports"} in reply.body
    assert client.get("/permissions", token=ada.token).status == 403
    assert client.get("/permissions").status == 401
