"""HTTP throughput of an authenticated ``GET /api/v1/auth/me``, against peers, in one run.

Subjects, each its own server process on a free loopback port, one worker:

* usercore's FastAPI adapter (``create_app``) on a SQLite store, under uvicorn;
* fastapi-users' ``GET /users/me`` (SQLAlchemy + aiosqlite, JWT bearer), under uvicorn;
* a bare FastAPI ``def`` endpoint returning a constant, under uvicorn (FastAPI
  runs it in its thread pool), and the same as ``async def`` (on the event loop);
* usercore's Flask adapter on SQLite, and a bare Flask view returning a
  constant, both under werkzeug's threaded WSGI server.

Every request carries a valid access token.  The load comes from ``wrk``
(``apt-get install wrk``) or, without it, from a small thread-per-connection
``http.client`` generator; both use keep-alive, on 127.0.0.1 only, for a
bounded number of seconds.  Subjects are measured in alternation over several
rounds and the median kept, so a noisy machine slows them all alike.

uvicorn runs every ASGI subject alike: with ``httptools`` and ``uvloop`` when
they are installed (the ``server`` extra), else with its pure-Python defaults;
the header line says which.

Targets (issue 18): usercore at least 4x fastapi-users' requests/s and at
least 0.8x the bare ``def`` endpoint; Flask at least 0.6x a bare view.  The
ratio to the bare ``async def`` endpoint is printed beside them.

Run: ``python benchmarks/bench_http.py`` (needs ``pip install 'usercore[bench,fastapi,flask]'``).
``--profile`` instead profiles the usercore request path in process (cProfile).
"""

import argparse
import asyncio
import contextlib
import cProfile
import http.client
import logging
import os
import pstats
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
SECRET = "bench-secret-key-bench-secret-key-0123456789"
EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"
STARTUP_SECONDS = 60.0
ROUNDS = 3
SECONDS = 3.0
CONNECTIONS = 8

# subject -> (server kind, path measured)
SUBJECTS: dict[str, tuple[str, str]] = {
    "usercore FastAPI": ("asgi", "/api/v1/auth/me"),
    "fastapi-users": ("asgi", "/users/me"),
    "bare FastAPI def": ("asgi", "/me"),
    "bare FastAPI async": ("asgi", "/me"),
    "usercore Flask": ("wsgi", "/api/v1/auth/me"),
    "bare Flask view": ("wsgi", "/me"),
}
CONSTANT = {"id": 1, "email": EMAIL}


# -- the servers (child processes) ------------------------------------------------


def usercore_core(workdir: Path) -> tuple[Any, str]:
    from usercore import SYSTEM, Settings, UserCore

    core = UserCore.open(
        f"sqlite:///{workdir / 'usercore.db'}", settings=Settings(secret_key=SECRET)
    )
    if core.users.list(SYSTEM, per_page=1).items == []:
        core.users.create(SYSTEM, email=EMAIL, password=PASSWORD, roles=["admin"])
    return core, core.auth.login(EMAIL, PASSWORD).access_token


def usercore_fastapi(workdir: Path) -> tuple[Any, str]:
    from usercore.web.fastapi import create_app

    core, token = usercore_core(workdir)
    return create_app(core), token


def bare_fastapi(workdir: Path) -> tuple[Any, str]:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/me")
    def me() -> dict[str, Any]:
        return CONSTANT

    return app, "unused"


def bare_fastapi_async(workdir: Path) -> tuple[Any, str]:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/me")
    async def me() -> dict[str, Any]:
        return CONSTANT

    return app, "unused"


