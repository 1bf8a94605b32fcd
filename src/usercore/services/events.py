"""Audit events: what happened, to whom, by whom; never a secret.

Subscribers are plain callables.  A subscriber that raises is logged and
skipped: auditing never breaks the operation it reports on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from usercore.domain import Principal
from usercore.ports import Clock

__all__ = ["Event", "EventBus", "Subscriber"]

logger = logging.getLogger("usercore.events")


@attrs.frozen(kw_only=True)
class Event:
    """One audit event, e.g. ``auth.login_failed`` with ``data={"reason": "bad_password"}``."""

    name: str
    at: datetime
    user_id: int | None = None
    actor_id: int | None = None
    actor_method: str | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "at": self.at.isoformat(),
            "user_id": self.user_id,
            "actor_id": self.actor_id,
            "actor_method": self.actor_method,
            "data": dict(self.data),
        }


Subscriber = Callable[[Event], object]


class EventBus:
    """``core.events``: subscribe callbacks to every audit event."""

    def __init__(self, clock: Clock):
        self._clock = clock
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def emit(
        self,
        name: str,
        *,
        user_id: int | None = None,
        actor: Principal | None = None,
        **data: Any,
    ) -> None:
        """Deliver an event to every subscriber (callers never pass secrets in ``data``)."""
        subscribers = self._subscribers
        if not subscribers:
            return
        event = Event(
            name=name,
            at=self._clock(),
            user_id=user_id,
            actor_id=None if actor is None else actor.user_id,
            actor_method=None if actor is None else actor.method,
            data=data,
        )
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber %r failed on %s", subscriber, name)
