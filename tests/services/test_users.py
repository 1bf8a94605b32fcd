"""``core.users`` through the facade, on every store."""

from __future__ import annotations

import pytest

from usercore import (
    SYSTEM,
    ConflictError,
    InvalidCredentials,
    NotFoundError,
    PermissionDenied,
    Principal,
    TokenError,
    User,
    UserCore,
    UserStatus,
    ValidationError,
)
from usercore.services.events import Event

from .conftest import ADMIN_PASSWORD, PASSWORD, login_principal


def all_users(core: UserCore) -> list[dict[str, object]]:
    return [user.to_public() for user in core.users.iter_all(SYSTEM)]


# -- register and create ------------------------------------------------------------


def test_register_creates_an_active_user_with_role_user(
    core: UserCore, events: list[Event]
) -> None:
    user = core.users.register(
        email="Ada@Example.COM", password=PASSWORD, username="Ada", name="Ada Lovelace"
    )
    assert "Ada@example.com" == user.email  # domain lower-cased, local part kept
    assert frozenset({"user"}) == user.roles
    assert UserStatus.ACTIVE is user.status
    assert not user.email_verified
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert ["user.registered"] == [event.name for event in events]
    assert user == core.users.get(SYSTEM, user.id)


def test_register_reports_every_bad_field_at_once_and_writes_nothing(core: UserCore) -> None:
    with pytest.raises(ValidationError) as info:
        core.users.register(email="not an email", password="short", username="x", name="\0")
    assert {"email", "password", "username", "name"} <= set(info.value.errors)
    assert [] == all_users(core)


def test_duplicate_email_or_username_is_a_conflict_case_insensitively(
    core: UserCore, ada: User
) -> None:
    with pytest.raises(ConflictError) as info:
        core.users.register(email="ADA@example.com", password=PASSWORD)
    assert "email" == info.value.field
    with pytest.raises(ConflictError) as info:
        core.users.register(email="other@example.com", password=PASSWORD, username="ADA")
    assert "username" == info.value.field
    assert 1 == len(all_users(core))


def test_password_containing_the_username_is_rejected(core: UserCore) -> None:
    with pytest.raises(ValidationError) as info:
        core.users.register(
            email="grace@example.com", password="graceHopper-1906!", username="gracehopper"
        )
    assert "password" in info.value.errors


def test_admin_creates_users_with_roles_and_status(core: UserCore, admin: Principal) -> None:
    user = core.users.create(
        admin,
        email="eve@example.com",
        password=PASSWORD,
        roles=["admin", "user"],
        status="inactive",
    )
    assert frozenset({"admin", "user"}) == user.roles
    assert UserStatus.INACTIVE is user.status


def test_a_user_created_without_password_cannot_log_in(core: UserCore, admin: Principal) -> None:
    core.users.create(admin, email="nopass@example.com")
    with pytest.raises(InvalidCredentials):
        core.auth.login("nopass@example.com", "")


def test_users_cannot_create_users(core: UserCore, ada_p: Principal) -> None:
    with pytest.raises(PermissionDenied):
        core.users.create(ada_p, email="x@example.com", password=PASSWORD)


def test_create_with_an_unknown_role_is_a_validation_error_and_writes_nothing(
    core: UserCore, admin: Principal
) -> None:
    before = all_users(core)
    with pytest.raises(ValidationError) as info:
        core.users.create(admin, email="x@example.com", password=PASSWORD, roles=["ghost"])
    assert {"roles": ["unknown role 'ghost'"]} == info.value.errors
    assert before == all_users(core)


# -- reading ------------------------------------------------------------------------


def test_users_read_themselves_but_not_others(
    core: UserCore, ada: User, bob: User, ada_p: Principal
) -> None:
    assert ada.id == core.users.get(ada_p, ada.id).id
    with pytest.raises(PermissionDenied):
        core.users.get(ada_p, bob.id)


