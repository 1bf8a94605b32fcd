"""Custom fields: the extra data an application keeps on its users.

An application declares its custom fields once, in
``Settings(custom_fields=(CustomField(...), ...))``; usercore then validates
them like the built-in fields, stores them beside the account (a JSON column
on SQLite, JSONB on PostgreSQL), indexes the ``unique`` and ``indexed`` ones,
returns them in :meth:`usercore.User.to_public` and over HTTP, and filters
listings by them.  ``docs/custom-fields.md`` is the guide.

Values are JSON scalars: ``str``, ``int``, ``float`` or ``bool``.  ``None``
means "not set" and is never stored.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, cast

import attrs

from usercore.domain import CustomFieldValues, User

__all__ = [
    "CUSTOM_FIELD_NAME",
    "CUSTOM_FIELD_TYPES",
    "RESERVED_NAMES",
    "CustomField",
    "check_declaration",
    "from_stored",
    "load_declaration",
    "read_value",
    "same_value",
]

CUSTOM_FIELD_TYPES: Final = (str, int, float, bool)
"""The value types a custom field may have (JSON scalars)."""

# Lower-case identifiers: safe to name a JSON key, a SQL index and an HTTP
# query parameter without quoting.  40 characters keep the index names
# ("users_custom_<name>_key") within PostgreSQL's 63-byte identifier limit.
CUSTOM_FIELD_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,39}")

RESERVED_NAMES: Final = frozenset(attrs.fields_dict(User)) | {
    # The user's JSON shape beyond its attributes, what register, create,
    # update, login and import read, and the query parameters of GET /users.
    "role",
    "password",
    "current_password",
    "new_password",
    "identifier",
    "invitation",
    "page",
    "per_page",
    "cursor",
    "q",
    "search",
}
"""Names a custom field cannot take: the built-in fields and parameters."""

# A signed 64-bit integer: what SQLite's JSON functions and every JSON
# consumer in JavaScript-free stacks read back exactly.
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1
_DEFAULT_MAX_LENGTH: Final = 255
_MAX_MAX_LENGTH: Final = 10_000

_TYPE_NAMES: Final = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


def _check_type(instance: CustomField, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in CUSTOM_FIELD_TYPES:
        raise ValueError(
            f"CustomField {instance.name!r}: type must be one of str, int, float, bool"
        )


@attrs.frozen(kw_only=True)
class CustomField:
    """The declaration of one custom user field.

    - ``name``: a lower-case identifier (``[a-z][a-z0-9_]*``, at most 40
      characters) that is not a built-in field (:data:`RESERVED_NAMES`); the
      JSON key, the keyword and the HTTP query parameter.
    - ``type``: ``str``, ``int``, ``float`` or ``bool``.  Values must have it
      exactly: ``"1"`` is not an integer and ``True`` is not ``1``; an ``int``
      is accepted for a ``float`` field.
    - ``required``: register and create refuse an account without it (after
      ``default``); an update cannot unset it.
    - ``default``: the value of an account that has none stored: a new
      account without one, one created before the field was declared, one
      whose value was cleared.  It reads as the default everywhere (the user,
      its JSON, exports) and filters by the default match it.  Not with
      ``unique`` (every such account would share it).
    - ``choices``: the only values allowed.
    - ``max_length`` (default 255), ``min_length``, ``pattern`` (a regular
      expression the whole normalized string must match): for strings.
      Strings are stripped and NFKC-normalized like display names, and may not
      hold control or invisible formatting characters.
    - ``min_value``/``max_value``: for numbers (integers are 64-bit).
    - ``validator``: a callable given the normalized value; it raises
      ``ValueError`` whose text becomes the field's message (keep the value
      itself out of it).
    - ``registrable``: whether a visitor may set it when registering.
    - ``self_editable``: whether users may change it on their own account;
      otherwise only an actor holding ``users:update`` (an administrator) may.
      Both are off by default, so a new field is never self-assigned by mistake.
    - ``unique``: no two accounts hold the same value (exact comparison, no case
      folding; a store unique index).  ``indexed``: an index for filtering.
    - ``description``: shown in the OpenAPI document.

    Construction raises ``ValueError`` for an inconsistent declaration.
    """

    name: str
    type: type = attrs.field(default=str, validator=_check_type)
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(tuple)
    )
    max_length: int = _DEFAULT_MAX_LENGTH
    min_length: int = 1
    pattern: str | None = None
    min_value: int | float | None = None
    max_value: int | float | None = None
    validator: Callable[[Any], object] | None = attrs.field(default=None, eq=False)
    registrable: bool = False
    self_editable: bool = False
    unique: bool = False
    indexed: bool = False
    description: str = ""
    _compiled: re.Pattern[str] | None = attrs.field(init=False, repr=False, eq=False)
    _unset_value: Any = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not CUSTOM_FIELD_NAME.fullmatch(name):
            raise ValueError(
                f"CustomField name {name!r} must be a lower-case identifier "
                "([a-z][a-z0-9_]*, at most 40 characters)"
            )
        if name in RESERVED_NAMES or keyword.iskeyword(name):
            raise ValueError(f"CustomField name {name!r} is taken by a built-in field")
        if not 1 <= self.min_length <= self.max_length <= _MAX_MAX_LENGTH:
            raise ValueError(
                f"CustomField {name!r}: need 1 <= min_length <= max_length <= {_MAX_MAX_LENGTH}"
            )
        if self.type is not str and (
            self.pattern is not None or self.max_length != _DEFAULT_MAX_LENGTH
        ):
            raise ValueError(f"CustomField {name!r}: pattern and max_length are for str fields")
        if self.type not in (int, float) and (
            self.min_value is not None or self.max_value is not None
        ):
            raise ValueError(f"CustomField {name!r}: min_value and max_value are for numbers")
        compiled = None
        if self.pattern is not None:
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"CustomField {name!r}: invalid pattern: {exc}") from None
        object.__setattr__(self, "_compiled", compiled)
        if self.choices is not None:
            if not self.choices:
                raise ValueError(f"CustomField {name!r}: choices must not be empty")
            for choice in self.choices:
                if self.problems(choice, check_choices=False)[1]:
                    raise ValueError(
                        f"CustomField {name!r}: choice {choice!r} is not a valid {self.type_name}"
                    )
        unset_value, problems = self.problems(self.default)
        if problems:
            raise ValueError(f"CustomField {name!r}: the default is not a valid value")
        if self.unique and unset_value is not None:
            # Every account without a value reads as the default: they would all share it.
            raise ValueError(f"CustomField {name!r}: a unique field cannot have a default")
        object.__setattr__(self, "_unset_value", unset_value)
        if self.required and self.default is None and not self.registrable:
            # Register could never succeed; say so now rather than at run time.
            raise ValueError(
                f"CustomField {name!r} is required: make it registrable or give it a default"
            )

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type].split(" ", 1)[1]

    @property
    def unset_value(self) -> Any:
        """What an account without a stored value reads as: the default,
        normalized (``None`` when the field has none)."""
        return self._unset_value

    def matches_unset(self, value: object) -> bool:
        """Whether a filter for ``value`` (normalized) also keeps the accounts
        without a stored value, which read as the default."""
        return self._unset_value is not None and same_value(self._unset_value, value)

    @property
    def is_indexed(self) -> bool:
        """Whether the stores keep an index on it (``unique`` implies one)."""
        return self.unique or self.indexed

    def problems(self, value: object, *, check_choices: bool = True) -> tuple[Any, list[str]]:
        """``(normalized value, [])``, or ``(None, every message about value)``.

        ``None`` is returned as is (unset); whether that is allowed is the
        caller's rule (``required``).
        """
        if value is None:
            return None, []
        normalized, problems = self._typed(value)
        if problems:
            return None, problems
        if check_choices and self.choices is not None and normalized not in self.choices:
            return None, ["must be one of " + ", ".join(repr(c) for c in self.choices)]
        if self.validator is not None:
            try:
                self.validator(normalized)
            except ValueError as exc:
                return None, [str(exc) or "is not valid"]
        return normalized, []

    def _typed(self, value: object) -> tuple[Any, list[str]]:
        kind = self.type
        if kind is str:
            from usercore.validation import custom_text_problems

            return custom_text_problems(
                value,
                min_length=self.min_length,
                max_length=self.max_length,
                pattern=self._compiled,
            )
        if kind is bool:
            return (value, []) if isinstance(value, bool) else (None, ["must be a boolean"])
        # bool is an int subclass in Python; True is not the number 1 here.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, [f"must be {_TYPE_NAMES[kind]}"]
        if kind is int:
            if not isinstance(value, int):
                return None, ["must be an integer"]
            if not _INT_MIN <= value <= _INT_MAX:
                return None, ["must be a 64-bit integer"]
        else:
            value = float(value)
            if not math.isfinite(value):
                return None, ["must be a finite number"]
        if self.min_value is not None and value < self.min_value:
            return None, [f"must be at least {self.min_value}"]
        if self.max_value is not None and value > self.max_value:
            return None, [f"must be at most {self.max_value}"]
        return value, []

    def accepts_stored(self, value: object) -> bool:
        """Whether a value read back from a store has this field's type (a
        value written under an older declaration may not)."""
        if self.type is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.type is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, self.type)


def check_declaration(fields: Iterable[CustomField]) -> tuple[CustomField, ...]:
    """``fields`` as a tuple, after checking the names are distinct (``ValueError``)."""
    declared = tuple(fields)
    for field in declared:
        if not isinstance(field, CustomField):
            raise TypeError("Settings.custom_fields must hold CustomField declarations")
    names = [field.name for field in declared]
    if len(set(names)) != len(names):
        raise ValueError("Settings.custom_fields must have distinct names")
    return declared


def load_declaration(spec: str) -> tuple[CustomField, ...]:
    """The declaration ``MODULE:NAME`` names (``--custom-fields`` of the command
    line): a ``Settings`` (its ``custom_fields``) or a sequence of
    ``CustomField``, imported from the application (the current directory is
    importable).  ``ValueError`` saying what is wrong otherwise."""
    import importlib
    import os
    import sys

    from usercore.settings import Settings

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError("give MODULE:NAME, e.g. myapp.config:SETTINGS")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(str(exc)) from None
    except (Exception, SystemExit) as exc:  # the application's module failed to import
        problem = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ValueError(f"cannot load it: {problem}") from None
    fields = value.custom_fields if isinstance(value, Settings) else value
    try:
        return check_declaration(fields)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def from_stored(declared: Iterable[CustomField], stored: Mapping[str, Any]) -> CustomFieldValues:
    """The custom field values of an account as read from a store: every declared
    field, keys no longer declared dropped.  A field without a stored value,
    or with one of another type (written under an older declaration), reads as
    its default (``None`` without one); those read so are the values'
    ``defaulted`` names, which a store does not write back."""
    values: dict[str, Any] = {}
    defaulted: list[str] = []
    for field in declared:
        value = stored.get(field.name)
        values[field.name] = read_value(field, value)
        if field.unset_value is not None and (value is None or not field.accepts_stored(value)):
            defaulted.append(field.name)
    return CustomFieldValues(values, defaulted=defaulted)


def read_value(field: CustomField, stored: object) -> Any:
    """How ``field`` reads the value ``stored`` for it (``None``: nothing
    stored): itself when it has the field's type, the default otherwise."""
    if stored is not None and field.accepts_stored(stored):
        return float(cast(float, stored)) if field.type is float else stored
    return field.unset_value


def same_value(left: object, right: object) -> bool:
    """Type-exact equality of custom field values, as JSON compares: ``True`` is
    not ``1`` and ``"1"`` is not ``1``."""
    return type(left) is type(right) and left == right
