"""docs/custom-fields.md's Python blocks run, in order, as one program: the page never rots."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "custom-fields.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_custom_fields_page_has_examples() -> None:
    assert len(BLOCKS) >= 7


def test_the_custom_fields_page_examples_run() -> None:
    namespace: dict[str, object] = {"__name__": "docs_custom_fields"}
    with warnings.catch_warnings():
        # Starlette asks for httpx2, which is not a dependency; its TestClient works with httpx.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        for index, block in enumerate(BLOCKS):
            code = compile(block, f"docs/custom-fields.md[python block {index}]", "exec")
            exec(code, namespace)  # noqa: S102 - our own documentation, on purpose
