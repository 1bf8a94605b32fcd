"""The ``usercore`` command line (DESIGN §9).

::

    usercore serve [--db usercore.db] [--host 127.0.0.1] [--port 8000]
    usercore create-admin --email E [--username U] [--name N] [--password-stdin]
    usercore users list [--role R] [--status S] [--search Q] [--json]
    usercore import FILE [--format jsonl|csv] [--batch-size N]
    usercore migrate

``--db`` takes a path (an SQLite file, ``./usercore.db`` by default) or a URL
(``sqlite:///…``, ``postgresql://…``, ``memory://``).  Exit status: 0 on
success, 1 when the operation failed (invalid input, an existing account,
records that could not be imported), 2 for a usage error (bad arguments, an
unreadable file, a missing extra).

Only ``serve`` imports FastAPI and uvicorn, and only when it runs.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import os
import re
import secrets
import sqlite3
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from usercore import SYSTEM, ConflictError, Settings, UserCore, UsercoreError, ValidationError
from usercore.settings import MIN_SECRET_KEY_BYTES

__all__ = ["main"]

DEFAULT_DB = "usercore.db"
SECRET_KEY_ENV = "USERCORE_SECRET_KEY"  # noqa: S105 - the variable's name
URL_SCHEMES = ("sqlite:///", "postgresql://", "postgres://", "memory://")
IMPORT_FIELDS = (
    "email",
    "username",
    "name",
    "roles",
    "role",
    "status",
    "password",
    "password_hash",
)
MAX_ERRORS_SHOWN = 50
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report on stderr with an exit status (no traceback)."""

    def __init__(self, message: str, status: int = EXIT_FAILED):
        super().__init__(message)
        self.status = status


def _usage(message: str) -> NoReturn:
    raise CommandError(message, EXIT_USAGE)


def _warn(message: str) -> None:
    print(f"usercore: warning: {message}", file=sys.stderr)


def _info(message: str) -> None:
    print(f"usercore: {message}", file=sys.stderr)


# -- the database and its key ---------------------------------------------------------


def database_url(value: str) -> str:
    """``--db`` as a store URL: URLs pass through, a bare path means SQLite."""
    if not value.strip():
        _usage("--db must not be empty")
    if "://" in value:
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
    if url == "memory://":
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


def open_core(url: str, *, secret_key: str | None = None) -> UserCore:
    """The facade on ``url``.  Commands that issue no tokens use a throwaway key,
    so that they never create a key file."""
    key = secret_key if secret_key is not None else secrets.token_urlsafe(48)
    try:
        return UserCore.open(url, settings=Settings(secret_key=key))
    except ImportError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise CommandError(f"--db: {exc}", EXIT_USAGE) from None
    except sqlite3.Error as exc:
        raise CommandError(f"cannot open the database: {exc}") from None


def _describe(url: str) -> str:
    database = _sqlite_path(url)
    if database is not None:
        return str(database)
    # Never print a password that may be in a PostgreSQL URL.
    return re.sub(r"//[^@/]*@", "//…@", url)


def _print_validation(error: ValidationError, prefix: str = "") -> None:
    for field, messages in error.errors.items():
        for message in messages:
            print(f"usercore: {prefix}{field}: {message}", file=sys.stderr)


# -- serve -------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from usercore.web.fastapi import create_app
    except ImportError:
        _usage("usercore serve needs the fastapi extra: pip install 'usercore[fastapi]'")
    url = database_url(args.db)
    core = open_core(url, secret_key=serving_key(url))
    try:
        app = create_app(core, prefix=args.prefix)
        base = f"http://{args.host}:{args.port}"
        _info(f"serving {_describe(url)} at {base}{args.prefix} (OpenAPI docs at {base}/docs)")
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            _warn("this is plain HTTP: put a TLS-terminating proxy in front of it")
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        core.close()
    return 0


# -- create-admin ------------------------------------------------------------------------


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password.removesuffix("\r")
        if not password:
            _usage("--password-stdin: no password on standard input")
        return password
    if not sys.stdin.isatty():
        _usage("no terminal to ask for the password on: use --password-stdin")
    password = getpass.getpass("Password for the new administrator: ")
    if getpass.getpass("Repeat the password: ") != password:
        raise CommandError("the passwords do not match")
    return password


