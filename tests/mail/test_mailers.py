"""Console, file and recording mailers; SMTP configuration; mailer_from_url."""

from __future__ import annotations

import email
import email.policy
import io
import stat
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from usercore.mail import (
    ConsoleMailer,
    FileMailer,
    Mailer,
    MailMessage,
    RecordingMailer,
    SmtpMailer,
    mailer_from_url,
)

LINK = "https://notes.example/reset?token=" + "A" * 90  # longer than a MIME line


def message(to: str = "ada@example.com") -> MailMessage:
    return MailMessage(
        to=to, subject="Reset", text=f"Open:\n{LINK}\n", html=f'<a href="{LINK}">x</a>'
    )


def test_every_adapter_is_a_mailer(tmp_path: Path) -> None:
    adapters = [
        ConsoleMailer(),
        FileMailer(tmp_path),
        RecordingMailer(),
        SmtpMailer("mail.example", sender="a@app.example"),
    ]
    assert all(isinstance(adapter, Mailer) for adapter in adapters)


def test_console_mailer_writes_headers_and_the_unbroken_link() -> None:
    stream = io.StringIO()

    ConsoleMailer(stream, sender="Notes <no-reply@notes.example>").send(message())

    out = stream.getvalue()
    assert "To: ada@example.com" in out
    assert "From: Notes <no-reply@notes.example>" in out
    assert "Subject: Reset" in out
    assert LINK in out  # one line, copyable: no quoted-printable soft breaks
    assert "HTML part" in out


def test_console_mailer_defaults_to_the_current_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ConsoleMailer().send(message())

    assert LINK in capsys.readouterr().out


