"""docs/custom-fields.md's Python blocks run, in order, as one program: the page never rots."""

from __future__ import annotations

import warnings

from .pages import python_blocks, run_in_order

PAGE = "docs/custom-fields.md"


def test_the_custom_fields_page_has_examples() -> None:
    assert len(python_blocks(PAGE)) >= 7


def test_the_custom_fields_page_examples_run() -> None:
    with warnings.catch_warnings():
        # Starlette asks for httpx2, which is not a dependency; its TestClient works with httpx.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        run_in_order(PAGE, "docs_custom_fields")
