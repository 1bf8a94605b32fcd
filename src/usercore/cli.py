"""The ``usercore`` command line.

::

    usercore serve [--db usercore.db] [--host 127.0.0.1] [--port 8000] [--workers N] ...
    usercore create-admin --email E [--username U] [--name N] [--password-stdin]
    usercore users list|show|disable|enable|delete|set-password|roles ...
    usercore roles list|create|update|delete ...
    usercore permissions list|add ...
    usercore api-keys list|revoke ...
    usercore import FILE [--format jsonl|csv] [--batch-size N] [--jobs N] [--custom-fields M:N]
    usercore export [--output FILE] [--custom-fields MODULE:NAME]
    usercore purge
    usercore migrate

``--db`` takes a path (an SQLite file, ``./usercore.db`` by default) or a URL
(``sqlite:///…``, ``postgresql://…``, ``memory://`` for ``serve`` only).  Every
command acts as the system principal.  Exit statuses (docs/cli.md): 0 done,
1 the operation failed, 2 a usage error, 3 the database cannot be used
(missing, damaged, read-only, locked, unreachable), 130 interrupted, 141 the
reader of standard output went away (``usercore users list | head``).

Only ``serve`` imports FastAPI and uvicorn, and only when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import getpass
import json
import os
import re
import secrets
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any, NoReturn

import attrs

from usercore import (
    SYSTEM,
    ApiKey,
    ConflictError,
    NotFoundError,
    Settings,
    User,
    UserCore,
    UsercoreError,
    ValidationError,
)
from usercore import validation as _validation
from usercore.custom_fields import CustomField, load_declaration
from usercore.passwords import PasswordHasher
from usercore.settings import MIN_SECRET_KEY_BYTES

__all__ = ["main"]

DEFAULT_DB = "usercore.db"
SECRET_KEY_ENV = "USERCORE_SECRET_KEY"  # noqa: S105 - the variable's name
URL_SCHEMES = ("sqlite:///", "postgresql://", "postgres://", "memory://")
MEMORY_URL = "memory://"
IMPORT_FIELDS = (
    "email",
    "email_verified",
    "username",
    "name",
    "roles",
    "role",
    "status",
    "password",
    "password_hash",
)
IMPORT_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
MAX_ERRORS_SHOWN = 50
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`
SQLITE_BUSY, SQLITE_LOCKED = 5, 6  # result codes (sqlite.org/rescode.html)
PROBE_TIMEOUT = 5.0  # seconds the start-up checks wait for another writer


class CommandError(Exception):
    """A failure to report on stderr with an exit status (no traceback)."""

    def __init__(self, message: str, status: int = EXIT_FAILED):
        super().__init__(message)
        self.status = status


def _usage(message: str) -> NoReturn:
    raise CommandError(message, EXIT_USAGE)


def _unusable(message: str) -> NoReturn:
    raise CommandError(message, EXIT_DATABASE)


def _warn(message: str) -> None:
    print(f"usercore: warning: {message}", file=sys.stderr)


def _info(message: str) -> None:
    print(f"usercore: {message}", file=sys.stderr)


# -- the database and its key ---------------------------------------------------------


def database_url(value: str) -> str:
    """``--db`` as a store URL: URLs pass through, a bare path means SQLite,
    ``:memory:`` means ``memory://``."""
    if not value.strip():
        _usage("--db must not be empty")
    if value in (":memory:", "sqlite:///:memory:"):
        return MEMORY_URL
    if "://" in value:
        if value.startswith("sqlite://") and not value.startswith("sqlite:///"):
            rest = value[len("sqlite://") :]
            _usage(
                f"--db: {value!r} has two slashes; an SQLite URL has three, "
                f"sqlite:///{rest} (relative path), or four for an absolute path "
                f"(sqlite:////var/lib/{Path(rest).name or 'usercore.db'}); a plain path works too"
            )
        if not value.startswith(URL_SCHEMES):
            scheme = value.split("://", 1)[0]
            _usage(
                f"--db: unsupported URL scheme {scheme!r}; give a file path, sqlite:///PATH, "
                "postgresql://… or memory://"
            )
        return value
    if Path(value).is_dir():
        _usage(f"--db: {value!r} is a directory; give the database file's path")
    return f"sqlite:///{value}"


def _sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None


def _check_key(key: str, source: str) -> str:
    if len(key.encode("utf-8")) < MIN_SECRET_KEY_BYTES:
        _usage(
            f"{source} must be at least {MIN_SECRET_KEY_BYTES} bytes; "
            'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )
    return key


def key_file_for(database: Path) -> Path:
    """Where ``serve`` keeps a generated key: beside the database, ``usercore.db`` ->
    ``usercore.key``."""
    return database.with_suffix(".key")


def serving_key(url: str) -> str | None:
    """The signing key for ``serve``: ``$USERCORE_SECRET_KEY``, else (SQLite) the key
    file beside the database, generated on first use with a warning.

    ``None`` for ``memory://`` (a random key per run).  Other stores need the variable.
    """
    from_env = os.environ.get(SECRET_KEY_ENV)
    if from_env:
        return _check_key(from_env, f"${SECRET_KEY_ENV}")
    if url == MEMORY_URL:
        return None
    database = _sqlite_path(url)
    if database is None:
        where = _describe(url)
        _usage(f"set {SECRET_KEY_ENV} (at least {MIN_SECRET_KEY_BYTES} bytes) to serve {where}")
    path = key_file_for(database)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    except OSError as exc:
        raise CommandError(f"cannot create the key file {path}: {exc.strerror}") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    _warn(
        f"generated a signing key in {path} (mode 0600); keep it secret and backed up, "
        f"or set {SECRET_KEY_ENV} in production"
    )
    return key


def _read_key_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read the key file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        _warn(f"{path} is readable by other users; run: chmod 600 {path}")
    return _check_key(key, f"the key file {path}")


def load_custom_fields(spec: str | None) -> tuple[CustomField, ...]:
    """The custom field declaration ``--custom-fields MODULE:NAME`` names (see
    :func:`usercore.custom_fields.load_declaration`); a usage error otherwise."""
    if spec is None:
        return ()
    try:
        return load_declaration(spec)
    except ValueError as exc:
        _usage(f"--custom-fields {spec}: {exc}")


def open_core(
    url: str,
    *,
    secret_key: str | None = None,
    settings: Settings | None = None,
    custom_fields: tuple[CustomField, ...] = (),
) -> UserCore:
    """The facade on ``url`` (with ``settings``, whose key ``secret_key`` replaces).
    Commands that issue no tokens use a throwaway key, so that they never
    create a key file.  ``custom_fields``: the application's declaration, for
    the commands that carry custom field values."""
    key = secret_key if secret_key is not None else secrets.token_urlsafe(48)
    try:
        settings = attrs.evolve(settings or Settings(), secret_key=key)
        if custom_fields:
            settings = attrs.evolve(settings, custom_fields=custom_fields)
        return UserCore.open(url, settings=settings)
    except ImportError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise CommandError(f"--db: {exc}", EXIT_USAGE) from None


def _describe(url: str) -> str:
    database = _sqlite_path(url)
    if database is not None:
        return str(database)
    # Never print a password that may be in a PostgreSQL URL.
    return re.sub(r"//[^@/]*@", "//…@", url)


def _is_locked(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED))
    return "locked" in str(exc) or "busy" in str(exc)


