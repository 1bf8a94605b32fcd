"""The README's Python code blocks run, so the quickstart never rots."""

from __future__ import annotations

import pytest

from .pages import python_blocks, run_block

PAGE = "README.md"
BLOCKS = python_blocks(PAGE)


def test_the_readme_has_a_python_quickstart() -> None:
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_code_block_runs(index: int) -> None:
    run_block(PAGE, index, BLOCKS[index], {"__name__": "readme"})
