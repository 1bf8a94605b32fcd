"""docs/events.md names every audit event the services emit, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "src" / "usercore" / "services"
EVENTS_PAGE = ROOT / "docs" / "events.md"

# emit("name", ...) and the event="name" a shared helper passes on to emit.
EMITTED = re.compile(r'(?:emit\(\s*|event=)"([a-z_]+\.[a-z_]+)"')
DOCUMENTED = re.compile(r"^\| `([a-z_]+\.[a-z_]+)` \|", re.MULTILINE)
SCHEME = re.compile(r"(user|role|permission|api_key|password|token|auth)\.[a-z]+(_[a-z]+)*")


def emitted() -> set[str]:
    return {name for path in SERVICES.glob("*.py") for name in EMITTED.findall(path.read_text())}


def documented() -> set[str]:
    body = EVENTS_PAGE.read_text(encoding="utf-8")
    table = body[body.index("## Every event") : body.index("## One concept")]
    return set(DOCUMENTED.findall(table))


def test_every_emitted_event_is_documented_and_nothing_else() -> None:
    assert emitted() == documented()


def test_every_event_follows_the_naming_scheme() -> None:
    assert [name for name in sorted(emitted()) if not SCHEME.fullmatch(name)] == []
