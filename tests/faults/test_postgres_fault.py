"""PostgreSQL stopped and restarted under a live server: 503 during, 2xx after, no restart.

The private cluster comes from the storage suite's ``cluster`` fixture (its
own ``initdb`` on a free port, skipped with the reason without PostgreSQL
server binaries); stopping it disturbs no other test.
"""

from __future__ import annotations

import pytest

pytest.importorskip("psycopg", reason="the postgres extra is not installed")

from tests.storage.test_postgres_outage import Cluster, cluster  # noqa: F401

from .conftest import PASSWORD, Server, assert_unavailable

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_a_postgres_outage_is_503_and_the_same_server_recovers(
    serve: type[Server],
    cluster: Cluster,  # noqa: F811
) -> None:
    server = serve(cluster.url)
    server.start()
    assert server.register("ada@example.com")[0] == 201
    status, _, tokens = server.call(
        "POST", "/auth/login", {"email": "ada@example.com", "password": PASSWORD}
    )
    assert status == 200
    # An idle connection of the awaited token reads exists before the outage
    # and is dropped by it: after it, that read must replace it, not fail.
    assert server.call("GET", "/auth/me", token=tokens["access_token"])[0] == 200

    cluster.stop()
    assert_unavailable(*server.register("during@example.com"))
    assert_unavailable(
        *server.call("POST", "/auth/login", {"username": "ada", "password": PASSWORD})
    )
    status, headers, body = server.call("GET", "/auth/me", token=tokens["access_token"])
    if status != 200:  # served from memory, or the store is asked: never a 500
        assert_unavailable(status, headers, body)

    cluster.start()
    assert server.recovers(), "the server did not recover once PostgreSQL was back"
    status, _, _ = server.call(
        "POST", "/auth/login", {"email": "ada@example.com", "password": PASSWORD}
    )
    assert status == 200
    status, _, me = server.call("GET", "/auth/me", token=tokens["access_token"])
    assert (status, me["email"]) == (200, "ada@example.com")
    assert "Traceback" not in server.stderr()
