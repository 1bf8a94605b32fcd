"""The permission grammar: ``resource:action`` with an optional ``:own`` scope.

Pure rules, no I/O.  Segments use lowercase letters, digits, ``_``, ``-`` and
``.``; ``*`` alone grants everything and ``resource:*`` every action on a
resource.  ``:own`` limits a grant to the principal's own records.
"""

from __future__ import annotations

import re

import attrs

__all__ = ["OWN", "WILDCARD", "ParsedPermission", "parse_permission", "permission_problems"]

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
