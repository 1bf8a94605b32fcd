"""docs/async.md's Python blocks run, so the async guide never rots."""

from __future__ import annotations

import pytest

from ..pages import python_blocks, run_block

pytestmark = pytest.mark.slow  # the examples hash with the production argon2id profile

PAGE = "docs/async.md"
BLOCKS = python_blocks(PAGE)


def test_the_async_guide_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_async_guide_code_block_runs(index: int) -> None:
    run_block(PAGE, index, BLOCKS[index], {"__name__": "async_guide"})
