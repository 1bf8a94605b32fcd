"""Arguments that name a record, and records that must exist: ids and ``NotFoundError``."""

from __future__ import annotations

from typing import Any, TypeVar

from usercore.errors import NotFoundError, ValidationError

__all__ = ["MAX_ID", "check_id", "found", "in_id_range"]

# Ids are SQL BIGINTs; anything larger cannot exist (and must not overflow a driver).
MAX_ID = 2**63 - 1

T = TypeVar("T")


def check_id(value: Any, field: str = "user_id") -> int:
    """An id argument must be an int (not a bool): ``ValidationError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError.single(field, "must be an integer")
    return value


def in_id_range(value: int) -> bool:
    """Whether an id could exist at all (positive, fits a BIGINT)."""
    return 0 < value <= MAX_ID


def found(value: T | None, what: str) -> T:
    """``value``, or ``NotFoundError`` naming ``what``."""
    if value is None:
        raise NotFoundError(f"{what} not found.")
    return value