def cmd_create_admin(args: argparse.Namespace) -> int:
    url = database_url(args.db)
    password = _read_password(args.password_stdin)
    with open_core(url) as core:
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
    print(f"created administrator #{user.id} {user.email}")
    return 0


# -- users list --------------------------------------------------------------------------


def cmd_users_list(args: argparse.Namespace) -> int:
    url = database_url(args.db)
    database = _sqlite_path(url)
    if database is not None and not database.exists():
        # Listing never creates a database (a mistyped path would look empty).
        _usage(f"no database at {database}; create one with: usercore migrate --db {database}")
    shown = 0
    with open_core(url) as core:
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
                    print(json.dumps(user.to_public(), ensure_ascii=False))
                else:
                    public = user.to_public()
                    print(
                        f"{user.id:>6}  {user.email:<32} {user.username or '-':<16} "
                        f"{','.join(public['roles']) or '-':<16} {public['status']:<8} "
                        f"{public['created_at']}"
                    )
                shown += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    _info(f"{shown} user{'s' if shown != 1 else ''}")
    return 0


# -- import --------------------------------------------------------------------------------


class Progress:
    """A plain-text progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total_bytes: int | None, enabled: bool):
        self.total = total_bytes
        self.enabled = enabled
        self.done_bytes = 0
        self.lines = 0
        self._drawn_at = 0.0

    def update(self, done_bytes: int, lines: int) -> None:
        self.done_bytes, self.lines = done_bytes, lines
        now = time.monotonic()
        if self.enabled and now - self._drawn_at >= 0.1:
            self._drawn_at = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            fraction = min(1.0, self.done_bytes / self.total)
            bar = "#" * round(fraction * 30)
            text = f"\rimporting [{bar:<30}] {fraction:4.0%}  {self.lines:,} lines"
        else:
            text = f"\rimporting  {self.lines:,} lines"
        sys.stderr.write(text)
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            self._draw()
            sys.stderr.write("\n")
            sys.stderr.flush()


class Source:
    """The records of an import file, with the line each came from.

    Records that cannot even be parsed (bad JSON, a CSV row longer than the
    header) are kept aside as ``problems`` and never reach the import.
    """

    def __init__(self, stream: IO[bytes], kind: str, progress: Progress):
        self.stream = stream
        self.kind = kind
        self.progress = progress
        self.lines: list[int] = []  # source line of each record handed on
        self.problems: list[tuple[int, str]] = []
        self._read_bytes = 0

    def _raw_lines(self) -> Iterator[bytes]:
        for number, raw in enumerate(self.stream, start=1):
            self._read_bytes += len(raw)
            self.progress.update(self._read_bytes, number)
            yield raw

    def records(self) -> Iterator[dict[str, Any]]:
        if self.kind == "csv":
            yield from self._csv_records()
        else:
            yield from self._json_records()

    def _json_records(self) -> Iterator[dict[str, Any]]:
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
            self.lines.append(number)
            yield record

    def _csv_records(self) -> Iterator[dict[str, Any]]:
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
            unknown = sorted(set(columns) - set(IMPORT_FIELDS))
            if unknown or "email" not in columns or len(set(columns)) != len(columns):
                _usage(
                    "the CSV header must name distinct columns among "
                    f"{', '.join(IMPORT_FIELDS)}, including email"
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
                    else:
                        record[column] = cell
                self.lines.append(reader.line_num)
                yield record
        except csv.Error as exc:
            raise CommandError(f"line {reader.line_num}: not valid CSV ({exc})") from None


def _import_kind(args: argparse.Namespace) -> str:
    if args.format != "auto":
        return str(args.format)
    return "csv" if str(args.file).lower().endswith(".csv") else "jsonl"


def cmd_import(args: argparse.Namespace) -> int:
    url = database_url(args.db)
    kind = _import_kind(args)
    if args.batch_size < 1:
        _usage("--batch-size must be at least 1")
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
    source = Source(stream, kind, progress)
    try:
        with open_core(url) as core:
            report = core.users.import_users(SYSTEM, source.records(), batch_size=args.batch_size)
    finally:
        progress.finish()
        if stream is not sys.stdin.buffer:
            stream.close()
    failures = sorted(
        [(source.lines[index], _reasons(error)) for index, error in report.errors] + source.problems
    )
    print(
        f"created {report.created}, skipped {report.skipped} (already exist), "
        f"failed {len(failures)}"
    )
    for line, reason in failures[:MAX_ERRORS_SHOWN]:
        print(f"line {line}: {reason}")
    if len(failures) > MAX_ERRORS_SHOWN:
        print(f"... and {len(failures) - MAX_ERRORS_SHOWN} more")
    return EXIT_FAILED if failures else 0


def _reasons(error: ValidationError) -> str:
    return "; ".join(
        f"{field}: {message}" for field, messages in error.errors.items() for message in messages
    )


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
    url = database_url(args.db)
    database = _sqlite_path(url)
    before = _sqlite_version(database) if database is not None else None
    existed = database.exists() if database is not None else True
    with open_core(url) as core, core.store.transaction(readonly=True) as tx:
        version = tx.meta.schema_version()
    where = _describe(url)
    if not existed:
        print(f"{where}: created at schema version {version}")
    elif before is not None and before != version:
        print(f"{where}: migrated from schema version {before} to {version}")
    else:
        print(f"{where}: schema version {version} (up to date)")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    from usercore import __version__

    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH_OR_URL",
        help=f"SQLite file path, or sqlite:///…, postgresql://…, memory:// (default: {DEFAULT_DB})",
    )
    parser = argparse.ArgumentParser(
        prog="usercore",
        description="Manage usercore user databases and serve the usercore HTTP API.",
    )
    parser.add_argument("--version", action="version", version=f"usercore {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        parents=[database],
        help="serve the HTTP API (FastAPI under uvicorn)",
        description=(
            "Serve the usercore HTTP API with uvicorn.  The signing key comes from "
            f"${SECRET_KEY_ENV}, or is generated once into a 0600 file beside an "
            "SQLite database (usercore.db -> usercore.key)."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default: 8000)")
    serve.add_argument("--prefix", type=_prefix, default="/api/v1", help="default: /api/v1")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default: info)",
    )
    serve.set_defaults(handler=cmd_serve)

    admin = commands.add_parser(
        "create-admin",
        parents=[database],
        help="create an administrator account",
        description="Create an account with the role admin.  Asks for the password "
        "unless --password-stdin.",
    )
    admin.add_argument("--email", required=True)
    admin.add_argument("--username")
    admin.add_argument("--name")
    admin.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    admin.set_defaults(handler=cmd_create_admin)

    users = commands.add_parser("users", help="work with accounts", description="Accounts.")
    users_commands = users.add_subparsers(dest="users_command", metavar="COMMAND", required=True)
    listing = users_commands.add_parser(
        "list",
        parents=[database],
        help="list accounts",
        description="List accounts in id order (a table, or JSON lines with --json).",
    )
    listing.add_argument("--role", help="only accounts holding this role")
    listing.add_argument("--status", choices=["active", "inactive"])
    listing.add_argument("--search", help="substring of email, username or name")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=cmd_users_list)

    importing = commands.add_parser(
        "import",
        parents=[database],
        help="create accounts from JSON lines or CSV",
        description=(
            "Create accounts from FILE ('-' for standard input): JSON lines, or CSV with a "
            f"header naming columns among {', '.join(IMPORT_FIELDS)} (roles separated by "
            "';').  Legacy password hashes (Django, Werkzeug, bcrypt) are kept and upgraded "
            "at first login.  Existing emails and usernames are skipped."
        ),
    )
    importing.add_argument("file", metavar="FILE")
    importing.add_argument(
        "--format", choices=["auto", "jsonl", "csv"], default="auto", help="default: by extension"
    )
    importing.add_argument(
        "--batch-size", type=int, default=1000, help="records per transaction (default: 1000)"
    )
    importing.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    importing.set_defaults(handler=cmd_import)

    migrate = commands.add_parser(
        "migrate",
        parents=[database],
        help="create or upgrade the database schema",
        description="Open the database, applying any pending migration, and report its "
        "schema version.",
    )
    migrate.set_defaults(handler=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except CommandError as error:
        print(f"usercore: error: {error}", file=sys.stderr)
        return error.status
    except UsercoreError as error:
        print(f"usercore: error: {error.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