def check_sqlite(path: Path, *, write: bool, thorough: bool) -> None:
    """Refuse an SQLite file that cannot be used, with a one-line message (exit 3).

    Reads it through a read-only connection (``thorough``: ``PRAGMA
    quick_check``, which reads every page; otherwise only its header), then,
    for ``write``, proves that it can be written: a file without any write
    permission bit is refused even for root (who could write it anyway), and a
    write inside a transaction that is rolled back finds immutable files,
    read-only mounts and directories where the journal cannot be created.
    """
    try:
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=PROBE_TIMEOUT
        )
        try:
            if thorough:
                rows = connection.execute("PRAGMA quick_check").fetchall()
                problems = [str(row[0]) for row in rows if row[0] != "ok"]
            else:
                connection.execute("PRAGMA schema_version").fetchone()
                problems = []
        finally:
            connection.close()
    except sqlite3.OperationalError as exc:
        if _is_locked(exc):
            _unusable(f"{path} is locked by another process; try again when it is done")
        problems = [str(exc)]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        _unusable(f"{path} is damaged: {problems[0]}{more}; restore it from a backup")
    if not write:
        return
    if not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        _unusable(f"{path} is read-only (mode {stat.S_IMODE(path.stat().st_mode):04o})")
    try:
        connection = sqlite3.connect(str(path), timeout=PROBE_TIMEOUT, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            # Any write to the header page will do: it is rolled back.
            connection.execute("PRAGMA user_version = 0")
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        if _is_locked(exc):
            _unusable(f"{path} is locked by another process; try again when it is done")
        _unusable(f"{path} cannot be written: {exc}")


def command_url(args: argparse.Namespace, *, allow_memory: bool = False) -> str:
    """``args.db`` as a URL; ``memory://`` keeps nothing after the command, so
    only ``serve`` (``allow_memory``) accepts it."""
    url = database_url(args.db)
    if url == MEMORY_URL and not allow_memory:
        _usage(
            f"--db {args.db}: an in-memory database is gone when `{args.prog}` "
            "ends; give a database file or a postgresql:// URL (memory:// is for serve)"
        )
    return url


def open_database(
    args: argparse.Namespace,
    *,
    create: bool = False,
    write: bool = False,
    thorough: bool = False,
    secret_key: str | None = None,
    allow_memory: bool = False,
    settings: Settings | None = None,
) -> UserCore:
    """The facade for a command, after refusing a database it cannot use.

    Only ``create`` commands make a missing SQLite file (a mistyped path must
    not look like an empty database).
    """
    url = command_url(args, allow_memory=allow_memory)
    database = _sqlite_path(url)
    if database is not None:
        if database.exists():
            check_sqlite(database, write=write, thorough=thorough)
        elif not create:
            _unusable(
                f"no database at {database} (nothing was created); "
                f"create one with: usercore migrate --db {database}"
            )
    return open_core(
        url,
        secret_key=secret_key,
        settings=settings,
        custom_fields=load_custom_fields(getattr(args, "custom_fields", None)),
    )


def _print_validation(error: ValidationError, prefix: str = "") -> None:
    for field, messages in error.errors.items():
        for message in messages:
            print(f"usercore: {prefix}{field}: {message}", file=sys.stderr)


def _reasons(error: ValidationError) -> str:
    return "; ".join(
        f"{field}: {message}" for field, messages in error.errors.items() for message in messages
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False))


# -- serve -------------------------------------------------------------------------------


MAIL_URL_ENV = "USERCORE_MAIL_URL"


def _mail_url(args: argparse.Namespace) -> str | None:
    """``--mail-url``, else ``$USERCORE_MAIL_URL``; a password on the command
    line is visible to every local user in the process list, so it warns."""
    from urllib.parse import urlsplit

    url: str | None = args.mail_url
    if url is None:
        url = os.environ.get(MAIL_URL_ENV) or None
    elif urlsplit(url).password:
        _warn(
            f"--mail-url holds a password, which other local users can read in the "
            f"process list; set ${MAIL_URL_ENV} instead"
        )
    if url is not None and not (args.reset_url and args.verification_url):
        _usage("mail needs --reset-url and --verification-url (the pages that take the token)")
    if url is None and (args.reset_url or args.verification_url):
        _usage(f"--reset-url and --verification-url need --mail-url or ${MAIL_URL_ENV}")
    if url is None and args.invitation_url:
        _usage(f"--invitation-url needs --mail-url or ${MAIL_URL_ENV}")
    if args.registration == "invite" and not args.invitation_url:
        _usage("--registration invite needs --invitation-url (and mail) to send the invitations")
    return url


def _check_mail(url: str, args: argparse.Namespace) -> None:
    """Refuse a bad mail configuration at start, not at the first reset."""
    from usercore.mail import Notifier, RecordingMailer, mailer_from_url

    try:
        mailer_from_url(url)
        Notifier(
            RecordingMailer(),
            reset_url=args.reset_url,
            verification_url=args.verification_url,
            invitation_url=args.invitation_url,
        )
    except ValueError as exc:  # the messages never repeat the URL (docs/mail.md)
        _usage(f"mail: {exc}")


