"""PostgreSQL outages: a private cluster, stopped and restarted under a store.

The test starts its own server (``initdb`` and ``pg_ctl`` from
``/usr/lib/postgresql/*/bin``, as the ``postgres`` user when run as root) on a
free port, so stopping it disturbs nobody.  While it is down every unit of
work raises :class:`~usercore.errors.StoreUnavailable` after the bounded pool
wait instead of hanging; once it is back the same store works again.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

pytest.importorskip("psycopg", reason="the postgres extra is not installed")

from usercore.domain import User
from usercore.errors import StoreUnavailable
from usercore.ports import UserFilter
from usercore.storage.postgres import PostgresStore
from usercore.testing.contract import a_user

T = TypeVar("T")

pytestmark = pytest.mark.slow


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    return found[-1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL server in ``directory``, listening on ``port``."""

    def __init__(self, directory: Path) -> None:
        self.data = directory / "data"
        self.port = _free_port()
        self.log = directory / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            os.chown(directory, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(
            _bin("initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def _run(self, *command: str | None) -> None:
        args = [str(part) for part in command]
        if self._as_postgres:
            args = ["runuser", "-u", "postgres", "--", *args]
        subprocess.run(args, check=True, capture_output=True, timeout=120)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if _bin("initdb") is None or _bin("pg_ctl") is None:
        pytest.skip("initdb/pg_ctl not found (no PostgreSQL server package installed)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot run initdb as postgres")
    # Not under pytest's tmp_path: the postgres user must be able to reach it.
    directory = Path(tempfile.mkdtemp(prefix="usercore-pg-"))
    cluster = Cluster(directory)
    cluster.start()
    try:
        yield cluster
    finally:
        subprocess.run(
            [
                str(part)
                for part in (
                    *(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []),
                    _bin("pg_ctl"),
                    "-D",
                    str(cluster.data),
                    "-m",
                    "immediate",
                    "stop",
                )
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(directory, ignore_errors=True)


def count(store: PostgresStore) -> int:
    with store.transaction(readonly=True) as tx:
        return tx.users.count(filter=UserFilter())


def test_a_stopped_server_is_store_unavailable_and_a_restart_recovers(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    with PostgresStore(
        cluster.url, min_size=2, max_size=4, timeout=1.0, connect_timeout=2
    ) as store:
        with store.transaction() as tx:
            tx.users.add(a_user("before@example.com"))
        assert count(store) == 1

        cluster.stop()
        for _ in range(3):
            with pytest.raises(StoreUnavailable) as caught:
                count(store)  # an idempotent read
            assert caught.value.http_status == 503
            assert caught.value.retry_after >= 1
            assert caught.value.__cause__ is not None
            with pytest.raises(StoreUnavailable), store.transaction() as tx:
                tx.users.add(a_user("during@example.com"))
        warnings = [r for r in caplog.records if "store unavailable" in r.getMessage()]
        assert len(warnings) == 1, "one warning per incident, not one per request"
        assert warnings[0].levelname == "WARNING"

        cluster.start()
        # The same store, not reopened: dropped connections are discarded.  The
        # pool reconnects with its own back-off, so the first calls after the
        # restart may still be refused (quickly, as StoreUnavailable).
        when_back(lambda: add(store, a_user("after@example.com")))
        assert count(store) == 2
        assert any("available again" in r.getMessage() for r in caplog.records)


def add(store: PostgresStore, user: User) -> None:
    with store.transaction() as tx:
        tx.users.add(user)


def when_back(call: Callable[[], T], *, patience: float = 60.0) -> T:
    """``call()``, retried while the store says it is unavailable: after a
    restart the pool reconnects with its own back-off (a bounded wait)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return call()
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_connection_lost_inside_a_unit_of_work_is_store_unavailable(cluster: Cluster) -> None:
    with PostgresStore(cluster.url, min_size=1, max_size=2, timeout=1.0) as store:
        assert count(store) == 0

        def write_while_the_server_stops() -> None:
            with store.transaction() as tx:
                tx.users.add(a_user("lost@example.com"))
                cluster.stop()

        with pytest.raises(StoreUnavailable):
            write_while_the_server_stops()
        cluster.start()
        assert when_back(lambda: count(store)) == 0  # nothing half-committed; works again
