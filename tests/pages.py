"""Running the Python blocks of a documentation page, so that the page never rots.

One place for what every docs test does: find the page's ```python blocks and
run them, each compiled under a name that says which page and block failed.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks(page: str) -> list[str]:
    """The Python blocks of ``page`` (a path from the project root), in order."""
    return _BLOCK.findall((ROOT / page).read_text(encoding="utf-8"))


def run_block(page: str, index: int, block: str, namespace: dict[str, object]) -> None:
    """Run ``block`` (the ``index``-th of ``page``) in ``namespace``."""
    code = compile(block, f"{page}[python block {index}]", "exec")
    exec(code, namespace)  # noqa: S102 - our own documentation, on purpose


def run_in_order(page: str, module_name: str) -> dict[str, object]:
    """Run every Python block of ``page``, in order, as one program; its namespace."""
    namespace: dict[str, object] = {"__name__": module_name}
    for index, block in enumerate(python_blocks(page)):
        run_block(page, index, block, namespace)
    return namespace