def read_permissions(path: str) -> tuple[tuple[str, str], ...]:
    """The app permissions of ``--permissions FILE``: a JSON list of names, or a
    JSON object mapping each name to its description.  Every name is checked
    by the registry's own rules; any problem is a usage error naming the file."""
    from usercore.policy import PermissionRegistry

    def refuse(problem: str) -> NoReturn:
        _usage(f"--permissions {path}: {problem}")

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        refuse(f"cannot read it: {exc.strerror}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        refuse(f"not valid JSON: {exc}")
    except RecursionError:
        refuse("not valid JSON: nested too deeply")
    if isinstance(data, list) and all(isinstance(name, str) for name in data):
        pairs = [(name, "") for name in data]
    elif isinstance(data, dict) and all(isinstance(text, str) for text in data.values()):
        pairs = list(data.items())
    else:
        refuse("must be a JSON list of names or an object of name: description")
    registry = PermissionRegistry(builtins=False)
    for name, description in pairs:
        try:
            registry.register(name, description)
        except ValidationError as error:
            refuse(f"{name!r}: {_reasons(error)}")
    return tuple(pairs)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from usercore.web import _server
        from usercore.web._profiles import PROFILES, profiles_of
    except ImportError:
        _usage("usercore serve needs the fastapi extra: pip install 'usercore[fastapi]'")
    if args.list_profiles:
        for profile in PROFILES.values():
            print(f"{profile.name}\t{profile.base or '/'}\t{profile.document}")
        return 0
    try:
        profiles = profiles_of(args.profile or ["v1"], args.prefix)
    except ValueError as exc:
        _usage(f"--profile: {exc}")
    url = database_url(args.db)
    if args.workers > 1 and url == MEMORY_URL:
        _usage("--workers: each worker would have its own in-memory database; give a database")
    import importlib.util

    for option, module in (("--loop", args.loop), ("--http", args.http)):
        if module in ("uvloop", "httptools") and importlib.util.find_spec(module) is None:
            _usage(f"{option} {module} needs the server extra: pip install 'usercore[server]'")
    mail_url = _mail_url(args)
    if mail_url is not None:
        _check_mail(mail_url, args)
    permissions = () if args.permissions is None else read_permissions(args.permissions)
    load_custom_fields(args.custom_fields)  # a bad declaration stops here, before any worker
    key = serving_key(url)
    names: tuple[str, ...] = tuple(profile.name for profile in profiles)
    options = _server.ServeOptions(
        url=url,
        profiles=names,
        prefix=args.prefix,
        docs=not args.no_docs,
        docs_ui=args.docs_ui,
        cors_origins=tuple(args.cors_origin),
        cors_allow_credentials=args.cors_allow_credentials,
        mail_url=mail_url,
        reset_url=args.reset_url,
        verification_url=args.verification_url,
        invitation_url=args.invitation_url,
        purge_every=args.purge_every * 60,
        access_log=args.access_log,
        registration=args.registration,
        require_verified_email=args.require_verified_email,
        custom_fields=args.custom_fields,
    )
    core = open_database(
        args,
        create=True,
        write=True,
        thorough=True,
        secret_key=key,
        allow_memory=True,
        settings=options.settings(),
    )
    try:
        # Once, here, before any worker starts: the workers read them from the store.
        added = _server.register_permissions(core, permissions)
    except ValidationError as error:  # the store's registry is full (MAX_REGISTERED_PERMISSIONS)
        core.close()
        _usage(f"--permissions {args.permissions}: {_reasons(error)}")
    except BaseException:
        core.close()
        raise
    if permissions:
        _info(f"permissions: {len(permissions)} from {args.permissions}, {added} new")
    base = f"http://{args.host}:{args.port}"
    served = ", ".join(f"{base}{profile.base} ({profile.name})" for profile in profiles)
    where = "no OpenAPI document" if args.no_docs else f"OpenAPI at {base}/openapi.json"
    if args.docs_ui and not args.no_docs:
        where += f", Swagger UI at {base}/docs"
    # Client addresses (logged, and keyed on by login throttling) come from
    # X-Forwarded-For only when the proxy sending them is named: a header
    # from anyone else would let a client pick its own address.
    proxies = args.forwarded_allow_ips
    server_options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "access_log": args.access_log == "text",
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or "",
        "server_header": False,
        "loop": args.loop,
        "http": args.http,
        "timeout_graceful_shutdown": args.graceful_timeout or None,
    }
    workers = _count(args.workers, "worker")
    try:
        if args.workers == 1:
            app = _server.build_app(options, core, freeze=True)
            _info(f"serving {_describe(url)} at {served} ({where}; {workers})")
            _non_local_warning(args.host)
            with _sigterm_is_a_normal_stop():
                uvicorn.run(app, **server_options)
            return 0
    finally:
        core.close()
    return _serve_workers(args, options, server_options, f"{served} ({where}; {workers})")


@contextlib.contextmanager
def _sigterm_is_a_normal_stop() -> Iterator[None]:
    """uvicorn drains in-flight requests on SIGTERM, then raises the signal again
    with the handler it found; this one makes that a normal exit (status 0), which
    is what service managers expect of a graceful stop."""
    import signal

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _non_local_warning(host: str) -> None:
    if host not in ("127.0.0.1", "localhost", "::1"):
        _warn("this is plain HTTP: put a TLS-terminating proxy in front of it")


def _serve_workers(
    args: argparse.Namespace, options: Any, server_options: dict[str, Any], where: str
) -> int:
    """``--workers N``: uvicorn's supervisor over N processes, each building its
    own app and store (``usercore.web._server.worker_app``) on a socket made
    here with ``IPPROTO_TCP`` (see that module for why)."""
    import inspect

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from usercore.web import _server

    os.environ[_server.OPTIONS_ENV] = options.to_json()
    config = uvicorn.Config(
        "usercore.web._server:worker_app", factory=True, workers=args.workers, **server_options
    )
    try:
        sock = _server.listening_socket(args.host, args.port)
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    _info(f"serving {_describe(options.url)} at {where}")
    _non_local_warning(args.host)
    supervisor_options: dict[str, Any] = {"sockets": [sock]}
    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn < 0.36
        supervisor_options["target"] = uvicorn.Server(config).run
    try:
        Multiprocess(config, **supervisor_options).run()
    finally:
        sock.close()
    return 0


# -- passwords and accounts ------------------------------------------------------------------


