"""A newcomer's first minutes, for real: ``usercore create-admin``, then
``usercore serve`` in a subprocess on a free loopback port, then HTTP requests
(httpx, and the curl lines of docs/http.md when curl is installed).

Every wait is bounded and the server is always terminated.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .live import cli, serving

pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "staple battery horse correct"
PASSWORD = "correct horse battery staple"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "http.md"
README = Path(__file__).resolve().parents[2] / "README.md"


class Server:
    def __init__(self, base_url: str, log: Path, database: Path):
        self.base_url = base_url
        self.log = log
        self.database = database

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("live")
    database = workdir / "usercore.db"
    env = {key: value for key, value in os.environ.items() if key != "USERCORE_SECRET_KEY"}
    created = cli(
        "create-admin",
        "--db",
        str(database),
        "--email",
        "admin@example.com",
        "--username",
        "admin",
        "--password-stdin",
        env=env,
        stdin=ADMIN_PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    log = workdir / "server.log"
    args = ["--db", str(database), "--log-level", "warning"]
    with serving(args, env=env, workdir=workdir, log=log) as base_url:
        yield Server(base_url, log, database)


def test_a_generated_key_is_kept_beside_the_database_with_a_warning(server: Server) -> None:
    key_file = server.database.with_suffix(".key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) >= 32
    assert "generated a signing key" in server.output()


def test_register_login_administer_and_logout_over_http(server: Server) -> None:
    with httpx.Client(base_url=f"{server.base_url}/api/v1", timeout=10) as http:
        registered = http.post(
            "/auth/register", json={"email": "grace@example.com", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        grace = registered.json()["id"]
        pair = http.post("/auth/login", json={"email": "grace@example.com", "password": PASSWORD})
        assert pair.status_code == 200
        grace_auth = {"Authorization": f"Bearer {pair.json()['access_token']}"}
        assert http.get("/auth/me", headers=grace_auth).json()["roles"] == ["user"]
        assert http.get("/users", headers=grace_auth).status_code == 403

        admin_login = http.post(
            "/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert admin_login.status_code == 200
        admin_auth = {"Authorization": f"Bearer {admin_login.json()['access_token']}"}
        created = http.post(
            "/users",
            json={"email": "alan@example.com", "password": PASSWORD, "role": "user"},
            headers=admin_auth,
        )
        assert created.status_code == 201, created.text
        promoted = http.post(f"/users/{grace}/roles", json={"roles": ["admin"]}, headers=admin_auth)
        assert promoted.status_code == 200
        assert promoted.json()["role"] == "admin"
        listed = http.get("/users", params={"page": 1, "per_page": 10}, headers=grace_auth)
        assert listed.status_code == 200
        assert listed.json()["total"] == 3

        logout = http.post(
            "/auth/logout",
            json={"refresh_token": pair.json()["refresh_token"]},
            headers=grace_auth,
        )
        assert logout.status_code == 200
        after = http.get("/auth/me", headers=grace_auth)
        assert after.status_code == 401
        assert after.json()["error"]["code"] == "invalid_token"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("document", [README, DOCS], ids=["README.md", "docs/http.md"])
def test_the_documented_curl_lines_work(server: Server, document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    block = re.search(r"<!-- curl-quickstart[^>]*-->\n```sh\n(.*?)```", text, re.DOTALL)
    assert block is not None, f"{document.name} lost its curl quickstart block"
    # One server serves both documents: each registers its own address.
    email = f"ada.{document.stem.lower()}@example.com"
    script = block.group(1).replace("http://127.0.0.1:8000", server.base_url)
    script = script.replace("ada@example.com", email)
    script = script.replace("python3 -c", f"{sys.executable} -c")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f'"email":"{email}"' in result.stdout
    assert '"access_token":' in result.stdout
    assert result.stdout.rstrip().endswith("}")
    assert result.stdout.count(f'"email":"{email}"') == 2  # registered, then /auth/me
