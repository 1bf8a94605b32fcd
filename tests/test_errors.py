"""The error hierarchy of DESIGN §3: codes, statuses, structured fields."""

from __future__ import annotations

import pytest

import usercore
from usercore import errors

EXPECTED = [
    (errors.UsercoreError, "internal_error", 500),
    (errors.NotFoundError, "not_found", 404),
    (errors.ConflictError, "conflict", 409),
    (errors.AuthenticationError, "authentication_failed", 401),
    (errors.InvalidCredentials, "invalid_credentials", 401),
    (errors.TokenError, "invalid_token", 401),
    (errors.PermissionDenied, "permission_denied", 403),
]


@pytest.mark.parametrize(("cls", "code", "status"), EXPECTED)
def test_each_error_has_its_code_status_message_and_details(
    cls: type[errors.UsercoreError], code: str, status: int
) -> None:
    error = cls()
    assert code == error.code
    assert status == error.http_status
    assert error.message
    assert {} == error.details
    assert {"code": code, "message": error.message, "details": {}} == error.to_dict()


def test_validation_error_keeps_every_message_per_field() -> None:
    error = errors.ValidationError({"email": ["must be a valid email address"], "password": []})
    assert "validation_failed" == error.code
    assert 400 == error.http_status
    assert {"email": ["must be a valid email address"], "password": []} == error.errors
    assert error.errors == error.details
    assert "email: must be a valid email address" in str(error)


def test_validation_error_single_names_one_field() -> None:
    assert {"name": ["too long"]} == errors.ValidationError.single("name", "too long").errors


def test_account_locked_carries_retry_after_in_seconds() -> None:
    error = errors.AccountLocked(retry_after=61)
    assert "account_locked" == error.code
    assert 429 == error.http_status
    assert 61 == error.retry_after
    assert {"retry_after": 61} == error.details
    assert isinstance(error, errors.AuthenticationError)


def test_account_locked_never_advertises_less_than_a_second() -> None:
    assert 1 == errors.AccountLocked(retry_after=0).retry_after


def test_conflict_error_names_the_field() -> None:
    error = errors.ConflictError("Email already registered.", field="email")
    assert "email" == error.field
    assert {"field": "email"} == error.details


def test_permission_denied_names_the_permission() -> None:
    assert {"permission": "users:delete"} == errors.PermissionDenied(
        permission="users:delete"
    ).details


def test_token_and_credential_errors_are_authentication_errors() -> None:
    assert issubclass(errors.TokenError, errors.AuthenticationError)
    assert issubclass(errors.InvalidCredentials, errors.AuthenticationError)
    assert issubclass(errors.AuthenticationError, errors.UsercoreError)


def test_errors_are_reexported_from_the_package() -> None:
    for name in errors.__all__:
        assert getattr(usercore, name) is getattr(errors, name)
