"""The CustomField declaration and the validation of custom values."""

from __future__ import annotations

from typing import Any

import pytest

from usercore import CustomField, Settings
from usercore.custom_fields import RESERVED_NAMES, from_stored, same_value
from usercore.domain import CustomFieldValues, User
from usercore.validation import check_custom_fields, validate_custom_fields


@pytest.mark.parametrize(
    "name", ["", "Tenant", "1st", "tenant-id", "tenant id", "x" * 41, "é", "class", "_x"]
)
def test_a_name_must_be_a_lower_case_identifier(name: str) -> None:
    with pytest.raises(ValueError, match=r"identifier|taken"):
        CustomField(name=name)


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_a_name_cannot_be_a_built_in_field(name: str) -> None:
    with pytest.raises(ValueError, match="built-in"):
        CustomField(name=name)


def test_settings_refuse_two_fields_with_one_name() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Settings(custom_fields=(CustomField(name="a"), CustomField(name="a", type=int)))


def test_settings_refuse_something_else_than_a_declaration() -> None:
    with pytest.raises(TypeError):
        Settings(custom_fields=("tenant_id",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"type": list},
        {"type": int, "pattern": "x"},
        {"type": bool, "min_value": 1},
        {"default": 5},
        {"choices": ()},
        {"choices": ("a", 1)},
        {"pattern": "("},
        {"max_length": 0},
        {"min_length": 5, "max_length": 4},
        {"required": True},  # neither registrable nor defaulted: register could never work
        {"unique": True, "default": "x"},  # every account without a value would share it
    ],
)
def test_an_inconsistent_declaration_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"CustomField 'f'"):
        CustomField(name="f", **options)


FIELDS = (
    CustomField(name="code", pattern=r"[A-Z]-\d+", max_length=10),
    CustomField(name="seats", type=int, min_value=1, max_value=10),
    CustomField(name="ratio", type=float),
    CustomField(name="beta", type=bool, default=False),
    CustomField(name="plan", choices=("free", "team")),
    CustomField(name="even", type=int, validator=lambda n: _even(n)),
    CustomField(name="tenant", required=True, registrable=True),
)


def _even(number: int) -> None:
    if number % 2:
        raise ValueError("must be even")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("code", "  A-12 ", "A-12"),
        ("code", "Ａ-１２", "A-12"),  # NFKC, like names and usernames
        ("seats", 3, 3),
        ("ratio", 2, 2.0),
        ("ratio", 0.25, 0.25),
        ("beta", True, True),
        ("plan", "team", "team"),
        ("even", 4, 4),
    ],
)
def test_values_are_normalized(name: str, value: object, expected: object) -> None:
    values = validate_custom_fields(FIELDS, {"tenant": "t", name: value}, new=True)
    assert same_value(expected, values[name])


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("code", "a-12", "does not have the expected format"),
        ("code", "A-" + "1" * 20, "must be at most 10 characters"),
        ("code", "x" * 10_000, "must be at most 10 characters"),
        ("code", 12, "must be a string"),
        ("code", " ", "must not be empty"),
        ("code", "A-1\u0000", "must not contain control or invisible formatting characters"),
        ("code", "A-1\ud800", "must not contain control or invisible formatting characters"),
        ("code", "A-1\u202e", "must not contain control or invisible formatting characters"),
        ("seats", "3", "must be an integer"),
        ("seats", True, "must be an integer"),
        ("seats", 2.0, "must be an integer"),
        ("seats", 0, "must be at least 1"),
        ("seats", 11, "must be at most 10"),
        ("seats", 2**63, "must be a 64-bit integer"),
        ("ratio", float("nan"), "must be a finite number"),
        ("ratio", "0.5", "must be a number"),
        ("ratio", False, "must be a number"),
        ("beta", 1, "must be a boolean"),
        ("beta", "true", "must be a boolean"),
        ("plan", "gold", "must be one of 'free', 'team'"),
        ("even", 3, "must be even"),
        ("tenant", None, "is required"),
        ("nope", 1, "is not a known field"),
    ],
)
def test_bad_values_are_refused_under_their_field(name: str, value: object, message: str) -> None:
    _, problems = check_custom_fields(FIELDS, {"tenant": "t", name: value}, new=True)
    assert problems == {name: [message]}


def test_a_new_account_gets_every_field_with_defaults() -> None:
    values = validate_custom_fields(FIELDS, {"tenant": "t"}, new=True)
    assert values == {
        "code": None,
        "seats": None,
        "ratio": None,
        "beta": False,
        "plan": None,
        "even": None,
        "tenant": "t",
    }


def test_an_update_has_only_the_given_fields_and_may_clear_optional_ones() -> None:
    assert validate_custom_fields(FIELDS, {"plan": None}, new=False) == {"plan": None}
    _, problems = check_custom_fields(FIELDS, {"tenant": None}, new=False)
    assert problems == {"tenant": ["is required"]}


def test_values_must_come_as_a_mapping() -> None:
    _, problems = check_custom_fields(FIELDS, ["tenant"], new=True)
    assert list(problems) == ["custom_fields"]


def test_messages_never_contain_the_value() -> None:
    secret = "A-SECRET-9"
    _, problems = check_custom_fields(FIELDS, {"tenant": "t", "code": secret + "!"}, new=True)
    assert secret not in repr(problems)


def test_stored_values_are_read_through_the_declaration() -> None:
    read = from_stored(FIELDS, {"seats": "3", "ratio": 1, "gone": "x", "beta": True})
    assert read["seats"] is None  # written as another type
    assert same_value(1.0, read["ratio"])
    assert "gone" not in read
    assert read["beta"] is True


def test_custom_values_compare_type_exactly() -> None:
    assert CustomFieldValues({"a": 1}) != CustomFieldValues({"a": True})
    assert CustomFieldValues({"a": 1}) == {"a": 1}
    assert hash(CustomFieldValues({"a": 1})) == hash(CustomFieldValues({"a": 1}))


def test_a_user_shows_its_custom_fields_after_the_built_in_ones(user: User) -> None:
    shown = user.to_public()
    assert list(shown)[-2:] == ["tenant_id", "seats"]
    assert shown["tenant_id"] == "acme"
    assert "tenant_id" in repr(user)


@pytest.fixture
def user() -> User:
    from datetime import datetime, timezone

    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return User(
        id=1,
        email="ada@example.com",
        created_at=now,
        updated_at=now,
        custom_fields={"tenant_id": "acme", "seats": None},
    )
