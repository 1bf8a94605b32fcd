"""Validation of what people type: email, username, display name and password.

Each field has a ``*_problems`` function that returns every message about a
value (an empty list when it is fine) and a ``validate_*`` function that
returns the normalized value or raises :class:`~usercore.errors.ValidationError`
with the messages under the field's name.  :func:`validate_user_fields` checks
several fields at once and reports all their problems in one error, which is
what the services and the HTTP layer use.

Rules in brief (``docs/validation.md`` has the reasoning and sources):

- email: syntax only (never DNS) with ``email-validator``; surrounding
  whitespace is removed; at most 254 characters (RFC 5321 §4.5.3.1.3).
- username: optional; NFKC; 3-32 letters, digits, ``.``, ``_``, ``-``; starts
  with a letter or digit; never contains ``@`` so a login identifier is
  unambiguous.
- name: optional; NFKC; 1-100 characters; no control or invisible formatting
  characters.
- password: NIST SP 800-63B §5.1.1.2 and OWASP ASVS 4.0.3 V2.1: length counted
  in code points after NFKC (12-1024 by default), no composition rules, not a
  common password, not containing the username or the email's local part.

Messages never contain the value they judge (a password must never reach a
log or an HTTP body through an error).
"""

from __future__ import annotations

import enum
import functools
import gzip
import re
import unicodedata
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import attrs
import email_validator
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from email_validator.syntax import split_email, validate_email_length, validate_email_local_part
from email_validator.types import ValidatedEmail

from usercore.errors import ValidationError
from usercore.settings import MIN_PASSWORD_LENGTH_FLOOR, Settings

if TYPE_CHECKING:
    from usercore.custom_fields import CustomField

__all__ = [
    "DEFAULT_PASSWORD_MAX_LENGTH",
    "DEFAULT_PASSWORD_MIN_LENGTH",
    "EMAIL_MAX_LENGTH",
    "NAME_MAX_LENGTH",
    "NOT_GIVEN",
    "USERNAME_MAX_LENGTH",
    "USERNAME_MIN_LENGTH",
    "EmailDomainCache",
    "ValidatedUserFields",
    "check_custom_fields",
    "common_passwords",
    "custom_text_problems",
    "email_problems",
    "is_common_password",
    "is_single_script",
    "letter_script",
    "name_problems",
    "password_problems",
    "password_within_bounds",
    "username_problems",
    "validate_custom_fields",
    "validate_email",
    "validate_name",
    "validate_password",
    "validate_user_fields",
    "validate_username",
]

# RFC 5321 §4.5.3.1.3 limits a path to 256 octets including the angle brackets,
# leaving 254 for the address (RFC 3696 erratum 1690).
EMAIL_MAX_LENGTH: Final = 254
USERNAME_MIN_LENGTH: Final = 3
USERNAME_MAX_LENGTH: Final = 32
NAME_MAX_LENGTH: Final = 100
# NIST SP 800-63B §5.1.1.2 asks for at least 8 and that at least 64 be
# permitted; OWASP ASVS 4.0.3 V2.1.1 asks for at least 12.  ASVS V2.1.2 also
# denies more than 128; the default maximum of 1024 (the same as
# ``Settings.password_max_length``) is more generous on purpose, for long
# passphrases: set ``password_max_length=128`` for strict ASVS conformance.
DEFAULT_PASSWORD_MIN_LENGTH: Final = 12
DEFAULT_PASSWORD_MAX_LENGTH: Final = 1024
# NIST SP 800-63B §5.1.1.2 lists "context-specific words" among what to reject;
# a short local part ("jo@...") would reject too many good passwords.
_EMAIL_LOCAL_PART_MIN_CONTEXT: Final = 4

# No code point has a canonical decomposition longer than 4 (UAX #15; checked
# over the whole Unicode database), so NFKC shrinks a string at most 4 times.
# A raw string longer than 4 x the limit is too long without normalizing it,
# which matters because CPython's normalization is quadratic on long runs of
# combining marks (100k of them take seconds).
_MAX_NFKC_SHRINK: Final = 4

