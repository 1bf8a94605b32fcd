"""usercore: framework-free user management.

Users, validation, argon2id passwords, RBAC, JWT and API keys behind pluggable
storage.  This module only re-exports the public names; see ``docs/``.
"""

from usercore.custom_fields import CustomField
from usercore.domain import (
    SYSTEM,
    ApiKey,
    Decision,
    Page,
    Permission,
    Principal,
    Role,
    TokenPair,
    User,
    UserStatus,
)
from usercore.errors import (
    AccountLocked,
    AuthenticationError,
    ConflictError,
    EmailNotVerified,
    InvalidCredentials,
    NotFoundError,
    Overloaded,
    PermissionDenied,
    ReauthenticationRequired,
    RegistrationClosed,
    StoreUnavailable,
    TokenError,
    UsercoreError,
    ValidationError,
)
from usercore.services import ImportReport, UserCore
from usercore.settings import Settings, SigningKey

__all__ = [
    "SYSTEM",
    "AccountLocked",
    "ApiKey",
    "AuthenticationError",
    "ConflictError",
    "CustomField",
    "Decision",
    "EmailNotVerified",
    "ImportReport",
    "InvalidCredentials",
    "NotFoundError",
    "Overloaded",
    "Page",
    "Permission",
    "PermissionDenied",
    "Principal",
    "ReauthenticationRequired",
    "RegistrationClosed",
    "Role",
    "Settings",
    "SigningKey",
    "StoreUnavailable",
    "TokenError",
    "TokenPair",
    "User",
    "UserCore",
    "UserStatus",
    "UsercoreError",
    "ValidationError",
]

__version__ = "0.1.0.dev0"
