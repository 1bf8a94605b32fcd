"""Disk full under a live server: 503 + Retry-After while full, 2xx once space is freed.

The database lives on a 2 MiB tmpfs mounted by the test (root only: skipped
with the reason elsewhere); a filler file takes the rest of the space.  No
restart in between: the same ``usercore serve`` process recovers by itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import PASSWORD, Server, assert_unavailable

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ATTEMPTS = 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs at ``tmp_path / "disk"``."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not allowed here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Write a file until the disk is full; returns it."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):  # down to the last byte
            with contextlib.suppress(OSError):
                while os.write(descriptor, b"\0" * size):
                    pass
    finally:
        os.close(descriptor)
    with pytest.raises(OSError, match="No space left") as full:
        (directory / "probe").write_bytes(b"\0")
    assert full.value.errno == errno.ENOSPC
    return filler


def test_disk_full_is_503_with_retry_after_and_recovers_without_restart(
    serve: type[Server], small_disk: Path
) -> None:
    server = serve(f"sqlite:///{small_disk / 'users.db'}")
    server.start()
    assert server.register("ada@example.com")[0] == 201
    status, _, tokens = server.call(
        "POST", "/auth/login", {"email": "ada@example.com", "password": PASSWORD}
    )
    assert status == 200

    filler = fill(small_disk)
    answers = []
    for attempt in range(ATTEMPTS):
        answer = server.register(f"full{attempt}@example.com")
        answers.append(answer[0])
        assert answer[0] != 500, answer
        if answer[0] == 503:
            assert_unavailable(*answer)
            break
    assert 503 in answers, f"no write failed on a full disk: {answers}"
    # Reads keep working: a signed-in user is still served.
    status, _, me = server.call("GET", "/auth/me", token=tokens["access_token"])
    assert (status, me["email"]) == (200, "ada@example.com")
    # A login needs writes (the guess is counted, the session stored): 503, not 500.
    assert_unavailable(
        *server.call("POST", "/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    )

    filler.unlink()
    assert server.recovers(), "the server did not recover once space was freed"
    # Another identifier of the same account logs in at once; the one whose
    # guess could not be counted stays refused for lockout_base (fail closed).
    status, _, _ = server.call("POST", "/auth/login", {"username": "nobody", "password": "x" * 12})
    assert status == 401
    assert "Traceback" not in server.stderr()
