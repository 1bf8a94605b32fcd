"""Registration policy: Settings.registration, invitations, Settings.require_verified_email
and app permissions registered by an actor (issue 16 item 4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from usercore import (
    SYSTEM,
    ConflictError,
    EmailNotVerified,
    InvalidCredentials,
    PermissionDenied,
    RegistrationClosed,
    TokenError,
    UserCore,
    UserStatus,
    ValidationError,
)

from .conftest import PASSWORD, FakeClock, admin_of, login_principal, watch

# -- Settings.registration ---------------------------------------------------------------


def test_registration_is_open_by_default(core: UserCore) -> None:
    assert core.settings.registration == "open"
    assert core.users.register(email="ada@example.com", password=PASSWORD).is_active


@pytest.mark.parametrize("mode", ["closed", "invite"])
def test_closed_registration_refuses_and_stores_nothing(
    open_core: Callable[..., UserCore], mode: str
) -> None:
    core = open_core(registration=mode)
    seen = watch(core)
    with pytest.raises(RegistrationClosed) as caught:
        core.users.register(email="ada@example.com", password=PASSWORD)
    assert ("registration_closed", 403) == (caught.value.code, caught.value.http_status)
    assert [] == core.users.list(SYSTEM).items
    assert [("user.registration_refused", {"mode": mode})] == [
        (event.name, dict(event.data)) for event in seen
    ]


def test_closed_registration_answers_before_looking_at_the_input(
    open_core: Callable[..., UserCore],
) -> None:
    """Invalid input, a taken address and a new one get the same refusal."""
    core = open_core(registration="closed")
    core.users.create(SYSTEM, email="ada@example.com", password=PASSWORD)
    answers = set()
    for email, password in (
        ("ada@example.com", PASSWORD),
        ("new@example.com", PASSWORD),
        ("not an email", "x"),
    ):
        with pytest.raises(RegistrationClosed) as caught:
            core.users.register(email=email, password=password)
        answers.add((caught.value.code, caught.value.message, str(caught.value.details)))
    assert 1 == len(answers)


def test_administrators_still_create_accounts_when_closed(
    open_core: Callable[..., UserCore],
) -> None:
    core = open_core(registration="closed")
    admin = admin_of(core)
    user = core.users.create(admin, email="ada@example.com", password=PASSWORD)
    assert user.is_active


def test_an_unknown_registration_mode_is_refused() -> None:
    from usercore import Settings

    with pytest.raises(ValueError, match="registration must be one of open, closed, invite"):
        Settings(registration="sometimes")  # type: ignore[arg-type]


# -- invitations -----------------------------------------------------------------------------


def test_an_invitation_makes_a_pending_account_that_registration_completes(
    open_core: Callable[..., UserCore],
) -> None:
    core = open_core(registration="invite")
    admin = admin_of(core)
    core.roles.create(SYSTEM, "editor", permissions=["users:read"])
    seen = watch(core)
    pending, token = core.users.invite(admin, email="Ada@Example.com", roles=["user", "editor"])
    assert (UserStatus.INACTIVE, False, False) == (
        pending.status,
        pending.has_password,
        pending.email_verified,
    )
    with pytest.raises(InvalidCredentials):  # a pending account cannot sign in
        core.auth.login("Ada@Example.com", PASSWORD)
    user = core.users.register(
        email="ada@example.com", password=PASSWORD, username="ada", invitation=token
    )
    assert user.id == pending.id
    assert user.is_active
    assert user.email_verified
    assert {"user", "editor"} == set(user.roles)
    assert "Ada@example.com" == user.email  # the invited address, as stored
    assert ("ada", "user.registered") == (user.username, seen[-1].name)
    assert {"invited": True} == dict(seen[-1].data)
    assert "user.invited" in [event.name for event in seen]
    assert core.auth.login("ada", PASSWORD).access_token


def test_an_invitation_is_single_use(open_core: Callable[..., UserCore]) -> None:
    core = open_core(registration="invite")
    _, token = core.users.invite(admin_of(core), email="ada@example.com")
    core.users.register(email="ada@example.com", password=PASSWORD, invitation=token)
    with pytest.raises(TokenError):
        core.users.register(email="ada@example.com", password=PASSWORD, invitation=token)


def test_an_invitation_for_another_email_is_refused_and_not_spent(
    open_core: Callable[..., UserCore],
) -> None:
    core = open_core(registration="invite")
    _, token = core.users.invite(admin_of(core), email="ada@example.com")
    with pytest.raises(TokenError):
        core.users.register(email="eve@example.com", password=PASSWORD, invitation=token)
    assert [] == [u for u in core.users.list(SYSTEM).items if u.email == "eve@example.com"]
    assert core.users.register(email="ada@example.com", password=PASSWORD, invitation=token)


def test_an_expired_invitation_is_refused(
    open_core: Callable[..., UserCore], clock: FakeClock
) -> None:
    core = open_core(registration="invite")
    _, token = core.users.invite(admin_of(core), email="ada@example.com")
    clock.advance(days=7, seconds=1)
    with pytest.raises(TokenError):
        core.users.register(email="ada@example.com", password=PASSWORD, invitation=token)


def test_a_bad_password_leaves_the_invitation_usable(open_core: Callable[..., UserCore]) -> None:
    core = open_core(registration="invite")
    _, token = core.users.invite(admin_of(core), email="ada@example.com")
    with pytest.raises(ValidationError) as caught:
        core.users.register(email="ada@example.com", password="short", invitation=token)
    assert "password" in caught.value.errors
    assert core.users.register(email="ada@example.com", password=PASSWORD, invitation=token)


@pytest.mark.parametrize("token", ["", "x" * 500, "not-a-token", None])
def test_garbage_invitations_are_one_opaque_error(
    open_core: Callable[..., UserCore], token: str | None
) -> None:
    core = open_core(registration="invite")
    if token is None:
        with pytest.raises(RegistrationClosed):
            core.users.register(email="ada@example.com", password=PASSWORD, invitation=token)
    else:
        with pytest.raises(TokenError):
            core.users.register(email="ada@example.com", password=PASSWORD, invitation=token)


def test_another_purpose_token_is_no_invitation(open_core: Callable[..., UserCore]) -> None:
    """A password-reset token of the same account does not accept its invitation."""
    core = open_core(registration="invite")
    admin = admin_of(core)
    ada = core.users.create(admin, email="ada@example.com", password=PASSWORD)
    reset = core.auth.request_password_reset("ada@example.com")
    assert reset is not None
    assert ada.is_active
    with pytest.raises(TokenError):
        core.users.register(email="ada@example.com", password=PASSWORD, invitation=reset)


def test_inviting_needs_users_create_and_the_delegation_rule(
    open_core: Callable[..., UserCore],
) -> None:
    core = open_core(registration="invite")
    admin_of(core)
    core.users.create(SYSTEM, email="bob@example.com", password=PASSWORD)
    bob = login_principal(core, "bob@example.com")
    with pytest.raises(PermissionDenied):
        core.users.invite(bob, email="eve@example.com")
    core.roles.create(SYSTEM, "inviter", permissions=["users:create", "roles:assign"])
    core.users.assign_roles(SYSTEM, bob.user_id or 0, ["user", "inviter"])
    bob = login_principal(core, "bob@example.com")
    with pytest.raises(PermissionDenied):  # cannot hand out '*', which bob does not hold
        core.users.invite(bob, email="eve@example.com", roles=["admin"])
    assert [] == [u for u in core.users.list(SYSTEM).items if u.email == "eve@example.com"]


def test_inviting_a_taken_address_is_a_conflict(open_core: Callable[..., UserCore]) -> None:
    core = open_core(registration="invite")
    admin = admin_of(core)
    with pytest.raises(ConflictError):
        core.users.invite(admin, email="root@example.com")


def test_no_invitations_while_registration_is_closed(open_core: Callable[..., UserCore]) -> None:
    core = open_core(registration="closed")
    with pytest.raises(RegistrationClosed):
        core.users.invite(admin_of(core), email="ada@example.com")


def test_an_invitation_works_in_open_mode_too(core: UserCore) -> None:
    _, token = core.users.invite(admin_of(core), email="ada@example.com")
    user = core.users.register(email="ada@example.com", password=PASSWORD, invitation=token)
    assert user.email_verified


def test_a_completed_account_cannot_be_taken_over_with_its_old_invitation(
    open_core: Callable[..., UserCore],
) -> None:
    """An admin who activates the pending account and sets its password voids the invitation."""
    core = open_core(registration="invite")
    admin = admin_of(core)
    pending, token = core.users.invite(admin, email="ada@example.com")
    core.users.set_status(admin, pending.id, "active")
    with pytest.raises(TokenError):
        core.users.register(email="ada@example.com", password=PASSWORD, invitation=token)


# -- Settings.require_verified_email ----------------------------------------------------------


def test_login_needs_a_verified_email_when_required(open_core: Callable[..., UserCore]) -> None:
    core = open_core(require_verified_email=True)
    ada = core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    seen = watch(core)
    for identifier in ("ada@example.com", "ada"):
        with pytest.raises(EmailNotVerified) as caught:
            core.auth.login(identifier, PASSWORD)
        assert ("email_not_verified", 403, {}) == (
            caught.value.code,
            caught.value.http_status,
            caught.value.details,
        )
        assert ada.id == caught.value.user_id
    assert {"reason": "email_not_verified"} == dict(seen[-1].data)
    core.auth.verify_email(core.auth.request_email_verification(SYSTEM, ada.id))
    assert core.auth.login("ada", PASSWORD).access_token


def test_a_wrong_password_is_still_invalid_credentials(open_core: Callable[..., UserCore]) -> None:
    core = open_core(require_verified_email=True)
    core.users.register(email="ada@example.com", password=PASSWORD)
    with pytest.raises(InvalidCredentials):
        core.auth.login("ada@example.com", "a wrong but long password")


def test_the_right_password_of_an_unverified_account_is_not_charged_to_the_lockout(
    open_core: Callable[..., UserCore],
) -> None:
    core = open_core(require_verified_email=True, lockout_threshold=2)
    ada = core.users.register(email="ada@example.com", password=PASSWORD)
    for _ in range(5):
        with pytest.raises(EmailNotVerified):
            core.auth.login("ada@example.com", PASSWORD)
    core.auth.verify_email(core.auth.request_email_verification(SYSTEM, ada.id))
    assert core.auth.login("ada@example.com", PASSWORD)


def test_wrong_passwords_still_lock_an_unverified_account(
    open_core: Callable[..., UserCore],
) -> None:
    from usercore import AccountLocked

    core = open_core(require_verified_email=True, lockout_threshold=2)
    core.users.register(email="ada@example.com", password=PASSWORD)
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            core.auth.login("ada@example.com", "a wrong but long password")
    with pytest.raises(AccountLocked):
        core.auth.login("ada@example.com", PASSWORD)


def test_an_account_without_email_is_not_held_back(open_core: Callable[..., UserCore]) -> None:
    core = open_core(require_verified_email=True)
    core.users.register(username="ada", password=PASSWORD)
    assert core.auth.login("ada", PASSWORD).access_token


def test_refresh_is_refused_until_the_new_address_is_verified(
    open_core: Callable[..., UserCore],
) -> None:
    core = open_core(require_verified_email=True)
    ada = core.users.register(email="ada@example.com", password=PASSWORD)
    core.auth.verify_email(core.auth.request_email_verification(SYSTEM, ada.id))
    pair = core.auth.login("ada@example.com", PASSWORD)
    me = core.auth.authenticate(pair.access_token)
    core.users.update(me, ada.id, email="ada@new.example", current_password=PASSWORD)
    with pytest.raises(EmailNotVerified):
        core.auth.refresh(pair.refresh_token)
    core.auth.verify_email(core.auth.request_email_verification(SYSTEM, ada.id))
    assert core.auth.refresh(pair.refresh_token).access_token  # not spent by the refusal


def test_the_default_lets_unverified_accounts_log_in(core: UserCore) -> None:
    core.users.register(email="ada@example.com", password=PASSWORD)
    assert core.auth.login("ada@example.com", PASSWORD).access_token


# -- permissions registered by an actor --------------------------------------------------------


def test_an_administrator_registers_a_permission_once(core: UserCore) -> None:
    admin = admin_of(core)
    seen = watch(core)
    permission = core.permissions.register(admin, "reports:read", "Read reports", exist_ok=False)
    assert ("reports:read", "Read reports") == (permission.name, permission.description)
    with pytest.raises(ConflictError) as caught:
        core.permissions.register(admin, "reports:read", "Again", exist_ok=False)
    assert "name" == caught.value.field
    assert core.permissions.register(admin, "reports:read") == permission  # exist_ok default
    assert [("permission.registered", {"permission": "reports:read"})] == [
        (event.name, dict(event.data)) for event in seen
    ]


def test_registering_a_permission_needs_permissions_register(core: UserCore) -> None:
    core.users.register(email="ada@example.com", password=PASSWORD)
    ada = login_principal(core, "ada@example.com")
    with pytest.raises(PermissionDenied):
        core.permissions.register(ada, "reports:read")
    assert "reports:read" not in [p.name for p in core.permissions.list()]


@pytest.mark.parametrize(
    ("name", "description", "field"),
    [
        ("*", "", "name"),
        ("reports:*", "", "name"),
        ("reports:read:own", "", "name"),
        ("Reports:Read", "", "name"),
        ("reports:read", "x" * 501, "description"),
        ("reports:read", "bell\x07", "description"),
    ],
)
def test_a_holder_of_permissions_register_cannot_register_wildcards_or_junk(
    core: UserCore, name: str, description: str, field: str
) -> None:
    core.roles.create(SYSTEM, "registrar", permissions=["permissions:register"])
    core.users.create(SYSTEM, email="reg@example.com", password=PASSWORD, roles=["registrar"])
    registrar = login_principal(core, "reg@example.com")
    before = core.permissions.list()
    with pytest.raises(ValidationError) as caught:
        core.permissions.register(registrar, name, description)
    assert [field] == list(caught.value.errors)
    assert before == core.permissions.list()


def test_an_invitation_needs_an_email_and_stores_nothing_without_one(
    open_core: Callable[..., UserCore],
) -> None:
    core = open_core(registration="invite")
    admin = admin_of(core)
    with pytest.raises(ValidationError) as caught:
        core.users.invite(admin, email=None, username="ada")  # type: ignore[arg-type]
    assert ["email"] == list(caught.value.errors)
    assert [] == [u for u in core.users.list(SYSTEM).items if u.username == "ada"]