def test_get_of_a_missing_user_is_not_found_for_admins_and_denied_for_users(
    core: UserCore, admin: Principal, ada_p: Principal
) -> None:
    with pytest.raises(NotFoundError):
        core.users.get(admin, 9999)
    with pytest.raises(NotFoundError):
        core.users.get(admin, 2**70)
    with pytest.raises(PermissionDenied):
        core.users.get(ada_p, 9999)


@pytest.mark.parametrize("bad", ["1", 1.0, None, True])
def test_get_with_a_non_integer_id_is_a_validation_error(
    core: UserCore, admin: Principal, bad: object
) -> None:
    with pytest.raises(ValidationError):
        core.users.get(admin, bad)  # type: ignore[arg-type]


def test_get_by_email_is_case_insensitive(core: UserCore, ada: User, admin: Principal) -> None:
    assert ada.id == core.users.get_by_email(admin, " ADA@EXAMPLE.COM ").id
    with pytest.raises(NotFoundError):
        core.users.get_by_email(admin, "nobody@example.com")


def test_get_by_email_does_not_reveal_other_accounts_to_users(
    core: UserCore, ada_p: Principal, bob: User
) -> None:
    assert ada_p.user_id == core.users.get_by_email(ada_p, "ada@example.com").id
    with pytest.raises(PermissionDenied):
        core.users.get_by_email(ada_p, "bob@example.com")
    with pytest.raises(PermissionDenied):
        core.users.get_by_email(ada_p, "nobody@example.com")