# OWASP ASVS 4.0.3 V2.1.1 measures the minimum length "after multiple spaces
# are combined", so ten spaces do not make a short password long enough.
_SPACE_RUNS: Final = re.compile(" {2,}")

_USERNAME_PUNCTUATION: Final = frozenset("._-")
# Letters may carry combining marks (as PRECIS IdentifierClass, RFC 8264 §9.1,
# allows), so scripts such as Devanagari can be written; a mark cannot come first.
_MARK_CATEGORIES: Final = frozenset({"Mn", "Mc"})
# Cc control, Cs surrogate, Co private use, Cn unassigned, Zl/Zp line and
# paragraph separators.  Cf (format) characters are invisible and include the
# bidi overrides used to spoof text, so they are refused too, except the
# zero-width (non-)joiner that Persian, Indic scripts and emoji sequences need.
_NAME_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cs", "Co", "Cn", "Cf", "Zl", "Zp"})
_NAME_ALLOWED_FORMAT_CHARS: Final = frozenset({"\u200c", "\u200d"})
# The same rules for ASCII text, one C-speed match each instead of a Python
# loop over the characters (an import validates a million of them): ASCII
# ``isalnum`` is exactly [A-Za-z0-9], ASCII has no combining mark, and its
# only character of a forbidden category is a control (Cc).
_ASCII_USERNAME: Final = re.compile(r"[A-Za-z0-9._-]*")
_ASCII_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

_REQUIRED: Final = "is required"
_NOT_A_STRING: Final = "must be a string"
_NOT_EMPTY: Final = "must not be empty"
_INVALID_EMAIL: Final = "must be a valid email address"
_EMAIL_WHITESPACE: Final = "must not contain whitespace or control characters"
_USERNAME_CHARACTERS: Final = "may contain only letters, digits, '.', '_' and '-'"
_USERNAME_START: Final = "must start with a letter or digit"
_USERNAME_AT_SIGN: Final = "must not contain '@'"
_USERNAME_MIXED_SCRIPTS: Final = (
    "must not mix letters of different scripts (e.g. Latin and Cyrillic look-alikes)"
)
_USERNAME_STRAY_MARK: Final = (
    "must not put a combining mark on a Latin, Greek or Cyrillic letter it does not "
    "combine with (a look-alike of the plain letter)"
)
_NAME_CHARACTERS: Final = "must not contain control or invisible formatting characters"
_PW_UNSAFE: Final = "must not contain NUL or unpaired surrogate characters"
_PW_COMMON: Final = "is too common"
_PW_HAS_USERNAME: Final = "must not contain the username"
_PW_HAS_EMAIL: Final = "must not contain the email address"


def _at_most(limit: int) -> str:
    return f"must be at most {limit} characters"


def _at_least(limit: int) -> str:
    return f"must be at least {limit} characters"


def _type_problem(value: object) -> str:
    """The message for a value that is not a string."""
    return _REQUIRED if value is None else _NOT_A_STRING


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _fold(text: str) -> str:
    """The case-insensitive comparison form: NFKC, then case folding."""
    return _nfkc(text).casefold()


# ---------------------------------------------------------------- email


# Any whitespace (``re``'s ``\s`` is ``str.isspace``) or control character
# (category Cc: U+0000-U+001F, U+007F-U+009F); one C-speed scan of the address.
_WHITESPACE_OR_CONTROL: Final = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


class EmailDomainCache:
    """Remembers the domains of addresses that validated, for one batch of work.

    An import of a million users at a handful of domains would otherwise run
    the same domain through email-validator's IDNA/UTS #46 checks a million
    times (over half the import time).  An address whose domain is known here
    has its local part and lengths checked exactly as email-validator does,
    and the domain's normalized forms reused; any other address takes the full
    path.  Only successes are remembered, so an invalid address always gets
    email-validator's own verdict.  Not thread-safe: one per import.
    """

    __slots__ = ("_domains", "limit")

    def __init__(self, limit: int = 10_000) -> None:
        self._domains: dict[str, tuple[str, str]] = {}
        self.limit = limit
        """At most this many domains are kept (an import of unique domains stays bounded)."""

    def get(self, domain: str) -> tuple[str, str] | None:
        return self._domains.get(domain)

    def put(self, domain: str, normalized: tuple[str, str]) -> None:
        if len(self._domains) < self.limit:
            self._domains[domain] = normalized