def _read_password(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password.removesuffix("\r")
        if not password:
            _usage("--password-stdin: no password on standard input")
        return password
    if not sys.stdin.isatty():
        _usage("no terminal to ask for the password on: use --password-stdin")
    password = getpass.getpass(prompt)
    if getpass.getpass("Repeat the password: ") != password:
        raise CommandError("the passwords do not match")
    return password


def cmd_create_admin(args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin, "Password for the new administrator: ")
    with open_database(args, create=True, write=True) as core:
        try:
            user = core.users.create(
                SYSTEM,
                email=args.email,
                password=password,
                username=args.username,
                name=args.name,
                roles=["admin"],
            )
        except ValidationError as error:
            _print_validation(error)
            raise CommandError("the administrator was not created") from None
        except ConflictError as error:
            field = error.field or "email"
            raise CommandError(f"a user with this {field} already exists") from None
    print(f"created administrator #{user.id} {_name(user)}")
    return 0


def find_user(core: UserCore, ref: str) -> User:
    """The account named by ``ref``: an id, an email (has an ``@``) or a username."""
    try:
        if ref.isdigit():
            return core.users.get(SYSTEM, int(ref))
        if "@" in ref:
            return core.users.get_by_email(SYSTEM, ref)
    except (NotFoundError, ValidationError):
        raise CommandError(f"no user {ref!r}") from None
    wanted = ref.casefold()
    cursor: str | None = None
    while True:
        page = core.users.list(SYSTEM, per_page=100, cursor=cursor, search=ref)
        for user in page.items:
            if user.username is not None and user.username.casefold() == wanted:
                return user
        if page.next_cursor is None:
            raise CommandError(f"no user {ref!r}")
        cursor = page.next_cursor


def _name(user: User) -> str:
    """How messages name an account: its email, or its username without one."""
    return user.email or user.username or f"#{user.id}"


def _user_line(user: User) -> str:
    public = user.to_public()
    return (
        f"{user.id:>6}  {user.email or '-':<32} {user.username or '-':<16} "
        f"{','.join(public['roles']) or '-':<16} {public['status']:<8} {public['created_at']}"
    )


def cmd_users_list(args: argparse.Namespace) -> int:
    shown = 0
    with open_database(args) as core:
        cursor: str | None = None
        if not args.json:
            print(f"{'id':>6}  {'email':<32} {'username':<16} {'roles':<16} {'status':<8} created")
        while True:
            try:
                page = core.users.list(
                    SYSTEM,
                    per_page=100,
                    cursor=cursor,
                    role=args.role,
                    status=args.status,
                    search=args.search,
                )
            except ValidationError as error:
                _print_validation(error)
                raise CommandError("cannot list users", EXIT_USAGE) from None
            for user in page.items:
                if args.json:
                    _print_json(user.to_public())
                else:
                    print(_user_line(user))
                shown += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    _info(_count(shown, "user"))
    return 0


def _user_and_keys(args: argparse.Namespace) -> tuple[User, list[ApiKey]]:
    with open_database(args) as core:
        user = find_user(core, args.user)
        return user, core.api_keys.list(SYSTEM, user.id)


def cmd_users_show(args: argparse.Namespace) -> int:
    user, keys = _user_and_keys(args)
    public = user.to_public()
    if args.json:
        _print_json(public)
        return 0
    for field, value in public.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{field + ':':<16} {'-' if shown in (None, '') else shown}")
    print(f"{'api keys:':<16} {sum(1 for key in keys if key.revoked_at is None)} active")
    return 0


def _set_status(args: argparse.Namespace, status: str) -> int:
    with open_database(args, write=True) as core:
        user = find_user(core, args.user)
        core.users.set_status(SYSTEM, user.id, status)
    print(f"user #{user.id} {_name(user)} is {status}")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    return _set_status(args, "inactive")


def cmd_users_enable(args: argparse.Namespace) -> int:
    return _set_status(args, "active")


def cmd_users_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        _usage("deleting an account cannot be undone: add --yes to confirm")
    with open_database(args, write=True) as core:
        user = find_user(core, args.user)
        core.users.delete(SYSTEM, user.id)
    print(f"deleted user #{user.id} {_name(user)}")
    return 0


def cmd_users_set_password(args: argparse.Namespace) -> int:
    with open_database(args, write=True) as core:
        user = find_user(core, args.user)
        password = _read_password(args.password_stdin, f"New password for {_name(user)}: ")
        try:
            core.users.set_password(SYSTEM, user.id, password)
        except ValidationError as error:
            _print_validation(error)
            raise CommandError("the password was not changed") from None
    print(f"set the password of user #{user.id} {_name(user)}; its sessions were revoked")
    return 0


def _names(values: Iterable[str] | None) -> list[str]:
    """Names given as repeated options and/or comma-separated lists."""
    return [name for value in values or () for name in re.split(r"[,\s]+", value) if name]


def cmd_users_roles(args: argparse.Namespace) -> int:
    changing = args.set is not None or args.add or args.remove
    with open_database(args, write=bool(changing)) as core:
        user = find_user(core, args.user)
        if changing:
            roles = set(user.roles) if args.set is None else set(_names(args.set))
            roles = (roles | set(_names(args.add))) - set(_names(args.remove))
            try:
                user = core.users.assign_roles(SYSTEM, user.id, sorted(roles))
            except ValidationError as error:
                _print_validation(error)
                raise CommandError("the roles were not changed") from None
    print(f"user #{user.id} {_name(user)}: {', '.join(sorted(user.roles)) or '(no roles)'}")
    return 0


# -- roles and permissions ---------------------------------------------------------------------


def _role_line(role: Any) -> str:
    inherits = f" (inherits {', '.join(sorted(role.inherits))})" if role.inherits else ""
    return f"{role.name:<16} {', '.join(sorted(role.permissions)) or '-'}{inherits}"


def _role_change(core: UserCore, action: str, call: Any) -> Any:
    try:
        return call()
    except ValidationError as error:
        _print_validation(error)
        raise CommandError(f"the role was not {action}") from None


def cmd_roles_list(args: argparse.Namespace) -> int:
    with open_database(args) as core:
        roles = core.roles.list(SYSTEM)
    for role in roles:
        if args.json:
            _print_json(role.to_public())
        else:
            print(_role_line(role))
    return 0


def cmd_roles_create(args: argparse.Namespace) -> int:
    with open_database(args, write=True) as core:
        role = _role_change(
            core,
            "created",
            lambda: core.roles.create(
                SYSTEM,
                args.name,
                permissions=_names(args.permission),
                inherits=_names(args.inherits),
                description=args.description or "",
            ),
        )
    print(f"created role {_role_line(role)}")
    return 0


def cmd_roles_update(args: argparse.Namespace) -> int:
    with open_database(args, write=True) as core:
        current = core.roles.get(SYSTEM, args.name)
        permissions: set[str] | None = None
        if args.permissions is not None or args.grant or args.revoke:
            base = current.permissions if args.permissions is None else _names(args.permissions)
            permissions = (set(base) | set(_names(args.grant))) - set(_names(args.revoke))
        role = _role_change(
            core,
            "updated",
            lambda: core.roles.update(
                SYSTEM,
                args.name,
                permissions=None if permissions is None else sorted(permissions),
                inherits=None if args.inherits is None else _names(args.inherits),
                description=args.description,
            ),
        )
    print(f"updated role {_role_line(role)}")
    return 0


def cmd_roles_delete(args: argparse.Namespace) -> int:
    with open_database(args, write=True) as core:
        core.roles.delete(SYSTEM, args.name, force=args.force)
    print(f"deleted role {args.name}")
    return 0


def cmd_permissions_list(args: argparse.Namespace) -> int:
    with open_database(args) as core:
        permissions = core.permissions.list()
    for permission in permissions:
        if args.json:
            _print_json({"name": permission.name, "description": permission.description})
        else:
            print(f"{permission.name:<24} {permission.description}")
    return 0


def cmd_permissions_add(args: argparse.Namespace) -> int:
    with open_database(args, write=True) as core:
        try:
            core.permissions.register(args.permission, args.description or "")
        except ValidationError as error:
            _print_validation(error)
            raise CommandError("the permission was not added") from None
        current = core.roles.get(SYSTEM, args.role)
        role = _role_change(
            core,
            "updated",
            lambda: core.roles.update(
                SYSTEM, args.role, permissions=sorted(current.permissions | {args.permission})
            ),
        )
    print(f"role {_role_line(role)}")
    return 0


# -- API keys and housekeeping -----------------------------------------------------------------


def cmd_api_keys_list(args: argparse.Namespace) -> int:
    _, keys = _user_and_keys(args)
    for key in keys:
        public = key.to_public()
        if args.json:
            _print_json(public)
            continue
        state = "revoked" if key.revoked_at is not None else "active"
        scopes = ",".join(public["scopes"]) if public["scopes"] is not None else "(all)"
        print(
            f"{key.id:>6}  {key.prefix:<12} {key.name:<24} {state:<8} {scopes} "
            f"expires {public['expires_at'] or 'never'}"
        )
    return 0


def cmd_api_keys_revoke(args: argparse.Namespace) -> int:
    with open_database(args, write=True) as core:
        core.api_keys.revoke(SYSTEM, args.key_id)
    print(f"revoked API key #{args.key_id}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    with open_database(args, write=True) as core:
        purged = core.purge_expired()
    print(f"purged {_count(purged, 'expired record')}")
    return 0


def export_record(user: User) -> dict[str, Any]:
    """What ``import`` needs to recreate ``user``, with its password hash."""
    record: dict[str, Any] = {}
    if user.email is not None:  # an account known by its username alone has none
        record["email"] = user.email
        if user.email_verified:
            record["email_verified"] = True
    if user.username is not None:
        record["username"] = user.username
    if user.name is not None:
        record["name"] = user.name
    record["roles"] = sorted(user.roles)
    record["status"] = str(user.status.value)
    if user.password_hash:
        record["password_hash"] = user.password_hash
    # Custom fields as top-level keys, the shape of User.to_public() and of import.
    record.update((name, value) for name, value in user.custom_fields.items() if value is not None)
    return record


def _custom_fields_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--custom-fields",
        metavar="MODULE:NAME",
        default=None,
        help="the application's custom fields: a Settings or a sequence of CustomField "
        "(e.g. myapp.config:SETTINGS), importable from the current directory; without it "
        "custom field values are not carried",
    )


def cmd_export(args: argparse.Namespace) -> int:
    with open_database(args) as core:
        if args.output == "-":
            count = _write_export(core, sys.stdout)
        else:
            # The file holds password hashes: only its owner may read it.
            try:
                descriptor = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as exc:
                _usage(f"cannot create {args.output}: {exc.strerror} (it must not exist)")
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                count = _write_export(core, handle)
    _info(f"exported {_count(count, 'user')}")
    return 0


def _write_export(core: UserCore, out: IO[str]) -> int:
    count = 0
    for user in core.users.iter_all(SYSTEM):
        out.write(json.dumps(export_record(user), ensure_ascii=False) + "\n")
        count += 1
    return count


# -- import --------------------------------------------------------------------------------


class Progress:
    """A plain-text progress bar on stderr with rate and ETA, redrawn at most ten
    times a second, ending with a newline."""

    def __init__(self, total_bytes: int | None, enabled: bool):
        self.total = total_bytes
        self.enabled = enabled
        self.done_bytes = 0
        self.lines = 0
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._finished = False

    def update(self, done_bytes: int, lines: int) -> None:
        self.done_bytes, self.lines = done_bytes, lines
        now = time.monotonic()
        if self.enabled and now - self._drawn_at >= 0.1:
            self._drawn_at = now
            self._draw(now)

    def text(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = f"{self.lines / elapsed:,.0f} lines/s"
        if self.total:
            fraction = min(1.0, self.done_bytes / self.total)
            bar = "#" * round(fraction * 30)
            # The first second's rate says little about the rest.
            settled = fraction > 0 and (elapsed >= 1 or fraction >= 1)
            eta = _duration(elapsed * (1 - fraction) / fraction) if settled else "?"
            return f"importing [{bar:<30}] {fraction:4.0%}  {self.lines:,} lines  {rate}  ETA {eta}"
        return f"importing  {self.lines:,} lines  {rate}  {_duration(elapsed)} elapsed"

    def _draw(self, now: float) -> None:
        sys.stderr.write("\r" + self.text(now) + "\x1b[K")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and not self._finished:
            self._finished = True
            self._draw(time.monotonic())
            sys.stderr.write("\n")
            sys.stderr.flush()


def _duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _csv_boolean(cell: str) -> bool | str:
    """``true``/``false`` (any case) as a boolean; other text stays text, which
    the import then reports for its record."""
    return {"true": True, "false": False}.get(cell.strip().lower(), cell)


def _custom_cell(field: CustomField, cell: str) -> Any:
    """A CSV cell as the value of a custom field of ``field.type``; text that is
    not one stays text, which the import then reports for its record."""
    if field.type is str:
        return cell
    text = cell.strip()
    if field.type is bool:
        return _csv_boolean(cell)
    try:
        return int(text) if field.type is int else float(text)
    except ValueError:
        return cell


class Source:
    """The records of an import file, with the line each came from.

    Records that cannot even be parsed (bad JSON, a CSV row longer than the
    header) are kept aside as ``problems`` and never reach the import.
    """

    def __init__(
        self,
        stream: IO[bytes],
        kind: str,
        progress: Progress,
        custom_fields: tuple[CustomField, ...] = (),
    ):
        self.custom_fields = {field.name: field for field in custom_fields}
        self.stream = stream
        self.kind = kind
        self.progress = progress
        self.problems: list[tuple[int, str]] = []
        self._read_bytes = 0

    def _raw_lines(self) -> Iterator[bytes]:
        for number, raw in enumerate(self.stream, start=1):
            self._read_bytes += len(raw)
            self.progress.update(self._read_bytes, number)
            yield raw

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(line, record)`` pairs."""
        if self.kind == "csv":
            yield from self._csv_records()
        else:
            yield from self._json_records()

    def _json_records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, raw in enumerate(self._raw_lines(), start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                self.problems.append((number, "is not valid JSON"))
                continue
            if not isinstance(record, dict):
                self.problems.append((number, "is not a JSON object"))
                continue
            yield number, record

    def _csv_records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        def text_lines() -> Iterator[str]:
            for index, raw in enumerate(self._raw_lines()):
                try:
                    text = raw.decode("utf-8-sig" if index == 0 else "utf-8")
                except UnicodeDecodeError:
                    raise CommandError(f"line {index + 1}: the file is not UTF-8") from None
                yield text

        reader = csv.reader(text_lines())
        try:
            header = next(reader, None)
            if header is None:
                return
            columns = [column.strip() for column in header]
            known = (*IMPORT_FIELDS, *self.custom_fields)
            unknown = sorted(set(columns) - set(known))
            identified = "email" in columns or "username" in columns
            if unknown or not identified or len(set(columns)) != len(columns):
                _usage(
                    "the CSV header must name distinct columns among "
                    f"{', '.join(known)}, including email or username"
                    + (f" (unknown: {', '.join(unknown)})" if unknown else "")
                )
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) > len(columns):
                    self.problems.append((reader.line_num, "has more cells than the header"))
                    continue
                record: dict[str, Any] = {}
                # Short rows leave the missing cells out.
                for column, cell in zip(columns, row, strict=False):
                    if cell == "":
                        continue
                    if column == "roles":
                        record[column] = [r for r in re.split(r"[;,\s]+", cell) if r]
                    elif column == "email_verified":
                        record[column] = _csv_boolean(cell)
                    elif column in self.custom_fields:
                        record[column] = _custom_cell(self.custom_fields[column], cell)
                    else:
                        record[column] = cell
                yield reader.line_num, record
        except csv.Error as exc:
            raise CommandError(f"line {reader.line_num}: not valid CSV ({exc})") from None


def _import_kind(args: argparse.Namespace) -> str:
    if args.format != "auto":
        return str(args.format)
    if args.file == "-":
        _usage("--format jsonl or --format csv is needed to read standard input")
    kind = IMPORT_EXTENSIONS.get(Path(args.file).suffix.lower())
    if kind is None:
        known = ", ".join(sorted(IMPORT_EXTENSIONS))
        _usage(
            f"cannot tell the format of {args.file} from its extension ({known}); "
            "give --format jsonl or --format csv"
        )
    return kind


# Parallel hashing of plain passwords.  Each worker process validates a record
# the way ``core.users.import_users`` does and, when the password passes the
# policy (NIST SP 800-63B §5.1.1.2), hashes it with the core's argon2id
# profile; the record then reaches the import with ``password_hash`` instead
# of ``password``.  A record that fails validation goes on unchanged, and the
# import reports it exactly as it would have without the pool.

_worker_settings: Settings | None = None
_worker_hasher: PasswordHasher | None = None


def _init_hash_worker(settings: Settings) -> None:
    global _worker_settings, _worker_hasher  # one pair per worker process
    _worker_settings = settings
    _worker_hasher = PasswordHasher(settings.argon2_profile)


def _hash_passwords(records: list[dict[str, Any]]) -> list[str | None]:
    assert _worker_hasher is not None
    hashes: list[str | None] = []
    for record in records:
        try:
            email = record.get("email")
            fields = _validation.validate_user_fields(
                email=_validation.NOT_GIVEN if email is None else email,
                username=record.get("username"),
                name=record.get("name"),
                password=record["password"],
                settings=_worker_settings,
            )
        except ValidationError:
            hashes.append(None)
            continue
        hashes.append(None if fields.password is None else _worker_hasher.hash(fields.password))
    return hashes


def _has_plain_password(record: dict[str, Any]) -> bool:
    return isinstance(record.get("password"), str) and "password_hash" not in record


class HashPool:
    """Worker processes that hash the plain passwords of a batch of records.

    At most two batches are in flight (one being hashed while the previous one
    is written), so memory stays bounded by the batch size, whatever the
    file's size.
    """

    def __init__(self, settings: Settings, jobs: int):
        self.jobs = jobs
        # Workers check passwords only: no keys, and no custom fields (an
        # application validator need not be picklable).
        self._settings = attrs.evolve(settings, secret_key=None, signing_keys=(), custom_fields=())
        self._executor: ProcessPoolExecutor | None = None

    def submit(self, records: list[dict[str, Any]]) -> Callable[[], list[dict[str, Any]]]:
        """Start hashing ``records``' plain passwords; call the result for the
        records to import (plain passwords replaced by their hashes)."""
        plain = [index for index, record in enumerate(records) if _has_plain_password(record)]
        if not plain or self.jobs < 2:
            return lambda: records
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.jobs,
                initializer=_init_hash_worker,
                initargs=(self._settings,),
            )
        # A few chunks per worker, so that a slow one does not hold the batch up.
        size = max(1, -(-len(plain) // (self.jobs * 4)))
        chunks = [plain[start : start + size] for start in range(0, len(plain), size)]
        parts = [
            self._executor.submit(_hash_passwords, [records[i] for i in chunk]) for chunk in chunks
        ]

        def prepared() -> list[dict[str, Any]]:
            result = list(records)
            for chunk, part in zip(chunks, parts, strict=True):
                for index, password_hash in zip(chunk, part.result(), strict=True):
                    if password_hash is not None:
                        record = dict(records[index])
                        del record["password"]
                        record["password_hash"] = password_hash
                        result[index] = record
            return result

        return prepared

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)


def _batches(
    pairs: Iterable[tuple[int, dict[str, Any]]], size: int
) -> Iterator[tuple[list[int], list[dict[str, Any]]]]:
    lines: list[int] = []
    records: list[dict[str, Any]] = []
    for line, record in pairs:
        lines.append(line)
        records.append(record)
        if len(records) >= size:
            yield lines, records
            lines, records = [], []
    if records:
        yield lines, records


def _default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def cmd_import(args: argparse.Namespace) -> int:
    command_url(args)
    kind = _import_kind(args)
    if args.batch_size < 1:
        _usage("--batch-size must be at least 1")
    jobs = args.jobs if args.jobs is not None else _default_jobs()
    if jobs < 1:
        _usage("--jobs must be at least 1")
    try:
        stream: IO[bytes] = (
            sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
        )
    except OSError as exc:
        _usage(f"cannot read {args.file}: {exc.strerror}")
    try:
        total = os.fstat(stream.fileno()).st_size if args.file != "-" else None
    except (OSError, ValueError):
        total = None
    enabled = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = Progress(total or None, enabled)
    source = Source(stream, kind, progress, load_custom_fields(args.custom_fields))
    created = skipped = 0
    failures: list[tuple[int, str]] = []
    try:
        with open_database(args, create=True, write=True) as core:
            pool = HashPool(core.settings, jobs)
            try:
                # Each batch is hashed (in the pool) while the one before it is written.
                pending: tuple[list[int], Callable[[], list[dict[str, Any]]]] | None = None
                for lines, records in _batches(source.records(), args.batch_size):
                    upcoming = (lines, pool.submit(records))
                    if pending is not None:
                        created, skipped = _import_batch(core, pending, created, skipped, failures)
                    pending = upcoming
                if pending is not None:
                    created, skipped = _import_batch(core, pending, created, skipped, failures)
            finally:
                pool.close()
    finally:
        progress.finish()
        if stream is not sys.stdin.buffer:
            stream.close()
    failures = sorted(failures + source.problems)
    _print_import_summary(created, skipped, failures)
    return EXIT_FAILED if failures else 0


def _import_batch(
    core: UserCore,
    pending: tuple[list[int], Callable[[], list[dict[str, Any]]]],
    created: int,
    skipped: int,
    failures: list[tuple[int, str]],
) -> tuple[int, int]:
    lines, prepared = pending
    records = prepared()
    try:
        report = core.users.import_users(SYSTEM, records, batch_size=len(records))
    except (UsercoreError, sqlite3.Error, OSError) as exc:
        if isinstance(exc, UsercoreError) and not _is_store_fault(exc):
            raise
        _print_import_summary(created, skipped, sorted(failures))
        raise CommandError(
            f"the import stopped at line {lines[0]}: {_store_fault_message(exc)}; the "
            f"{created} accounts created before it are kept, nothing from line {lines[0]} on "
            "was written (run the import again: existing accounts are skipped)",
            EXIT_DATABASE,
        ) from None
    failures.extend((lines[index], _reasons(error)) for index, error in report.errors)
    return created + report.created, skipped + report.skipped


def _print_import_summary(created: int, skipped: int, failures: list[tuple[int, str]]) -> None:
    print(f"created {created}, skipped {skipped} (already exist), failed {len(failures)}")
    for line, reason in failures[:MAX_ERRORS_SHOWN]:
        print(f"line {line}: {reason}")
    if len(failures) > MAX_ERRORS_SHOWN:
        print(f"... and {len(failures) - MAX_ERRORS_SHOWN} more")


# -- migrate -------------------------------------------------------------------------------


def _sqlite_version(path: Path) -> int | None:
    """The schema version of an existing SQLite file, read without changing it."""
    if not path.exists():
        return None
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return None


def cmd_migrate(args: argparse.Namespace) -> int:
    url = command_url(args)
    database = _sqlite_path(url)
    existed = database.exists() if database is not None else True
    if database is not None and existed:
        check_sqlite(database, write=True, thorough=True)
    before = _sqlite_version(database) if database is not None else None
    with (
        open_database(args, create=True, write=True) as core,
        core.store.transaction(readonly=True) as tx,
    ):
        version = tx.meta.schema_version()
    where = _describe(url)
    if not existed:
        print(f"{where}: created at schema version {version}")
    elif before is not None and before != version:
        print(f"{where}: migrated from schema version {before} to {version}")
    else:
        print(f"{where}: schema version {version} (up to date)")
    return 0


# -- errors ----------------------------------------------------------------------------------


def _is_store_fault(exc: BaseException) -> bool:
    """A failure of the store rather than of the request: exit 3, no traceback."""
    if isinstance(exc, sqlite3.Error):
        return True
    if isinstance(exc, UsercoreError) and getattr(exc, "code", None) == "store_unavailable":
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        return True
    # PostgreSQL's errors, without importing psycopg.
    return type(exc).__module__.split(".")[0] == "psycopg"


def _store_fault_message(exc: BaseException) -> str:
    if isinstance(exc, sqlite3.Error) and _is_locked(exc):
        return "the database is locked by another process; try again when it is done"
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return f"the database is damaged ({exc}); restore it from a backup"
    if isinstance(exc, UsercoreError):
        # StoreUnavailable keeps the driver's error as its cause: the operator
        # at the console is shown what it was (an HTTP client never is).
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, UsercoreError):
            return _store_fault_message(cause)
        return f"the database is unavailable ({exc.message})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"database error: {text}"


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that the interpreter's
    final flush does not complain again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# -- the parser ------------------------------------------------------------------------------


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is between 1 and 65535")
    return port


def _prefix(value: str) -> str:
    if value and (not value.startswith("/") or value.endswith("/")):
        raise argparse.ArgumentTypeError("the prefix starts with '/' and does not end with one")
    return value


def _non_negative(value: str, unit: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of {unit}: {value!r}") from None
    if not 0 <= number < 1e9:
        raise argparse.ArgumentTypeError(f"a number of {unit}, 0 or more")
    return number


def _seconds(value: str) -> float:
    return _non_negative(value, "seconds")


def _minutes(value: str) -> float:
    return _non_negative(value, "minutes")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    from usercore import __version__

    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH_OR_URL",
        help=f"SQLite file path, or sqlite:///…, postgresql://… (default: {DEFAULT_DB})",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="one JSON object per line")
    password_stdin = argparse.ArgumentParser(add_help=False)
    password_stdin.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    parser = argparse.ArgumentParser(
        prog="usercore",
        description="Manage usercore user databases and serve the usercore HTTP API.",
        epilog="Exit status: 0 done, 1 failed, 2 usage error, 3 database unusable "
        "(missing, damaged, read-only, locked, unavailable).",
    )
    parser.add_argument("--version", action="version", version=f"usercore {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        group: Any, name: str, handler: Any, help: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, parents=[database, *parents], help=help, description=help[0].upper() + help[1:]
        )
        sub.set_defaults(handler=handler, prog=sub.prog)
        return sub

    serve = command(commands, "serve", cmd_serve, "serve the HTTP API (FastAPI under uvicorn)")
    serve.description = (
        "Serve the usercore HTTP API with uvicorn.  The signing key comes from "
        f"${SECRET_KEY_ENV}, or is generated once into a 0600 file beside an "
        "SQLite database (usercore.db -> usercore.key).  --db memory:// serves a "
        "throwaway database."
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--profile",
        metavar="NAME",
        action="append",
        default=[],
        help="the API served: v1 (default), classic, ums, rbac or rails (see docs/profiles.md); "
        "repeat to serve several whose paths do not clash",
    )
    serve.add_argument(
        "--list-profiles",
        action="store_true",
        help="print each profile's name, base path and source document, and exit",
    )
    serve.add_argument(
        "--prefix",
        type=_prefix,
        default=None,
        help="serve the profiles under this path instead of their own base paths (v1: /api/v1)",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        default=None,
        help="comma-separated addresses of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto to trust (default: none, proxy headers are ignored)",
    )
    serve.add_argument(
        "--cors-origin",
        metavar="URL",
        action="append",
        default=[],
        help="an origin (scheme://host[:port]) allowed to call the API from a browser; "
        "repeat for several (default: none)",
    )
    serve.add_argument(
        "--cors-allow-credentials",
        action="store_true",
        help="let those origins send cookies (cross-origin cookie sessions need it)",
    )
    serve.add_argument(
        "--no-docs", action="store_true", help="serve no /openapi.json (nor Swagger UI)"
    )
    serve.add_argument(
        "--docs-ui",
        action="store_true",
        help="serve Swagger UI at /docs (loaded from a CDN without integrity: development only)",
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="worker processes, each with its own store connection (default: 1; "
        "about one per core)",
    )
    serve.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop (default: auto, uvloop when installed: pip install 'usercore[server]')",
    )
    serve.add_argument(
        "--http",
        choices=["auto", "h11", "httptools"],
        default="auto",
        help="HTTP parser (default: auto, httptools when installed)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long in-flight requests may take to finish (default: 30; "
        "0: wait for them however long)",
    )
    serve.add_argument(
        "--access-log",
        choices=["text", "json", "off"],
        default="text",
        help="uvicorn's text lines, one JSON object per request on stdout, or none (default: text)",
    )
    serve.add_argument(
        "--purge-every",
        type=_minutes,
        default=10.0,
        metavar="MINUTES",
        help="purge expired tokens, revocations and login throttles this often "
        "(default: 10; 0: never, e.g. when `usercore purge` runs from cron)",
    )
    serve.add_argument(
        "--mail-url",
        metavar="URL",
        default=None,
        help=f"send the account mails: smtp://, smtps://, console: or file:// (docs/mail.md); "
        f"default ${MAIL_URL_ENV}, where a password belongs",
    )
    serve.add_argument(
        "--reset-url",
        metavar="URL",
        help="your page that resets a password, with {token} where the token goes",
    )
    serve.add_argument(
        "--verification-url",
        metavar="URL",
        help="your page that verifies an address, with {token} where the token goes",
    )
    serve.add_argument(
        "--permissions",
        metavar="FILE",
        help="register the app's permissions at start (JSON: a list of names, or an object "
        "of name: description); see docs/registration.md",
    )
    serve.add_argument(
        "--registration",
        choices=["open", "closed", "invite"],
        default="open",
        help="self-registration: open (default), closed (administrators create accounts) or "
        "invite (only with an invitation from POST /invitations; needs --invitation-url)",
    )
    _custom_fields_argument(serve)
    serve.add_argument(
        "--require-verified-email",
        action="store_true",
        help="refuse login and refresh (403 email_not_verified) until the email is verified",
    )
    serve.add_argument(
        "--invitation-url",
        metavar="URL",
        help="your page that accepts an invitation, with {token} where the token goes",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default: info)",
    )

    admin = command(
        commands,
        "create-admin",
        cmd_create_admin,
        "create an administrator account (asks for the password unless --password-stdin)",
        password_stdin,
    )
    admin.add_argument("--email", required=True)
    admin.add_argument("--username")
    admin.add_argument("--name")

    users = commands.add_parser("users", help="work with accounts", description="Accounts.")
    users_commands = users.add_subparsers(dest="users_command", metavar="COMMAND", required=True)
    listing = command(users_commands, "list", cmd_users_list, "list accounts in id order", as_json)
    listing.add_argument("--role", help="only accounts holding this role")
    listing.add_argument("--status", choices=["active", "inactive"])
    listing.add_argument("--search", help="substring of email, username or name")
    user_ref = argparse.ArgumentParser(add_help=False)
    user_ref.add_argument("user", metavar="USER", help="an id, an email or a username")
    command(users_commands, "show", cmd_users_show, "show one account", user_ref, as_json)
    command(
        users_commands,
        "disable",
        cmd_users_disable,
        "deactivate an account (it cannot log in; its sessions are revoked)",
        user_ref,
    )
    command(users_commands, "enable", cmd_users_enable, "reactivate an account", user_ref)
    delete = command(
        users_commands,
        "delete",
        cmd_users_delete,
        "delete an account, its sessions and API keys",
        user_ref,
    )
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    command(
        users_commands,
        "set-password",
        cmd_users_set_password,
        "set an account's password (revokes its sessions, clears a lockout)",
        user_ref,
        password_stdin,
    )
    roles_of = command(
        users_commands,
        "roles",
        cmd_users_roles,
        "show or change an account's roles",
        user_ref,
    )
    roles_of.add_argument("--set", action="append", metavar="ROLES", help="replace the roles")
    roles_of.add_argument("--add", action="append", metavar="ROLES", help="add roles")
    roles_of.add_argument("--remove", action="append", metavar="ROLES", help="take roles away")

    roles = commands.add_parser("roles", help="work with roles", description="Roles.")
    roles_commands = roles.add_subparsers(dest="roles_command", metavar="COMMAND", required=True)
    command(roles_commands, "list", cmd_roles_list, "list roles", as_json)
    create = command(roles_commands, "create", cmd_roles_create, "create a role")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--permission", action="append", metavar="PERMS", help="grant (repeat)")
    create.add_argument("--inherits", action="append", metavar="ROLES", help="inherit (repeat)")
    create.add_argument("--description")
    update = command(roles_commands, "update", cmd_roles_update, "change a role")
    update.add_argument("name", metavar="NAME")
    update.add_argument("--permissions", action="append", metavar="PERMS", help="replace grants")
    update.add_argument("--grant", action="append", metavar="PERMS", help="add grants")
    update.add_argument("--revoke", action="append", metavar="PERMS", help="remove grants")
    update.add_argument("--inherits", action="append", metavar="ROLES", help="replace parents")
    update.add_argument("--description")
    remove = command(roles_commands, "delete", cmd_roles_delete, "delete a role")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument(
        "--force", action="store_true", help="also take it from the users and roles holding it"
    )

    permissions = commands.add_parser(
        "permissions", help="work with permissions", description="Permissions."
    )
    permission_commands = permissions.add_subparsers(
        dest="permissions_command", metavar="COMMAND", required=True
    )
    command(
        permission_commands,
        "list",
        cmd_permissions_list,
        "list the built-in permissions and those registered in the database",
        as_json,
    )
    add = command(
        permission_commands,
        "add",
        cmd_permissions_add,
        "register an application permission (resource:action) and grant it to a role",
    )
    add.add_argument("permission", metavar="PERMISSION")
    add.add_argument("--role", required=True, help="the role that grants it")
    add.add_argument("--description")

    api_keys = commands.add_parser("api-keys", help="work with API keys", description="API keys.")
    key_commands = api_keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    command(
        key_commands, "list", cmd_api_keys_list, "list an account's API keys", user_ref, as_json
    )
    revoke = command(key_commands, "revoke", cmd_api_keys_revoke, "revoke an API key")
    revoke.add_argument("key_id", metavar="KEY_ID", type=_positive_int)

    command(
        commands,
        "purge",
        cmd_purge,
        "forget expired refresh and one-time tokens, expired revocations and stale login throttles",
    )

    importing = command(
        commands,
        "import",
        cmd_import,
        "create accounts from JSON lines or CSV",
    )
    importing.description = (
        "Create accounts from FILE ('-' for standard input, with --format): JSON lines "
        "(.jsonl, .ndjson, .json), or CSV (.csv) with a header naming columns among "
        f"{', '.join(IMPORT_FIELDS)} (roles separated by ';').  Legacy password hashes "
        "(Django, Werkzeug, bcrypt) are kept and upgraded at first login.  Existing "
        "emails and usernames are skipped."
    )
    importing.add_argument("file", metavar="FILE")
    _custom_fields_argument(importing)
    importing.add_argument(
        "--format", choices=["auto", "jsonl", "csv"], default="auto", help="default: by extension"
    )
    importing.add_argument(
        "--batch-size", type=int, default=1000, help="records per transaction (default: 1000)"
    )
    importing.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="processes hashing plain passwords (default: one per CPU)",
    )
    importing.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )

    export = command(
        commands,
        "export",
        cmd_export,
        "write every account as JSON lines, with its password hash, for import",
    )
    _custom_fields_argument(export)
    export.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="FILE",
        help="a new file, created with mode 0600 (default: standard output)",
    )

    command(
        commands,
        "migrate",
        cmd_migrate,
        "check the database, then create it or apply pending migrations",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except CommandError as error:
        print(f"usercore: error: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as error:
        if not _is_store_fault(error):
            if isinstance(error, UsercoreError):
                print(f"usercore: error: {error.message}", file=sys.stderr)
                return EXIT_FAILED
            raise
        print(f"usercore: error: {_store_fault_message(error)}", file=sys.stderr)
        return EXIT_DATABASE
    return status


if __name__ == "__main__":
    sys.exit(main())
