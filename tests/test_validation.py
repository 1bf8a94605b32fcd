"""usercore.validation: email, username, name, password policy and the aggregate check."""

from __future__ import annotations

import socket
import subprocess
import sys
import unicodedata
from importlib import resources

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from usercore import Settings, ValidationError
from usercore.domain import email_key, username_key
from usercore.validation import (
    DEFAULT_PASSWORD_MAX_LENGTH,
    DEFAULT_PASSWORD_MIN_LENGTH,
    NOT_GIVEN,
    ValidatedUserFields,
    common_passwords,
    email_problems,
    is_common_password,
    name_problems,
    password_problems,
    username_problems,
    validate_email,
    validate_name,
    validate_password,
    validate_user_fields,
    validate_username,
)

INVALID_EMAIL = "must be a valid email address"
USERNAME_CHARS = "may contain only letters, digits, '.', '_' and '-'"
NAME_CHARS = "must not contain control or invisible formatting characters"
UNSAFE = "must not contain NUL or unpaired surrogate characters"
GOOD_PASSWORD = "tulip violin harbor"
HUGE = 100_000

# ---------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("given_email", "normalized"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Lee@Example.COM\t", "Ann.Lee@example.com"),
        ("a+tag@sub.example.org", "a+tag@sub.example.org"),
        ("José@Exämple.org", "José@exämple.org"),
        ("user@xn--bcher-kva.de", "user@bücher.de"),
        ("e\u0301@example.com", "\u00e9@example.com"),
        ("用户@例子.中国", "用户@例子.中国"),
    ],
)
def test_validate_email_returns_the_normalized_address(given_email: str, normalized: str) -> None:
    """Whitespace is stripped, the domain lower-cased and Unicode-formed, the local part NFC."""
    assert normalized == validate_email(given_email)


def test_email_key_of_normalized_addresses_ignores_case() -> None:
    assert email_key(validate_email("ANN@EXAMPLE.COM")) == email_key(
        validate_email("ann@example.com")
    )


@pytest.mark.parametrize(
    "bad",
    [
        "plainaddress",
        "@example.com",
        "ann@",
        "ann@@example.com",
        "ann@example@example.com",
        "ann@localhost",
        "ann@example.test",
        "ann@example.invalid",
        ".ann@example.com",
        "ann.@example.com",
        "an..n@example.com",
        "ann@-example.com",
        "ann@example..com",
        '"annlee"@example.com',
        '"ann,lee"@example.com',
        "ann@[127.0.0.1]",
        "ann(comment)@example.com",
        "ann@example.123",
    ],
)
def test_malformed_email_is_rejected_with_one_message(bad: str) -> None:
    assert [INVALID_EMAIL] == email_problems(bad)


@pytest.mark.parametrize(
    "bad",
    ["ann lee@example.com", "ann@exa mple.com", "ann\x00@example.com", "ann\n@x.com\nx"],
)
def test_email_with_inner_whitespace_or_control_characters_is_rejected(bad: str) -> None:
    assert ["must not contain whitespace or control characters"] == email_problems(bad)


def test_email_display_name_form_is_rejected() -> None:
    assert [] != email_problems("Ann Lee <ann@example.com>")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is required"),
        (42, "must be a string"),
        (b"ann@example.com", "must be a string"),
        (["ann@example.com"], "must be a string"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
    ],
)
def test_email_of_wrong_type_or_empty_gives_a_message_not_an_exception(
    value: object, message: str
) -> None:
    assert [message] == email_problems(value)


def test_email_at_the_length_limits() -> None:
    """64-octet local part and 254-octet address pass; one more octet fails (RFC 5321)."""
    local = "a" * 64
    domain = ".".join(["b" * 63, "c" * 63, "d" * 57, "com"])
    longest = f"{local}@{domain}"
    assert 254 == len(longest)
    assert longest == validate_email(longest)
    assert [INVALID_EMAIL] == email_problems(f"a{local}@example.com")
    assert ["must be at most 254 characters"] == email_problems(f"a{longest}")


def test_huge_email_is_rejected_by_length() -> None:
    assert ["must be at most 254 characters"] == email_problems("a" * HUGE + "@example.com")


def test_email_validation_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Syntax only: a domain that cannot resolve is fine and no socket is opened."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("email validation used the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    assert "nobody@no-such-domain-for-usercore-tests.com" == validate_email(
        "nobody@no-such-domain-for-usercore-tests.com"
    )