def _split_email(text: str) -> tuple[str | None, str, str, bool]:
    """``email_validator``'s ``split_email(text)``: display name, local part,
    domain part, whether the local part was quoted.

    Its character-by-character loop only matters for quotes, ``<`` and
    characters that combine with what precedes them; in ASCII text without
    quotes or ``<`` the first ``@`` splits the address, which this does in C.
    A differential test keeps the two in step.
    """
    if text.isascii() and "@" in text and '"' not in text and "<" not in text:
        local_part, _, domain_part = text.partition("@")
        return None, local_part, domain_part, False
    return split_email(text)


def _with_known_domain(text: str, domains: EmailDomainCache) -> str | None:
    """email-validator's normalized form of ``text`` when its domain is in
    ``domains`` (raising its ``EmailNotValidError`` like it does), or ``None``
    when the address must take the full path.

    The steps of ``email_validator.validate_email`` for the options
    :func:`_check_email` passes, minus the domain check; a differential
    property test keeps the two in step.
    """
    display_name, local_part, domain_part, quoted = _split_email(text)
    known = domains.get(domain_part)
    if known is None or display_name or quoted:
        return None
    result = ValidatedEmail()
    result.original = local_part + "@" + domain_part
    info = validate_email_local_part(
        local_part,
        allow_smtputf8=True,
        allow_empty_local=False,
        quoted_local_part=False,
        strict=True,
    )
    result.local_part = info["local_part"]
    result.ascii_local_part = info["ascii_local_part"]
    result.smtputf8 = info["smtputf8"]
    normalized_local = unicodedata.normalize("NFC", result.local_part)
    if normalized_local != result.local_part:
        return None  # rare: let email-validator word the error, if any
    if (
        result.ascii_local_part is not None
        and result.ascii_local_part.lower() in CASE_INSENSITIVE_MAILBOX_NAMES
    ):
        result.ascii_local_part = result.ascii_local_part.lower()
        result.local_part = result.local_part.lower()
    result.domain, result.ascii_domain = known
    result.normalized = result.local_part + "@" + result.domain
    if result.smtputf8:
        result.ascii_email = None
    else:
        result.ascii_email = (result.ascii_local_part or "") + "@" + (result.ascii_domain or "")
    validate_email_length(result)
    return str(result.normalized)


def _check_email(
    value: object, domains: EmailDomainCache | None = None
) -> tuple[str | None, list[str]]:
    if not isinstance(value, str):
        return None, [_type_problem(value)]
    text = value.strip()
    if not text:
        return None, [_NOT_EMPTY]
    if len(text) > EMAIL_MAX_LENGTH:
        return None, [_at_most(EMAIL_MAX_LENGTH)]
    if _WHITESPACE_OR_CONTROL.search(text):
        return None, [_EMAIL_WHITESPACE]
    if "=?" in text:
        # RFC 2047 §5: no encoded word in an addr-spec.  Python's email package
        # decodes one anyway, so mail to "=?utf-8?q?bob?=@example.com" would
        # reach bob@example.com: one mailbox could verify any number of accounts.
        return None, [_INVALID_EMAIL]
    try:
        if domains is not None:
            normalized = _with_known_domain(text, domains)
            if normalized is not None:
                return normalized, []
        # Every option is spelled out: email-validator reads module-level
        # defaults an application could change.  check_deliverability=False
        # keeps validation pure (no DNS); strict=True enforces the 64-octet
        # local part of RFC 5321 §4.5.3.1.1.
        result = email_validator.validate_email(
            text,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_empty_local=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            strict=True,
            globally_deliverable=True,
            test_environment=False,
        )
    except email_validator.EmailNotValidError:
        return None, [_INVALID_EMAIL]
    if domains is not None:
        domains.put(_split_email(text)[2], (result.domain, result.ascii_domain))
    return result.normalized, []


def email_problems(value: object) -> list[str]:
    """Every reason ``value`` is not an acceptable email address (empty when it is).

    Checks syntax only: no DNS lookup ever happens, so an address at a domain
    without mail servers passes.  A non-string gives a message, not an exception.
    """
    return _check_email(value)[1]


