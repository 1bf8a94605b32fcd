"""Parameterized SQL only: a static check of every SQL string in the package.

OWASP ASVS 4.0.3 V5.3.4 (data selection and queries use parameterized
queries), V5.3.5 (no dynamic SQL from untrusted input).  The runtime side —
quotes, ``--``, NUL and 5,000-character strings stored verbatim — is in the
storage contract suite.

The rule enforced here: SQL is never built with ``%`` or ``str.format``, and
an f-string or ``+`` that produces SQL may only interpolate

- module-level constants (``_USER_COLUMNS``),
- integers formatted with ``:d``,
- ``", ".join("?" * n)`` placeholder lists,
- a dialect's ``contains(...)``/``prepare(...)``/``search_condition(...)`` called
  with a string literal, and its ``custom_field(...)``/``custom_condition(...)``/
  ``custom_type(...)`` called with a string literal or a gated identifier,
- ``sql_identifier(...)``: a name that passed the one identifier gate
  (``[a-z][a-z0-9_]*``, else ``ValueError``), used for custom field and index
  names, which come from the application's declaration,
- local names whose every assignment in the function is itself built by these
  rules (``where``, ``order``, ``source``, ``conditions``...), and parameters
  that every call site fills with a string literal.

Anything else — a value that could come from a caller — fails the build.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import usercore

PACKAGE = Path(usercore.__file__).resolve().parent
SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|PRAGMA|SAVEPOINT|VALUES|CREATE|DROP|ALTER)\b"
)
CONSTANT_NAME = re.compile(r"_?[A-Z][A-Z0-9_]*")
SAFE_METHODS = frozenset(
    {"contains", "prepare", "search_condition", "custom_field", "custom_condition", "custom_type"}
)
IDENTIFIER_GATE = "sql_identifier"


def is_gated(node: ast.AST) -> bool:
    """``sql_identifier(...)``: returns a strict identifier or raises."""
    return isinstance(node, ast.Call) and (
        getattr(node.func, "id", None) == IDENTIFIER_GATE
        or getattr(node.func, "attr", None) == IDENTIFIER_GATE
    )


def modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if SQL.search(path.read_text()))


def is_sql_literal(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and bool(SQL.search(node.value))
    )


def literal_parts(node: ast.JoinedStr) -> str:
    return "".join(
        part.value
        for part in node.values
        if isinstance(part, ast.Constant) and isinstance(part.value, str)
    )


class Checker:
    """Judges whether an expression can only hold SQL built from code, not data."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.functions = {
            id(node): node
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        self.literal_only_parameters = self._literal_only_parameters()

    def _literal_only_parameters(self) -> set[tuple[str, str]]:
        """(function, parameter) pairs that every call site in the module fills
        with a string literal (``self.contains("u.email_key")``)."""
        calls: dict[str, list[ast.Call]] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", None))
                if isinstance(name, str):
                    calls.setdefault(name, []).append(node)
        safe: set[tuple[str, str]] = set()
        for function in self.functions.values():
            params = [arg.arg for arg in function.args.args if arg.arg != "self"]
            sites = calls.get(function.name, [])
            for index, param in enumerate(params):
                if sites and all(
                    len(site.args) > index
                    and isinstance(site.args[index], ast.Constant)
                    and isinstance(site.args[index].value, str)
                    for site in sites
                ):
                    safe.add((function.name, param))
        return safe

    def safe(self, node: ast.AST, function: ast.AST | None, seen: frozenset[str]) -> bool:
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.JoinedStr):
            return all(self.safe(part, function, seen) for part in node.values)
        if isinstance(node, ast.FormattedValue):
            spec = node.format_spec
            if isinstance(spec, ast.JoinedStr) and literal_parts(spec) in ("d", "#x"):
                return True
            return self.safe(node.value, function, seen)
        if isinstance(node, ast.Name):
            if CONSTANT_NAME.fullmatch(node.id):
                return True
            return self._safe_local(node.id, function, seen)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.safe(node.left, function, seen) and self.safe(node.right, function, seen)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            # "?" * n: a run of placeholders
            return isinstance(node.left, ast.Constant) and node.left.value == "?"
        if isinstance(node, ast.IfExp):
            return self.safe(node.body, function, seen) and self.safe(node.orelse, function, seen)
        if is_gated(node):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method == "join" and isinstance(node.func.value, ast.Constant):
                return all(self.safe(arg, function, seen) for arg in node.args)
            if method in SAFE_METHODS:
                return all(
                    isinstance(arg, ast.Constant) or is_gated(arg)
                    for arg in [*node.args, *(keyword.value for keyword in node.keywords)]
                )
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            # self._savepoint and the like: judged by their assignments in the module.
            return self._safe_attribute(node.attr, seen)
        if isinstance(node, ast.GeneratorExp):
            return self.safe(node.elt, function, seen)
        return False

    def _safe_local(self, name: str, function: ast.AST | None, seen: frozenset[str]) -> bool:
        if function is None or name in seen:
            return name in seen
        assert isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        if (function.name, name) in self.literal_only_parameters:
            return True
        values: list[ast.AST] = []
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == name for target in node.targets
            ):
                values.append(node.value)
            elif isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == name:
                if node.value is not None:
                    values.append(node.value)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("append", "extend")
                and getattr(node.func.value, "id", None) == name
            ):
                values.extend(node.args)
            elif isinstance(node, ast.comprehension) and getattr(node.target, "id", None) == name:
                values.append(node.iter)
        if not values:
            return False
        inner = seen | {name}
        return all(
            (isinstance(value, ast.List) and all(self.safe(e, function, inner) for e in value.elts))
            or self.safe(value, function, inner)
            or self._is_literal_split(value)
            for value in values
        )

    @staticmethod
    def _is_literal_split(node: ast.AST) -> bool:
        """``CONSTANT.split(", ")``: iterating a constant column list."""
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "split"
            and isinstance(node.func.value, ast.Name)
            and bool(CONSTANT_NAME.fullmatch(node.func.value.id))
        )

    def _safe_attribute(self, attr: str, seen: frozenset[str]) -> bool:
        key = "self." + attr
        if key in seen:
            return True
        values = [
            node.value
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Attribute) and target.attr == attr
        ]
        return bool(values) and all(self.safe(v, None, seen | {key}) for v in values)