def test_validate_email_raises_validation_error_under_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_email("nope")
    assert {"email": [INVALID_EMAIL]} == caught.value.errors
    assert "validation_failed" == caught.value.code
    with pytest.raises(ValidationError) as caught:
        validate_email("nope", field="new_email")
    assert {"new_email": [INVALID_EMAIL]} == caught.value.errors


@given(st.text(max_size=300))
def test_email_problems_never_raise_and_accepted_addresses_are_fixed_points(text: str) -> None:
    problems = email_problems(text)
    assert all(isinstance(message, str) and message for message in problems)
    if not problems:
        normalized = validate_email(text)
        assert normalized == validate_email(normalized)


# ---------------------------------------------------------------- username


@pytest.mark.parametrize(
    ("given_username", "normalized"),
    [
        ("alice", "alice"),
        ("Bob_99", "Bob_99"),
        ("a.b-c", "a.b-c"),
        ("007", "007"),
        ("  alice  ", "alice"),
        ("Jürgen", "Jürgen"),
        ("山田太郎", "山田太郎"),
        ("हिन्दी", "हिन्दी"),
        ("ｊｏｈｎ", "john"),
        ("ﬁx", "fix"),
        ("a" * 32, "a" * 32),
    ],
)
def test_validate_username_accepts_and_nfkc_normalizes(
    given_username: str, normalized: str
) -> None:
    """Letters of any script (with their combining marks), digits, '.', '_', '-'; NFKC first."""
    assert normalized == validate_username(given_username)


def test_username_length_is_counted_after_nfkc() -> None:
    """'ﬁx' is two code points typed but three after NFKC, so it reaches the minimum."""
    assert 2 == len("ﬁx")
    assert [] == username_problems("ﬁx")
    assert ["must be at least 3 characters"] == username_problems("ab")
    assert ["must be at most 32 characters"] == username_problems("a" * 33)


def test_username_with_at_sign_is_rejected_so_login_identifiers_are_unambiguous() -> None:
    assert ["must not contain '@'"] == username_problems("ann@example.com")
    assert ["must not contain '@'"] == username_problems("ann＠example")  # fullwidth @


@pytest.mark.parametrize("bad", [".alice", "_alice", "-alice", "\u0301alice"])
def test_username_must_start_with_a_letter_or_digit(bad: str) -> None:
    assert "must start with a letter or digit" in username_problems(bad)


@pytest.mark.parametrize(
    "bad", ["al ice", "al\x00ice", "al\tice", "al\nice", "al\u202eice", "al\u200bice", "ali😀ce"]
)
def test_username_with_spaces_controls_or_symbols_is_rejected(bad: str) -> None:
    assert [USERNAME_CHARS] == username_problems(bad)


def test_username_key_of_normalized_usernames_ignores_case_and_width() -> None:
    assert username_key(validate_username("STRASSE")) == username_key(validate_username("straße"))
    assert username_key(validate_username("ＪＯＨＮ")) == username_key(validate_username("john"))


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "is required"), (7, "must be a string"), (b"ann", "must be a string")],
)
def test_username_of_wrong_type_gives_a_message(value: object, message: str) -> None:
    assert [message] == username_problems(value)


def test_huge_username_is_rejected_by_length() -> None:
    assert ["must be at most 32 characters"] == username_problems("a" * HUGE)
    assert ["must be at most 32 characters"] == username_problems("a" + "\u0301" * HUGE)


def test_validate_username_raises_with_every_problem() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_username("_")
    assert {
        "username": ["must be at least 3 characters", "must start with a letter or digit"]
    } == caught.value.errors


@given(st.text(max_size=60))
def test_username_problems_never_raise_and_accepted_usernames_are_fixed_points(
    text: str,
) -> None:
    if not username_problems(text):
        normalized = validate_username(text)
        assert normalized == validate_username(normalized)
        assert "@" not in normalized


# ---------------------------------------------------------------- name


@pytest.mark.parametrize(
    ("given_name", "normalized"),
    [
        ("Ann Lee", "Ann Lee"),
        ("  Zoë  Saldaña ", "Zoë  Saldaña"),
        ("\u3000Ann\u3000", "Ann"),
        ("Ｊｏｈｎ", "John"),
        ("O'Brien-Smith Jr.", "O'Brien-Smith Jr."),
        ("李小龍", "李小龍"),
        ("می\u200cخواهم", "می\u200cخواهم"),
        ("👩\u200d💻 Dev", "👩\u200d💻 Dev"),
        ("x", "x"),
        ("n" * 100, "n" * 100),
    ],
)
def test_validate_name_strips_and_nfkc_normalizes(given_name: str, normalized: str) -> None:
    """Any script, inner spacing kept, zero-width (non-)joiners allowed."""
    assert normalized == validate_name(given_name)


