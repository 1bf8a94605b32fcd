"""The permission grammar: ``resource:action`` with an optional ``:own`` scope.

Pure rules, no I/O.  Segments use lowercase letters, digits, ``_``, ``-`` and
``.``; ``*`` alone grants everything and ``resource:*`` every action on a
resource.  ``:own`` limits a grant to the principal's own records.
"""

from __future__ import annotations

import re

import attrs

from usercore.domain.model import Permission, Role

__all__ = [
    "ADMIN_ROLE",
    "BUILTIN_PERMISSIONS",
    "BUILTIN_ROLES",
    "OWN",
    "USER_ROLE",
    "WILDCARD",
    "CheckProbes",
    "ParsedPermission",
    "check_probes",
    "parse_permission",
    "permission_problems",
]

WILDCARD = "*"
OWN = "own"
_SEGMENT = re.compile(r"[a-z0-9_.\-]{1,64}")
MAX_PERMISSION_LENGTH = 200


@attrs.frozen
class ParsedPermission:
    """A permission string split into its parts."""

    resource: str
    action: str
    own: bool = False

    @property
    def base(self) -> str:
        """``resource:action`` without the scope."""
        return f"{self.resource}:{self.action}"


def permission_problems(name: object) -> list[str]:
    """Every reason ``name`` is not a valid permission string (empty when it is)."""
    if not isinstance(name, str):
        return ["must be a string"]
    if name == WILDCARD:
        return []
    if not name:
        return ["must not be empty"]
    if len(name) > MAX_PERMISSION_LENGTH:
        return [f"must be at most {MAX_PERMISSION_LENGTH} characters"]
    parts = name.split(":")
    if len(parts) not in (2, 3):
        return ["must look like resource:action or resource:action:own"]
    problems: list[str] = []
    resource, action = parts[0], parts[1]
    if not _SEGMENT.fullmatch(resource):
        problems.append("resource must be 1-64 lowercase letters, digits, '_', '-' or '.'")
    if action != WILDCARD and not _SEGMENT.fullmatch(action):
        problems.append("action must be '*' or 1-64 lowercase letters, digits, '_', '-' or '.'")
    if len(parts) == 3 and parts[2] != OWN:
        problems.append("the only scope is ':own'")
    return problems


def parse_permission(name: str) -> ParsedPermission:
    """Split a valid permission string; raises ``ValueError`` for an invalid one."""
    problems = permission_problems(name)
    if problems:
        raise ValueError(f"invalid permission {name!r}: {'; '.join(problems)}")
    if name == WILDCARD:
        return ParsedPermission(WILDCARD, WILDCARD)
    parts = name.split(":")
    return ParsedPermission(parts[0], parts[1], own=len(parts) == 3)


@attrs.frozen
class CheckProbes:
    """The grants that satisfy a check, so that a check is a few set lookups.

    ``anyone`` holds the grants that allow the check on any record; ``own``
    the ``:own`` grants that allow it only on the principal's own records.
    A set of grants allows the check when it meets ``anyone``, or meets
    ``own`` and the record belongs to the principal.
    """

    anyone: frozenset[str]
    own: frozenset[str]


def check_probes(permission: str) -> CheckProbes | None:
    """The grants that satisfy a check of ``permission`` (``None`` when it is not valid).

    For ``resource:action``: ``*``, ``resource:*`` and ``resource:action``
    allow it on any record; ``resource:action:own`` and ``resource:*:own``
    only on the principal's own.  A check of ``resource:action:own`` asks
    "may the principal do this to its own records?", which every one of those
    five grants allows.  A check of ``resource:*`` is satisfied only by
    ``*`` and ``resource:*`` (and ``resource:*:own`` on own records), and a
    check of ``*`` only by ``*``.

    Pure and not memoized here: :mod:`usercore.policy` keeps the one cache of
    probes, beside the checks that use it.
    """
    if not isinstance(permission, str) or permission_problems(permission):
        return None
    if permission == WILDCARD:
        return CheckProbes(frozenset({WILDCARD}), frozenset())
    resource, action, *scope = permission.split(":")
    anyone = {WILDCARD, f"{resource}:{WILDCARD}", f"{resource}:{action}"}
    own = {f"{resource}:{action}:{OWN}", f"{resource}:{WILDCARD}:{OWN}"}
    if scope:
        return CheckProbes(frozenset(anyone | own), frozenset())
    return CheckProbes(frozenset(anyone), frozenset(own))


BUILTIN_PERMISSIONS: tuple[Permission, ...] = (
    Permission(name="users:create", description="Create user accounts"),
    Permission(name="users:read", description="Read and list user accounts"),
    Permission(
        name="users:update",
        description="Change user accounts: profile, status, password reset, sessions",
    ),
    Permission(name="users:delete", description="Delete user accounts"),
    Permission(name="roles:create", description="Create roles"),
    Permission(name="roles:read", description="Read and list roles"),
    Permission(name="roles:update", description="Change a role's permissions and inheritance"),
    Permission(name="roles:delete", description="Delete roles"),
    Permission(name="roles:assign", description="Assign roles to users"),
    Permission(name="permissions:read", description="List the registered permissions"),
    Permission(name="permissions:register", description="Register new permissions"),
    Permission(name="apikeys:create", description="Create API keys"),
    Permission(name="apikeys:read", description="List API keys (never their secrets)"),
    Permission(name="apikeys:revoke", description="Revoke API keys"),
)
"""The permissions every registry starts with: users, roles, permissions and API keys."""

ADMIN_ROLE = Role(name="admin", permissions=frozenset({WILDCARD}), description="Every permission")
"""Built-in role: ``*``, every permission, including those registered later."""

USER_ROLE = Role(
    name="user",
    permissions=frozenset(
        {"users:read:own", "users:update:own", "users:delete:own", "apikeys:*:own"}
    ),
    description="Read, change and delete one's own account; manage one's own API keys",
)
"""Built-in role given to self-registered users: only their own account and keys."""

BUILTIN_ROLES: tuple[Role, ...] = (ADMIN_ROLE, USER_ROLE)
"""The roles created on first open."""
