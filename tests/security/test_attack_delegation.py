"""Adversarial tests of the delegation guard (OWASP ASVS 4.0.3 V4.1.3 least
privilege, V4.2.1 no privilege escalation).

An API key minted for *another* account is handed to the minter, who then
acts as that account.  Its ``:own`` grants therefore reach that account's
records on the minter's behalf: ``users:delete:own`` in a key for Ada lets
whoever holds the key delete Ada.  The privilege rule ignores the target's
``:own`` grants ("they reach no further than the account itself, which the
actor is acting on anyway"), which is true of a profile edit but not of a
credential the actor walks away with.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from usercore import SYSTEM, PermissionDenied, User, UserCore

from ..services.conftest import ADMIN_PASSWORD, PASSWORD, login_principal
from .test_delegation import member_of


def test_a_key_minted_for_another_account_cannot_do_what_the_minter_cannot(
    core: UserCore, ada: User
) -> None:
    # An operator who may mint API keys for anyone (and manage its own account).
    minter = member_of(core, "keymaker", "apikeys:create")
    # Before the fix: a key with Ada's grants (users:delete:own among them),
    # and `core.users.delete(as_ada, ada.id)` deleted Ada for a minter holding
    # no users:delete.  Neither through the key's own grants nor explicit :own scopes.
    for scopes in (None, ["users:delete:own"], ["apikeys:revoke:own"]):
        with pytest.raises(PermissionDenied):
            core.api_keys.create(minter, ada.id, name="impersonate", scopes=scopes)
    assert core.users.get(SYSTEM, ada.id).email == "ada@example.com"
    assert core.api_keys.list(SYSTEM, ada.id) == []


def test_a_minter_that_holds_the_grants_on_any_record_may_mint(core: UserCore, ada: User) -> None:
    support = member_of(core, "support", "apikeys:create", "users:read", "users:update")
    # Scopes it holds on anyone's records: fine, also as :own scopes of Ada's key.
    key, _ = core.api_keys.create(support, ada.id, name="read", scopes=["users:read:own"])
    assert key.user_id == ada.id
    with pytest.raises(PermissionDenied):
        core.api_keys.create(support, ada.id, name="all")  # Ada may delete herself
    # One's own key is bounded by one's own grants, :own included, as before.
    ada_p = login_principal(core, "ada")
    assert core.api_keys.create(ada_p, ada.id, name="mine")[0].user_id == ada.id


def test_a_demoted_administrator_cannot_undo_its_demotion_with_token_roles(
    open_core: Callable[..., UserCore],
) -> None:
    """With ``trust_token_roles=True`` a token keeps the roles it was issued
    with until it expires (a documented trade-off: up to 15 minutes of the old
    permissions).  But the delegation guard trusted them too, so an
    administrator demoted by another one gave itself ``admin`` back with its
    old token, and the demotion never happened.  What an actor may *hand out*
    is judged on its roles as stored now."""
    core = open_core(trust_token_roles=True)
    for name in ("root", "eve"):
        core.users.create(
            SYSTEM,
            email=f"{name}@example.com",
            username=name,
            password=PASSWORD,
            roles=["admin"],
        )
    token = core.auth.login("eve", PASSWORD).access_token
    eve_id = core.auth.authenticate(token).user_id
    assert eve_id is not None
    core.users.assign_roles(login_principal(core, "root"), eve_id, ["user"])
    # Eve's next request, with the token she held before the demotion: it
    # still carries the admin role.
    eve = core.auth.authenticate(token)
    assert "admin" in eve.roles
    for attempt in (
        lambda: core.users.assign_roles(eve, eve_id, ["user", "admin"]),
        lambda: core.users.create(eve, email="sock@example.com", roles=["admin"]),
        lambda: core.roles.create(eve, "root2", permissions=["*"]),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    assert core.users.get(SYSTEM, eve_id).roles == {"user"}


def test_a_verification_token_for_a_more_privileged_account_is_refused(
    core: UserCore, admin_user: User
) -> None:
    """The privilege rule covers every act on another account, and a
    verification token is a credential for that account's address: a helpdesk
    role with ``users:update`` got one for the administrator (and could mark
    an address verified that nobody had proved)."""
    helpdesk = member_of(core, "helpdesk", "users:update")
    with pytest.raises(PermissionDenied):
        core.auth.request_email_verification(helpdesk, admin_user.id)


def test_change_password_on_a_more_privileged_account_is_no_guessing_oracle(
    core: UserCore, admin_user: User
) -> None:
    """``change_password`` checked the current password *before* the privilege
    rule: a helpdesk role with ``users:update`` got ``current_password: is
    incorrect`` for a wrong guess of the administrator's password and
    ``PermissionDenied`` for the right one (an oracle, OWASP ASVS 4.0.3
    V4.2.1), and each wrong guess was charged to the administrator's lockout
    counters.  The privilege rule must refuse first, whatever the guess."""
    helpdesk = member_of(core, "helpdesk", "users:update")
    for guess in [f"wrong guess number {n}" for n in range(6)] + [ADMIN_PASSWORD]:
        with pytest.raises(PermissionDenied):
            core.users.change_password(
                helpdesk, admin_user.id, current_password=guess, new_password="x" * 20
            )
    # No guess was charged: the administrator is not locked out.
    assert login_principal(core, admin_user.email, ADMIN_PASSWORD).user_id == admin_user.id
