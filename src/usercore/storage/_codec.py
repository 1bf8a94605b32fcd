"""Value conversions every adapter shares: times, string sets, search keys.

Kept apart from the SQL so that :class:`~usercore.storage.memory.MemoryStore`
applies exactly the same normalization as the SQL stores (the stateful test
compares them value for value).
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, cast

import attrs

from usercore.custom_fields import CustomField, from_stored
from usercore.domain import ApiKey, CustomFieldValues, OneTimeToken, Permission, RefreshToken, User
from usercore.errors import ValidationError

__all__ = [
    "UNSTORABLE_TEXT",
    "check_text",
    "custom_fields_from_db",
    "custom_fields_to_db",
    "in_utc",
    "search_key",
    "set_from_db",
    "set_to_db",
    "storable",
    "time_from_db",
    "time_to_db",
    "utc",
    "with_declared",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive one raises ``ValueError``.

    A naive datetime is ambiguous (local time? UTC?), so a store refuses it
    rather than guess.
    """
    tz = moment.tzinfo
    if tz is timezone.utc:
        return moment
    if tz is None or moment.utcoffset() is None:
        raise ValueError(f"usercore stores aware datetimes only, got naive {moment!r}")
    return moment.astimezone(timezone.utc)


def optional_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def time_to_db(moment: datetime) -> int:
    """Integer microseconds since the Unix epoch: exact, ordered, index-friendly."""
    # Integer arithmetic on the timedelta, never floats: the round trip is exact.
    return (utc(moment) - _EPOCH) // _MICROSECOND


def optional_time_to_db(moment: datetime | None) -> int | None:
    return None if moment is None else time_to_db(moment)


def time_from_db(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def optional_time_from_db(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def set_to_db(values: Iterable[str]) -> str:
    """A set of strings as a sorted JSON array (stable text, so equal sets compare equal)."""
    return _frozenset_to_db(values if isinstance(values, frozenset) else frozenset(values))


@functools.lru_cache(maxsize=256)
def _frozenset_to_db(values: frozenset[str]) -> str:
    # Memoized: a bulk write encodes the same few role sets over and over.
    return json.dumps(sorted(values), ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def set_from_db(text: str) -> frozenset[str]:
    # Memoized: every user read decodes one of the same few role sets.
    return frozenset(json.loads(text))


UNSTORABLE_TEXT = "must not contain NUL or unpaired surrogate characters"
"""The message of the :class:`ValidationError` a store raises for such text."""


def storable(text: str) -> bool:
    """Whether a store holds ``text``: valid Unicode (no lone surrogate) without NUL.

    The ports promise exactly that (PostgreSQL ``text`` cannot hold NUL, UTF-8
    cannot encode a lone surrogate), and validation never lets other text
    into a field; writes of it raise ``ValidationError``, lookups by it find
    nothing.
    """
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _all_storable(value: object) -> bool:
    if value is None or not isinstance(value, str | frozenset | set):
        return True
    if isinstance(value, str):
        return storable(value)
    return all(not isinstance(item, str) or storable(item) for item in value)


_TEXT_FIELDS: dict[type, tuple[str, ...]] = {}


def check_text(record: object = None, /, **values: str) -> None:
    """Refuse unstorable text (see :func:`storable`) before anything is written.

    Checks every text field (``str`` or set of ``str``) of ``record``, an attrs
    record, and each named value.  Raises ``ValidationError`` naming every
    field that holds such text.
    """
    problems: dict[str, list[str]] = {}
    if record is not None:
        cls = type(record)
        names = _TEXT_FIELDS.get(cls)
        if names is None:
            names = tuple(f.name for f in attrs.fields(cast(Any, cls)) if "str" in str(f.type))
            _TEXT_FIELDS[cls] = names
        for name in names:
            if not _all_storable(getattr(record, name)):
                problems[name] = [UNSTORABLE_TEXT]
    for name, value in values.items():
        if not storable(value):
            problems[name] = [UNSTORABLE_TEXT]
    if problems:
        raise ValidationError(problems)


def custom_fields_to_db(values: Mapping[str, Any], *, patch: bool = False) -> str:
    """A user's custom field values as stored: a JSON object of the set ones
    (``None`` is never stored, so "unset" is an absent key, which unique
    indexes admit any number of).  With ``patch``, an RFC 7396 merge patch
    for an update instead: ``null`` removes a key, and keys not in ``values``
    (fields another process declares, or no longer declared) stay as stored.

    Raises ``ValidationError`` naming each field whose text a store cannot hold.
    """
    if isinstance(values, CustomFieldValues):
        values = values.stored()  # a default read is not a value to write back
    stored = {name: value for name, value in values.items() if patch or value is not None}
    problems = {
        name: [UNSTORABLE_TEXT]
        for name, value in stored.items()
        if isinstance(value, str) and not storable(value)
    }
    if problems:
        raise ValidationError(problems)
    return json.dumps(
        stored, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )


def custom_fields_from_db(
    value: str | Mapping[str, Any] | None, declared: Sequence[CustomField]
) -> Mapping[str, Any]:
    """The values of the ``custom_fields`` column (JSON text, or a mapping from
    a JSONB driver) as the declaration reads them (see ``from_stored``)."""
    if not declared:
        return {}
    stored = json.loads(value) if isinstance(value, str) else (value or {})
    return from_stored(declared, stored)


def with_declared(user: User, declared: Sequence[CustomField]) -> User:
    """``user`` with its custom fields as a store reads them back under
    ``declared`` (through JSON): what a write returns.  Raises
    ``ValidationError`` for text a store cannot hold."""
    if not declared and not user.custom_fields:
        return user
    stored = custom_fields_from_db(custom_fields_to_db(user.custom_fields), declared)
    return attrs.evolve(user, custom_fields=stored)


def search_key(text: str) -> str:
    """The case-insensitive form of searchable text and of the search needle.

    The same folding as :func:`usercore.domain.email_key` and
    :func:`usercore.domain.username_key`, so a needle matches the stored keys.
    """
    return unicodedata.normalize("NFKC", text).casefold()


R = TypeVar("R", User, ApiKey, RefreshToken, OneTimeToken, Permission)

_TIME_FIELDS: dict[type, tuple[str, ...]] = {}


def _time_fields(cls: type) -> tuple[str, ...]:
    """The names of a record class's datetime fields (``datetime`` or ``datetime | None``)."""
    names = _TIME_FIELDS.get(cls)
    if names is None:
        names = tuple(
            field.name
            for field in attrs.fields(cls)
            if field.type in (datetime, "datetime", "datetime | None")
        )
        _TIME_FIELDS[cls] = names
    return names


def in_utc(record: R) -> R:
    """``record`` (a user, API key, permission, refresh or one-time token) with every datetime
    in UTC: itself when they already are; a naive one raises ``ValueError``."""
    changes = {
        name: utc(value)
        for name in _time_fields(type(record))
        if (value := getattr(record, name)) is not None and value.tzinfo is not timezone.utc
    }
    # attrs.evolve cannot type-check ``**changes`` against four record classes.
    return cast(R, attrs.evolve(cast(Any, record), **changes)) if changes else record
