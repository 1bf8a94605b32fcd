"""The domain: entities and pure rules, importing nothing else of usercore."""

from usercore.domain.model import (
    SYSTEM,
    ApiKey,
    CustomFieldValues,
    Decision,
    Page,
    Permission,
    Principal,
    Role,
    TokenPair,
    User,
    UserStatus,
    email_key,
    highest_role,
    isoformat,
    username_key,
)
from usercore.domain.records import OneTimeToken, RefreshToken, RevokedToken

__all__ = [
    "SYSTEM",
    "ApiKey",
    "CustomFieldValues",
    "Decision",
    "OneTimeToken",
    "Page",
    "Permission",
    "Principal",
    "RefreshToken",
    "RevokedToken",
    "Role",
    "TokenPair",
    "User",
    "UserStatus",
    "email_key",
    "highest_role",
    "isoformat",
    "username_key",
]