@pytest.mark.parametrize(
    "bad",
    [
        "Ann\x00Lee",
        "Ann\nLee",
        "Ann\tLee",
        "Ann\x7fLee",
        "Ann\u202eeeL",  # right-to-left override
        "Ann\u2066Lee",  # left-to-right isolate
        "Ann\u200bLee",  # zero-width space
        "Ann\ufeffLee",  # byte-order mark
        "Ann\u00adLee",  # soft hyphen
        "Ann\u2028Lee",  # line separator
        "Ann\ue000Lee",  # private use
        "Ann\u0378Lee",  # unassigned
        "Ann\ud800Lee",  # lone surrogate
    ],
)
def test_name_with_control_or_invisible_characters_is_rejected(bad: str) -> None:
    assert [NAME_CHARS] == name_problems(bad)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("\u3000\u00a0", "must not be empty"),
        ("n" * 101, "must be at most 100 characters"),
        ("n" * HUGE, "must be at most 100 characters"),
        ("n" + "\u0301" * HUGE, "must be at most 100 characters"),
        (None, "is required"),
        (3.5, "must be a string"),
        (b"Ann", "must be a string"),
    ],
)
def test_name_empty_too_long_or_wrong_type_gives_a_message(value: object, message: str) -> None:
    assert [message] == name_problems(value)


@given(st.text(max_size=150))
def test_name_problems_never_raise_and_accepted_names_are_fixed_points(text: str) -> None:
    if not name_problems(text):
        normalized = validate_name(text)
        assert normalized == validate_name(normalized)


# ---------------------------------------------------------------- password


def test_password_defaults_match_settings_defaults() -> None:
    settings = Settings()
    assert DEFAULT_PASSWORD_MIN_LENGTH == settings.password_min_length == 12
    assert DEFAULT_PASSWORD_MAX_LENGTH == settings.password_max_length == 1024


def test_password_length_limits_by_default() -> None:
    assert [] == password_problems("q" * 11 + "Z")
    assert ["must be at least 12 characters"] == password_problems("qwZ9-qwZ9-q")
    assert [] == password_problems("qZ" * 512)
    assert ["must be at most 1024 characters"] == password_problems("qZ" * 512 + "q")


def test_huge_passwords_are_rejected_by_length() -> None:
    """100k characters, even of combining marks that make NFKC slow, give one message."""
    assert ["must be at most 1024 characters"] == password_problems("a" * HUGE)
    assert ["must be at most 1024 characters"] == password_problems("a" + "\u0301" * HUGE)


def test_password_length_is_counted_in_code_points_after_nfkc() -> None:
    """NIST SP 800-63B §5.1.1.2: four 'ﬃ' ligatures are 12 characters; six 'é' typed as
    e + combining accent are 6."""
    assert [] == password_problems("\ufb03" * 4)
    assert 12 == len(unicodedata.normalize("NFKC", "\ufb03" * 4))
    assert ["must be at least 12 characters"] == password_problems("e\u0301" * 6)


def test_minimum_length_counts_a_run_of_spaces_as_one() -> None:
    """OWASP ASVS 4.0.3 V2.1.1: at least 12 characters "after multiple spaces are combined"."""
    assert ["must be at least 12 characters"] == password_problems("ab" + " " * 10 + "cd")
    assert [] == password_problems("ab cd ef gh ij")
    assert "ab  cd  ef  gh  ij" == validate_password("ab  cd  ef  gh  ij")


def test_validate_password_returns_the_nfkc_form() -> None:
    fullwidth = "ｃｏｒｒｅｃｔ ｈｏｒｓｅ ｂａｔｔｅｒｙ"
    assert "correct horse battery" == validate_password(fullwidth)


@pytest.mark.parametrize(
    "password",
    [
        "correcthorsebatterystaple",  # no composition rules
        "  spaces are kept  ",
        "tab\tand\nnewline are fine",
        "пароль-надёжный-2024",
        "パスワードはとても長いです",
        "🐢🐢🐢 slow and steady 🐢🐢🐢",
        "\U0001f600" * 12,
    ],
)
def test_password_without_composition_rules_accepts_any_printable_unicode(password: str) -> None:
    assert password == validate_password(password)


