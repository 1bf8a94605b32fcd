"""The facade fixtures of ``tests/services``, shared by the security suite."""

from tests.services.conftest import *  # noqa: F403
