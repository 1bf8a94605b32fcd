"""Async FastAPI dependencies: :class:`AsyncAuth`, the :class:`~usercore.web.fastapi.Auth`
of ``async def`` routes, authenticating through :class:`~usercore.aio.AsyncUserCore`.

Import it from ``usercore.web.fastapi``.  It reuses the synchronous adapter's
pieces rather than restating them: ``Auth.credential`` reads the request's
credential on the loop (no I/O) and declares the same security schemes,
``principal_of`` checks CSRF and authenticates it (in the worker pool), and
``init_app``'s handlers turn the errors raised here into the same answers.

No ``from __future__ import annotations`` here: FastAPI reads the
dependencies' annotations at runtime, and they name a local dependency.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request

from usercore.aio import AsyncUserCore
from usercore.domain import Principal
from usercore.errors import AuthenticationError
from usercore.web._core import CookieSessions, Credential, principal_of
from usercore.web._operations import owner_id_of
from usercore.web._profiles import V1

__all__ = ["AsyncAuth"]


class AsyncAuth:
    """usercore's dependencies for an app's ``async def`` routes, over an
    :class:`~usercore.aio.AsyncUserCore`.

    The same names, answers and errors as :class:`~usercore.web.fastapi.Auth`:
    ``Depends(auth.principal)`` is the request's :class:`~usercore.Principal`
    (401 without valid credentials), ``Depends(auth.optional_principal)`` the
    principal or ``None`` without credentials (invalid ones are still 401),
    and ``Depends(auth.require(permission, owner=...))`` the principal if the
    policy allows ``permission`` (403 otherwise).  Credentials are
    ``Authorization: Bearer``, ``X-API-Key`` or, with cookie ``sessions``,
    the access-token cookie (unsafe methods then need the CSRF header).

    Authenticating a credential (a signature check and a store read for
    revocations, or an API-key lookup) runs in the facade's worker pool, so
    the event loop never waits on it; the policy check of ``require`` runs
    inline, as ``AsyncUserCore.policy`` does (docs/async.md).  The errors
    raised are usercore's, answered by the handlers :func:`init_app`
    installs: call ``init_app(app, core.sync, ...)`` on the app too.
    """

    def __init__(
        self,
        core: AsyncUserCore,
        *,
        prefix: str = V1.base,
        sessions: CookieSessions | None = None,
    ):
        if not isinstance(core, AsyncUserCore):
            raise TypeError("AsyncAuth takes an AsyncUserCore: AsyncAuth(AsyncUserCore(core))")
        # Imported here: usercore.web.fastapi re-exports this class.
        from usercore.web.fastapi import Auth

        self.core = core
        self.sessions = sessions
        # The synchronous Auth of the same core, prefix and sessions: its
        # credential scheme and its dependencies' names are this object's too.
        self._sync = Auth(core.sync, prefix=prefix, sessions=sessions)
        credential_scheme = self._sync.credential

        async def optional_principal(
            request: Request,
            credential: Annotated[Credential | None, Depends(credential_scheme)],
        ) -> Principal | None:
            return await self._principal(request, credential)

        async def principal(
            request: Request,
            credential: Annotated[Credential | None, Depends(credential_scheme)],
        ) -> Principal:
            found = await self._principal(request, credential)
            if found is None:
                raise AuthenticationError("Authentication required.")
            return found

        self.credential: Callable[..., Awaitable[Credential | None]] = credential_scheme
        self.optional_principal: Callable[..., Awaitable[Principal | None]] = optional_principal
        self.principal: Callable[..., Awaitable[Principal]] = principal

    async def _principal(self, request: Request, credential: Credential | None) -> Principal | None:
        if credential is None:
            return None
        return await self.core.run(
            principal_of,
            self.core.sync,
            credential,
            request.headers,
            request.cookies,
            method=request.method,
            sessions=self.sessions,
        )

    def require(
        self,
        permission: str,
        *,
        owner: str | Callable[[Mapping[str, Any]], int | None] | None = None,
    ) -> Callable[..., Awaitable[Principal]]:
        """A dependency: the principal, if the policy allows it ``permission`` (else 403).

        ``owner="user_id"`` (a path parameter) or ``owner=lambda params: ...``
        gives the id of the resource's owner, so a ``:own`` grant suffices
        when the principal is that owner.
        """

        async def dependency(
            request: Request, principal: Annotated[Principal, Depends(self.principal)]
        ) -> Principal:
            owner_id = owner_id_of(owner, request.path_params)
            self.core.policy.require(principal, permission, owner_id=owner_id)
            return principal

        dependency.__name__ = self._sync.require(permission, owner=owner).__name__
        return dependency