def validate_email(value: object, *, field: str = "email") -> str:
    """The normalized form of an email address, or :class:`ValidationError` under ``field``.

    Normalization strips surrounding whitespace, lowercases the domain (in its
    Unicode form) and NFC-normalizes the local part, whose case is kept.  Use
    :func:`usercore.domain.email_key` on the result for case-insensitive lookups.
    """
    normalized, problems = _check_email(value)
    if problems or normalized is None:
        raise ValidationError({field: problems})
    return normalized


# ---------------------------------------------------------------- username


def _check_username(value: object) -> tuple[str | None, list[str]]:
    if not isinstance(value, str):
        return None, [_type_problem(value)]
    text = value.strip()
    if len(text) > USERNAME_MAX_LENGTH * _MAX_NFKC_SHRINK:
        return None, [_at_most(USERNAME_MAX_LENGTH)]
    text = _nfkc(text)
    problems: list[str] = []
    if len(text) < USERNAME_MIN_LENGTH:
        problems.append(_at_least(USERNAME_MIN_LENGTH))
    elif len(text) > USERNAME_MAX_LENGTH:
        problems.append(_at_most(USERNAME_MAX_LENGTH))
    if "@" in text:
        problems.append(_USERNAME_AT_SIGN)
    elif not _username_characters_allowed(text):
        problems.append(_USERNAME_CHARACTERS)
    if text and not text[0].isalnum():
        problems.append(_USERNAME_START)
    if not problems and not is_single_script(text):
        problems.append(_USERNAME_MIXED_SCRIPTS)
    if not problems and _has_stray_mark(text):
        problems.append(_USERNAME_STRAY_MARK)
    return (None if problems else text), problems


def _username_characters_allowed(text: str) -> bool:
    """Whether every character of ``text`` is a letter, a digit, a combining
    mark or one of ``._-``."""
    if text.isascii():
        return _ASCII_USERNAME.fullmatch(text) is not None
    return all(
        char.isalnum()
        or char in _USERNAME_PUNCTUATION
        or unicodedata.category(char) in _MARK_CATEGORIES
        for char in text
    )


# Alphabets whose letters are all encoded precomposed: after NFKC a combining
# mark left on one of them does not compose with it (UTS #39 §5.4).
_PRECOMPOSED_SCRIPTS: Final = frozenset({"LATIN", "GREEK", "CYRILLIC"})


def _has_stray_mark(text: str) -> bool:
    """Whether a combining mark follows a Latin, Greek or Cyrillic letter in
    (NFKC) ``text``: ``ali\u0307ce`` draws as ``alice`` (UTS #39 §5.4)."""
    if text.isascii():
        return False  # no combining mark in ASCII
    base: str | None = None
    for char in text:
        if unicodedata.category(char) in _MARK_CATEGORIES:
            if base in _PRECOMPOSED_SCRIPTS:
                return True
        else:
            base = letter_script(char)
    return False


# UTS #39 §5.1 "Highly Restrictive": one script, or Latin with the scripts that
# Chinese, Japanese and Korean writing mix with it.
_SCRIPT_COMBINATIONS: Final = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
# Name prefixes of characters whose script is Common (shared by scripts) or
# that name another script than their first word says.
_COMMON_PREFIXES: Final = frozenset({"MODIFIER", "KATAKANA-HIRAGANA", "DIGIT"})
_HAN_PREFIXES: Final = frozenset({"CJK", "IDEOGRAPHIC"})


def letter_script(char: str) -> str | None:
    """The script of a letter or digit as the first word of its Unicode name
    (``LATIN``, ``CYRILLIC``, ``GREEK``, ``ARMENIAN``, ``CHEROKEE``...), or
    ``None`` for characters every script shares (ASCII digits, ``._-``,
    combining marks, modifier letters).

    The standard library has no Script property; a letter's Unicode name
    starts with its script for every script a username can be written in,
    which is all a mixed-script check needs (no table to keep up to date).
    """
    if not char.isalnum() or unicodedata.category(char).startswith("M"):
        return None
    word = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]
    if word in _COMMON_PREFIXES:
        return None
    return "HAN" if word in _HAN_PREFIXES else word


