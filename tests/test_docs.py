"""The docs tell the truth: every ``usercore …`` command they show exists, with
the options they give it; every benchmark figure they cite is in
docs/performance.md, and every figure there names the script that produced it;
nobody is told to install a package that is not published or to read a file
the project does not ship."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from usercore import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
PERFORMANCE = ROOT / "docs" / "performance.md"

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
SHELL_BLOCKS = {"console", "sh", "shell", "bash", ""}
# `usercore` where a shell would run it: at the start of a line, after a pipe,
# `&&`, `;`, a `$ ` prompt, or a venv's bin/ directory.
IN_SHELL = re.compile(
    r"(?:^|[|&;]\s*|\$ |bin/)usercore((?:[ \t]+[^|&;#\n]*)?)(?=[|&;#\n]|$)", re.MULTILINE
)
INLINE = re.compile(r"`usercore ([^`]+)`")
# A figure a benchmark produces: a number with a unit of time or rate, or a ratio.
FIGURE = re.compile(
    r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s?(ns|µs|us|ms|req/s|requests/s|users/s|logins/s|/s)\b"
    r"|(?<![\w.])(\d[\d,]*(?:\.\d+)?)×"
)


def text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def shown_commands() -> list[tuple[str, str]]:
    """``(page, arguments)`` for each ``usercore …`` command a page shows."""
    found: list[tuple[str, str]] = []
    for page in PAGES:
        body = text(page)
        for language, block in FENCE.findall(body):
            if language in SHELL_BLOCKS:
                # `[--status active|inactive]` is one optional argument, not a pipe.
                block = re.sub(r"\[[^\]\n]*\]", lambda m: m.group(0).replace("|", "/"), block)
                found += [(page.name, args.strip()) for args in IN_SHELL.findall(block)]
        prose = FENCE.sub("", body)
        found += [(page.name, args.strip()) for args in INLINE.findall(prose)]
    return found


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def check_command(arguments: str) -> list[str]:
    """What is wrong with ``usercore <arguments>`` as the parser sees it."""
    try:
        words = shlex.split(arguments.replace("\\|", "|"))
    except ValueError:
        words = arguments.split()
    parser = cli.build_parser()
    problems: list[str] = []
    while words and subcommands(parser):
        word = words.pop(0).strip("[]")
        if word.startswith("-") or word.isupper() or word in ("…", "..."):
            break  # `usercore --help`, a placeholder
        choices = subcommands(parser)
        names = word.split("|")
        missing = [name for name in names if name not in choices]
        if missing:
            return [f"no command {' '.join(missing)!r} (have {', '.join(choices)})"]
        if len(names) > 1:
            return []  # a synopsis of alternatives: each exists
        parser = choices[names[0]]
    known = options(parser)
    for word in words:
        flag = word.strip("[]").split("=", 1)[0]
        if flag.startswith("--") and flag not in known:
            problems.append(f"no option {flag} for {parser.prog!r}")
    return problems


COMMANDS = shown_commands()


def test_the_docs_show_commands() -> None:
    pages = {page for page, _ in COMMANDS}
    assert {"cli.md", "README.md", "deployment.md"} <= pages
    assert len(COMMANDS) > 30


@pytest.mark.parametrize(("page", "arguments"), COMMANDS)
def test_every_command_shown_exists(page: str, arguments: str) -> None:
    assert check_command(arguments) == [], f"{page}: usercore {arguments}"


@pytest.mark.parametrize(
    "arguments",
    ["users frobnicate", "roles list --verbose", "export --db x --force", "serve --workers 2 x"],
)
def test_the_command_check_catches_what_does_not_exist(arguments: str) -> None:
    assert check_command(arguments)


def test_every_command_has_a_section_in_cli_md() -> None:
    documented = {" ".join(args.split()[:2]) for page, args in COMMANDS if page == "cli.md"}
    parser = cli.build_parser()
    for name, sub in subcommands(parser).items():
        nested = subcommands(sub)
        for full in [f"{name} {child}" for child in nested] or [name]:
            assert any(d == full or d.startswith(full) for d in documented), full


def figures(body: str) -> list[str]:
    return [match.group(0) for match in FIGURE.finditer(body)]


def numbers(body: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?", body)]


def test_figures_on_other_pages_come_from_performance_md() -> None:
    known = numbers(text(PERFORMANCE))
    wrong = []
    for page in PAGES:
        if page == PERFORMANCE:
            continue
        for figure in figures(text(page)):
            value = re.match(r"\d[\d,]*(?:\.\d+)?", figure)
            assert value is not None
            digits = value.group(0).replace(",", "")
            places = len(digits.split(".")[1]) if "." in digits else 0
            if not any(round(number, places) == float(digits) for number in known):
                wrong.append(f"{page.name}: {figure}")
    assert wrong == [], "cite docs/performance.md instead of a figure of its own"


def test_the_figure_check_catches_a_stray_figure() -> None:
    known = numbers(text(PERFORMANCE))
    assert figures("a lookup takes 16.1 µs, 3.5× faster") == ["16.1 µs", "3.5×"]
    assert not any(round(number, 3) == 987.654 for number in known)


def test_every_figure_in_performance_md_names_its_script() -> None:
    body = text(PERFORMANCE)
    for section in re.split(r"^## ", body, flags=re.MULTILINE)[1:]:
        title = section.splitlines()[0]
        if not figures(section):
            continue
        scripts = re.findall(r"benchmarks/(bench_\w+\.py)", section)
        assert scripts, f"performance.md section {title!r} names no benchmark script"
        for script in scripts:
            assert (ROOT / "benchmarks" / script).is_file(), script


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_page_cites_a_file_the_project_does_not_ship(page: Path) -> None:
    assert "DESIGN" not in text(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_page_installs_usercore_from_pypi_without_extras(page: Path) -> None:
    # usercore is not published: install it from a checkout (`pip install -e .`).
    assert not re.search(r"pip install ['\"]?usercore(?![\w\[-])", text(page))


def test_gitignore_covers_the_ci_venv() -> None:
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert ".venv-ci/" in ignored
