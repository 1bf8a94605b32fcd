"""Entities: frozen, JSON shape of DESIGN §8, no secret in any repr."""

from __future__ import annotations

from datetime import datetime, timezone

import attrs
import pytest

from usercore import SYSTEM, ApiKey, Decision, Page, Principal, Role, TokenPair, User, UserStatus
from usercore.domain import email_key, highest_role, username_key

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"


def make_user(**changes: object) -> User:
    fields: dict[str, object] = {
        "id": 7,
        "email": "Ada@example.com",
        "username": "ada",
        "name": "Ada Lovelace",
        "roles": ["user", "admin"],
        "created_at": NOW,
        "updated_at": NOW,
        "password_hash": HASH,
    }
    fields.update(changes)
    return User(**fields)  # type: ignore[arg-type]


def test_user_to_public_is_the_documented_json_shape() -> None:
    assert {
        "id": 7,
        "email": "Ada@example.com",
        "username": "ada",
        "name": "Ada Lovelace",
        "role": "admin",
        "roles": ["admin", "user"],
        "status": "active",
        "email_verified": False,
        "created_at": "2026-01-02T03:04:05Z",
        "updated_at": "2026-01-02T03:04:05Z",
        "last_login_at": None,
    } == make_user().to_public()


def test_user_repr_and_public_shape_never_contain_the_password_hash() -> None:
    user = make_user()
    assert HASH not in repr(user)
    assert HASH not in str(user.to_public())


def test_user_is_frozen_and_changed_with_evolve() -> None:
    user = make_user()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        user.email = "x@example.com"  # type: ignore[misc]
    assert "Ada" == attrs.evolve(user, name="Ada").name


def test_status_accepts_its_string_value() -> None:
    assert UserStatus.INACTIVE is make_user(status="inactive").status


def test_highest_role_prefers_admin_then_app_roles_then_user() -> None:
    assert "admin" == highest_role({"user", "admin", "editor"})
    assert "editor" == highest_role({"user", "editor"})
    assert "user" == highest_role({"user"})
    assert highest_role(()) is None


def test_email_and_username_keys_are_case_insensitive_and_nfkc() -> None:
    assert email_key("Ada@Example.COM") == email_key("ada@example.com")
    assert username_key("ＡＤＡ") == username_key("ada")
    assert make_user().email_key == "ada@example.com"


def test_token_pair_repr_hides_the_tokens() -> None:
    pair = TokenPair(access_token="aaa.bbb.ccc", refresh_token="r" * 43, expires_in=900)
    assert "aaa.bbb.ccc" not in repr(pair)
    assert "r" * 43 not in repr(pair)
    assert "bearer" == pair.to_dict()["token_type"]


def test_api_key_repr_and_public_shape_hide_the_secret_digest() -> None:
    digest = b"\x01" * 32
    key = ApiKey(id=1, user_id=2, name="ci", prefix="abcdefgh", created_at=NOW, secret_hash=digest)
    assert repr(digest) not in repr(key)
    assert "secret_hash" not in key.to_public()
    assert key.is_usable_at(NOW)
    assert not attrs.evolve(key, revoked_at=NOW).is_usable_at(NOW)
    assert not attrs.evolve(key, expires_at=NOW).is_usable_at(NOW)


def test_system_principal_is_the_only_system_one() -> None:
    assert SYSTEM.is_system
    assert not Principal(user_id=1, roles={"admin"}).is_system


def test_principal_scopes_none_means_unrestricted() -> None:
    assert Principal(user_id=1).scopes is None
    assert frozenset({"users:read"}) == Principal(user_id=1, scopes=["users:read"]).scopes


def test_role_and_page_and_decision_shapes() -> None:
    role = Role(name="editor", permissions=["posts:update"], inherits=["viewer"])
    assert {
        "name": "editor",
        "permissions": ["posts:update"],
        "inherits": ["viewer"],
        "description": "",
    } == role.to_public()
    page: Page[int] = Page(items=[1, 2], per_page=2, page=1, total=5, next_cursor="c")
    assert [1, 2] == page.items
    assert not Decision(allowed=False, permission="x:y")
    assert Decision(allowed=True, permission="x:y", grant="*", chain=("admin", "*"))
