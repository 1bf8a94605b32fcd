"""MailTemplates: usercore's defaults, overrides by mapping or directory, escaping, checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from usercore.mail import KINDS, MailTemplates

VALUES = {
    "app_name": "Notes",
    "email": "ada@example.com",
    "link": "https://notes.example/reset?token=abc&x=1",
    "token": "abc",
    "expires_in": "1 hour",
    "old_email": "ada@example.com",
    "new_email": "ada@new.example",
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_default_template_renders_a_subject_text_and_html(kind: str) -> None:
    rendered = MailTemplates().render(kind, VALUES)

    assert rendered.subject
    assert "\n" not in rendered.subject
    assert "Notes" in rendered.subject
    assert rendered.text.strip()
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    assert "$" not in rendered.text + rendered.html


@pytest.mark.parametrize("kind", ["password_reset", "email_verification"])
def test_token_mails_carry_the_link_in_both_parts(kind: str) -> None:
    rendered = MailTemplates().render(kind, VALUES)

    assert "https://notes.example/reset?token=abc&x=1" in rendered.text
    assert 'href="https://notes.example/reset?token=abc&amp;x=1"' in rendered.html
    assert "1 hour" in rendered.text


def test_every_value_is_html_escaped_in_the_html_part_only() -> None:
    hostile = dict(VALUES, app_name='<script>alert("x")</script>', old_email="a'b@example.com")

    rendered = MailTemplates().render("email_changed", hostile)

    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in rendered.html
    assert "a&#x27;b@example.com" in rendered.html
    assert '<script>alert("x")</script>' in rendered.text


def test_a_mapping_overrides_some_templates_and_keeps_the_rest() -> None:
    templates = MailTemplates(
        {
            "password_reset.subject": "${app_name}: new password",
            "password_reset.html": "<p>Hi $email, <a href='$link'>go</a> (cost: $$0)</p>",
        }
    )

    rendered = templates.render("password_reset", VALUES)

    assert "Notes: new password" == rendered.subject
    assert "<p>Hi ada@example.com, <a href='https://notes.example/reset?token=abc&amp;x=1'>" in (
        rendered.html
    )
    assert "(cost: $0)" in rendered.html
    assert rendered.text == MailTemplates().render("password_reset", VALUES).text


def test_a_directory_overrides_the_files_it_has(tmp_path: Path) -> None:
    (tmp_path / "password_changed.txt").write_text("Password changed for $email.\n")
    (tmp_path / "unrelated.txt").write_text("ignored $nonsense")

    templates = MailTemplates.from_directory(tmp_path)

    assert "Password changed for ada@example.com.\n" == (
        templates.render("password_changed", VALUES).text
    )
    assert templates.render("password_changed", VALUES).html == (
        MailTemplates().render("password_changed", VALUES).html
    )


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        MailTemplates.from_directory(tmp_path / "absent")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"password_reset.pdf": "x"}, "unknown mail template"),
        ({"password_reset.txt": "${password}"}, "unknown placeholder \\$\\{password\\}"),
        # A notice has no link: a template cannot ask for one.
        ({"password_changed.txt": "$link"}, "unknown placeholder"),
        ({"email_changed.html": "costs 5$ only"}, "\\$\\$"),
        ({"email_changed.html": b"bytes"}, "must be text"),
    ],
)
def test_bad_templates_fail_when_the_set_is_made(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MailTemplates(overrides)  # type: ignore[arg-type]