def is_single_script(text: str) -> bool:
    """Whether ``text`` keeps to one script (UTS #39 mixed-script detection).

    Characters shared by all scripts (ASCII digits, punctuation, marks) do
    not count; Latin may mix with Han, Hiragana and Katakana (Japanese), Han
    and Bopomofo (Chinese) or Han and Hangul (Korean), as UTS #39 §5.1
    "Highly Restrictive" allows.  So ``аlice`` with a Cyrillic ``а`` is
    mixed, while ``алиса`` and ``alice`` are each single-script.
    """
    if text.isascii():
        return True  # ASCII letters are all Latin; digits and punctuation are shared
    scripts = {script for script in map(letter_script, text) if script is not None}
    return len(scripts) <= 1 or any(scripts <= allowed for allowed in _SCRIPT_COMBINATIONS)


def username_problems(value: object) -> list[str]:
    """Every reason ``value`` is not an acceptable username (empty when it is).

    A username is 3-32 characters after NFKC normalization: letters and digits
    of any script, ``.``, ``_`` and ``-``, starting with a letter or digit.  It
    never contains ``@``, so a login identifier is an email or a username,
    never both.  It keeps to one script (:func:`is_single_script`, UTS #39),
    so ``аlice`` with a Cyrillic ``а`` cannot sit beside ``alice``.
    """
    return _check_username(value)[1]


def validate_username(value: object, *, field: str = "username") -> str:
    """The NFKC-normalized username, or :class:`ValidationError` under ``field``.

    Use :func:`usercore.domain.username_key` on the result for case-insensitive
    lookups and uniqueness.
    """
    normalized, problems = _check_username(value)
    if problems or normalized is None:
        raise ValidationError({field: problems})
    return normalized


# ---------------------------------------------------------------- name


def _is_forbidden_in_name(char: str) -> bool:
    return (
        unicodedata.category(char) in _NAME_FORBIDDEN_CATEGORIES
        and char not in _NAME_ALLOWED_FORMAT_CHARS
    )


def _check_name(value: object) -> tuple[str | None, list[str]]:
    if not isinstance(value, str):
        return None, [_type_problem(value)]
    text = value.strip()
    if len(text) > NAME_MAX_LENGTH * _MAX_NFKC_SHRINK:
        return None, [_at_most(NAME_MAX_LENGTH)]
    # Strip again: NFKC turns some spaces (U+3000, U+00A0...) into U+0020.
    text = _nfkc(text).strip()
    problems: list[str] = []
    if not text:
        problems.append(_NOT_EMPTY)
    elif len(text) > NAME_MAX_LENGTH:
        problems.append(_at_most(NAME_MAX_LENGTH))
    if (
        _ASCII_CONTROL.search(text) is not None
        if text.isascii()
        else any(_is_forbidden_in_name(char) for char in text)
    ):
        problems.append(_NAME_CHARACTERS)
    return (None if problems else text), problems


def custom_text_problems(
    value: object, *, min_length: int, max_length: int, pattern: re.Pattern[str] | None
) -> tuple[str | None, list[str]]:
    """A custom string field's value normalized like a name, and its problems.

    ``(text, [])`` or ``(None, messages)``: stripped and NFKC-normalized (size
    bounded before normalizing), ``min_length``..``max_length`` characters, no
    control, surrogate or invisible formatting characters (so never NUL or a
    lone surrogate), and matching ``pattern`` whole when one is given.
    """
    if not isinstance(value, str):
        return None, [_NOT_A_STRING]
    text = value.strip()
    if len(text) > max_length * _MAX_NFKC_SHRINK:
        return None, [_at_most(max_length)]
    text = _nfkc(text).strip()
    problems: list[str] = []
    if len(text) < min_length:
        problems.append(_NOT_EMPTY if not text else _at_least(min_length))
    elif len(text) > max_length:
        problems.append(_at_most(max_length))
    if any(_is_forbidden_in_name(char) for char in text):
        problems.append(_NAME_CHARACTERS)
    elif not problems and pattern is not None and not pattern.fullmatch(text):
        problems.append("does not have the expected format")
    return (None if problems else text), problems


