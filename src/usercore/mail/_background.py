"""Delivery off the request path, so a response never waits for (or reveals) a mail."""

from __future__ import annotations

import logging
import queue
import threading

from usercore.mail._mailers import Mailer
from usercore.mail._message import MailError, MailMessage

__all__ = ["BackgroundMailer"]

_log = logging.getLogger("usercore.mail")
_STOP = None


class BackgroundMailer:
    """Queues each mail and delivers it through ``mailer`` on one worker thread.

    Why: a password-reset request for a known address sends a mail, one for
    an unknown address does not; if the response waited for the SMTP round
    trip, its timing would tell which addresses have accounts. The OWASP
    Forgot Password Cheat Sheet asks for "a consistent amount of time",
    "e.g. using asynchronous calls". :meth:`send` returns as soon as the mail
    is queued.

    A failed delivery is logged on ``usercore.mail`` (the error class and the
    message's recipient and subject, never its body) and not retried.
    :meth:`send` raises :class:`MailError` when ``max_queued`` mails are
    already waiting or after :meth:`close`. Call :meth:`close` at shutdown to
    deliver what is queued; the worker is a daemon thread, so an unclosed
    mailer never keeps the process alive. Thread-safe.
    """

    def __init__(self, mailer: Mailer, *, max_queued: int = 1000) -> None:
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self.mailer = mailer
        self._max_queued = max_queued
        # One slot more than mails may take: the stop marker always fits, so
        # close() never waits on a full queue (and a hung server) beyond its timeout.
        self._queue: queue.Queue[MailMessage | None] = queue.Queue(maxsize=max_queued + 1)
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"BackgroundMailer(mailer={self.mailer!r}, queued={self._queue.qsize()})"

    def send(self, message: MailMessage) -> None:
        """Queue ``message`` for delivery; :class:`MailError` if full or closed."""
        with self._lock:
            if self._closed:
                raise MailError("the background mailer is closed", details={"step": "queue"})
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="usercore-mail", daemon=True)
                self._worker.start()
            # Every put happens under the lock, so the count cannot grow between
            # this check and the put.
            if self._queue.qsize() >= self._max_queued:
                raise MailError("too many mails are waiting to be sent", details={"step": "queue"})
            self._queue.put_nowait(message)

    def close(self, timeout: float | None = None) -> bool:
        """Stop taking mails and wait up to ``timeout`` seconds for the queue to drain.

        Returns whether every queued mail was handed to the mailer.  Idempotent.
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._worker is not None:
                    self._queue.put_nowait(_STOP)
            worker = self._worker
        if worker is None:
            return True
        worker.join(timeout)
        return not worker.is_alive()

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            if message is _STOP:
                return
            try:
                self.mailer.send(message)
            except Exception as exc:  # one bad mail must not stop the others
                _log.error(
                    "background delivery of %r failed: %s: %s",
                    message,
                    type(exc).__name__,
                    exc.message if isinstance(exc, MailError) else "see the mailer's log",
                )
