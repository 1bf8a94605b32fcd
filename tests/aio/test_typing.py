"""The async API's signatures are derived from the sync ones, as mypy --strict sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_typing_check_passes_mypy_strict() -> None:
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            str(Path(__file__).with_name("typing_check.py")),
        ]
    )
    assert status == 0, stdout + stderr
