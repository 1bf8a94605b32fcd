"""The per-import email-domain cache gives exactly email-validator's verdicts."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from usercore.validation import EmailDomainCache, _check_email

_LOCAL = st.text(st.sampled_from("aZ0._+-'\"é ßİ\u0130\u212a@()<>\\\u0301"), max_size=70)
_DOMAIN = st.sampled_from(
    [
        "example.com",
        "EXAMPLE.com",
        "bücher.de",
        "xn--bcher-kva.de",
        "a" * 63 + ".com",
        "x." + "b" * 240 + ".com",
        "localhost",
        "-bad-.com",
        "日本.jp",
        "ex ample.com",
    ]
)


@settings(max_examples=400, deadline=None)
@given(local=_LOCAL, domain=_DOMAIN, warm=st.booleans())
@example(local="Postmaster", domain="example.com", warm=True)  # lowercased mailbox name
@example(local="a" * 64, domain="x." + "b" * 240 + ".com", warm=True)  # too long overall
@example(local="cafe\u0301", domain="example.com", warm=True)  # NFC changes the local part
@example(local='"quoted"', domain="example.com", warm=True)
@example(local="Ada <ada", domain="example.com>", warm=True)
def test_a_cached_domain_gives_the_same_result_as_full_validation(
    local: str, domain: str, warm: bool
) -> None:
    cache = EmailDomainCache()
    if warm:  # the domain was seen (and validated) before in this import
        _check_email(f"someone@{domain}", cache)
    address = f"{local}@{domain}"
    assert _check_email(address) == _check_email(address, cache)


def test_each_domain_is_validated_once_per_cache(monkeypatch) -> None:
    import email_validator

    calls: list[str] = []
    real = email_validator.validate_email

    def counting(email: str, /, **options: object) -> object:
        calls.append(email)
        return real(email, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(email_validator, "validate_email", counting)
    cache = EmailDomainCache()
    for n in range(50):
        assert _check_email(f"user{n}@Example.COM", cache) == (f"user{n}@example.com", [])
    assert len(calls) == 1
    assert _check_email("bad@@example.com", cache)[1]  # an invalid address still fails


def test_the_cache_stays_bounded() -> None:
    cache = EmailDomainCache(limit=3)
    for n in range(10):
        _check_email(f"a@d{n}.com", cache)
    assert cache.get("d2.com") is not None
    assert cache.get("d3.com") is None


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=40))
def test_ascii_text_is_single_script_as_the_full_check_says(text: str) -> None:
    from usercore.validation import _SCRIPT_COMBINATIONS, is_single_script, letter_script

    scripts = {script for script in map(letter_script, text) if script is not None}
    full = len(scripts) <= 1 or any(scripts <= allowed for allowed in _SCRIPT_COMBINATIONS)
    assert is_single_script(text) == full


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=30))
def test_the_whitespace_and_control_scan_matches_the_character_classes(text: str) -> None:
    import unicodedata

    from usercore.validation import _WHITESPACE_OR_CONTROL

    expected = any(char.isspace() or unicodedata.category(char) == "Cc" for char in text)
    assert bool(_WHITESPACE_OR_CONTROL.search(text)) == expected


def test_the_whitespace_and_control_scan_agrees_on_every_code_point() -> None:
    import unicodedata

    from usercore.validation import _WHITESPACE_OR_CONTROL

    for code in range(0x110000):
        char = chr(code)
        expected = char.isspace() or unicodedata.category(char) == "Cc"
        assert bool(_WHITESPACE_OR_CONTROL.search(char)) == expected, hex(code)


def test_the_ascii_username_and_name_scans_agree_with_the_per_character_rules() -> None:
    """Every ASCII character: the one-regex fast paths give the verdict of the
    Unicode category rules they stand in for (so ASCII input is judged alike)."""
    import unicodedata

    from usercore.validation import (
        _ASCII_CONTROL,
        _ASCII_USERNAME,
        _MARK_CATEGORIES,
        _USERNAME_PUNCTUATION,
        _has_stray_mark,
        _is_forbidden_in_name,
    )

    for code in range(128):
        char = chr(code)
        allowed = (
            char.isalnum()
            or char in _USERNAME_PUNCTUATION
            or unicodedata.category(char) in _MARK_CATEGORIES
        )
        assert (_ASCII_USERNAME.fullmatch(char) is not None) == allowed, repr(char)
        assert (_ASCII_CONTROL.search(char) is not None) == _is_forbidden_in_name(char), repr(char)
        assert unicodedata.category(char) not in _MARK_CATEGORIES
        assert not _has_stray_mark("a" + char)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=40))
def test_ascii_usernames_and_names_get_the_verdict_of_the_character_loops(text: str) -> None:
    import unicodedata

    from usercore.validation import (
        _MARK_CATEGORIES,
        _USERNAME_PUNCTUATION,
        _is_forbidden_in_name,
        _username_characters_allowed,
        name_problems,
    )

    loop = all(
        char.isalnum()
        or char in _USERNAME_PUNCTUATION
        or unicodedata.category(char) in _MARK_CATEGORIES
        for char in text
    )
    assert _username_characters_allowed(text) == loop
    forbidden = any(_is_forbidden_in_name(char) for char in text.strip())
    assert (
        "must not contain control or invisible formatting characters" in name_problems(text)
    ) == forbidden


@settings(max_examples=500, deadline=None)
@given(local=_LOCAL, domain=_DOMAIN, extra=st.sampled_from(["", "<", '"', "@", "x@y", ">"]))
def test_the_address_split_gives_email_validators_split(
    local: str, domain: str, extra: str
) -> None:
    from email_validator import EmailSyntaxError
    from email_validator.syntax import split_email

    from usercore.validation import _split_email

    for text in (f"{local}@{domain}{extra}", f"{extra}{local}@{domain}", local + extra):
        try:
            expected: object = split_email(text)
        except EmailSyntaxError as exc:
            expected = str(exc)
        try:
            actual: object = _split_email(text)
        except EmailSyntaxError as exc:
            actual = str(exc)
        assert actual == expected
