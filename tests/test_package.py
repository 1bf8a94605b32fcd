"""The package surface: public names, and no heavy imports at import time."""

from __future__ import annotations

import subprocess
import sys

import usercore


def test_all_is_unique_and_every_name_resolves() -> None:
    """(ruff's RUF022 keeps ``__all__`` sorted, isort-style.)"""
    assert len(set(usercore.__all__)) == len(usercore.__all__)
    for name in usercore.__all__:
        assert hasattr(usercore, name), name


def test_importing_usercore_loads_no_web_framework_database_driver_or_test_library() -> None:
    """DESIGN §1: `import usercore` must not import optional dependencies."""
    code = (
        "import sys, usercore; "
        "heavy = ('fastapi', 'flask', 'starlette', 'psycopg', 'psycopg_pool', 'hypothesis', "
        "'pytest', 'django', 'werkzeug', 'uvicorn'); "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert "" == out


def test_package_ships_type_information() -> None:
    from importlib.resources import files

    assert files("usercore").joinpath("py.typed").is_file()
