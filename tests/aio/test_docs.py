"""docs/async.md's Python blocks run, so the async guide never rots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the examples hash with the production argon2id profile

DOCS = Path(__file__).resolve().parents[2] / "docs" / "async.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)


def test_the_async_guide_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_async_guide_code_block_runs(index: int) -> None:
    code = compile(BLOCKS[index], f"docs/async.md[python block {index}]", "exec")
    exec(code, {"__name__": "async_guide"})  # noqa: S102 - our own docs, on purpose
