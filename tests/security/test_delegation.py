"""The delegation guard: nobody grants what it does not hold (issue 12 item 3).

OWASP ASVS 4.0.3 V4.1.3 (least privilege) and V4.2.1 (no privilege
escalation); the rules live in the services, so every adapter gets them:

- an actor grants only permissions, scopes, roles and inheritance whose
  effective permissions it holds itself (wildcards count: ``users:*`` covers
  ``users:update``; ``users:update:own`` does not cover ``users:update``);
- an actor acts (password, keys, sessions, status, delete, roles, profile)
  only on accounts no more privileged than itself, unless it holds ``*``;
- the last active account holding ``*`` cannot be demoted, deactivated or
  deleted, also when two administrators race.

Reproductions (a)-(d) of the issue are the first four tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from usercore import SYSTEM, ConflictError, PermissionDenied, Principal, User, UserCore

from ..services.conftest import ADMIN_PASSWORD, PASSWORD, login_principal


def member_of(core: UserCore, name: str, *grants: str) -> Principal:
    """A logged-in user with the roles ``user`` and ``name``, which grants ``grants``."""
    core.roles.create(SYSTEM, name, permissions=list(grants))
    core.users.create(
        SYSTEM,
        email=f"{name}@example.com",
        username=name,
        password=PASSWORD,
        roles=["user", name],
    )
    return login_principal(core, name)


def test_a_role_manager_cannot_grant_itself_or_others_the_wildcard(core: UserCore) -> None:
    """(a) roles:create/update/read cannot patch its own role to '*', create a
    role granting '*', or create one inheriting admin."""
    mallory = member_of(core, "rolemgr", "roles:create", "roles:update", "roles:read")
    with pytest.raises(PermissionDenied) as raised:
        core.roles.update(mallory, "rolemgr", permissions=["*"])
    assert "*" == raised.value.permission
    with pytest.raises(PermissionDenied):
        core.roles.create(mallory, "root", permissions=["*"])
    with pytest.raises(PermissionDenied):
        core.roles.create(mallory, "heir", inherits=["admin"])
    with pytest.raises(PermissionDenied):
        core.roles.create(mallory, "deleter", permissions=["users:delete"])
    assert ["*"] == sorted(core.roles.get(SYSTEM, "admin").permissions)
    assert "root" not in {role.name for role in core.roles.list(SYSTEM)}
    # What it holds it may hand out.
    assert core.roles.create(mallory, "reader", permissions=["roles:read"])


def test_roles_assign_cannot_make_oneself_admin(core: UserCore) -> None:
    """(b) roles:assign + users:update:own -> POST /users/{self}/roles ["admin"]."""
    mallory = member_of(core, "assigner", "roles:assign")
    assert mallory.user_id is not None
    with pytest.raises(PermissionDenied):
        core.users.assign_roles(mallory, mallory.user_id, ["user", "admin"])
    with pytest.raises(PermissionDenied):
        core.users.update(mallory, mallory.user_id, roles=["admin"])
    assert "admin" not in core.users.get(SYSTEM, mallory.user_id).roles


def test_users_update_cannot_set_the_admins_password(
    core: UserCore, admin_user: User, ada: User
) -> None:
    """(c) users:update -> PUT /users/1/password sets the admin's password."""
    helpdesk = member_of(core, "helpdesk", "users:update")
    with pytest.raises(PermissionDenied):
        core.users.set_password(helpdesk, admin_user.id, "taken over by helpdesk")
    assert login_principal(core, admin_user.email, ADMIN_PASSWORD)
    core.users.set_password(helpdesk, ada.id, "reset by the helpdesk")  # a peer is fine


def test_apikeys_create_cannot_mint_a_key_acting_as_the_admin(
    core: UserCore, admin_user: User, ada: User
) -> None:
    """(d) apikeys:create -> POST /users/1/api-keys mints a key that acts as the admin."""
    keymaker = member_of(core, "keymaker", "apikeys:create")
    with pytest.raises(PermissionDenied):
        core.api_keys.create(keymaker, admin_user.id, name="backdoor")
    assert [] == core.api_keys.list(SYSTEM, admin_user.id)


ON_THE_ADMIN: dict[str, Callable[[UserCore, Principal, User], object]] = {
    "email": lambda core, actor, target: core.users.update(
        actor, target.id, email="attacker@evil.example"
    ),
    "status": lambda core, actor, target: core.users.set_status(actor, target.id, "inactive"),
    "delete": lambda core, actor, target: core.users.delete(actor, target.id),
    "logout_all": lambda core, actor, target: core.auth.logout_all(actor, target.id),
    "roles": lambda core, actor, target: core.users.assign_roles(actor, target.id, ["user"]),
}


@pytest.mark.parametrize("action", sorted(ON_THE_ADMIN))
def test_no_action_on_a_more_privileged_account(
    core: UserCore, admin_user: User, action: str
) -> None:
    actor = member_of(core, "staff", "users:*", "roles:assign")
    with pytest.raises(PermissionDenied) as raised:
        ON_THE_ADMIN[action](core, actor, admin_user)
    assert "more privileged" in raised.value.message
    after = core.users.get(SYSTEM, admin_user.id)
    assert (admin_user.email, admin_user.roles, True) == (after.email, after.roles, after.is_active)


