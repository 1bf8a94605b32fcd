"""usercore.testing.strategies: valid strategies pass validation, invalid ones fail it."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis.strategies import SearchStrategy

from usercore import Settings, ValidationError
from usercore.domain.permissions import parse_permission, permission_problems
from usercore.testing import strategies
from usercore.validation import (
    email_problems,
    name_problems,
    password_problems,
    username_problems,
    validate_email,
    validate_name,
    validate_password,
    validate_user_fields,
    validate_username,
)

# ---------------------------------------------------------------- valid values pass


@given(strategies.emails())
def test_emails_are_valid_and_already_normalized(email: str) -> None:
    assert email == validate_email(email)


@given(strategies.usernames())
def test_usernames_are_valid_and_already_normalized(username: str) -> None:
    assert username == validate_username(username)


@given(strategies.names())
def test_names_are_valid_and_already_normalized(name: str) -> None:
    assert name == validate_name(name)


@given(strategies.passwords())
def test_passwords_satisfy_the_default_policy(password: str) -> None:
    assert [] == password_problems(password)
    assert unicodedata.normalize("NFKC", password) == validate_password(
        password, settings=Settings()
    )


@given(strategies.permissions())
def test_permissions_follow_the_permission_grammar(permission: str) -> None:
    assert [] == permission_problems(permission)
    parse_permission(permission)


@given(strategies.user_records())
def test_user_records_validate_as_a_whole(record: dict[str, Any]) -> None:
    assert {"email", "username", "name", "password"} == set(record)
    fields = validate_user_fields(**record)
    assert record["email"] == fields.email
    assert record["username"] == fields.username
    assert record["name"] == fields.name


# ---------------------------------------------------------------- invalid values fail


@given(strategies.invalid_emails())
def test_invalid_emails_are_rejected(email: str) -> None:
    assert [] != email_problems(email)
    with pytest.raises(ValidationError):
        validate_email(email)


@given(strategies.invalid_usernames())
def test_invalid_usernames_are_rejected(username: str) -> None:
    assert [] != username_problems(username)
    with pytest.raises(ValidationError):
        validate_username(username)


@given(strategies.invalid_names())
def test_invalid_names_are_rejected(name: str) -> None:
    assert [] != name_problems(name)
    with pytest.raises(ValidationError):
        validate_name(name)


@given(strategies.weak_passwords())
def test_weak_passwords_are_rejected(password: str) -> None:
    assert [] != password_problems(password)
    with pytest.raises(ValidationError):
        validate_password(password, settings=Settings())


# ---------------------------------------------------------------- what the strategies cover

# Looking for one example is enough; shrinking it would only cost time.
_SEARCH = settings(phases=[Phase.generate], database=None, max_examples=1000)


def _some(strategy: SearchStrategy[Any], condition: Any) -> Any:
    return find(strategy, condition, settings=_SEARCH)


def test_usernames_include_non_ascii_letters() -> None:
    assert not _some(strategies.usernames(), lambda username: not username.isascii()).isascii()


def test_usernames_reach_the_maximum_length() -> None:
    assert 32 == len(_some(strategies.usernames(), lambda username: len(username) == 32))


def test_emails_include_internationalized_local_parts_and_domains() -> None:
    local = _some(strategies.emails(), lambda email: not email.split("@")[0].isascii())
    domain = _some(strategies.emails(), lambda email: not email.split("@")[1].isascii())
    assert not local.isascii()
    assert not domain.isascii()


def test_emails_include_long_addresses() -> None:
    assert len(_some(strategies.emails(), lambda email: len(email) > 150)) > 150


def test_names_include_non_ascii_text() -> None:
    assert not _some(strategies.names(), lambda name: not name.isascii()).isascii()


def test_passwords_include_text_that_nfkc_changes() -> None:
    """So the policy's normalization is exercised, not only already-normalized input."""
    password = find(
        strategies.passwords(),
        lambda password: unicodedata.normalize("NFKC", password) != password,
    )
    assert unicodedata.normalize("NFKC", password) != password


def test_passwords_reach_the_maximum_length() -> None:
    assert 1024 == len(_some(strategies.passwords(), lambda password: len(password) == 1024))


def test_user_records_include_ones_with_username_and_name() -> None:
    record = find(
        strategies.user_records(),
        lambda record: record["username"] is not None and record["name"] is not None,
    )
    assert record["username"] is not None
