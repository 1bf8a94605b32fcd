"""Custom fields in ``core.users``: register, create, update, list, import, events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import argon2
import pytest

from usercore import (
    SYSTEM,
    ConflictError,
    CustomField,
    PermissionDenied,
    Principal,
    Settings,
    User,
    UserCore,
    ValidationError,
)

PASSWORD = "correct horse battery staple"
FIELDS = (
    CustomField(name="tenant_id", required=True, registrable=True, indexed=True),
    CustomField(name="employee_no", unique=True),
    CustomField(name="nickname", registrable=True, self_editable=True),
    CustomField(name="vip", type=bool, default=False),
)


@pytest.fixture
def core() -> Iterator[UserCore]:
    settings = Settings(argon2_profile=argon2.profiles.CHEAPEST, custom_fields=FIELDS)
    with UserCore.open("memory://", settings=settings) as core:
        yield core


def register(core: UserCore, email: str, **custom: Any) -> User:
    return core.users.register(email=email, password=PASSWORD, custom_fields=custom)


def as_self(user: User) -> Principal:
    return Principal(user_id=user.id, roles=user.roles)


def test_registration_fills_defaults_and_refuses_administrators_fields(core: UserCore) -> None:
    ada = register(core, "ada@example.com", tenant_id="acme")
    assert dict(ada.custom_fields) == {
        "tenant_id": "acme",
        "employee_no": None,
        "nickname": None,
        "vip": False,
    }
    with pytest.raises(ValidationError) as caught:
        register(core, "eve@example.com", tenant_id="acme", vip=True)
    assert caught.value.errors == {"vip": ["cannot be set when registering"]}
    assert core.users.get_by_email(SYSTEM, "ada@example.com") == ada
    assert [u.email for u in core.users.list(SYSTEM).items] == ["ada@example.com"]


def test_built_in_and_custom_problems_come_in_one_error(core: UserCore) -> None:
    with pytest.raises(ValidationError) as caught:
        core.users.register(email="not an email", password=PASSWORD, custom_fields={})
    assert set(caught.value.errors) == {"email", "tenant_id"}


def test_an_administrator_sets_any_field(core: UserCore) -> None:
    user = core.users.create(
        SYSTEM, email="bob@example.com", custom_fields={"tenant_id": "acme", "vip": True}
    )
    assert user.custom_fields["vip"] is True


def test_an_update_changes_only_the_fields_given_and_says_which(core: UserCore) -> None:
    ada = register(core, "ada@example.com", tenant_id="acme", nickname="Ada")
    events: list[tuple[str, dict[str, Any]]] = []
    core.events.subscribe(lambda event: events.append((event.name, dict(event.data))))
    updated = core.users.update(
        SYSTEM, ada.id, name="Ada L.", custom_fields={"employee_no": "E1", "nickname": "Ada"}
    )
    assert dict(updated.custom_fields) == {
        "tenant_id": "acme",
        "employee_no": "E1",
        "nickname": "Ada",
        "vip": False,
    }
    (updated_event,) = [data for name, data in events if name == "user.updated"]
    assert updated_event["fields"] == ["employee_no", "name"]


def test_users_change_only_their_self_editable_fields(core: UserCore) -> None:
    ada = register(core, "ada@example.com", tenant_id="acme")
    me = as_self(ada)
    assert core.users.update(me, ada.id, custom_fields={"nickname": "A"}).custom_fields[
        "nickname"
    ] == ("A")
    # Unchanged values of other fields may come along (a whole profile form).
    core.users.update(me, ada.id, custom_fields={"nickname": "B", "tenant_id": "acme"})
    for change in ({"vip": True}, {"tenant_id": "globex"}, {"employee_no": "E1"}):
        with pytest.raises(PermissionDenied):
            core.users.update(me, ada.id, custom_fields=change)
    stored = core.users.get(SYSTEM, ada.id)
    assert (stored.custom_fields["nickname"], stored.custom_fields["vip"]) == ("B", False)


def test_a_unique_field_conflict_names_it_and_changes_nothing(core: UserCore) -> None:
    ada = register(core, "ada@example.com", tenant_id="acme")
    core.users.update(SYSTEM, ada.id, custom_fields={"employee_no": "E1"})
    bob = register(core, "bob@example.com", tenant_id="acme")
    with pytest.raises(ConflictError) as caught:
        core.users.update(SYSTEM, bob.id, name="Bob", custom_fields={"employee_no": "E1"})
    assert caught.value.field == "employee_no"
    assert core.users.get(SYSTEM, bob.id) == bob


def test_listing_filters_by_declared_fields_only(core: UserCore) -> None:
    ada = register(core, "ada@example.com", tenant_id="acme")
    register(core, "bob@example.com", tenant_id="globex")
    assert [ada] == core.users.list(SYSTEM, custom_fields={"tenant_id": " acme"}).items
    page = core.users.list(SYSTEM, page=1, custom_fields={"tenant_id": "acme", "vip": False})
    assert (page.total, page.items) == (1, [ada])
    for bad in ({"nope": 1}, {"vip": "false"}, {"tenant_id": None}, {"x') OR 1=1 --": "a"}):
        with pytest.raises(ValidationError):
            core.users.list(SYSTEM, custom_fields=bad)


def test_import_validates_each_record_and_reports_taken_unique_values(core: UserCore) -> None:
    register(core, "ada@example.com", tenant_id="acme")
    core.users.update(
        SYSTEM,
        core.users.get_by_email(SYSTEM, "ada@example.com").id,
        custom_fields={"employee_no": "E1"},
    )
    report = core.users.import_users(
        SYSTEM,
        [
            {"email": "b@example.com", "tenant_id": "acme", "employee_no": "E2", "vip": True},
            {"email": "c@example.com", "tenant_id": "acme", "employee_no": "E2"},
            {"email": "d@example.com", "tenant_id": "acme", "employee_no": "E1"},
            {"email": "e@example.com", "tenant_id": 5},
            {"email": "f@example.com", "tenant_id": "acme", "unknown": 1},
            {"email": "ada@example.com", "tenant_id": "acme", "employee_no": "E1"},
        ],
    )
    assert (report.created, report.skipped) == (1, 1)
    assert [(index, error.errors) for index, error in report.errors] == [
        (1, {"employee_no": ["is already taken by another account"]}),
        (2, {"employee_no": ["is already taken by another account"]}),
        (3, {"tenant_id": ["must be a string"]}),
        (4, {"unknown": ["is not a known field"]}),
    ]
    imported = core.users.get_by_email(SYSTEM, "b@example.com")
    assert imported.custom_fields["vip"] is True


def test_an_invitation_carries_custom_fields_and_acceptance_adds_registrable_ones(
    core: UserCore,
) -> None:
    with pytest.raises(ValidationError) as caught:
        core.users.invite(SYSTEM, email="ada@example.com")
    assert caught.value.errors == {"tenant_id": ["is required"]}
    pending, token = core.users.invite(
        SYSTEM, email="ada@example.com", custom_fields={"tenant_id": "acme", "vip": True}
    )
    assert (pending.custom_fields["tenant_id"], pending.custom_fields["vip"]) == ("acme", True)
    # The invitee may give registrable fields, not the administrator's ones.
    with pytest.raises(ValidationError) as caught:
        core.users.register(
            email="ada@example.com",
            password=PASSWORD,
            invitation=token,
            custom_fields={"vip": False},
        )
    assert caught.value.errors == {"vip": ["cannot be set when registering"]}
    ada = core.users.register(
        email="ada@example.com",
        password=PASSWORD,
        invitation=token,
        custom_fields={"nickname": "ada"},
    )
    assert dict(ada.custom_fields) == {
        "tenant_id": "acme",
        "employee_no": None,
        "nickname": "ada",
        "vip": True,
    }
    assert core.users.get(SYSTEM, ada.id) == ada