def test_list_walks_every_user_once_by_cursor(core: UserCore, admin: Principal) -> None:
    created = [core.users.create(admin, email=f"user{i}@example.com").id for i in range(7)]
    seen: list[int] = []
    cursor = None
    while True:
        page = core.users.list(admin, per_page=3, cursor=cursor)
        seen.extend(user.id for user in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted([admin.user_id, *created]) == seen


def test_list_by_page_reports_the_total(core: UserCore, admin: Principal) -> None:
    for i in range(5):
        core.users.create(admin, email=f"user{i}@example.com")
    page = core.users.list(admin, page=2, per_page=4)
    assert (2, 4, 6) == (page.page, page.per_page, page.total)
    assert 2 == len(page.items)
    assert page.next_cursor is None
    assert [] == core.users.list(admin, page=9, per_page=4).items


def test_list_filters_by_role_status_and_search(
    core: UserCore, admin: Principal, ada: User, bob: User
) -> None:
    core.users.set_status(admin, bob.id, "inactive")
    assert [admin.user_id] == [u.id for u in core.users.list(admin, role="admin").items]
    assert [bob.id] == [u.id for u in core.users.list(admin, status="inactive").items]
    assert [ada.id] == [u.id for u in core.users.list(admin, search="ADA").items]
    assert [] == core.users.list(admin, search="%").items


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"per_page": 0}, "per_page"),
        ({"per_page": 101}, "per_page"),
        ({"page": 0}, "page"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"status": "sleeping"}, "status"),
        ({"search": "x" * 201}, "search"),
    ],
)
def test_list_rejects_bad_arguments_per_field(
    core: UserCore, admin: Principal, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        core.users.list(admin, **kwargs)  # type: ignore[arg-type]
    assert field in info.value.errors


def test_users_cannot_list_users(core: UserCore, ada_p: Principal) -> None:
    with pytest.raises(PermissionDenied):
        core.users.list(ada_p)


# -- updates ------------------------------------------------------------------------


def test_users_update_themselves_partially(
    core: UserCore, ada: User, ada_p: Principal, events: list[Event]
) -> None:
    updated = core.users.update(ada_p, ada.id, name="Ada King")
    assert ("Ada King", "ada", "ada@example.com") == (
        updated.name,
        updated.username,
        updated.email,
    )
    assert "user.updated" in [event.name for event in events]


def test_only_admins_update_others(
    core: UserCore, ada: User, bob: User, ada_p: Principal, admin: Principal
) -> None:
    with pytest.raises(PermissionDenied):
        core.users.update(ada_p, bob.id, name="Mallory")
    assert "Robert" == core.users.update(admin, bob.id, name="Robert").name


def test_users_cannot_change_their_own_roles_or_status(
    core: UserCore, ada: User, ada_p: Principal
) -> None:
    with pytest.raises(PermissionDenied):
        core.users.update(ada_p, ada.id, roles=["admin"])
    with pytest.raises(ValidationError):  # ``role`` is the HTTP shorthand, not a field
        core.users.update(ada_p, ada.id, role="admin")  # type: ignore[call-arg]
    with pytest.raises(PermissionDenied):
        core.users.update(ada_p, ada.id, status="inactive")
    assert frozenset({"user"}) == core.users.get(SYSTEM, ada.id).roles


def test_changing_the_email_resets_verification(
    core: UserCore, ada: User, ada_p: Principal
) -> None:
    token = core.auth.request_email_verification(ada_p, ada.id)
    assert core.auth.verify_email(token).email_verified
    updated = core.users.update(ada_p, ada.id, email="ada@newmail.example")
    assert not updated.email_verified


def test_update_rejects_unknown_fields_and_bad_values_without_writing(
    core: UserCore, ada: User, ada_p: Principal
) -> None:
    before = core.users.get(SYSTEM, ada.id)
    with pytest.raises(ValidationError) as info:
        core.users.update(ada_p, ada.id, password_hash="$argon2id$sneaky")
    assert "password_hash" in info.value.errors
    with pytest.raises(ValidationError) as info:
        core.users.update(ada_p, ada.id, email="bad", name="\x07")
    assert {"email", "name"} == set(info.value.errors)
    assert before == core.users.get(SYSTEM, ada.id)


def test_update_to_a_taken_email_is_a_conflict(
    core: UserCore, ada: User, bob: User, ada_p: Principal
) -> None:
    with pytest.raises(ConflictError):
        core.users.update(ada_p, ada.id, email="BOB@example.com")


def test_admin_assigns_roles_replacing_the_set(
    core: UserCore, ada: User, admin: Principal, events: list[Event]
) -> None:
    updated = core.users.assign_roles(admin, ada.id, ["admin"])
    assert frozenset({"admin"}) == updated.roles
    assert "user.roles_assigned" in [event.name for event in events]
    with pytest.raises(ValidationError):
        core.users.assign_roles(admin, ada.id, ["admin", "ghost"])
    assert frozenset({"admin"}) == core.users.get(SYSTEM, ada.id).roles


def test_change_password_needs_the_current_one_and_ends_every_session(
    core: UserCore, ada: User
) -> None:
    pair = core.auth.login("ada", PASSWORD)
    me = core.auth.authenticate(pair.access_token)
    with pytest.raises(ValidationError) as info:
        core.users.change_password(
            me, ada.id, current_password="wrong password!", new_password="a brand new passphrase"
        )
    assert "current_password" in info.value.errors
    core.users.change_password(
        me, ada.id, current_password=PASSWORD, new_password="a brand new passphrase"
    )
    with pytest.raises(TokenError):
        core.auth.authenticate(pair.access_token)
    with pytest.raises(TokenError):
        core.auth.refresh(pair.refresh_token)
    with pytest.raises(InvalidCredentials):
        core.auth.login("ada", PASSWORD)
    assert core.auth.login("ada", "a brand new passphrase").access_token


def test_change_password_enforces_the_policy(core: UserCore, ada: User, ada_p: Principal) -> None:
    with pytest.raises(ValidationError) as info:
        core.users.change_password(ada_p, ada.id, current_password=PASSWORD, new_password="short")
    assert "new_password" in info.value.errors


def test_admin_sets_a_password_and_sessions_end(
    core: UserCore, ada: User, admin: Principal, ada_p: Principal
) -> None:
    pair = core.auth.login("ada", PASSWORD)
    core.users.set_password(admin, ada.id, "set by the administrator")
    with pytest.raises(TokenError):
        core.auth.authenticate(pair.access_token)
    assert core.auth.login("ada", "set by the administrator")
    with pytest.raises(PermissionDenied):
        core.users.set_password(ada_p, ada.id, "users cannot use the admin reset")


def test_deactivation_ends_sessions_and_blocks_login(
    core: UserCore, ada: User, admin: Principal
) -> None:
    pair = core.auth.login("ada", PASSWORD)
    assert UserStatus.INACTIVE is core.users.set_status(admin, ada.id, UserStatus.INACTIVE).status
    with pytest.raises(TokenError):
        core.auth.authenticate(pair.access_token)
    with pytest.raises(InvalidCredentials):
        core.auth.login("ada", PASSWORD)
    core.users.set_status(admin, ada.id, "active")
    assert core.auth.login("ada", PASSWORD)


def test_users_delete_themselves_and_their_credentials_die(
    core: UserCore, ada: User, events: list[Event]
) -> None:
    pair = core.auth.login("ada", PASSWORD)
    me = core.auth.authenticate(pair.access_token)
    _, key = core.api_keys.create(me, ada.id, name="ci")
    core.users.delete(me, ada.id)
    assert "user.deleted" in [event.name for event in events]
    with pytest.raises(TokenError):
        core.auth.authenticate(pair.access_token)
    with pytest.raises(TokenError):
        core.auth.refresh(pair.refresh_token)
    with pytest.raises(TokenError):
        core.auth.authenticate_api_key(key)
    with pytest.raises(NotFoundError):
        core.users.get(SYSTEM, ada.id)


def test_users_cannot_delete_others_admins_can(
    core: UserCore, ada_p: Principal, bob: User, admin: Principal
) -> None:
    with pytest.raises(PermissionDenied):
        core.users.delete(ada_p, bob.id)
    core.users.delete(admin, bob.id)
    with pytest.raises(NotFoundError):
        core.users.delete(admin, bob.id)


# -- import -------------------------------------------------------------------------


def test_import_creates_skips_and_reports_per_record(core: UserCore, admin: Principal) -> None:
    from werkzeug.security import generate_password_hash

    legacy = generate_password_hash("legacy passphrase ok", method="pbkdf2:sha256:1000")
    records = [
        {"email": "one@example.com", "password": PASSWORD},
        {"email": "two@example.com", "password_hash": legacy, "username": "two"},
        {"email": "bad"},
        {"email": "ONE@example.com"},
        {"email": "three@example.com", "roles": ["ghost"]},
        {"email": "four@example.com", "password_hash": "plaintext!"},
        {"email": "five@example.com", "status": "inactive", "name": "Five"},
    ]
    report = core.users.import_users(admin, records, batch_size=2)
    assert (3, 1) == (report.created, report.skipped)
    assert [2, 4, 5] == [index for index, _ in report.errors]
    assert "email" in report.errors[0][1].errors
    assert "roles" in report.errors[1][1].errors
    assert "password_hash" in report.errors[2][1].errors
    # The legacy hash is kept, verifies, and is upgraded on first login.
    assert core.auth.login("two", "legacy passphrase ok")
    two = core.users.get_by_email(SYSTEM, "two@example.com")
    assert two.password_hash is not None
    assert two.password_hash.startswith("$argon2id$")


def test_import_never_leaves_a_half_written_batch(core: UserCore, admin: Principal) -> None:
    """A batch whose insert fails is rolled back whole."""
    before = {u["email"] for u in all_users(core)}
    records = [{"email": f"batch{i}@example.com"} for i in range(5)]
    report = core.users.import_users(admin, records, batch_size=10)
    assert 5 == report.created
    report = core.users.import_users(admin, records, batch_size=10)
    assert (0, 5) == (report.created, report.skipped)
    assert before | {r["email"] for r in records} == {u["email"] for u in all_users(core)}


def test_users_cannot_import(core: UserCore, ada_p: Principal) -> None:
    with pytest.raises(PermissionDenied):
        core.users.import_users(ada_p, [{"email": "x@example.com"}])


def test_the_first_admin_comes_from_system(core: UserCore) -> None:
    core.users.create(SYSTEM, email="boss@example.com", password=ADMIN_PASSWORD, roles=["admin"])
    boss = login_principal(core, "boss@example.com", ADMIN_PASSWORD)
    assert core.policy.is_allowed(boss, "users:delete", owner_id=12345)