@pytest.mark.parametrize(
    "password",
    [
        "password1234",
        "PASSWORD1234",
        "  Password1234 ",
        "ｐａｓｓｗｏｒｄ１２３４",
        "1qaz2wsx3edc",
        "qwerty123456",
    ],
)
def test_common_password_is_rejected_ignoring_case_width_and_surrounding_space(
    password: str,
) -> None:
    assert ["is too common"] == password_problems(password)
    assert is_common_password(password)


def test_common_password_list_is_lowercase_nfkc_and_at_least_8_characters() -> None:
    blocklist = common_passwords()
    assert len(blocklist) > 8000
    assert all(len(entry) >= 8 for entry in blocklist)
    assert all(unicodedata.normalize("NFKC", entry).casefold() == entry for entry in blocklist)
    assert "password1234" in blocklist


def test_common_password_list_ships_as_package_data() -> None:
    data = resources.files("usercore.data").joinpath("common-passwords.txt.gz")
    assert data.is_file()


def test_importing_usercore_opens_no_data_file() -> None:
    """The blocklist is read on first use, never at import time."""
    code = (
        "import sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: event == 'open' and opened.append(str(args[0])))\n"
        "import usercore, usercore.validation\n"
        "assert not [p for p in opened if 'common-passwords' in p], opened\n"
        "assert usercore.validation.common_passwords.cache_info().currsize == 0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_password_containing_the_username_is_rejected_ignoring_case_and_width() -> None:
    assert ["must not contain the username"] == password_problems(
        "MyNameIsJohnny!2024", username="johnny"
    )
    assert ["must not contain the username"] == password_problems(
        "my name is johnny ok", username="ＪＯＨＮＮＹ"
    )
    assert ["must not contain the username"] == password_problems(
        "longusername123", username="LongUsername123"
    )


def test_password_containing_an_email_local_part_of_4_or_more_characters_is_rejected() -> None:
    assert ["must not contain the email address"] == password_problems(
        "Annabel-rules-2024", email="annabel@example.com"
    )


def test_short_email_local_part_is_allowed_inside_a_password_but_not_the_whole_address() -> None:
    assert [] == password_problems("ann went to the market", email="ann@example.com")
    assert ["must not contain the email address"] == password_problems(
        "mail: ann@example.com", email="ann@example.com"
    )


def test_username_shorter_than_the_minimum_is_not_used_as_password_context() -> None:
    """A legacy two-letter username would forbid too many passwords."""
    assert [] == password_problems("all the small things", username="al")


def test_password_context_of_wrong_type_is_ignored() -> None:
    assert [] == password_problems(GOOD_PASSWORD, username=42, email=None)


@pytest.mark.parametrize("password", ["nul\x00in the middle", "lone \ud800 surrogate here"])
def test_password_with_nul_or_lone_surrogate_is_rejected(password: str) -> None:
    assert [UNSAFE] == password_problems(password)


def test_password_reports_every_problem_at_once() -> None:
    assert [UNSAFE, "must be at least 12 characters"] == password_problems("ab\x00c")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is required"),
        (123456789012345, "must be a string"),
        (b"bytes password here", "must be a string"),
        (bytearray(b"bytes password here"), "must be a string"),
    ],
)
def test_password_of_wrong_type_gives_a_message(value: object, message: str) -> None:
    assert [message] == password_problems(value)