def sql_expressions(tree: ast.Module) -> Iterator[tuple[ast.AST, ast.AST | None, str]]:
    """Every expression that builds SQL, with its enclosing function and a verdict kind."""
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node

    def enclosing(node: ast.AST) -> ast.AST | None:
        current = parents.get(id(node))
        while current is not None and not isinstance(
            current, (ast.FunctionDef, ast.AsyncFunctionDef)
        ):
            current = parents.get(id(current))
        return current

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and SQL.search(literal_parts(node)):
            yield node, enclosing(node), "f-string"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            if is_sql_literal(node.left):
                yield node, enclosing(node), "%-formatting"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and is_sql_literal(node.func.value)
        ):
            yield node, enclosing(node), "str.format"
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Add)
            and (is_sql_literal(node.left) or is_sql_literal(node.right))
        ):
            yield node, enclosing(node), "concatenation"


def violations(source: str) -> list[str]:
    tree = ast.parse(source)
    checker = Checker(tree)
    found = []
    for node, function, kind in sql_expressions(tree):
        if kind in ("%-formatting", "str.format") or not checker.safe(node, function, frozenset()):
            found.append(f"line {node.lineno}: SQL built by {kind}: {ast.unparse(node)[:120]}")
    return found


def test_the_package_has_sql_to_check() -> None:
    names = {path.name for path in modules()}
    assert {"_sql.py", "sqlite.py"} <= names


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_sql_string_is_built_from_data(path: Path) -> None:
    assert [] == violations(path.read_text())


@pytest.mark.parametrize(
    "bad",
    [
        "def f(name):\n    return f\"SELECT * FROM users WHERE name = '{name}'\"\n",
        "def f(name):\n    return \"SELECT * FROM users WHERE name = '%s'\" % name\n",
        'def f(name):\n    return "DELETE FROM users WHERE id = {}".format(name)\n',
        'def f(name):\n    return "SELECT * FROM users WHERE name = " + name\n',
        'def f(names):\n    where = " AND ".join(names)\n'
        '    return f"SELECT * FROM t WHERE {where}"\n',
    ],
)
def test_the_check_catches_sql_built_from_data(bad: str) -> None:
    """The check itself can fail: each of these interpolates a caller's value."""
    assert violations(bad)


@pytest.mark.parametrize(
    "good",
    [
        '_COLS = "a, b"\nQ = f"SELECT {_COLS} FROM t WHERE id = ?"\n',
        "def f(n):\n    return f\"INSERT INTO t VALUES ({', '.join('?' * 3)})\"\n",
        'def f(v):\n    return f"PRAGMA user_version = {v:d}"\n',
        'def f(role):\n    where = " WHERE r = ?" if role else ""\n'
        '    return f"SELECT * FROM t{where}"\n',
    ],
)
def test_the_check_accepts_sql_built_from_code(good: str) -> None:
    assert [] == violations(good)
