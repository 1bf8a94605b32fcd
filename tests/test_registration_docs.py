"""docs/registration.md's Python blocks run, in order, as one program: the page never rots."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "registration.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_registration_page_has_examples() -> None:
    assert len(BLOCKS) >= 5


def test_the_registration_page_examples_run() -> None:
    namespace: dict[str, object] = {"__name__": "docs_registration"}
    for index, block in enumerate(BLOCKS):
        code = compile(block, f"docs/registration.md[python block {index}]", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation, on purpose


def test_the_error_line_shown_is_the_one_the_command_prints(tmp_path: Path) -> None:
    import pytest

    from usercore import cli

    shown = re.search(
        r"^usercore: error: --permissions permissions\.json: (.*)$",
        PAGE.read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    assert shown is not None
    path = tmp_path / "permissions.json"
    path.write_text('["*"]', encoding="utf-8")
    with pytest.raises(cli.CommandError) as caught:
        cli.read_permissions(str(path))
    assert f"--permissions {path}: {shown.group(1)}" == str(caught.value)
    assert cli.EXIT_USAGE == caught.value.status
