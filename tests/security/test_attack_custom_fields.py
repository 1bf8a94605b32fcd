"""Attacks on custom fields: oversized and confused values, look-alikes in
unique fields, mass assignment, filter injection, and stored keys that the
declaration does not know."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path

import argon2
import pytest

from usercore import SYSTEM, ConflictError, CustomField, Settings, UserCore, ValidationError
from usercore.ports import UserFilter
from usercore.storage.memory import MemoryStore
from usercore.storage.sqlite import SQLiteStore

from ..web.clients import ADAPTERS, Client, Outbox

with warnings.catch_warnings():
    # Starlette asks for httpx2, which is not a dependency; its TestClient works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    import fastapi.testclient  # noqa: F401

PASSWORD = "correct horse battery staple"
FIELDS = (
    CustomField(name="tenant_id", required=True, registrable=True, indexed=True),
    CustomField(name="employee_no", unique=True),
    CustomField(name="badge", unique=True, registrable=True, pattern=r"[A-Z0-9-]+"),
    CustomField(name="vip", type=bool, default=False),
    CustomField(name="nickname", registrable=True, self_editable=True),
)
SETTINGS = Settings(
    secret_key="k" * 32, argon2_profile=argon2.profiles.CHEAPEST, custom_fields=FIELDS
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "users.db"


@pytest.fixture
def core(db: Path) -> Iterator[UserCore]:
    with UserCore.open(f"sqlite:///{db}", settings=SETTINGS) as core:
        core.users.create(
            SYSTEM,
            email="root@example.com",
            password=PASSWORD,
            roles=["admin"],
            custom_fields={"tenant_id": "hq"},
        )
        yield core


@pytest.fixture(params=ADAPTERS)
def client(request: pytest.FixtureRequest, core: UserCore) -> Client:
    return Client(request.param, core, Outbox())


def emails(core: UserCore) -> list[str | None]:
    return [user.email for user in core.users.list(SYSTEM).items]


def test_an_oversized_value_is_refused_before_normalization(client: Client) -> None:
    # 100,000 combining marks: NFKC is quadratic on them; the size bound comes first.
    body = {"email": "ada@example.com", "password": PASSWORD, "tenant_id": "a" + "\u0301" * 100_000}
    reply = client.post("/auth/register", json=body)
    assert reply.status == 400
    assert reply.details == {"tenant_id": ["must be at most 255 characters"]}
    assert emails(client.core) == ["root@example.com"]


@pytest.mark.parametrize("vip", [1, "true", "1", 0.0])
def test_a_bool_field_takes_only_booleans(client: Client, vip: object) -> None:
    admin = client.login("root@example.com")
    reply = client.patch("/users/1", json={"vip": vip}, token=admin)
    assert reply.status == 400
    assert "vip" in reply.details


def test_a_fullwidth_look_alike_is_the_same_unique_value(core: UserCore) -> None:
    core.users.create(
        SYSTEM, email="a@example.com", custom_fields={"tenant_id": "t", "employee_no": "E1"}
    )
    with pytest.raises(ConflictError) as caught:
        core.users.create(
            SYSTEM,
            email="b@example.com",
            custom_fields={"tenant_id": "t", "employee_no": "\uff25\uff11"},
        )
    assert caught.value.field == "employee_no"


def test_a_pattern_keeps_cyrillic_look_alikes_out_of_a_unique_field(client: Client) -> None:
    client.register("a@example.com", tenant_id="t", badge="E-1")
    body = {"email": "b@example.com", "password": PASSWORD, "tenant_id": "t", "badge": "\u0415-1"}
    reply = client.post("/auth/register", json=body)
    assert reply.status == 400
    assert "badge" in reply.details


def test_no_one_assigns_themselves_an_administrators_field(client: Client) -> None:
    body = {"email": "eve@example.com", "password": PASSWORD, "tenant_id": "t", "vip": True}
    assert client.post("/auth/register", json=body).status == 400
    eve = client.register("eve@example.com", tenant_id="t")
    token = client.login("eve@example.com")
    for change in ({"vip": True}, {"employee_no": "E-1"}, {"tenant_id": "hq"}):
        reply = client.patch(f"/users/{eve['id']}", json={"nickname": "x", **change}, token=token)
        assert reply.status == 403, change
        reply = client.put(f"/users/{eve['id']}", json=change, token=token)
        assert reply.status == 403, change
    me = client.get("/auth/me", token=token).body
    assert (me["vip"], me["employee_no"], me["tenant_id"], me["nickname"]) == (
        False,
        None,
        "t",
        None,
    )


@pytest.mark.parametrize(
    "query",
    [
        "tenant_id=' OR '1'='1",
        "tenant_id=hq' --",
        "tenant_id=%22hq%22",
        "tenant_id=$.tenant_id",
        "tenant_id=hq&tenant_id=' OR 1=1 --",
    ],
)
def test_filter_values_are_only_ever_compared(client: Client, query: str) -> None:
    admin = client.login("root@example.com")
    reply = client.get(f"/users?{query}", token=admin)
    assert reply.status == 200
    assert reply.body["items"] == []


def test_a_filter_names_only_declared_fields(client: Client) -> None:
    admin = client.login("root@example.com")
    reply = client.get("/users?tenant_id') OR 1=1 --=x", token=admin)
    # An unknown query parameter is a 400 naming it, never a column.
    assert (400, "validation_failed") == (reply.status, reply.code)
    assert {"tenant_id') OR 1"} == set(reply.details)  # the first '=' ends the name
    with pytest.raises(ValidationError):
        client.core.users.list(SYSTEM, custom_fields={"tenant_id') OR 1=1 --": "x"})


@pytest.mark.parametrize("make", ["memory", "sqlite"])
def test_a_store_refuses_a_field_name_that_is_not_an_identifier(make: str, db: Path) -> None:
    store = MemoryStore() if make == "memory" else SQLiteStore(db)
    with (
        store,
        store.transaction(readonly=True) as tx,
        pytest.raises(ValueError, match="not a custom field name"),
    ):
        tx.users.list(after=None, limit=1, filter=UserFilter(custom_fields={"a') OR 1 --": 1}))


def test_a_forged_declaration_never_reaches_the_sql_text(db: Path) -> None:
    forged = CustomField(name="tenant_id", indexed=True)
    object.__setattr__(forged, "name", "x'); DROP TABLE users; --")
    with SQLiteStore(db) as store, pytest.raises(ValueError, match="not a custom field name"):
        store.declare_custom_fields((forged,))
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_stored_keys_the_declaration_does_not_know_are_never_shown(
    client: Client, db: Path
) -> None:
    client.register("ada@example.com", tenant_id="acme")
    with sqlite3.connect(db) as connection:
        connection.execute(
            "UPDATE users SET custom_fields = json_set(custom_fields, '$.password_hash', 'x', "
            "'$.is_admin', json('true'), '$.vip', 'yes') WHERE email = 'ada@example.com'"
        )
    me = client.get("/auth/me", token=client.login("ada@example.com")).body
    assert "password_hash" not in me
    assert "is_admin" not in me
    assert me["vip"] is False  # a value of the wrong type reads as unset: the default
    assert me["tenant_id"] == "acme"


def test_no_custom_field_takes_the_name_of_a_request_field() -> None:
    """A custom field named after a field of a request carrying users would be
    read from the same JSON key: ``invitation`` took the invitation token
    into the new account's profile, stored in clear and answered back (OWASP
    ASVS 4.0.3 V3.5.2/V8.3.1: secrets never in answers or at rest in clear)."""
    from usercore.custom_fields import RESERVED_NAMES
    from usercore.web import _schemas as s

    models = (s.RegisterRequest, s.UserCreate, s.InvitationCreate, s.UserUpdate, s.UserListQuery)
    for model in models:
        for name, info in model.model_fields.items():
            assert (info.alias or name) in RESERVED_NAMES, (model.__name__, name)
    with pytest.raises(ValueError, match="taken by a built-in field"):
        CustomField(name="invitation", registrable=True)
