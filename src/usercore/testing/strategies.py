"""Hypothesis strategies for usercore's inputs, valid and invalid.

The valid ones (:func:`emails`, :func:`usernames`, :func:`names`,
:func:`passwords`, :func:`permissions`, :func:`user_records`) produce values
that :mod:`usercore.validation` accepts under the default
:class:`~usercore.Settings`; emails, usernames and names come out already
normalized, so ``validate_email(e) == e``.  The invalid ones
(:func:`invalid_emails`, :func:`invalid_usernames`, :func:`invalid_names`,
:func:`weak_passwords`) produce strings the validators reject.  Most of them mix
in non-ASCII text and values at the length limits, and are built so that
hypothesis rarely has to throw an example away.

Use them in an application's own tests::

    from hypothesis import given
    from usercore.testing import strategies

    @given(strategies.user_records())
    def test_register(record):
        core.users.register(**record)
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Any

from hypothesis import strategies as st

from usercore.validation import (
    DEFAULT_PASSWORD_MAX_LENGTH,
    DEFAULT_PASSWORD_MIN_LENGTH,
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    USERNAME_MIN_LENGTH,
    common_passwords,
    is_common_password,
    letter_script,
    password_problems,
)

__all__ = [
    "emails",
    "invalid_emails",
    "invalid_names",
    "invalid_usernames",
    "names",
    "passwords",
    "permissions",
    "user_records",
    "usernames",
    "weak_passwords",
]

_ASCII_ALNUM = string.ascii_letters + string.digits
# RFC 5322 §3.2.3 atext: what an unquoted local part may hold besides dots.
_ATEXT = _ASCII_ALNUM + "!#$%&'*+/=?^_`{|}~-"
# Precomposed (NFC- and NFKC-stable) letters from several scripts, for
# internationalized local parts (RFC 6531) and display text.
_UNICODE_LETTERS = (
    "àáâäãåæçèéêëìíîïñòóôöøœùúûüýÿßłżšđğış"
    "ÀÉÎÕÜÇÑØ"
    "αβγδεζηθλμπσωΩΣ"
    "абвгдежзийклмнопрстуфхцчшщыэюяЖЯ"
    "אבגדה"
    "مرحبا"
    "中文日本語漢字한국어ひらがなカタカナ"
)
# Letters a domain label may carry in its Unicode (IDNA 2008) form; upper case
# and ß are left out because IDNA maps them and the result would not be normalized.
_IDN_LETTERS = "àáâäçèéêëíîïñòóôöøùúûüý"
_DOMAIN_ALNUM = string.ascii_lowercase + string.digits
_TLDS = ("com", "org", "net", "io", "dev", "de", "fr", "jp", "info", "museum", "example")
# email-validator refuses these special-use names (RFC 6761 and later).
_SPECIAL_USE_TLDS = ("test", "invalid", "localhost", "local", "onion", "arpa")
_LOCAL_PART_MAX_OCTETS = 64  # RFC 5321 §4.5.3.1.1
_DOMAIN_LABEL_MAX = 63  # RFC 1035 §2.3.4
_PERMISSION_ALPHABET = string.ascii_lowercase + string.digits + "_.-"
# Separates characters when a password must be kept from containing a username
# or an email local part; neither can hold a middle dot.
_SEPARATOR = "\u00b7"
# Printing ASCII, which NFKC leaves alone.
_PRINTABLE_ASCII = "".join(chr(code) for code in range(0x20, 0x7F))


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _is_stable_letter_or_digit(char: str) -> bool:
    return char.isalnum() and _nfkc(char) == char


# Letters and digits of any script that NFKC leaves alone (drops compatibility
# forms such as "ﬁ" or mathematical alphanumerics, which NFKC rewrites).
_unicode_alnum = st.characters(categories=("Lu", "Ll", "Lt", "Lm", "Lo", "Nd")).filter(
    _is_stable_letter_or_digit
)


# ---------------------------------------------------------------- emails
#
# Strategies are built once, at module level: hypothesis validates each new
# strategy object, and building them inside every draw made generation slow.


def _fit_octets(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def _dot_atom(atoms: list[str]) -> str:
    # No leading, trailing or doubled dots (RFC 5322 §3.2.3), at most 64 octets.
    return _fit_octets(".".join(atoms), _LOCAL_PART_MAX_OCTETS).rstrip(".")


def _chars(alphabet: str) -> st.SearchStrategy[str]:
    return st.sampled_from(alphabet)


def _text(alphabet: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text(_chars(alphabet), min_size=min_size, max_size=max_size)


_ascii_local_parts = st.lists(_text(_ATEXT, 1, 24), min_size=1, max_size=4).map(_dot_atom)
_international_local_parts = st.lists(
    st.text(_chars(_ATEXT) | _chars(_UNICODE_LETTERS), min_size=1, max_size=24),
    min_size=1,
    max_size=4,
).map(_dot_atom)
# Letters and digits with single inner hyphens: never "--" in positions 3-4
# (reserved for A-labels, RFC 5891 §4.2.3.1) nor at either end.
_ascii_labels = st.lists(_text(_DOMAIN_ALNUM, 1, 30), min_size=1, max_size=3).map(
    lambda parts: "-".join(parts)[:_DOMAIN_LABEL_MAX].rstrip("-")
)
# Internationalized labels, kept short so their A-label fits in 63 octets.
_idn_labels = _text(_DOMAIN_ALNUM + _IDN_LETTERS, 1, 12)
_tlds = st.sampled_from(_TLDS)


def _domain(labels: list[str], tld: str) -> str:
    return ".".join([*labels, tld])


_ascii_domains = st.builds(_domain, st.lists(_ascii_labels, min_size=1, max_size=4), _tlds)
_domains = st.builds(
    _domain,
    st.lists(
        st.one_of(_ascii_labels, _ascii_labels, _ascii_labels, _idn_labels), max_size=4
    ).filter(bool),
    _tlds,
)
# Near the limits: a long local part and long labels, cut to fit by _fit_address.
_long_local_parts = _text(_ATEXT, 40, _LOCAL_PART_MAX_OCTETS)
_long_domains = st.builds(
    _domain,
    st.lists(_text(_DOMAIN_ALNUM, 40, _DOMAIN_LABEL_MAX), min_size=3, max_size=4),
    _tlds,
)


def _fit_address(local: str, domain: str) -> str:
    # RFC 5321 §4.5.3.1.3: the address fits in 254 octets; drop leading labels
    # of a long domain until it does.
    while len(f"{local}@{domain}".encode()) > EMAIL_MAX_LENGTH:
        domain = domain.split(".", 1)[1]
    return f"{local}@{domain}"


_emails = st.one_of(
    st.builds(_fit_address, _ascii_local_parts, _domains),
    st.builds(_fit_address, _international_local_parts, _domains),
    st.builds(_fit_address, _long_local_parts, _long_domains),
    # "=?" opens an RFC 2047 encoded word, which validation refuses (RFC 2047 §5:
    # mail to it would reach another mailbox); both characters stay allowed alone.
).filter(lambda address: "=?" not in address)


def emails() -> st.SearchStrategy[str]:
    """Valid, already normalized email addresses.

    ASCII and internationalized local parts (RFC 6531), ASCII and IDN domains,
    up to the 64-octet local part and 254-octet address limits.  The case of
    the local part varies (it is kept by normalization); domains are lower case.
    """
    return _emails


_simple_locals = _text(_ASCII_ALNUM, 1, 20)
_email_bad_chars = st.sampled_from(' \t\n\x00\x7f\u2028(),:;<>[]\\"')


def _shape(template: str, *parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map(lambda values: template.format(*values))


_invalid_emails = st.one_of(
    _simple_locals,  # no @ at all
    _shape("{0}@{0}@{1}", _simple_locals, _ascii_domains),
    _shape("@{0}", _ascii_domains),
    _shape("{0}@", _simple_locals),
    _shape("{0}@{1}", _simple_locals, _simple_locals),  # no dot in the domain
    _shape("{0}@{1}.{2}", _simple_locals, _simple_locals, st.sampled_from(_SPECIAL_USE_TLDS)),
    _shape(".{0}@{1}", _simple_locals, _ascii_domains),
    _shape("{0}.@{1}", _simple_locals, _ascii_domains),
    _shape("{0}..{0}@{1}", _simple_locals, _ascii_domains),
    _shape("{0}{1}{0}@{2}", _simple_locals, _email_bad_chars, _ascii_domains),
    _shape("{0}@{0}{1}{2}", _simple_locals, _email_bad_chars, _ascii_domains),
    _shape("{0}@{1}", _text(_ATEXT, _LOCAL_PART_MAX_OCTETS + 1, 80), _ascii_domains),
    _shape("{0}@" + ".".join(["x" * 63] * 4) + ".com", _simple_locals),  # over 254
    _shape("{0}@-{1}", _simple_locals, _ascii_domains),
    _shape("{0}@{1}.", _simple_locals, _ascii_domains),
    _shape('"{0}"@{1}', _simple_locals, _ascii_domains),
    _shape("{0}@[127.0.0.1]", _simple_locals),
    _shape("Someone <{0}@{1}>", _simple_locals, _ascii_domains),
    _shape("{0}@{1}.123", _simple_locals, _ascii_domains),
    _shape("=?utf-8?q?{0}?=@{1}", _simple_locals, _ascii_domains),  # RFC 2047 §5
    st.sampled_from(["", "   "]),
)


def invalid_emails() -> st.SearchStrategy[str]:
    """Strings that are not acceptable email addresses.

    Missing or doubled ``@``, empty parts, dotless or special-use domains
    (``.test``, ``.localhost``), misplaced dots, whitespace and control
    characters, quoted local parts, domain literals, display names, and
    addresses over the RFC 5321 length limits.
    """
    return _invalid_emails


# ---------------------------------------------------------------- usernames


def _one_script(text: str) -> str:
    """``text`` without the letters of every script but the first one met
    (usernames keep to one script, UTS #39)."""
    first: str | None = None
    kept: list[str] = []
    for char in text:
        script = letter_script(char)
        if script is not None and first is not None and script != first:
            continue
        first = first or script
        kept.append(char)
    return "".join(kept)


def _username(head: str, tail: str) -> str:
    # Letters that are each NFKC-stable can still compose together (Hangul
    # conjoining jamo): keep the NFKC form and top it up to the minimum length.
    username = _one_script(_nfkc(_one_script(head + tail)))
    return username + "0" * max(0, USERNAME_MIN_LENGTH - len(username))


_username_first = _chars(_ASCII_ALNUM)
_username_rest = _chars(_ASCII_ALNUM + "._-")
_international_first = _username_first | _unicode_alnum
_international_rest = _username_rest | _unicode_alnum
_TAIL_MIN = USERNAME_MIN_LENGTH - 1
_TAIL_MAX = USERNAME_MAX_LENGTH - 1
_usernames = st.one_of(
    st.builds(
        _username, _username_first, st.text(_username_rest, min_size=_TAIL_MIN, max_size=_TAIL_MAX)
    ),
    st.builds(
        _username,
        _international_first,
        st.text(_international_rest, min_size=_TAIL_MIN, max_size=_TAIL_MAX),
    ),
    # At the maximum length, where off-by-one errors live.
    st.builds(
        _username,
        _international_first,
        st.text(_international_rest, min_size=_TAIL_MAX, max_size=_TAIL_MAX),
    ),
)


def usernames() -> st.SearchStrategy[str]:
    """Valid, already NFKC-normalized usernames of 3-32 characters.

    Letters and digits of any one script plus ``.``, ``_`` and ``-``, starting
    with a letter or digit; most of them hold non-ASCII letters, some are at the
    32-character maximum.
    """
    return _usernames


def _insert(text: str, char: str, position: int) -> str:
    """``char`` inside ``text``, never first or last (where stripping would remove it)."""
    position = 1 + position % max(1, len(text) - 1)
    return text[:position] + char + text[position:] + "x"


_username_bad_chars = st.sampled_from(
    " \t\n\x00\x7f!#$%&*+,/:;<=>?\\|~\u202e\u200b\U0001f600\u00b7"
)
_positions = st.integers(0, 1000)
_invalid_usernames = st.one_of(
    _text(_ASCII_ALNUM, 0, USERNAME_MIN_LENGTH - 1),  # too short
    _shape("{0}{1}", _usernames, _text(_ASCII_ALNUM, USERNAME_MAX_LENGTH, 80)),  # too long
    st.builds(_insert, _usernames, _username_bad_chars, _positions),
    st.builds(_insert, _usernames, st.just("@"), _positions),
    _shape("{0}@example.com", _usernames),
    _shape("{0}{1}", _chars("._-"), _usernames),
)


def invalid_usernames() -> st.SearchStrategy[str]:
    """Strings that are not acceptable usernames.

    Too short or too long, holding a space, control, symbol, emoji, bidi or
    zero-width character or an ``@`` (so it could be mistaken for an email),
    or starting with ``.``, ``_`` or ``-``.
    """
    return _invalid_usernames


# ---------------------------------------------------------------- names


_any_letter = st.characters(categories=["L"])
_name_letters = st.one_of(_chars(string.ascii_letters), _chars(_UNICODE_LETTERS), _any_letter)
_name_words = st.tuples(
    st.text(_name_letters, min_size=1, max_size=24),
    _chars(" -'.").map(lambda separator: ". " if separator == "." else separator),
)


def _name(words: list[tuple[str, str]]) -> str:
    raw = "".join(word + separator for word, separator in words)
    # NFKC may lengthen the text ("ǆ" is "dž"): normalize, then cut to the limit.
    return _nfkc(raw)[:NAME_MAX_LENGTH].strip()


_names = st.lists(_name_words, min_size=1, max_size=6).map(_name)


def names() -> st.SearchStrategy[str]:
    """Valid, already normalized display names of 1-100 characters.

    Words of letters from any script, joined by spaces, hyphens, apostrophes
    or initials' dots, with names cut at the 100-character limit.
    """
    return _names


_name_bad_chars = st.sampled_from("\x00\x07\t\n\x7f\u200b\u202e\u2066\ufeff\u2028\ue000")
_invalid_names = st.one_of(
    st.builds(_insert, _names, _name_bad_chars, _positions),
    _names.map(lambda name: "x" * (NAME_MAX_LENGTH + 1) + name),
    st.sampled_from(["", " ", "\u3000", " \u00a0 "]),
)


def invalid_names() -> st.SearchStrategy[str]:
    """Strings that are not acceptable display names.

    Empty or blank, over 100 characters, or holding a control, zero-width,
    bidi-override, byte-order-mark, line-separator or private-use character.
    """
    return _invalid_names


# ---------------------------------------------------------------- passwords


def _fit_password(password: str) -> str:
    """Pad a generated password to the minimum length and off the blocklist."""
    # The policy measures the minimum after NFKC, with a run of spaces as one.
    shortfall = DEFAULT_PASSWORD_MIN_LENGTH - len(re.sub(" {2,}", " ", _nfkc(password)))
    if shortfall > 0:
        # ASCII never composes with what precedes it, so each pad adds one.
        password += "x" * shortfall
    while is_common_password(password):
        password += "~"
    return password


def _repeat_to_max(word: str, repeats: int) -> str:
    return " ".join([word] * repeats)[:DEFAULT_PASSWORD_MAX_LENGTH]


_passwords = st.one_of(
    # Any assigned character except controls, surrogates and private use:
    # marks, symbols, emoji, spaces, compatibility forms that NFKC rewrites.
    # At most 40 of them: even the longest NFKC expansion (18 code points,
    # U+FDFA) stays far below the 1024 maximum.
    st.text(
        st.characters(exclude_categories=("Cc", "Cs", "Co", "Cn")),
        min_size=DEFAULT_PASSWORD_MIN_LENGTH,
        max_size=40,
    ),
    # Long passphrases up to the maximum: words of NFKC-stable characters, so
    # the cut lands at the exact limit, separated by single spaces.
    st.builds(
        _repeat_to_max,
        _text(_PRINTABLE_ASCII[1:] + _UNICODE_LETTERS, 1, 32),
        st.integers(DEFAULT_PASSWORD_MAX_LENGTH // 8, DEFAULT_PASSWORD_MAX_LENGTH),
    ),
).map(_fit_password)


def passwords() -> st.SearchStrategy[str]:
    """Passwords the default policy accepts (12-1024 code points after NFKC).

    Any Unicode text without controls or surrogates: spaces, emoji, combining
    marks and compatibility characters (fullwidth letters, ligatures) that NFKC
    rewrites, so the values are not always normalized; and long passphrases up
    to the 1024 maximum.  Never on the blocklist; checked against no username
    or email (use :func:`user_records` for consistent sets).
    """
    return _passwords


def _upper_if_ascii(password: str, upper: bool) -> str:
    return password.upper() if upper and password.isascii() else password


def _too_long(chunk: str) -> str:
    return chunk * (DEFAULT_PASSWORD_MAX_LENGTH // len(chunk) + 1)


def weak_passwords() -> st.SearchStrategy[str]:
    """Passwords the default policy rejects, whatever the username and email.

    Too short (counted after NFKC, so fullwidth letters count one each), too
    long, on the common-passwords blocklist (in any case, with surrounding
    spaces), or holding NUL or an unpaired surrogate.  Building it reads the
    blocklist.
    """
    common = sorted(p for p in common_passwords() if len(p) >= DEFAULT_PASSWORD_MIN_LENGTH)
    listed = st.builds(_upper_if_ascii, st.sampled_from(common), st.booleans())
    short_alphabet = _PRINTABLE_ASCII + _UNICODE_LETTERS + "ａｂｃＡＢＣ１２３"
    return st.one_of(
        # Too short, also when fullwidth characters are counted after NFKC.
        _text(short_alphabet, 0, DEFAULT_PASSWORD_MIN_LENGTH - 1),
        listed,
        _shape("  {0} ", listed),
        st.builds(_insert, _passwords, st.just("\x00"), _positions),
        st.builds(_insert, _passwords, st.just("\ud800"), _positions),
        _text(_PRINTABLE_ASCII, 1, 16).map(_too_long),
    )


# ---------------------------------------------------------------- permissions


def _permission(resource: str, action: str, own: bool) -> str:
    return f"{resource}:{action}:own" if own else f"{resource}:{action}"


_segments = _text(_PERMISSION_ALPHABET, 1, 64)
_permissions = st.just("*") | st.builds(
    _permission, _segments, st.just("*") | _segments, st.booleans()
)


def permissions() -> st.SearchStrategy[str]:
    """Valid permission strings: ``*``, ``resource:action``, ``resource:*``, ``...:own``.

    Segments are 1-64 of lowercase letters, digits, ``_``, ``.`` and ``-``, as
    :func:`usercore.domain.permissions.permission_problems` requires.
    """
    return _permissions


# ---------------------------------------------------------------- records


def _record(email: str, username: str | None, name: str | None, password: str) -> dict[str, Any]:
    if password_problems(password, username=username, email=email):
        # The password contains the username or the email's local part.  Every
        # such needle is at least 3 characters and holds no middle dot, so a
        # password whose characters are each separated by one cannot contain it.
        folded = _nfkc(password).casefold()
        password = _SEPARATOR.join(folded)[:DEFAULT_PASSWORD_MAX_LENGTH]
    return {"email": email, "username": username, "name": name, "password": password}


_user_records = st.builds(_record, _emails, st.none() | _usernames, st.none() | _names, _passwords)


def user_records() -> st.SearchStrategy[dict[str, Any]]:
    """Registration records that validate as a whole.

    Dicts with the keys ``email``, ``username`` (``None`` or a username),
    ``name`` (``None`` or a name) and ``password``, where the password contains
    neither the username nor the email's local part, so
    ``validate_user_fields(**record)`` and ``core.users.register(**record)``
    accept them.  Records are independent: two may share an email.
    """
    return _user_records