def name_problems(value: object) -> list[str]:
    """Every reason ``value`` is not an acceptable display name (empty when it is).

    A name is free text of 1-100 characters after NFKC normalization and
    stripping; it may use any script but no control, private-use, unassigned
    or invisible formatting characters (zero-width joiners excepted).
    """
    return _check_name(value)[1]


def validate_name(value: object, *, field: str = "name") -> str:
    """The NFKC-normalized, stripped name, or :class:`ValidationError` under ``field``."""
    normalized, problems = _check_name(value)
    if problems or normalized is None:
        raise ValidationError({field: problems})
    return normalized


# ---------------------------------------------------------------- password


@functools.cache
def common_passwords() -> frozenset[str]:
    """The blocklist of common passwords, NFKC-normalized and case-folded.

    Read from the package data file ``usercore/data/common-passwords.txt.gz``
    on first use and cached; importing usercore never opens it.  It holds the
    entries of 8 or more characters of Django's list (see the data README).
    """
    data = resources.files("usercore.data").joinpath("common-passwords.txt.gz").read_bytes()
    text = gzip.decompress(data).decode("utf-8")
    return frozenset(line for line in text.splitlines() if line)


def is_common_password(password: str) -> bool:
    """Whether ``password`` is on the blocklist, ignoring case and surrounding whitespace."""
    return _fold(password).strip() in common_passwords()


def _context_needles(username: object, email: object) -> list[tuple[str, str]]:
    """The (folded text, message) pairs a password must not contain."""
    needles: list[tuple[str, str]] = []
    # A username shorter than the minimum (legacy data) would forbid too many
    # passwords to be a useful rule.
    if isinstance(username, str) and len(username.strip()) >= USERNAME_MIN_LENGTH:
        needles.append((_fold(username.strip()), _PW_HAS_USERNAME))
    if isinstance(email, str) and email.strip():
        address = _fold(email.strip())
        local_part = address.rpartition("@")[0]
        if len(local_part) >= _EMAIL_LOCAL_PART_MIN_CONTEXT:
            needles.append((local_part, _PW_HAS_EMAIL))
        else:
            # A short local part is too common a substring to forbid; the
            # whole address still may not appear.
            needles.append((address, _PW_HAS_EMAIL))
    return needles


def _check_password(
    password: object,
    *,
    min_length: int,
    max_length: int,
    username: object,
    email: object,
) -> tuple[str | None, list[str]]:
    if min_length < MIN_PASSWORD_LENGTH_FLOOR:
        raise ValueError(
            f"min_length must be at least {MIN_PASSWORD_LENGTH_FLOOR} "
            f"(NIST SP 800-63B §5.1.1.2), got {min_length}"
        )
    if min_length > max_length:
        raise ValueError(f"min_length ({min_length}) must not exceed max_length ({max_length})")
    if not isinstance(password, str):
        return None, [_type_problem(password)]
    if not password_within_bounds(password, max_length=max_length):
        return None, [_at_most(max_length)]
    # NIST SP 800-63B §5.1.1.2: normalize with NFKC before hashing and count
    # each code point as one character.  The password is never stripped:
    # spaces are legitimate characters (NIST, OWASP ASVS 4.0.3 V2.1.3).
    normalized = _nfkc(password)
    problems: list[str] = []
    # NIST allows every printing character and space; NUL and unpaired
    # surrogates are refused because they cannot be stored and hashed safely
    # (C strings end at NUL; a surrogate has no UTF-8 encoding).
    if "\x00" in normalized or any("\ud800" <= char <= "\udfff" for char in normalized):
        problems.append(_PW_UNSAFE)
    if len(_SPACE_RUNS.sub(" ", normalized)) < min_length:
        problems.append(_at_least(min_length))
    elif len(normalized) > max_length:
        problems.append(_at_most(max_length))
    # No composition rules (NIST SP 800-63B §5.1.1.2, OWASP ASVS 4.0.3 V2.1.9);
    # a blocklist of common passwords instead (NIST §5.1.1.2, ASVS V2.1.7).
    folded = normalized.casefold()
    if folded.strip() in common_passwords():
        problems.append(_PW_COMMON)
    for needle, message in _context_needles(username, email):
        if needle in folded and message not in problems:
            problems.append(message)
    return (None if problems else normalized), problems


