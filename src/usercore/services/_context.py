"""What every service shares: the store, settings, clock, hasher, policy, events, tokens."""

from __future__ import annotations

from typing import Any, TypeVar

import attrs

from usercore._policy_registry import PermissionRegistry
from usercore.domain import Principal
from usercore.errors import NotFoundError, PermissionDenied, ValidationError
from usercore.passwords import PasswordHasher
from usercore.policy import Policy
from usercore.ports import Clock, Store
from usercore.services.events import EventBus
from usercore.settings import Settings
from usercore.tokens import TokenService

__all__ = ["MAX_ID", "Context", "authorize_on_record", "check_id", "found", "in_id_range"]

# Ids are SQL BIGINTs; anything larger cannot exist (and must not overflow a driver).
MAX_ID = 2**63 - 1

T = TypeVar("T")


@attrs.frozen
class Context:
    """The collaborators of the services, built once by :class:`~usercore.UserCore`."""

    store: Store
    settings: Settings
    clock: Clock
    hasher: PasswordHasher
    policy: Policy
    registry: PermissionRegistry
    events: EventBus
    tokens: TokenService


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


def authorize_on_record(
    policy: Policy, actor: Principal, permission: str, owner_id: int | None
) -> None:
    """Check ``permission`` on a record that may not exist (``owner_id`` None).

    A caller allowed on any record learns whether it exists (``NotFoundError``);
    a caller who could act only on its own records gets ``PermissionDenied``
    either way, so ids cannot be probed.
    """
    if owner_id is None:
        if policy.is_allowed(actor, permission):
            raise NotFoundError("The requested resource was not found.")
        raise PermissionDenied(permission=permission)
    policy.require(actor, permission, owner_id=owner_id)
