"""The permissions registry: which permissions exist, so typos in roles are errors.

In-process and pure: the built-in permissions (:data:`BUILTIN_PERMISSIONS`)
plus whatever the application registers at start-up.  Roles and API-key
scopes may only name registered permissions or wildcards over known
resources; anything else is a :class:`~usercore.errors.ValidationError`.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable

from usercore.domain.model import Permission
from usercore.domain.permissions import (
    BUILTIN_PERMISSIONS,
    WILDCARD,
    permission_problems,
)
from usercore.errors import ValidationError

__all__ = ["PermissionRegistry"]


class PermissionRegistry:
    """The permissions an application knows, with descriptions.

    Starts with :data:`~usercore.domain.permissions.BUILTIN_PERMISSIONS`
    (pass ``builtins=False`` for an empty one).  Thread-safe: registering takes
    a lock; lookups read an immutable snapshot.
    """

    def __init__(self, *, builtins: bool = True) -> None:
        self._lock = threading.Lock()
        self._permissions: dict[str, Permission] = {}
        self._resources: frozenset[str] = frozenset()
        for permission in BUILTIN_PERMISSIONS if builtins else ():
            self.register(permission.name, permission.description)

    def register(self, name: str, description: str = "") -> Permission:
        """Register ``resource:action`` and return it; registering it again is harmless.

        A second registration keeps the first description unless that one was
        empty.  Raises :class:`ValidationError` (``{"name": [...]}``) when
        ``name`` is not a concrete ``resource:action``: wildcards and ``:own``
        are grant forms, not permissions of their own.
        """
        problems = permission_problems(name)
        if not problems and (name == WILDCARD or name.split(":")[1] == WILDCARD):
            problems = ["register a concrete resource:action, not a wildcard"]
        elif not problems and name.count(":") == 2:
            problems = ["register resource:action without ':own'; ':own' is a grant scope"]
        if problems:
            raise ValidationError({"name": problems})
        if not isinstance(description, str):
            raise ValidationError.single("description", "must be a string")
        with self._lock:
            existing = self._permissions.get(name)
            if existing is not None and (existing.description or not description):
                return existing
            permission = Permission(name=name, description=description)
            permissions = dict(self._permissions)
            permissions[name] = permission
            # Publish whole new objects so readers never see a half-made update.
            self._permissions = permissions
            self._resources = self._resources | {name.split(":")[0]}
            return permission

    def list(self) -> list[Permission]:
        """Every registered permission, ordered by name."""
        permissions = self._permissions
        return [permissions[name] for name in sorted(permissions)]

    def get(self, name: str) -> Permission | None:
        """The registered permission called ``name``, or ``None``."""
        return self._permissions.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._permissions

    def __len__(self) -> int:
        return len(self._permissions)

    @property
    def resources(self) -> frozenset[str]:
        """The resources that have at least one registered permission."""
        return self._resources

    def grant_problems(self, grant: object) -> builtins.list[str]:
        """Why ``grant`` may not appear in a role or API-key scope (empty when it may).

        A grant may be ``*``; ``resource:*`` or ``resource:*:own`` for a
        resource with a registered permission; or ``resource:action`` or
        ``resource:action:own`` whose ``resource:action`` is registered.
        """
        problems = permission_problems(grant)
        if problems or not isinstance(grant, str):
            return [f"invalid permission {grant!r}: {problem}" for problem in problems]
        if grant == WILDCARD:
            return []
        resource, action, *_ = grant.split(":")
        if action == WILDCARD:
            known = resource in self._resources
        else:
            known = f"{resource}:{action}" in self._permissions
        return [] if known else [f"unknown permission {grant!r}"]

    def validate_grants(
        self, grants: Iterable[str], *, field: str = "permissions"
    ) -> frozenset[str]:
        """Check every grant (see :meth:`grant_problems`) and return them as a frozenset.

        Raises :class:`ValidationError` ``{field: [...]}`` listing every bad
        grant, e.g. ``{"permissions": ["unknown permission 'reprots:read'"]}``,
        so a typo in a role never turns into a silent denial.  Use
        ``field="scopes"`` for API-key scopes.
        """
        if isinstance(grants, str):
            raise ValidationError.single(field, "must be a list of permissions, not a string")
        checked = builtins.list(grants)
        problems = [problem for grant in checked for problem in self.grant_problems(grant)]
        if problems:
            raise ValidationError({field: builtins.list(dict.fromkeys(problems))})
        return frozenset(checked)