def password_within_bounds(password: str, *, max_length: int) -> bool:
    """Whether ``password`` is small enough to normalize, hash or verify at all.

    The one gate every password path passes first (login, change, set, reset,
    register, import): at most ``4 x max_length`` code points and ``4 x
    max_length`` UTF-8 bytes, checked on the raw text, *before* any
    normalization.  NFKC shrinks a string at most 4 times, so nothing that
    could normalize to an acceptable length is refused; and CPython's NFKC is
    quadratic on long runs of combining marks, so a 400 KB password would hold
    the GIL for half a minute (CWE-400; OWASP ASVS 4.0.3 V2.1.2 bounds the
    length, NIST SP 800-63B §5.1.1.2 allows truncation-free limits).  Costs
    O(min(len, limit)): the byte count is only taken of a string already
    within the code-point bound.
    """
    limit = max_length * _MAX_NFKC_SHRINK
    if len(password) > limit:
        return False
    # UTF-8 is at most 4 bytes a code point, so this encodes at most 16 KiB
    # with the default limit; "surrogatepass" so a lone surrogate is measured,
    # not raised (the policy refuses it later with its own message).
    return len(password.encode("utf-8", "surrogatepass")) <= limit


def password_problems(
    password: object,
    *,
    min_length: int = DEFAULT_PASSWORD_MIN_LENGTH,
    max_length: int = DEFAULT_PASSWORD_MAX_LENGTH,
    username: object = None,
    email: object = None,
) -> list[str]:
    """Every reason ``password`` breaks the password policy (empty when it is fine).

    Length is counted in code points after NFKC normalization (for the
    minimum, a run of spaces counts as one, OWASP ASVS 4.0.3 V2.1.1); there
    are no composition rules; common passwords are refused, as are passwords that
    contain ``username`` or the local part of ``email`` (both compared without
    regard to case).  Messages never include the password.  Raises
    ``ValueError`` if ``min_length`` is below 8 or above ``max_length``.
    """
    return _check_password(
        password, min_length=min_length, max_length=max_length, username=username, email=email
    )[1]


def validate_password(
    password: object,
    *,
    settings: Settings | None = None,
    username: object = None,
    email: object = None,
    field: str = "password",
) -> str:
    """The NFKC-normalized password, or :class:`ValidationError` under ``field``.

    Limits come from ``settings`` (``password_min_length``,
    ``password_max_length``), or the defaults 12 and 1024.  Hash the returned
    value, and normalize a password the same way before verifying it, so that
    the same password typed on another keyboard or OS still matches.
    """
    min_length, max_length = _password_limits(settings)
    normalized, problems = _check_password(
        password, min_length=min_length, max_length=max_length, username=username, email=email
    )
    if problems or normalized is None:
        raise ValidationError({field: problems})
    return normalized


def _password_limits(settings: Settings | None) -> tuple[int, int]:
    if settings is None:
        return DEFAULT_PASSWORD_MIN_LENGTH, DEFAULT_PASSWORD_MAX_LENGTH
    return settings.password_min_length, settings.password_max_length


# ---------------------------------------------------------------- all fields


class _NotGiven(enum.Enum):
    NOT_GIVEN = enum.auto()

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = _NotGiven.NOT_GIVEN
"""Default of :func:`validate_user_fields`' field arguments: the field was not given.

Distinct from ``None``, which clears an optional field; pass it to forward an
optional value, e.g. ``changes.get("email", NOT_GIVEN)``.
"""


@attrs.frozen(kw_only=True)
class ValidatedUserFields:
    """The normalized values :func:`validate_user_fields` accepted.

    ``given`` names the fields the caller passed; a field not given is
    ``None`` here, as is an optional field (``username``, ``name``) given as
    ``None`` to clear it.  The password is kept out of ``repr``.
    """

    given: frozenset[str]
    email: str | None = None
    username: str | None = None
    name: str | None = None
    password: str | None = attrs.field(default=None, repr=False)

    def changes(self) -> dict[str, str | None]:
        """The given fields and their normalized values, for a partial update."""
        values = {
            "email": self.email,
            "username": self.username,
            "name": self.name,
            "password": self.password,
        }
        return {field: value for field, value in values.items() if field in self.given}


