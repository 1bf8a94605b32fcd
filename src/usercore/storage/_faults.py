"""Transient store faults: one :class:`~usercore.errors.StoreUnavailable`, logged once.

A full disk or a stopped database server fails every request until it is
fixed; logging each failure with a traceback would bury the one line an
operator needs.  Each store keeps an :class:`Incidents`: the first failure
after a success is logged as a WARNING with its cause, the following ones are
not, and the next success logs that the store is back.
"""

from __future__ import annotations

import logging
import threading

from usercore.errors import StoreUnavailable

__all__ = ["Incidents"]


class Incidents:
    """The fault state of one store, for logging once per incident."""

    __slots__ = ("_failing", "_lock", "_logger", "_where")

    def __init__(self, logger: logging.Logger, where: str) -> None:
        self._logger = logger
        self._where = where
        self._failing = False
        self._lock = threading.Lock()

    def unavailable(
        self, reason: str, cause: BaseException, *, retry_after: int = 1
    ) -> StoreUnavailable:
        """The error to raise (``from cause``) for a transient fault; logs a new incident."""
        with self._lock:
            first, self._failing = not self._failing, True
        if first:
            self._logger.warning(
                "store unavailable: %s at %s (%s: %s); further failures are not logged "
                "until it recovers",
                reason,
                self._where,
                type(cause).__name__,
                cause,
            )
        return StoreUnavailable(retry_after=retry_after)

    def recovered(self) -> None:
        """Call after a successful unit of work: ends the incident, if any."""
        if self._failing:  # unlocked read: the common path costs one attribute test
            with self._lock:
                ended, self._failing = self._failing, False
            if ended:
                self._logger.warning("store available again at %s", self._where)
