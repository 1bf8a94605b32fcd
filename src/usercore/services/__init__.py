"""Use cases behind the :class:`~usercore.UserCore` facade."""

from usercore.services.events import Event, EventBus
from usercore.services.facade import UserCore, open_store
from usercore.services.users import ImportReport

__all__ = ["Event", "EventBus", "ImportReport", "UserCore", "open_store"]
