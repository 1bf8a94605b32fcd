"""``usercore serve``'s runtime in process: options reaching uvicorn, workers, mail
wiring, the purge thread, the JSON access log, and what shutdown stops."""

from __future__ import annotations

import json
import logging
import socket
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from argon2 import profiles

from tests.mail.smtp_server import free_port
from usercore import SYSTEM, InvalidCredentials, Settings, UserCore, cli
from usercore.mail import RecordingMailer

from .conftest import PASSWORD, Runner

uvicorn = pytest.importorskip("uvicorn")
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from usercore.web import _server  # noqa: E402

MAIL = ("--reset-url", "https://app.example/reset?t={token}")
MAIL += ("--verification-url", "https://app.example/verify?t={token}")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    monkeypatch.setenv(cli.SECRET_KEY_ENV, "s" * 40)
    monkeypatch.delenv(cli.MAIL_URL_ENV, raising=False)
    return calls


def test_server_options_reach_uvicorn(run: Runner, db: Path, served: list[dict[str, Any]]) -> None:
    assert run("serve", "--db", str(db))[0] == 0
    argv = ("--loop", "asyncio", "--http", "h11", "--graceful-timeout", "5", "--access-log", "off")
    assert run("serve", "--db", str(db), *argv)[0] == 0
    default, chosen = served
    assert (default["loop"], default["http"], default["access_log"]) == ("auto", "auto", True)
    assert default["timeout_graceful_shutdown"] == 30
    assert (chosen["loop"], chosen["http"], chosen["access_log"]) == ("asyncio", "h11", False)
    assert chosen["timeout_graceful_shutdown"] == 5