def validate_user_fields(
    *,
    email: object = NOT_GIVEN,
    username: object = NOT_GIVEN,
    name: object = NOT_GIVEN,
    password: object = NOT_GIVEN,
    settings: Settings | None = None,
    current_email: str | None = None,
    current_username: str | None = None,
    email_domains: EmailDomainCache | None = None,
) -> ValidatedUserFields:
    """Check every given field and raise one :class:`ValidationError` listing all problems.

    Only the fields passed are checked, so the same call serves registration
    and partial updates.  ``username`` and ``name`` are optional: ``None``
    means "no username/name".  ``email`` and ``password`` are required when
    given.  The password is checked against the given email and username, or,
    when they are not given (a partial update), against ``current_email`` and
    ``current_username``.  Raises ``ValidationError`` whose ``errors`` map each
    wrong field (``email``, ``username``, ``name``, ``password``) to its messages.
    ``email_domains`` lets a batch (an import) validate each domain once.
    """
    errors: dict[str, list[str]] = {}
    given: set[str] = set()
    values: dict[str, str | None] = {}

    if email is not NOT_GIVEN:
        given.add("email")
        values["email"], problems = _check_email(email, email_domains)
        if problems:
            errors["email"] = problems
    if username is not NOT_GIVEN:
        given.add("username")
        if username is None:
            values["username"] = None
        else:
            values["username"], problems = _check_username(username)
            if problems:
                errors["username"] = problems
    if name is not NOT_GIVEN:
        given.add("name")
        if name is None:
            values["name"] = None
        else:
            values["name"], problems = _check_name(name)
            if problems:
                errors["name"] = problems
    if password is not NOT_GIVEN:
        given.add("password")
        # Compare with the normalized value when it is valid, else with what was typed.
        context_email = email if email is not NOT_GIVEN else current_email
        context_username = username if username is not NOT_GIVEN else current_username
        min_length, max_length = _password_limits(settings)
        values["password"], problems = _check_password(
            password,
            min_length=min_length,
            max_length=max_length,
            username=values.get("username") or context_username,
            email=values.get("email") or context_email,
        )
        if problems:
            errors["password"] = problems

    if errors:
        raise ValidationError(errors)
    return ValidatedUserFields(
        given=frozenset(given),
        email=values.get("email"),
        username=values.get("username"),
        name=values.get("name"),
        password=values.get("password"),
    )


# ---------------------------------------------------------------- custom fields


def check_custom_fields(
    declared: Sequence[CustomField], values: object, *, new: bool
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate custom field ``values`` (a mapping of name to value) against the
    declaration: ``(normalized values, problems per field)``.

    A name that is not declared is a problem ("is not a known field").  With
    ``new`` (register, create, import) every declared field is in the result:
    defaults fill the missing ones and a required one still missing is a
    problem; otherwise (an update) only the given ones are, and ``None``
    clears an optional field.  Messages never contain the value.
    """
    if not isinstance(values, Mapping):
        return {}, {"custom_fields": ["must be a mapping of field names to values"]}
    by_name = {field.name: field for field in declared}
    normalized: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for key, value in values.items():
        field = by_name.get(key) if isinstance(key, str) else None
        if field is None:
            problems[str(key)[:64]] = ["is not a known field"]
            continue
        normalized[key], messages = field.problems(value)
        if messages:
            problems[key] = messages
    for field in declared:
        if new and normalized.get(field.name) is None and field.name not in problems:
            normalized[field.name] = field.unset_value
        if (
            field.required
            and field.name not in problems
            and field.name in normalized
            and normalized[field.name] is None
        ):
            problems[field.name] = [_REQUIRED]
    return normalized, problems


def validate_custom_fields(
    declared: Sequence[CustomField], values: object, *, new: bool
) -> dict[str, Any]:
    """:func:`check_custom_fields`, raising ``ValidationError`` for any problem."""
    normalized, problems = check_custom_fields(declared, values, new=new)
    if problems:
        raise ValidationError(problems)
    return normalized