def test_own_grants_of_the_account_do_not_make_it_more_privileged(
    core: UserCore, ada: User
) -> None:
    """A helpdesk without the ``user`` role may still reset an ordinary user's
    password: ``users:delete:own`` or ``apikeys:*:own`` give power over that
    account only, which the helpdesk is acting on anyway."""
    core.roles.create(SYSTEM, "helpdesk", permissions=["users:update"])
    core.users.create(SYSTEM, email="desk@example.com", password=PASSWORD, roles=["helpdesk"])
    desk = login_principal(core, "desk@example.com")
    core.users.set_password(desk, ada.id, "reset by the helpdesk")
    assert core.policy.explain_delegation(desk, target_roles=["user"])


def test_an_admin_key_cannot_be_revoked_by_a_lesser_revoker(
    core: UserCore, admin_user: User
) -> None:
    record, _ = core.api_keys.create(SYSTEM, admin_user.id, name="ops")
    revoker = member_of(core, "revoker", "apikeys:revoke")
    with pytest.raises(PermissionDenied):
        core.api_keys.revoke(revoker, record.id)


def test_wildcards_count_and_own_does_not_cover_the_unscoped(core: UserCore) -> None:
    core.roles.create(SYSTEM, "updater", permissions=["users:update"])
    core.roles.create(SYSTEM, "self-updater", permissions=["users:update:own"])
    broad = member_of(core, "broad", "users:*", "roles:create")
    narrow = member_of(core, "narrow", "users:update:own", "roles:create")
    assert core.roles.create(broad, "b1", permissions=["users:update", "users:delete:own"])
    assert core.roles.create(broad, "b2", inherits=["self-updater", "updater"])
    with pytest.raises(PermissionDenied):
        core.roles.create(narrow, "n1", permissions=["users:update"])
    with pytest.raises(PermissionDenied):
        core.roles.create(narrow, "n2", inherits=["updater"])
    assert core.roles.create(narrow, "n3", permissions=["users:update:own"])


def test_an_api_key_holds_only_what_its_scopes_and_its_user_both_hold(
    core: UserCore, admin_user: User, admin: Principal
) -> None:
    _, key = core.api_keys.create(admin, admin_user.id, name="narrow", scopes=["roles:create"])
    principal = core.auth.authenticate_api_key(key)
    assert core.policy.holds(principal, "roles:create")
    assert not core.policy.holds(principal, "*")
    with pytest.raises(PermissionDenied):
        core.roles.create(principal, "wide", permissions=["users:read"])


def test_explain_delegation_names_the_rule_that_refused(
    core: UserCore, admin_user: User, admin: Principal
) -> None:
    mallory = member_of(core, "rolemgr", "roles:create", "roles:update")
    grant = core.policy.explain_delegation(mallory, grants=["*", "roles:create"])
    assert not grant
    assert "*" == grant.permission
    assert "delegation rule" in grant.rule
    rank = core.policy.explain_delegation(mallory, target_roles=["admin"])
    assert not rank
    assert "privilege rule" in rank.rule
    assert core.policy.explain_delegation(admin, grants=["*"], target_roles=["admin"])
    assert core.policy.explain_delegation(SYSTEM, grants=["*"])


def test_the_last_wildcard_holder_cannot_demote_deactivate_or_delete_itself(
    core: UserCore, admin_user: User, admin: Principal
) -> None:
    for attempt in (
        lambda: core.users.assign_roles(admin, admin_user.id, ["user"]),
        lambda: core.users.set_status(admin, admin_user.id, "inactive"),
        lambda: core.users.delete(admin, admin_user.id),
    ):
        with pytest.raises(ConflictError):
            attempt()
    assert core.users.get(SYSTEM, admin_user.id).roles == {"admin"}
    second = core.users.create(
        SYSTEM, email="second@example.com", password=ADMIN_PASSWORD, roles=["admin"]
    )
    core.users.assign_roles(admin, admin_user.id, ["user"])  # another admin remains
    with pytest.raises(ConflictError):
        core.users.delete(login_principal(core, second.email, ADMIN_PASSWORD), second.id)


def test_the_last_wildcard_cannot_go_through_a_role_change(core: UserCore) -> None:
    core.roles.create(SYSTEM, "super", permissions=["*"])
    core.users.create(SYSTEM, email="sup@example.com", password=PASSWORD, roles=["super"])
    sup = login_principal(core, "sup@example.com")
    with pytest.raises(ConflictError):
        core.roles.update(sup, "super", permissions=["users:read"])
    with pytest.raises(ConflictError):
        core.roles.delete(sup, "super", force=True)
    assert {"*"} == core.roles.get(SYSTEM, "super").permissions


def test_two_admins_demoting_each_other_at_once_leave_one(
    core: UserCore, admin_user: User, admin: Principal
) -> None:
    other_user = core.users.create(
        SYSTEM, email="other@example.com", password=ADMIN_PASSWORD, roles=["admin"]
    )
    other = login_principal(core, other_user.email, ADMIN_PASSWORD)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(actor: Principal, target: User) -> None:
        barrier.wait()
        try:
            core.users.assign_roles(actor, target.id, ["user"])
            outcomes.append("done")
        except (ConflictError, PermissionDenied) as exc:
            outcomes.append(exc.code)

    threads = [
        threading.Thread(target=demote, args=(admin, other_user)),
        threading.Thread(target=demote, args=(other, admin_user)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    admins = [
        user for user in core.users.iter_all(SYSTEM) if "admin" in user.roles and user.is_active
    ]
    assert 1 == len(admins), outcomes


def test_system_is_trusted(core: UserCore, admin_user: User) -> None:
    core.users.assign_roles(SYSTEM, admin_user.id, ["user"])  # scripts and the CLI may
    assert "admin" not in core.users.get(SYSTEM, admin_user.id).roles
