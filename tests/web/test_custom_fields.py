"""Custom user fields over HTTP: the notes-app scenario of issue 16, on both
adapters and on SQLite and PostgreSQL, with usercore alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import argon2
import attrs
import pytest

from usercore import SYSTEM, CustomField, Settings, UserCore
from usercore.storage.sqlite import SQLiteStore
from usercore.web._profiles import PROFILES

from ..storage.postgres_support import postgres_schema
from .clients import ADAPTERS, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Client, Outbox

NOTES_FIELDS = (
    CustomField(
        name="tenant_id",
        required=True,
        registrable=True,
        indexed=True,
        description="The organisation the account belongs to",
    ),
    CustomField(name="employee_no", unique=True),
    CustomField(name="nickname", self_editable=True, registrable=True, max_length=40),
    CustomField(name="seats", type=int, min_value=0, default=1),
)
SETTINGS = Settings(
    secret_key="k" * 32, argon2_profile=argon2.profiles.CHEAPEST, custom_fields=NOTES_FIELDS
)


def open_core(url: str) -> UserCore:
    core = UserCore.open(url, settings=SETTINGS)
    core.users.create(
        SYSTEM,
        email=ADMIN_EMAIL,
        password=ADMIN_PASSWORD,
        roles=["admin"],
        custom_fields={"tenant_id": "hq"},
    )
    return core


@pytest.fixture(params=["sqlite", "postgresql"])
def stored_core(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserCore]:
    if request.param == "sqlite":
        with open_core(f"sqlite:///{tmp_path / 'notes.db'}") as core:
            yield core
    else:
        with postgres_schema() as url, open_core(url) as core:
            yield core


@pytest.fixture(params=ADAPTERS)
def notes(request: pytest.FixtureRequest, stored_core: UserCore) -> Client:
    return Client(request.param, stored_core, Outbox())


@pytest.fixture(params=ADAPTERS)
def quick(request: pytest.FixtureRequest) -> Iterator[Client]:
    """The same app on a memory store, for the rules that do not depend on it."""
    with open_core("memory://") as core:
        yield Client(request.param, core, Outbox())


def test_the_notes_app_keeps_its_tenant_on_the_user(notes: Client) -> None:
    """Register with tenant_id, read it back from /auth/me, filter by it as an
    administrator, and get a 409 naming the field for a taken unique value."""
    ada = notes.register("ada@example.com", tenant_id="acme")
    assert ada["tenant_id"] == "acme"
    assert ada["employee_no"] is None
    assert ada["seats"] == 1  # the default
    notes.register("bob@example.com", tenant_id="globex")
    carol = notes.register("carol@example.com", tenant_id="acme", nickname="Caz")

    me = notes.get("/auth/me", token=notes.login("ada@example.com"))
    assert me.status == 200
    assert me.body["tenant_id"] == "acme"

    admin = notes.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    listed = notes.get("/users?tenant_id=acme", token=admin)
    assert listed.status == 200
    assert [ada["id"], carol["id"]] == [user["id"] for user in listed.body["items"]]
    assert notes.get("/users?tenant_id=acme&page=1", token=admin).body["total"] == 2
    assert notes.get("/users?tenant_id=ACME", token=admin).body["items"] == []

    given = notes.patch(f"/users/{ada['id']}", json={"employee_no": "E-100"}, token=admin)
    assert given.status == 200
    assert given.body["employee_no"] == "E-100"
    taken = notes.post(
        "/users",
        json={"email": "dave@example.com", "tenant_id": "acme", "employee_no": "E-100"},
        token=admin,
    )
    assert taken.status == 409
    assert taken.code == "conflict"
    assert taken.details == {"field": "employee_no"}
    assert "employee_no" in taken.error["message"]
    stolen = notes.patch(f"/users/{carol['id']}", json={"employee_no": "E-100"}, token=admin)
    assert stolen.status == 409
    assert stolen.details == {"field": "employee_no"}
    assert notes.get(f"/users/{carol['id']}", token=admin).body["employee_no"] is None
    assert notes.get("/users?q=dave", token=admin).body["items"] == []


def test_registration_requires_the_required_field(quick: Client) -> None:
    reply = quick.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    assert reply.status == 400
    assert "tenant_id" in reply.details
    assert quick.core.users.list(SYSTEM).items[-1].email == ADMIN_EMAIL


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenant_id", 7),
        ("tenant_id", True),
        ("tenant_id", ["acme"]),
        ("seats", "3"),
        ("seats", True),
        ("seats", 1.5),
        ("seats", -1),
        ("tenant_id", "   "),
        ("nickname", "x" * 41),
        ("tenant_id", "a\u0000b"),
        ("tenant_id", "a\u202eb"),
    ],
)
def test_a_custom_value_of_the_wrong_kind_is_a_400_on_that_field(
    quick: Client, field: str, value: object
) -> None:
    body = {"email": "ada@example.com", "password": PASSWORD, "tenant_id": "acme", field: value}
    reply = quick.post("/auth/register", json=body)
    assert reply.status == 400
    assert field in reply.details
    assert [ADMIN_EMAIL] == [user.email for user in quick.core.users.list(SYSTEM).items]


def test_fields_an_administrator_keeps_cannot_be_given_at_registration(quick: Client) -> None:
    body = {"email": "ada@example.com", "password": PASSWORD, "tenant_id": "a", "seats": 9}
    reply = quick.post("/auth/register", json=body)
    assert reply.status == 400
    assert "seats" in reply.details


def test_users_edit_their_self_editable_fields_only(quick: Client) -> None:
    ada = quick.register("ada@example.com", tenant_id="acme")
    token = quick.login("ada@example.com")
    path = f"/users/{ada['id']}"
    renamed = quick.patch(path, json={"nickname": "Countess"}, token=token)
    assert renamed.status == 200
    assert renamed.body["nickname"] == "Countess"
    # The whole profile sent back unchanged is fine ...
    same = quick.patch(path, json={"nickname": "Ada", "tenant_id": "acme"}, token=token)
    assert same.status == 200
    # ... moving to another tenant is an administrator's decision.
    moved = quick.patch(path, json={"nickname": "Eve", "tenant_id": "globex"}, token=token)
    assert moved.status == 403
    assert "tenant_id" in moved.error["message"]
    now = quick.get("/auth/me", token=token).body
    assert (now["tenant_id"], now["nickname"]) == ("acme", "Ada")
    admin = quick.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert quick.patch(path, json={"tenant_id": "globex"}, token=admin).body["tenant_id"] == (
        "globex"
    )


def test_a_required_field_cannot_be_cleared(quick: Client) -> None:
    admin = quick.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    ada = quick.register("ada@example.com", tenant_id="acme", nickname="A")
    cleared = quick.patch(f"/users/{ada['id']}", json={"nickname": None}, token=admin)
    assert cleared.body["nickname"] is None
    refused = quick.patch(f"/users/{ada['id']}", json={"tenant_id": None}, token=admin)
    assert refused.status == 400
    assert refused.details == {"tenant_id": ["is required"]}


def test_a_filter_value_is_converted_to_the_declared_type(quick: Client) -> None:
    admin = quick.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    quick.register("ada@example.com", tenant_id="acme")
    assert len(quick.get("/users?seats=1", token=admin).body["items"]) == 2
    assert quick.get("/users?seats=2", token=admin).body["items"] == []
    bad = quick.get("/users?seats=many", token=admin)
    assert bad.status == 400
    assert "seats" in bad.details


def test_the_openapi_document_follows_the_declaration(quick: Client) -> None:
    if quick.adapter != "fastapi":
        pytest.skip("Flask serves no OpenAPI document")
    document = quick.get("/openapi.json", prefix="").body
    schemas = document["components"]["schemas"]
    register = schemas["RegisterRequest"]
    assert {"password", "tenant_id"} <= set(register["required"])
    assert register["properties"]["tenant_id"]["type"] == "string"
    assert "employee_no" not in register["properties"]  # not registrable
    assert "seats" not in register["properties"]
    assert register["properties"]["tenant_id"]["description"] == (
        "The organisation the account belongs to"
    )
    user = schemas["UserOut"]["properties"]
    assert {"tenant_id", "employee_no", "nickname", "seats"} <= set(user)
    create = schemas["UserCreate"]
    assert "tenant_id" in create["required"]
    assert "seats" not in create.get("required", [])  # it has a default
    parameters = document["paths"]["/api/v1/users"]["get"]["parameters"]
    seats = next(p for p in parameters if p["name"] == "seats")
    assert seats["in"] == "query"
    assert seats["schema"]["type"] == "integer"


def test_an_app_without_custom_fields_keeps_its_models(tmp_path: Path) -> None:
    """Two apps in one process: each serves its own declaration."""
    plain = UserCore(
        SQLiteStore(tmp_path / "plain.db"),
        Settings(secret_key="k" * 32, argon2_profile=argon2.profiles.CHEAPEST),
    )
    with plain, open_core("memory://") as notes_core:
        for adapter in ADAPTERS:
            reply = Client(adapter, plain, Outbox()).post(
                "/auth/register",
                json={"email": "ada@example.com", "password": PASSWORD, "tenant_id": "acme"},
            )
            assert reply.status == 400
            assert reply.details == {"tenant_id": ["is not a known field"]}
            registered = Client(adapter, notes_core, Outbox()).register(
                f"{adapter}@example.com", tenant_id="acme"
            )
            assert registered["tenant_id"] == "acme"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_serves_the_declared_fields(profile: str) -> None:
    """Profiles are data over the same operations: each one takes custom fields
    where it registers and builds its OpenAPI document with them."""
    from fastapi.testclient import TestClient

    from usercore.web.fastapi import create_app

    chosen = PROFILES[profile]
    with open_core("memory://") as core:
        client = TestClient(create_app(core, profile=profile))
        assert client.get("/openapi.json").status_code == 200
        paths = [path for _, path, name in chosen.routes if name == "register"]
        if not paths:
            return
        body = {"email": "ada@example.com", "password": PASSWORD, "tenant_id": "acme"}
        # Some documents require a name at registration.
        reply = client.post(chosen.base + paths[0], json={**body, "name": "Ada"})
        assert reply.status_code == 201, reply.text
        registered = reply.json()
        user = registered.get("user", registered)
        assert user["tenant_id"] == "acme"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_accounts_made_before_a_defaulted_field_read_as_its_default_in_json_filters_and_exports(
    adapter: str, tmp_path: Path
) -> None:
    """A field with a default added to a database that already holds users:
    /auth/me, GET /users, ``?plan=free`` and ``usercore export`` agree."""
    from usercore.cli import export_record

    url = f"sqlite:///{tmp_path / 'users.db'}"
    bare = attrs.evolve(SETTINGS, custom_fields=())
    with UserCore.open(url, settings=bare) as core:
        core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
        core.users.create(SYSTEM, email="ada@example.com", password=PASSWORD)
    plan = CustomField(name="plan", choices=("free", "team"), default="free")
    with UserCore.open(url, settings=attrs.evolve(bare, custom_fields=(plan,))) as core:
        core.users.create(
            SYSTEM, email="team@example.com", password=PASSWORD, custom_fields={"plan": "team"}
        )
        client = Client(adapter, core, Outbox())
        admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        me = client.get("/auth/me", token=client.login("ada@example.com")).body
        assert "free" == me["plan"]
        listed = client.get("/users", token=admin).body["items"]
        assert ["free", "free", "team"] == [user["plan"] for user in listed]
        free = client.get("/users?plan=free", token=admin).body["items"]
        assert [ADMIN_EMAIL, "ada@example.com"] == [user["email"] for user in free]
        exported = [export_record(user) for user in core.users.iter_all(SYSTEM)]
        assert ["free", "free", "team"] == [record["plan"] for record in exported]
