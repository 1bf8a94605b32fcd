"""The collaborators every service shares, built once by the facade."""

from __future__ import annotations

import attrs

from usercore.passwords import PasswordHasher
from usercore.policy import PermissionRegistry, Policy
from usercore.ports import Clock, Store
from usercore.services.events import EventBus
from usercore.services.sessions import SessionService
from usercore.settings import Settings

__all__ = ["Context"]


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
    sessions: SessionService
