"""Public test support: hypothesis strategies and the storage contract suite.

Needs the ``testing`` extra (hypothesis and pytest)::

    pip install "usercore[testing]"
"""

try:
    import hypothesis  # noqa: F401
    import pytest  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "usercore.testing needs hypothesis and pytest: pip install 'usercore[testing]'"
    ) from exc

from usercore.testing import strategies
from usercore.testing.contract import StoreContract

__all__ = ["StoreContract", "strategies"]