def test_file_mailer_writes_one_private_eml_per_message(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    mailer = FileMailer(outbox, sender="no-reply@notes.example")

    mailer.send(message("ada@example.com"))
    mailer.send(message("bob@example.com"))

    files = sorted(outbox.glob("*.eml"))
    assert 2 == len(files)
    assert 0o700 == stat.S_IMODE(outbox.stat().st_mode)
    recipients = set()
    for path in files:
        assert 0o600 == stat.S_IMODE(path.stat().st_mode)
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipients.add(parsed["To"])
        body = parsed.get_body(preferencelist=("plain",))
        assert body is not None
        assert LINK in body.get_content()
    assert {"ada@example.com", "bob@example.com"} == recipients


def test_file_mailer_writes_international_addresses_as_utf8(tmp_path: Path) -> None:
    FileMailer(tmp_path).send(message("jörg@bücher.example"))

    [path] = tmp_path.glob("*.eml")
    raw = path.read_bytes()
    assert "To: jörg@bücher.example\r\n".encode() in raw
    assert b"=?utf-8?q?j" not in raw  # no encoded-word inside an address


class _FrozenDatetime:
    @staticmethod
    def now(tz: object) -> datetime:
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_file_mailer_never_writes_through_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same instant, same random suffix: the second write fails instead of overwriting."""
    monkeypatch.setattr("usercore.mail._mailers.datetime", _FrozenDatetime)
    monkeypatch.setattr("usercore.mail._mailers.secrets.token_hex", lambda _n: "fixed")
    mailer = FileMailer(tmp_path)
    mailer.send(message())

    with pytest.raises(FileExistsError):
        mailer.send(message("bob@example.com"))

    [path] = tmp_path.glob("*.eml")
    assert "20260102T030405.000000Z-fixed.eml" == path.name
    assert b"ada@example.com" in path.read_bytes()


def test_recording_mailer_keeps_messages_in_order_across_threads() -> None:
    mailer = RecordingMailer()
    threads = [
        threading.Thread(target=mailer.send, args=(message(f"u{i}@example.com"),))
        for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert 20 == len(mailer.messages)
    mailer.clear()
    assert [] == mailer.messages


# -- SMTP configuration ------------------------------------------------------------

PASSWORD = "p@ss:w/rd?&"  # every URL-special character, percent-encoded in URLs
URL = "smtp://mailer:p%40ss%3Aw%2Frd%3F%26@mail.example:2525?starttls=1&from=no-reply%40app.example"


def test_smtp_url_is_parsed_and_the_password_decoded() -> None:
    mailer = SmtpMailer.from_url(URL + "&timeout=3.5&helo=app.example")

    assert ("mail.example", 2525, "starttls") == (mailer.host, mailer.port, mailer.security)
    assert "mailer" == mailer.username
    assert PASSWORD == mailer._password
    assert "no-reply@app.example" == mailer.sender
    assert 3.5 == mailer.timeout


@pytest.mark.parametrize(
    ("url", "security", "port"),
    [
        # A remote relay upgrades with STARTTLS unless told not to; a local one need not.
        ("smtp://mail.example?from=a%40app.example", "starttls", 587),
        ("smtp://127.0.0.1?from=a%40app.example", "none", 25),
        ("smtp://localhost?from=a%40app.example", "none", 25),
        ("smtp://[::1]?from=a%40app.example", "none", 25),
        ("smtp://mail.example?from=a%40app.example&starttls=1", "starttls", 587),
        ("smtp://mail.example?from=a%40app.example&starttls=0", "none", 25),
        ("smtps://u:p@mail.example?from=a%40app.example", "ssl", 465),
    ],
)
def test_smtp_url_schemes_pick_security_and_default_port(
    url: str, security: str, port: int
) -> None:
    mailer = SmtpMailer.from_url(url)

    assert (security, port) == (mailer.security, mailer.port)


def test_the_password_never_appears_in_repr() -> None:
    mailer = SmtpMailer.from_url(URL)

    shown = repr(mailer) + str(mailer)
    assert PASSWORD not in shown
    assert "p%40ss" not in shown
    assert "mailer" in shown


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://mail.example?from=a%40app.example", "smtp://"),
        ("smtp://?from=a%40app.example", "no host"),
        ("smtp://mail.example", "from="),
        ("smtp://mail.example?from=a%40app.example&startls=1", "unknown"),
        ("smtp://mail.example?from=a%40app.example&from=b%40app.example", "repeated"),
        ("smtp://mail.example?from=a%40app.example&starttls=maybe", "starttls"),
        ("smtps://mail.example?from=a%40app.example&starttls=1", "starttls"),
        ("smtp://mail.example?from=a%40app.example&timeout=soon", "timeout"),
        ("smtp://mail.example?from=a%40app.example&timeout=0", "timeout"),
        ("smtp://mail.example:99999?from=a%40app.example", "malformed"),
        ("smtp://mail.example?from=nobody", "sender"),
        # Credentials without TLS would cross the network in clear.
        ("smtp://u:secret-pw@mail.example?from=a%40app.example&starttls=0", "TLS"),
    ],
)
def test_bad_smtp_urls_are_refused_without_echoing_them(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as caught:
        SmtpMailer.from_url(url)

    assert "secret-pw" not in str(caught.value)
    assert "mail.example" not in str(caught.value)


def test_smtp_constructor_checks() -> None:
    with pytest.raises(ValueError, match="both"):
        SmtpMailer("mail.example", sender="a@app.example", username="u")
    with pytest.raises(ValueError, match="host"):
        SmtpMailer("", sender="a@app.example")
    with pytest.raises(ValueError, match="security"):
        SmtpMailer("mail.example", sender="a@app.example", security="tls")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        SmtpMailer("mail.example", 0, sender="a@app.example")


# -- mailer_from_url ----------------------------------------------------------------


def test_mailer_from_url_makes_each_adapter(tmp_path: Path) -> None:
    assert isinstance(mailer_from_url(URL), SmtpMailer)
    assert isinstance(mailer_from_url("console:"), ConsoleMailer)
    console = mailer_from_url("console:?from=dev%40app.example")
    assert "dev@app.example" in repr(console)
    file_mailer = mailer_from_url(f"file://{tmp_path}/out%20box?from=dev%40app.example")
    assert isinstance(file_mailer, FileMailer)
    assert tmp_path / "out box" == file_mailer.directory


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "console://somewhere",
        "console:?to=x",
        "file://remote.host/dir",
        "file:relative/dir",
        "",
    ],
)
def test_mailer_from_url_refuses_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"mail URL|console|file"):
        mailer_from_url(url)


def test_mail_module_is_not_imported_by_usercore() -> None:
    code = "import sys, usercore; print('usercore.mail' in sys.modules)"

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert "False" == out.stdout.strip()
