"""The framework-neutral HTTP layer of usercore (DESIGN §8).

One table of routes (:data:`ROUTES`) and one dispatcher (:class:`HttpApi`)
serve the REST API; ``usercore.web.fastapi`` and ``usercore.web.flask`` only
translate requests and responses.  Importing this package imports no web
framework.  See ``docs/http.md``.
"""

from usercore.web._core import (
    NO_BODY,
    FieldSpec,
    HeaderLookup,
    HttpRequest,
    HttpResponse,
    authenticate,
    encode_json,
    error_response,
    http_error_response,
)
from usercore.web._routes import (
    ROUTES,
    EmailVerificationHook,
    HttpApi,
    PasswordResetHook,
    Route,
)

__all__ = [
    "NO_BODY",
    "ROUTES",
    "EmailVerificationHook",
    "FieldSpec",
    "HeaderLookup",
    "HttpApi",
    "HttpRequest",
    "HttpResponse",
    "PasswordResetHook",
    "Route",
    "authenticate",
    "encode_json",
    "error_response",
    "http_error_response",
]
