"""`yolo_core` takes arguments, not environment variables (DESIGN.md): its callers read the env.

Setting a variable for a library that reads it later (`os.environ[...] = ...`, `setdefault`) is not
reading it, and is allowed. The conventions a user sets are read in `entrypoints/environment.py`.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "yolo_core"

# (file, variable): why it is still read inside yolo_core. Keep it empty.
KNOWN_READS: set[tuple[str, str]] = set()


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and ast.unparse(node.value) == "os"


def _name(node: ast.AST | None) -> str:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else "?"


def env_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, variable) of every os.environ[...] load, os.environ.get(...), os.getenv(...)."""
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_os_environ(node.value) and isinstance(node.ctx, ast.Load):
            reads.append((node.lineno, _name(node.slice)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            environ_get = func.attr == "get" and _is_os_environ(func.value)
            getenv = func.attr in {"getenv", "getenvb"} and ast.unparse(func.value) == "os"
            if environ_get or getenv:
                reads.append((node.lineno, _name(node.args[0] if node.args else None)))
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            reads.extend(
                (node.lineno, f"from os import {a.name}")
                for a in node.names
                if a.name in {"environ", "getenv"}
            )
    return reads


def test_yolo_core_reads_no_environment_variables() -> None:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        for line, name in env_reads(ast.parse(path.read_text(), str(path))):
            if (str(path.relative_to(CORE)), name) not in KNOWN_READS:
                found.append(f"yolo_core/{path.relative_to(CORE)}:{line}: reads {name}")
    assert not found, "yolo_core must take these as arguments from its callers:\n" + "\n".join(found)


def test_the_check_sees_each_kind_of_read_and_allows_setting() -> None:
    source = (
        "import os\n"
        "a = os.environ['A']\n"
        "b = os.environ.get('B')\n"
        "c = os.getenv('C')\n"
        "os.environ['D'] = '1'\n"
        "os.environ.setdefault('E', '1')\n"
    )
    assert [name for _, name in env_reads(ast.parse(source))] == ["A", "B", "C"]


def test_the_commit_comes_from_the_caller(monkeypatch) -> None:
    from entrypoints.contract import image_commit
    from yolo_core.version import code_version, git_commit

    monkeypatch.setenv("GIT_COMMIT", "feedface" * 5)
    assert image_commit() == "feedface" * 5  # the entry points read the image's commit
    assert git_commit() != "feedface" * 5  # yolo_core does not
    assert code_version("feedface" * 5).endswith("+feedfacefeed")
    monkeypatch.delenv("GIT_COMMIT")
    assert image_commit() == git_commit()
