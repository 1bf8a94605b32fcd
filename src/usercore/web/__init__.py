"""usercore's optional HTTP layer: ``usercore.web.fastapi`` and ``usercore.web.flask``.

Both adapters serve the same operations (declared once, with pydantic
models) from the same route table; see ``docs/http.md``.  Importing this
package imports no web framework and no pydantic.
"""

from usercore.web._core import CookieSessions

__all__ = ["CookieSessions"]