def fastapi_users_app(workdir: Path) -> tuple[Any, str]:
    """fastapi-users' documented SQLAlchemy set-up with a JWT bearer backend."""
    from collections.abc import AsyncGenerator

    from fastapi import Depends, FastAPI
    from fastapi_users import BaseUserManager, FastAPIUsers, IntegerIDMixin, schemas
    from fastapi_users.authentication import (
        AuthenticationBackend,
        BearerTransport,
        JWTStrategy,
    )
    from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTable, SQLAlchemyUserDatabase
    from sqlalchemy import Integer
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    class Base(DeclarativeBase):
        pass

    class User(SQLAlchemyBaseUserTable[int], Base):
        id: Mapped[int] = mapped_column(Integer, primary_key=True)

    class UserRead(schemas.BaseUser[int]):
        pass

    class UserUpdate(schemas.BaseUserUpdate):
        pass

    class UserManager(IntegerIDMixin, BaseUserManager[User, int]):
        reset_password_token_secret = SECRET
        verification_token_secret = SECRET

    engine = create_async_engine(f"sqlite+aiosqlite:///{workdir / 'fastapi_users.db'}")
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncGenerator[AsyncSession, None]:
        async with sessions() as session:
            yield session

    async def get_user_db(
        session: AsyncSession = Depends(get_session),  # noqa: B008 - FastAPI's idiom
    ) -> AsyncGenerator[SQLAlchemyUserDatabase[User, int], None]:
        yield SQLAlchemyUserDatabase(session, User)

    async def get_user_manager(
        user_db: SQLAlchemyUserDatabase[User, int] = Depends(get_user_db),  # noqa: B008
    ) -> AsyncGenerator[UserManager, None]:
        yield UserManager(user_db)

    def get_jwt_strategy() -> JWTStrategy[User, int]:
        return JWTStrategy(secret=SECRET, lifetime_seconds=3600)

    backend = AuthenticationBackend(
        name="jwt",
        transport=BearerTransport(tokenUrl="auth/jwt/login"),
        get_strategy=get_jwt_strategy,
    )
    users = FastAPIUsers[User, int](get_user_manager, [backend])
    app = FastAPI()
    app.include_router(users.get_auth_router(backend), prefix="/auth/jwt")
    app.include_router(users.get_users_router(UserRead, UserUpdate), prefix="/users")

    async def set_up() -> str:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        async with sessions() as session:
            manager = UserManager(SQLAlchemyUserDatabase(session, User))
            user = await manager.create(schemas.BaseUserCreate(email=EMAIL, password=PASSWORD))
        token = await get_jwt_strategy().write_token(user)
        await engine.dispose()  # the server's event loop opens its own connections
        return token

    return app, asyncio.run(set_up())


def usercore_flask(workdir: Path) -> tuple[Any, str]:
    from usercore.web.flask import create_app

    core, token = usercore_core(workdir)
    return create_app(core), token


def bare_flask(workdir: Path) -> tuple[Any, str]:
    import flask

    app = flask.Flask("bare")

    @app.get("/me")
    def me() -> dict[str, Any]:
        return CONSTANT

    return app, "unused"


FACTORIES: dict[str, Callable[[Path], tuple[Any, str]]] = {
    "usercore FastAPI": usercore_fastapi,
    "fastapi-users": fastapi_users_app,
    "bare FastAPI def": bare_fastapi,
    "bare FastAPI async": bare_fastapi_async,
    "usercore Flask": usercore_flask,
    "bare Flask view": bare_flask,
}


def serve(subject: str, port: int, workdir: Path) -> None:
    """Child process: build the subject's app, write its token, serve until terminated."""
    app, token = FACTORIES[subject](workdir)
    (workdir / f"{port}.token").write_text(token)
    if SUBJECTS[subject][0] == "asgi":
        import uvicorn

        loop, http = server_settings()
        uvicorn.run(
            app,
            host=HOST,
            port=port,
            log_level="warning",
            access_log=False,
            loop=loop,
            http=http,
        )
    else:
        from werkzeug.serving import run_simple

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        run_simple(HOST, port, app, threaded=True)


def server_settings() -> tuple[str, str]:
    """uvicorn's ``(loop, http)`` for every ASGI subject: uvloop and httptools
    when installed, else asyncio and h11."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


# -- the load (parent process) ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def get_status(port: int, path: str, token: str) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@contextlib.contextmanager
def running(subject: str, workdir: Path) -> Iterator[tuple[int, str]]:
    """A subject's server, ready, as (port, token); always terminated afterwards."""
    port = free_port()
    log = (workdir / f"{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", subject, "--port", str(port), "--workdir", workdir],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        token_file = workdir / f"{port}.token"
        while True:
            if process.poll() is not None:
                tail = Path(log.name).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{subject} exited:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{subject} did not start within {STARTUP_SECONDS:.0f} s")
            if token_file.exists():
                token = token_file.read_text()
                with contextlib.suppress(OSError):
                    status = get_status(port, SUBJECTS[subject][1], token)
                    if status != 200:
                        raise RuntimeError(f"{subject} answered {status}; see {log.name}")
                    break
            time.sleep(0.1)
        yield port, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def load_with_wrk(port: int, path: str, token: str, seconds: float, connections: int) -> float:
    wrk = shutil.which("wrk")
    assert wrk is not None
    result = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "-H",
            f"Authorization: Bearer {token}",
            f"http://{HOST}:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    if "Non-2xx" in result.stdout or re.search(r"Socket errors: .*[1-9]", result.stdout):
        raise RuntimeError(f"errors under load:\n{result.stdout}")
    found = re.search(r"Requests/sec:\s+([0-9.]+)", result.stdout)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}")
    return float(found.group(1))


