"""The runtime behind ``usercore serve``: one app per process, workers, mail, purge.

``usercore serve`` builds its app with :func:`build_app`: the FastAPI app of
:func:`usercore.web.fastapi.create_app` plus ``/healthz`` and ``/readyz``, the
account mails (``--mail-url``), a thread that purges expired rows
(``--purge-every``) and an optional JSON access log.  What the app starts,
its lifespan stops: the purge thread, then the mail queue (delivering what is
queued), then the store.

With ``--workers N`` every worker process builds its own app and its own
store from :class:`ServeOptions`, passed in ``$USERCORE_SERVE_OPTIONS``, by
the factory :func:`worker_app`.  The listening socket is made here rather
than by uvicorn: uvicorn's own ``--workers`` makes it with protocol 0, and
asyncio only sets ``TCP_NODELAY`` on connections accepted from a socket whose
protocol is ``IPPROTO_TCP``; without it a response written in two parts
(headers, body) waits for the client's delayed ACK, ~40 ms per request (see
docs/performance.md).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import attrs
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from usercore import SYSTEM, Settings, StoreUnavailable, UserCore
from usercore.custom_fields import load_declaration
from usercore.services.events import Event
from usercore.settings import RegistrationMode
from usercore.web._profiles import profiles_of
from usercore.web.fastapi import add_health_routes, create_app

__all__ = [
    "OPTIONS_ENV",
    "AccessLog",
    "Purger",
    "ServeOptions",
    "build_app",
    "freeze_startup_objects",
    "listening_socket",
    "register_permissions",
    "subscribe_notices",
    "worker_app",
]

OPTIONS_ENV = "USERCORE_SERVE_OPTIONS"
ACCESS_LOGS = ("text", "json", "off")

logger = logging.getLogger("usercore.serve")
access_logger = logging.getLogger("usercore.access")


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class ServeOptions:
    """Everything a worker needs to build the app, as JSON-able values.

    No secret in it except what ``mail_url`` holds: the signing key is read
    by each worker from ``$USERCORE_SECRET_KEY`` or the key file, as by the
    parent.
    """

    url: str
    profiles: tuple[str, ...] = attrs.field(default=("v1",), converter=_names)
    prefix: str | None = None
    docs: bool = True
    docs_ui: bool = False
    cors_origins: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    cors_allow_credentials: bool = False
    mail_url: str | None = attrs.field(default=None, repr=False)
    reset_url: str | None = None
    verification_url: str | None = None
    invitation_url: str | None = None
    app_name: str = "usercore"
    purge_every: float = 600.0
    access_log: str = "text"
    registration: RegistrationMode = "open"
    require_verified_email: bool = False
    #: ``MODULE:NAME`` of the application's custom fields (``--custom-fields``),
    #: imported by every worker.
    custom_fields: str | None = None

    def settings(self) -> Settings:
        """The core's settings (the registration policy and custom fields
        served); the key is added where the core is opened."""
        return Settings(
            registration=self.registration,
            require_verified_email=self.require_verified_email,
            custom_fields=load_declaration(self.custom_fields) if self.custom_fields else (),
        )

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        return cls(**json.loads(text))


# -- periodic purge ----------------------------------------------------------------------


class Purger:
    """Calls ``core.purge_expired()`` every ``every`` seconds on a daemon thread,
    so login-attempt rows, revoked token ids and expired tokens stay bounded."""

    def __init__(self, core: UserCore, every: float) -> None:
        if every <= 0:
            raise ValueError("every must be positive")
        self._core = core
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usercore-purge", daemon=True)
        self.purged = 0

    def start(self) -> None:
        self._thread.start()

    def tick(self) -> int:
        """One purge; a store fault is logged and retried at the next tick."""
        try:
            count = self._core.purge_expired()
        except StoreUnavailable as exc:
            logger.warning("purge of expired rows skipped: %s", exc.message)
            return 0
        except Exception:
            logger.exception("purge of expired rows failed")
            return 0
        self.purged += count
        if count:
            logger.info("purged %d expired rows", count)
        return count

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.tick()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


# -- mail --------------------------------------------------------------------------------


def subscribe_notices(core: UserCore, notifier: Any) -> Callable[[], None]:
    """Mail the notices of ``core.events``: ``user.email_changed`` to the OLD
    address, ``password.changed`` / ``password.reset`` to the account's
    (OWASP ASVS 4.0.3 V2.5.5).  Returns the function that unsubscribes."""

    def on_event(event: Event) -> None:
        if event.name == "user.email_changed":
            old, new = event.data.get("old_email"), event.data.get("new_email")
            if old and new:
                notifier.email_changed(old, new)
        elif event.name in ("password.changed", "password.reset") and event.user_id:
            user = core.users.get(SYSTEM, event.user_id)
            if user.email:
                notifier.password_changed(user.email)

    return core.events.subscribe(on_event)


# -- access log --------------------------------------------------------------------------


class AccessLog:
    """One JSON line per request on the ``usercore.access`` logger.

    The path is logged without its query string: a query may carry a token
    (OWASP ASVS 4.0.3 V7.1.1: no secrets in logs).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client")
            access_logger.info(
                json.dumps(
                    {
                        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                        "client": client[0] if client else None,
                        "method": scope["method"],
                        "path": scope["path"],
                        "http": scope.get("http_version"),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                    ensure_ascii=False,
                )
            )


def _json_access_handler() -> None:
    if access_logger.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_logger.addHandler(handler)
    access_logger.setLevel(logging.INFO)
    access_logger.propagate = False


# -- the app -----------------------------------------------------------------------------


def build_app(
    options: ServeOptions, core: UserCore, *, close_core: bool = False, freeze: bool = False
) -> FastAPI:
    """The served app on ``core``; its lifespan shutdown stops what it started
    (and closes ``core`` when ``close_core``).  With ``freeze`` (a serving
    process: ``usercore serve`` and its workers) its startup calls
    :func:`freeze_startup_objects`."""
    from usercore.mail import BackgroundMailer, Notifier, mailer_from_url

    background = None
    notifier = None
    unsubscribe: Callable[[], None] | None = None
    if options.mail_url:
        if not (options.reset_url and options.verification_url):
            raise ValueError("mail needs reset_url and verification_url")
        background = BackgroundMailer(mailer_from_url(options.mail_url))
        notifier = Notifier(
            background,
            reset_url=options.reset_url,
            verification_url=options.verification_url,
            invitation_url=options.invitation_url,
            app_name=options.app_name,
            settings=core.settings,
        )
        unsubscribe = subscribe_notices(core, notifier)

    def on_email_verification(user: Any, token: str) -> None:
        if notifier is not None and user.email:
            notifier.email_verification(user.email, token)

    def on_invitation(user: Any, token: str) -> None:
        if notifier is not None and user.email:
            notifier.invitation(user.email, token)

    app = create_app(
        core,
        profile=profiles_of(options.profiles, options.prefix),
        docs=options.docs,
        docs_ui=options.docs_ui,
        cors_origins=options.cors_origins,
        cors_allow_credentials=options.cors_allow_credentials,
        on_password_reset=None if notifier is None else notifier.password_reset,
        on_email_verification=None if notifier is None else on_email_verification,
        on_invitation=None if notifier is None or not options.invitation_url else on_invitation,
    )
    add_health_routes(app, core)
    if options.access_log == "json":
        _json_access_handler()
        app.add_middleware(AccessLog)
    purger = Purger(core, options.purge_every) if options.purge_every > 0 else None

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        if freeze:
            freeze_startup_objects()
        if purger is not None:
            purger.start()
        try:
            async with inner(served) as state:
                yield state
        finally:
            # uvicorn reaches here once every in-flight request has finished.
            if purger is not None:
                purger.stop()
            if unsubscribe is not None:
                unsubscribe()
            if background is not None and not background.close(timeout=10):
                logger.warning("mail queue not empty at shutdown: some mails were not sent")
            if close_core:
                core.close()

    app.router.lifespan_context = lifespan
    return app


def freeze_startup_objects() -> None:
    """Move what the process holds once it is ready to serve (the app, its
    models, the imported modules: some 80,000 objects) out of the cyclic
    garbage collector's reach with :func:`gc.freeze`.

    They live as long as the process; without this every full collection
    walks all of them again, a pause of 50 to 90 ms on a busy two-CPU machine
    that a request arriving at that moment waits out (the tail of ``GET
    /auth/me`` under a login flood, docs/performance.md).  Collections of what
    requests create go on as before.
    """
    gc.collect()
    gc.freeze()


def register_permissions(core: UserCore, permissions: Iterable[tuple[str, str]]) -> int:
    """Store the app permissions of ``--permissions FILE`` (name, description)
    for every process on the database; returns how many were new.

    Idempotent: a permission already stored (by an earlier start, another
    server or ``POST /permissions``) is left as it is.  ``usercore serve`` runs
    it once, before it starts its workers, which read them from the store.
    """
    before = {permission.name for permission in core.permissions.list()}
    for name, description in permissions:
        core.permissions.register(name, description)
    return len({permission.name for permission in core.permissions.list()} - before)


def worker_app() -> FastAPI:
    """The uvicorn factory run in each worker process: its own store, its own app."""
    from usercore.cli import open_core, serving_key

    options = ServeOptions.from_json(os.environ[OPTIONS_ENV])
    core = open_core(options.url, secret_key=serving_key(options.url), settings=options.settings())
    return build_app(options, core, close_core=True, freeze=True)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket made with ``IPPROTO_TCP``, so that asyncio sets
    ``TCP_NODELAY`` on each accepted connection (module docstring)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