@pytest.mark.parametrize(
    ("password", "context"),
    [
        ("password1234", {}),
        ("s3cr3t\x00value-x", {}),
        ("short", {}),
        ("johnny-forever-2024", {"username": "johnny"}),
        ("annabel-forever-2024", {"email": "annabel@example.com"}),
    ],
)
def test_messages_never_contain_the_password(password: str, context: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_password(password, **context)  # type: ignore[arg-type]
    error = caught.value
    for text in (str(error), repr(error), str(error.to_dict())):
        assert password not in text


def test_password_limits_come_from_settings() -> None:
    strict = Settings(password_min_length=16, password_max_length=64)
    with pytest.raises(ValidationError) as caught:
        validate_password("fifteen chars!!", settings=strict)
    assert {"password": ["must be at least 16 characters"]} == caught.value.errors
    with pytest.raises(ValidationError) as caught:
        validate_password("x" * 65, settings=strict)
    assert {"password": ["must be at most 64 characters"]} == caught.value.errors
    assert "sixteen chars!!!" == validate_password("sixteen chars!!!", settings=strict)


def test_explicit_limits_down_to_the_nist_floor_of_8() -> None:
    assert [] == password_problems("kx7#Lm2q", min_length=8)
    assert ["must be at most 10 characters"] == password_problems(
        "kx7#Lm2qzzz", min_length=8, max_length=10
    )
    with pytest.raises(ValueError, match="at least 8"):
        password_problems(GOOD_PASSWORD, min_length=7)
    with pytest.raises(ValueError, match="must not exceed"):
        password_problems(GOOD_PASSWORD, min_length=20, max_length=19)


def test_validate_password_can_report_under_another_field() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_password("short", field="new_password")
    assert {"new_password": ["must be at least 12 characters"]} == caught.value.errors


@given(st.text(max_size=40), st.none() | st.text(max_size=10), st.none() | st.text(max_size=20))
def test_password_problems_never_raise_and_accepted_passwords_are_fixed_points(
    password: str, username: str | None, email: str | None
) -> None:
    if not password_problems(password, username=username, email=email):
        normalized = validate_password(password, username=username, email=email)
        assert normalized == validate_password(normalized, username=username, email=email)
        assert len(normalized) >= DEFAULT_PASSWORD_MIN_LENGTH


# ---------------------------------------------------------------- all fields


def test_every_wrong_field_is_reported_in_one_error() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_user_fields(email="not-an-email", username="_x", name="", password="password1234")
    assert {
        "email": [INVALID_EMAIL],
        "username": ["must be at least 3 characters", "must start with a letter or digit"],
        "name": ["must not be empty"],
        "password": ["is too common"],
    } == caught.value.errors
    assert caught.value.errors == caught.value.to_dict()["details"]


def test_valid_fields_come_back_normalized_and_the_password_stays_out_of_repr() -> None:
    fields = validate_user_fields(
        email=" Ann@Example.COM ",
        username="ｊｏｈｎ",
        name=" Ann ",
        password="ｔｕｌｉｐ violin harbor",
    )
    assert (
        ValidatedUserFields(
            given=frozenset({"email", "username", "name", "password"}),
            email="Ann@example.com",
            username="john",
            name="Ann",
            password="tulip violin harbor",
        )
        == fields
    )
    assert "tulip" not in repr(fields)


def test_only_given_fields_are_checked_for_a_partial_update() -> None:
    fields = validate_user_fields(name="Ann")
    assert frozenset({"name"}) == fields.given
    assert {"name": "Ann"} == fields.changes()
    assert {} == validate_user_fields().changes()


def test_none_clears_optional_fields_but_is_missing_for_required_ones() -> None:
    fields = validate_user_fields(username=None, name=None)
    assert {"username": None, "name": None} == fields.changes()
    with pytest.raises(ValidationError) as caught:
        validate_user_fields(email=None, password=None)
    assert {"email": ["is required"], "password": ["is required"]} == caught.value.errors


def test_not_given_is_the_default_and_may_be_passed_explicitly() -> None:
    assert "NOT_GIVEN" == repr(NOT_GIVEN)
    assert {} == validate_user_fields(email=NOT_GIVEN, password=NOT_GIVEN).changes()


def test_wrong_types_are_reported_per_field() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_user_fields(email=1, username=b"ann", name=["Ann"], password=12345678901234)
    assert {
        "email": ["must be a string"],
        "username": ["must be a string"],
        "name": ["must be a string"],
        "password": ["must be a string"],
    } == caught.value.errors


def test_password_is_checked_against_the_given_username_and_email() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_user_fields(
            email="annabel@example.com", username="ｊｏｈｎｎｙ", password="johnny & annabel 4ever"
        )
    assert {
        "password": ["must not contain the username", "must not contain the email address"]
    } == caught.value.errors


def test_password_is_checked_against_an_invalid_username_as_typed() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_user_fields(username="jo hn", password="i am jo hn, hello")
    assert ["must not contain the username"] == caught.value.errors["password"]


def test_partial_update_checks_the_password_against_the_current_email_and_username() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_user_fields(
            password="johnny-annabel-2024",
            current_email="annabel@example.com",
            current_username="johnny",
        )
    assert {
        "password": ["must not contain the username", "must not contain the email address"]
    } == caught.value.errors
    fields = validate_user_fields(
        username="zed", password="johnny-2024-secret", current_username="johnny"
    )
    assert "zed" == fields.username


def test_user_fields_use_password_limits_from_settings() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_user_fields(password=GOOD_PASSWORD, settings=Settings(password_min_length=20))
    assert {"password": ["must be at least 20 characters"]} == caught.value.errors


def test_validated_fields_are_frozen() -> None:
    fields = validate_user_fields(name="Ann")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fields.name = "Bob"  # type: ignore[misc]