def load_with_threads(port: int, path: str, token: str, seconds: float, connections: int) -> float:
    """A bounded keep-alive load: one thread and one connection per ``connections``."""
    counts = [0] * connections
    failures: list[str] = []
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            while time.monotonic() < deadline:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(str(response.status))
                    return
                counts[index] += 1
        except OSError as exc:
            failures.append(repr(exc))
        finally:
            connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 10)
    elapsed = time.monotonic() - started
    if failures:
        raise RuntimeError(f"errors under load: {failures[:3]}")
    return sum(counts) / elapsed


def measure(seconds: float, connections: int, rounds: int) -> dict[str, float]:
    load = load_with_wrk if shutil.which("wrk") else load_with_threads
    samples: dict[str, list[float]] = {subject: [] for subject in SUBJECTS}
    with (
        tempfile.TemporaryDirectory(prefix="usercore-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        servers = {}
        for subject in SUBJECTS:
            workdir = Path(tmp) / re.sub(r"\W+", "-", subject)
            workdir.mkdir()
            servers[subject] = stack.enter_context(running(subject, workdir))
        for subject, (port, token) in servers.items():  # warm up
            load(port, SUBJECTS[subject][1], token, 1.0, connections)
        for _ in range(rounds):
            for subject, (port, token) in servers.items():
                rate = load(port, SUBJECTS[subject][1], token, seconds, connections)
                samples[subject].append(rate)
    return {subject: statistics.median(values) for subject, values in samples.items()}


# -- profile --------------------------------------------------------------------------


def profile(requests: int) -> None:
    """cProfile of the usercore request path through the FastAPI app, in process.

    FastAPI's thread pool is replaced by a direct call so that one profile
    holds the whole path (ASGI, routing, the neutral layer, the facade, SQLite).
    """
    import anyio.to_thread

    async def direct(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return func(*args)

    anyio.to_thread.run_sync = direct  # every thread-pool call goes through it
    with tempfile.TemporaryDirectory(prefix="usercore-profile-") as tmp:
        app, token = usercore_fastapi(Path(tmp))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/api/v1/auth/me",
            "raw_path": b"/api/v1/auth/me",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
            "client": (HOST, 1),
            "server": (HOST, 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200, message

        async def drive(count: int) -> None:
            for _ in range(count):
                await app(dict(scope), receive, send)

        asyncio.run(drive(200))
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(drive(requests))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


# -- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=SECONDS, help="per subject per round")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--profile", action="store_true", help="profile the usercore path")
    parser.add_argument("--serve", choices=sorted(SUBJECTS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.workdir)
        return 0
    if args.profile:
        profile(3000)
        return 0
    if not 0 < args.seconds <= 60 or not 0 < args.connections <= 256 or not 0 < args.rounds <= 20:
        parser.error("--seconds 0..60, --connections 1..256, --rounds 1..20")
    rates = measure(args.seconds, args.connections, args.rounds)

    generator = "wrk" if shutil.which("wrk") else "python threads"
    print(
        f"GET /auth/me, authenticated: {args.connections} keep-alive connections from "
        f"{generator} on {HOST}, {args.seconds:g} s per subject, median of {args.rounds} "
        f"alternating rounds (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)"
    )
    print()
    loop, http = server_settings()
    print(f"{'subject':<20} {'server':<38} {'requests/s':>12}")
    servers = {"asgi": f"uvicorn, 1 worker, {loop}/{http}", "wsgi": "werkzeug, threaded"}
    for subject, rate in rates.items():
        print(f"{subject:<20} {servers[SUBJECTS[subject][0]]:<38} {rate:>12,.0f}")
    print()
    targets = [
        (
            "usercore FastAPI / fastapi-users",
            rates["usercore FastAPI"] / rates["fastapi-users"],
            4.0,
        ),
        ("usercore FastAPI / bare def", rates["usercore FastAPI"] / rates["bare FastAPI def"], 0.8),
        ("usercore Flask / bare view", rates["usercore Flask"] / rates["bare Flask view"], 0.6),
    ]
    print(f"{'ratio':<34} {'value':>7} {'target':>8}  result")
    failed = False
    for label, value, bound in targets:
        ok = value >= bound
        failed |= not ok
        print(f"{label:<34} {value:>6.2f}x {'>= ' + f'{bound:g}x':>8}  {'PASS' if ok else 'FAIL'}")
    on_loop = rates["usercore FastAPI"] / rates["bare FastAPI async"]
    print(f"{'usercore FastAPI / bare async def':<34} {on_loop:>6.2f}x {'':>8}  (no target)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
