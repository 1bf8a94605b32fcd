"""A holder of ``roles:create`` could create roles without bound.

Every role is read and compiled on each guarded write (user updates, role
changes, invitations...) and by every process on its first check after any
role change, so each role made every later request slower (the first check
after a role change grows faster than the count: figures in
docs/performance.md, "Roles").  The same class as the bound of the permission
registry (OWASP API Security Top 10 2023 API4, unrestricted
resource consumption; CWE-400).
"""

from __future__ import annotations

import pytest

from usercore import SYSTEM, Principal, UserCore, ValidationError, policy

from ..services.conftest import PASSWORD, login_principal
from ..web.clients import Client, Outbox, make_core


@pytest.fixture
def role_maker(core: UserCore) -> Principal:
    core.roles.create(SYSTEM, "role-maker", permissions=["roles:create", "users:read"])
    core.users.create(SYSTEM, email="maker@example.com", password=PASSWORD, roles=["role-maker"])
    return login_principal(core, "maker@example.com")


def test_roles_are_bounded(
    core: UserCore, role_maker: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = len(core.roles.list(SYSTEM))
    monkeypatch.setattr(policy, "MAX_ROLES", held + 2)
    core.roles.create(role_maker, "readers", permissions=["users:read"])
    core.roles.create(SYSTEM, "auditors", permissions=["users:read"])
    for actor in (role_maker, SYSTEM):
        with pytest.raises(ValidationError) as caught:
            core.roles.create(actor, "one-more", permissions=["users:read"])
        assert {"name": [f"at most {held + 2} roles may exist"]} == caught.value.errors
    assert held + 2 == len(core.roles.list(SYSTEM))


def test_roles_at_the_bound_can_still_be_changed_and_deleted(
    core: UserCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    core.roles.create(SYSTEM, "readers", permissions=["users:read"])
    monkeypatch.setattr(policy, "MAX_ROLES", len(core.roles.list(SYSTEM)))
    core.roles.update(SYSTEM, "readers", description="Read every account")
    core.roles.delete(SYSTEM, "readers")
    core.roles.create(SYSTEM, "writers", permissions=["users:update"])  # room again


def test_the_bound_over_http_is_a_400_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    core = make_core()
    core.users.create(SYSTEM, email="root@example.com", password=PASSWORD, roles=["admin"])
    client = Client("fastapi", core, Outbox())
    token = client.login("root@example.com")
    monkeypatch.setattr(policy, "MAX_ROLES", len(core.roles.list(SYSTEM)))
    reply = client.post("/roles", json={"name": "readers"}, token=token)
    assert (400, {"name": [f"at most {policy.MAX_ROLES} roles may exist"]}) == (
        reply.status,
        reply.details,
    )


def test_the_bound_leaves_room_for_real_role_sets() -> None:
    assert 1_000 == policy.MAX_ROLES