@pytest.fixture
def unfreeze() -> Iterator[None]:
    """Give back to the collector what a served app's startup froze in this process."""
    import gc

    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_served_process_freezes_its_startup_objects(
    run: Runner, db: Path, served: list[dict[str, Any]], unfreeze: None
) -> None:
    """``serve`` (one process, or each worker) moves what exists once the app is
    built out of the collector's reach, so full collections under load do not
    walk the whole app again (the flood's ``/auth/me`` tail)."""
    import gc

    core = UserCore.open("memory://")
    with TestClient(_server.build_app(_server.ServeOptions(url="memory://", purge_every=0), core)):
        assert gc.get_freeze_count() == 0  # an app of one's own is left alone
    assert run("serve", "--db", str(db))[0] == 0
    with TestClient(served[0]["app"]):
        assert gc.get_freeze_count() > 10_000
    gc.unfreeze()
    options = _server.ServeOptions(url=f"sqlite:///{db}", purge_every=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(_server.OPTIONS_ENV, options.to_json())
        with TestClient(_server.worker_app()):
            assert gc.get_freeze_count() > 10_000


@pytest.mark.parametrize(
    "argv",
    [
        ("--workers", "0"),
        ("--purge-every", "-1"),
        ("--purge-every", "nan"),
        ("--graceful-timeout", "inf"),
        ("--access-log", "xml"),
    ],
)
def test_bad_server_options_are_usage_errors(
    run: Runner, db: Path, served: list[dict[str, Any]], argv: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run("serve", "--db", str(db), *argv)
    assert exit_.value.code == 2
    assert served == []


def test_workers_need_a_shared_database(run: Runner, served: list[dict[str, Any]]) -> None:
    status, _, err = run("serve", "--db", "memory://", "--workers", "2")
    assert status == 2
    assert "own in-memory database" in err


def test_workers_run_under_uvicorns_supervisor_on_a_tcp_socket(
    run: Runner, db: Path, served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker builds its app from the options in the environment, on a socket
    whose protocol is IPPROTO_TCP (so asyncio sets TCP_NODELAY on connections)."""
    from uvicorn import supervisors

    started: list[tuple[Any, list[socket.socket]]] = []

    def fake_run(self: Any) -> None:
        started.append((self.config, [s.dup() for s in self.sockets]))

    monkeypatch.setattr(supervisors.Multiprocess, "run", fake_run)
    monkeypatch.setattr(supervisors.multiprocess.signal, "signal", lambda *args: None)
    monkeypatch.delenv(_server.OPTIONS_ENV, raising=False)
    port = str(free_port())
    status, _, err = run("serve", "--db", str(db), "--port", port, "--workers", "3", "--no-docs")
    assert status == 0, err
    assert "3 workers" in err
    [(config, [sock])] = started
    with sock:
        assert sock.proto == socket.IPPROTO_TCP
    assert (config.app, config.factory, config.workers) == (
        "usercore.web._server:worker_app",
        True,
        3,
    )
    assert served == []  # not the single-process path
    options = _server.ServeOptions.from_json(_server.os.environ.pop(_server.OPTIONS_ENV))
    assert options.url == f"sqlite:///{db}"
    assert options.docs is False
    # What a worker does with them: its own store, the served app.
    monkeypatch.setenv(_server.OPTIONS_ENV, options.to_json())
    with TestClient(_server.worker_app()) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/openapi.json").status_code == 404


# -- mail options ---------------------------------------------------------------------


def test_mail_needs_both_links(run: Runner, db: Path, served: list[dict[str, Any]]) -> None:
    status, _, err = run("serve", "--db", str(db), "--mail-url", "console:")
    assert status == 2
    assert "--reset-url and --verification-url" in err
    status, _, err = run("serve", "--db", str(db), *MAIL)
    assert status == 2
    assert "need --mail-url" in err


def test_a_bad_mail_configuration_is_refused_at_start(
    run: Runner, db: Path, served: list[dict[str, Any]]
) -> None:
    status, _, err = run("serve", "--db", str(db), "--mail-url", "gopher://x", *MAIL)
    assert status == 2
    assert err.startswith("usercore: error: mail:")
    bad_link = ("--reset-url", "javascript:alert(1)//{token}", "--verification-url", MAIL[3])
    status, _, err = run("serve", "--db", str(db), "--mail-url", "console:", *bad_link)
    assert status == 2
    assert "reset_url" in err
    assert served == []


def test_a_password_on_the_command_line_is_warned_about_and_never_printed(
    run: Runner, db: Path, served: list[dict[str, Any]]
) -> None:
    url = "smtps://mailer:hunter2-secret@127.0.0.1:2525?from=a%40example.com"
    status, out, err = run("serve", "--db", str(db), "--mail-url", url, *MAIL)
    assert status == 0, err
    assert "USERCORE_MAIL_URL" in err
    assert "hunter2" not in out + err


def test_the_mail_url_comes_from_the_environment(
    run: Runner, db: Path, served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = db.parent / "outbox"
    monkeypatch.setenv(cli.MAIL_URL_ENV, f"file://{outbox}?from=no-reply%40example.com")
    answers: list[int] = []

    def serve_one_request(app: Any, **kwargs: Any) -> None:
        with TestClient(app) as client:
            reset = client.post("/api/v1/auth/password-reset", json={"email": "ada@example.com"})
            answers.append(reset.status_code)

    monkeypatch.setattr(uvicorn, "run", serve_one_request)
    status, _, err = run("serve", "--db", str(db), *MAIL)
    assert status == 0, err
    assert "warning" not in err
    assert answers == [202]
    # Shutdown delivered what was queued.
    [mail] = outbox.glob("*.eml")
    assert b"https://app.example/reset?t=" in mail.read_bytes()


# -- build_app: notices, access log, lifespan -------------------------------------------


@pytest.fixture
def core() -> Iterator[UserCore]:
    settings = Settings(argon2_profile=profiles.CHEAPEST)
    with UserCore.open("memory://", settings=settings) as core:
        core.users.register(email="ada@example.com", password=PASSWORD)
        yield core


def test_notices_go_to_the_old_address_and_the_owner(core: UserCore) -> None:
    from usercore.mail import Notifier

    outbox = RecordingMailer()
    notifier = Notifier(
        outbox,
        reset_url="https://app.example/r?t={token}",
        verification_url="https://app.example/v?t={token}",
    )
    unsubscribe = _server.subscribe_notices(core, notifier)
    user = core.users.get_by_email(SYSTEM, "ada@example.com")
    core.users.update(SYSTEM, user.id, email="ada@new.example")
    core.users.set_password(SYSTEM, user.id, "another long passphrase")
    pair = core.auth.login("ada@new.example", "another long passphrase")
    core.users.change_password(
        core.auth.authenticate(pair.access_token),
        user.id,
        current_password="another long passphrase",
        new_password="a third long passphrase",
    )
    changed, reset, own_change = outbox.messages
    assert changed.to == "ada@example.com"  # the OLD address
    assert "ada@new.example" in changed.text
    assert reset.to == own_change.to == "ada@new.example"
    assert "password was changed" in reset.subject
    unsubscribe()
    core.users.set_password(SYSTEM, user.id, "a fourth long passphrase")
    assert len(outbox.messages) == 3


def test_json_access_log_has_no_query_string(core: UserCore) -> None:
    app = _server.build_app(
        _server.ServeOptions(url="memory://", access_log="json", purge_every=0), core
    )
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    keep = Keep()
    _server.access_logger.addHandler(keep)
    try:
        with TestClient(app) as client:
            client.get("/healthz?token=secret-in-the-query")
            client.get("/api/v1/auth/me")
    finally:
        _server.access_logger.removeHandler(keep)
    first, second = (json.loads(line) for line in lines)
    assert first["path"] == "/healthz"
    assert "secret" not in lines[0]
    assert (first["method"], first["status"], second["status"]) == ("GET", 200, 401)
    assert first["duration_ms"] >= 0
    assert datetime.fromisoformat(first["time"]).tzinfo is not None


def test_shutdown_stops_the_purge_thread_and_closes_the_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core = UserCore.open("memory://")
    closed: list[bool] = []
    monkeypatch.setattr(core.store, "close", lambda: closed.append(True))
    app = _server.build_app(
        _server.ServeOptions(url="memory://", purge_every=3600), core, close_core=True
    )
    import threading

    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert any(t.name == "usercore-purge" for t in threading.enumerate())
    assert not any(t.name == "usercore-purge" for t in threading.enumerate())
    assert closed == [True]


# -- the purge thread -------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_the_purge_thread_runs_until_stopped(core: UserCore) -> None:
    import threading

    ran = threading.Event()
    calls: list[int] = []

    def purge() -> int:
        calls.append(1)
        ran.set()
        return 0

    core.purge_expired = purge  # type: ignore[method-assign]
    purger = _server.Purger(core, 0.01)
    purger.start()
    assert ran.wait(10)
    purger.stop()
    count = len(calls)
    assert not purger._thread.is_alive()
    import time

    time.sleep(0.05)
    assert len(calls) == count
    with pytest.raises(ValueError, match="positive"):
        _server.Purger(core, 0)


def test_a_failing_purge_is_logged_and_retried(
    core: UserCore, caplog: pytest.LogCaptureFixture
) -> None:
    from usercore import StoreUnavailable

    outcomes: list[Any] = [StoreUnavailable(), RuntimeError("bug"), 3]

    def purge() -> int:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return int(outcome)

    core.purge_expired = purge  # type: ignore[method-assign]
    purger = _server.Purger(core, 60)
    with caplog.at_level(logging.INFO, logger="usercore.serve"):
        assert [purger.tick(), purger.tick(), purger.tick()] == [0, 0, 3]
    assert purger.purged == 3
    levels = [record.levelname for record in caplog.records]
    assert levels == ["WARNING", "ERROR", "INFO"]


def _rows(core: UserCore) -> tuple[int, int]:
    with core.store.transaction(readonly=True) as tx:
        return len(tx.login_attempts.list()), len(tx.revoked_tokens.list())


@pytest.mark.parametrize("purge", [False, True], ids=["no purge", "purge every 10 min"])
def test_rows_stay_bounded_under_a_stream_of_failed_logins(tmp_path: Path, purge: bool) -> None:
    """A stream of failed logins (a new identifier a minute) and logouts (a
    revoked token id each): with the purge every 10 minutes the tables stay
    bounded by what can still matter; without it they grow with the stream."""
    clock = FakeClock()
    settings = Settings(secret_key="k" * 40, argon2_profile=profiles.CHEAPEST)
    with UserCore.open(f"sqlite:///{tmp_path / 'u.db'}", settings=settings, clock=clock) as core:
        core.users.register(email="ada@example.com", password=PASSWORD)
        purger = _server.Purger(core, 600)
        peak = (0, 0)
        for minute in range(1, 6 * 60 + 1):  # six hours
            clock.now += timedelta(minutes=1)
            with pytest.raises(InvalidCredentials):
                core.auth.login(f"nobody{minute}@example.com", "wrong password")
            pair = core.auth.login("ada@example.com", PASSWORD)
            core.auth.logout(pair.access_token, pair.refresh_token)
            if purge and minute % 10 == 0:
                purger.tick()
            rows = _rows(core)
            peak = (max(peak[0], rows[0]), max(peak[1], rows[1]))
        if purge:
            assert purger.purged > 0
            assert peak[0] < 60, peak
            assert peak[1] < 60, peak
        else:
            assert peak[0] >= 300, peak
            assert peak[1] >= 300, peak
