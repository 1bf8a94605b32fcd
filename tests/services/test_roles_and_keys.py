"""``core.roles``, ``core.permissions``, ``core.api_keys`` and ``core.policy`` via the facade."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from usercore import (
    SYSTEM,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    Principal,
    TokenError,
    User,
    UserCore,
    ValidationError,
)
from usercore.services.events import Event

from .conftest import PASSWORD, FakeClock, login_principal

# -- roles ------------------------------------------------------------------------


def test_builtin_roles_exist_on_first_open(core: UserCore) -> None:
    roles = {role.name: role for role in core.roles.list(SYSTEM)}
    assert {"admin", "user"} <= set(roles)
    assert frozenset({"*"}) == roles["admin"].permissions
    assert (
        frozenset({"users:read:own", "users:update:own", "users:delete:own", "apikeys:*:own"})
        == roles["user"].permissions
    )


def test_role_crud_and_effect_on_the_next_check(
    core: UserCore, admin: Principal, ada: User, events: list[Event]
) -> None:
    core.permissions.register("reports:read", "Read reports")
    core.roles.create(admin, "viewer", permissions=["reports:read"], description="Reads")
    core.roles.create(admin, "editor", inherits=["viewer"])
    core.users.assign_roles(admin, ada.id, ["user", "editor"])
    me = login_principal(core, "ada")
    decision = core.policy.explain(me, "reports:read")
    assert decision.allowed
    assert ("editor", "viewer", "reports:read") == decision.chain
    core.roles.set_permissions(admin, "viewer", [])
    assert not core.policy.is_allowed(me, "reports:read")  # the very next check
    assert "editor" == core.roles.get(admin, "editor").name
    names = [e.name for e in events]
    assert {"role.created", "role.updated"} <= set(names)


def test_roles_reject_unknown_permissions_cycles_and_bad_names(
    core: UserCore, admin: Principal
) -> None:
    core.permissions.register("reports:read")
    with pytest.raises(ValidationError) as info:
        core.roles.create(admin, "typo", permissions=["reprots:read"])
    assert {"permissions": ["unknown permission 'reprots:read'"]} == info.value.errors
    with pytest.raises(ValidationError) as info:
        core.roles.create(admin, "Bad Name")
    assert "name" in info.value.errors
    core.roles.create(admin, "a")
    core.roles.create(admin, "b", inherits=["a"])
    with pytest.raises(ValidationError) as info:
        core.roles.update(admin, "a", inherits=["b"])
    assert any("cycle" in message for message in info.value.errors["inherits"])
    with pytest.raises(ValidationError):
        core.roles.create(admin, "c", inherits=["ghost"])
    with pytest.raises(ConflictError):
        core.roles.create(admin, "a")


def test_role_delete_is_refused_while_held_unless_forced(
    core: UserCore, admin: Principal, ada: User
) -> None:
    core.roles.create(admin, "editor")
    core.roles.create(admin, "chief", inherits=["editor"])
    core.users.assign_roles(admin, ada.id, ["user", "editor"])
    with pytest.raises(ConflictError) as info:
        core.roles.delete(admin, "editor")
    assert "1 user hold it" in info.value.message
    assert "chief" in info.value.message
    core.roles.delete(admin, "editor", force=True)
    assert frozenset({"user"}) == core.users.get(SYSTEM, ada.id).roles
    assert frozenset() == core.roles.get(admin, "chief").inherits
    with pytest.raises(NotFoundError):
        core.roles.get(admin, "editor")


@pytest.mark.parametrize("name", ["admin", "user"])
def test_builtin_roles_cannot_be_deleted(core: UserCore, admin: Principal, name: str) -> None:
    with pytest.raises(ConflictError):
        core.roles.delete(admin, name, force=True)


def test_the_admin_role_cannot_be_changed(core: UserCore, admin: Principal) -> None:
    with pytest.raises(ValidationError):
        core.roles.set_permissions(admin, "admin", [])


def test_users_cannot_manage_roles(core: UserCore, ada_p: Principal) -> None:
    with pytest.raises(PermissionDenied):
        core.roles.create(ada_p, "mine")
    with pytest.raises(PermissionDenied):
        core.roles.list(ada_p)


def test_another_facade_sees_role_changes_within_the_refresh_interval(
    store_kind: str, open_core: Callable[..., UserCore], clock: FakeClock
) -> None:
    if store_kind == "memory":
        pytest.skip("two facades share a database only on SQL stores")
    first = open_core(policy_refresh_interval=timedelta(milliseconds=1))
    second = open_core(policy_refresh_interval=timedelta(milliseconds=1))
    first.permissions.register("reports:read")
    second.permissions.register("reports:read")
    user = first.users.register(email="ada@example.com", password=PASSWORD)
    principal = Principal(user_id=user.id, roles={"user", "viewer"})
    first.roles.create(SYSTEM, "viewer", permissions=["reports:read"])
    time.sleep(0.01)  # the interval runs on the monotonic clock, not the injected one
    assert second.policy.is_allowed(principal, "reports:read")


def test_permissions_registry_lists_builtins_and_app_permissions(core: UserCore) -> None:
    core.permissions.register("invoices:approve", "Approve invoices")
    names = [permission.name for permission in core.permissions.list()]
    assert names == sorted(names)
    assert {"users:create", "roles:assign", "invoices:approve"} <= set(names)
    with pytest.raises(ValidationError):
        core.permissions.register("Not A Permission")


def test_listing_permissions_needs_permissions_read(core: UserCore, ada: User) -> None:
    """The service checks, not the HTTP layer: a plain user is refused, an admin is not."""
    with pytest.raises(PermissionDenied) as denied:
        core.permissions.list(Principal(user_id=ada.id, roles={"user"}))
    assert "permissions:read" == denied.value.details["permission"]
    admin = Principal(user_id=ada.id + 1, roles={"admin"})
    assert core.permissions.list(admin) == core.permissions.list()


def test_registering_a_permission_as_an_actor_needs_permissions_register(
    core: UserCore, ada: User
) -> None:
    reader = Principal(user_id=ada.id, roles={"user"})
    with pytest.raises(PermissionDenied):
        core.permissions.register(reader, "invoices:approve", "Approve invoices")
    assert "invoices:approve" not in {p.name for p in core.permissions.list()}
    admin = Principal(user_id=ada.id + 1, roles={"admin"})
    registered = core.permissions.register(admin, "invoices:approve", "Approve invoices")
    assert ("invoices:approve", "Approve invoices") == (registered.name, registered.description)
    assert core.permissions.register("reports:read", description="Read reports").name == (
        "reports:read"
    )


# -- API keys -----------------------------------------------------------------------


def test_api_key_is_shown_once_and_authenticates(
    core: UserCore, ada: User, ada_p: Principal, events: list[Event]
) -> None:
    record, key = core.api_keys.create(ada_p, ada.id, name="ci")
    assert key.startswith(f"uc_{record.prefix}_")
    assert key not in repr(record)
    principal = core.auth.authenticate_api_key(key)
    assert (ada.id, "api_key", None) == (principal.user_id, principal.method, principal.scopes)
    listed = core.api_keys.list(ada_p, ada.id)
    assert [record.id] == [k.id for k in listed]
    assert listed[0].last_used_at is not None
    assert "api_key.created" in [e.name for e in events]


def test_a_scoped_key_can_do_no_more_than_its_scopes(
    core: UserCore, ada: User, ada_p: Principal
) -> None:
    _, key = core.api_keys.create(ada_p, ada.id, name="read-only", scopes=["users:read:own"])
    principal = core.auth.authenticate_api_key(key)
    assert core.policy.is_allowed(principal, "users:read", owner_id=ada.id)
    assert not core.policy.is_allowed(principal, "users:update", owner_id=ada.id)
    with pytest.raises(PermissionDenied):
        core.users.update(principal, ada.id, name="through a read-only key")


def test_a_key_never_does_more_than_its_user(core: UserCore, ada: User, ada_p: Principal) -> None:
    with pytest.raises(PermissionDenied):  # the delegation rule: scopes the user holds only
        core.api_keys.create(ada_p, ada.id, name="greedy", scopes=["users:*"])
    _, key = core.api_keys.create(ada_p, ada.id, name="own", scopes=["users:delete:own"])
    principal = core.auth.authenticate_api_key(key)
    assert not core.policy.is_allowed(principal, "users:delete", owner_id=ada.id + 1)
    assert core.policy.is_allowed(principal, "users:delete", owner_id=ada.id)


def test_keys_expire_and_revoke(
    core: UserCore, ada: User, ada_p: Principal, clock: FakeClock, events: list[Event]
) -> None:
    _, short = core.api_keys.create(ada_p, ada.id, name="short", expires_in=60)
    record, revoked = core.api_keys.create(ada_p, ada.id, name="revoked")
    core.api_keys.revoke(ada_p, record.id)
    core.api_keys.revoke(ada_p, record.id)  # twice is harmless
    with pytest.raises(TokenError):
        core.auth.authenticate_api_key(revoked)
    assert core.auth.authenticate_api_key(short)
    clock.advance(seconds=60)
    with pytest.raises(TokenError):
        core.auth.authenticate_api_key(short)
    assert "api_key.revoked" in [e.name for e in events]


def test_keys_of_others_are_off_limits(
    core: UserCore, ada: User, bob: User, ada_p: Principal, bob_p: Principal, admin: Principal
) -> None:
    record, _ = core.api_keys.create(bob_p, bob.id, name="bob's")
    with pytest.raises(PermissionDenied):
        core.api_keys.create(ada_p, bob.id, name="for bob")
    with pytest.raises(PermissionDenied):
        core.api_keys.list(ada_p, bob.id)
    with pytest.raises(PermissionDenied):
        core.api_keys.revoke(ada_p, record.id)
    with pytest.raises(PermissionDenied):
        core.api_keys.revoke(ada_p, 424242)
    with pytest.raises(NotFoundError):
        core.api_keys.revoke(admin, 424242)
    core.api_keys.revoke(admin, record.id)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "scopes": ["nope:nope"]}, "scopes"),
        ({"name": "ok", "scopes": "users:read"}, "scopes"),
        ({"name": "ok", "expires_in": -5}, "expires_in"),
        ({"name": "ok", "expires_in": "soon"}, "expires_in"),
    ],
)
def test_bad_key_requests_are_validation_errors(
    core: UserCore, ada: User, ada_p: Principal, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        core.api_keys.create(ada_p, ada.id, **kwargs)  # type: ignore[arg-type]
    assert field in info.value.errors
    assert [] == core.api_keys.list(ada_p, ada.id)


def test_a_key_of_a_deactivated_user_stops_working(
    core: UserCore, ada: User, ada_p: Principal, admin: Principal
) -> None:
    _, key = core.api_keys.create(ada_p, ada.id, name="ci")
    core.users.set_status(admin, ada.id, "inactive")
    with pytest.raises(TokenError):
        core.auth.authenticate_api_key(key)


# -- events -------------------------------------------------------------------------


def test_a_failing_subscriber_is_logged_and_never_breaks_the_operation(
    core: UserCore, usercore_log: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    core.events.subscribe(broken)
    user = core.users.register(email="ada@example.com", password=PASSWORD)
    assert user.id
    assert "subscriber" in usercore_log.text


def test_unsubscribe_stops_delivery(core: UserCore) -> None:
    seen: list[Event] = []
    unsubscribe = core.events.subscribe(seen.append)
    core.users.register(email="ada@example.com", password=PASSWORD)
    unsubscribe()
    core.users.register(email="bob@example.com", password=PASSWORD)
    assert 1 == len(seen)
