"""The shape a newcomer meets first: a thin command line and short functions.

cli.py parses and hands over: no function there over 40 lines, the file under 500 lines; no
function elsewhere in the package over 80 lines (exceptions named below with their reason).
"""

from __future__ import annotations

import ast
from pathlib import Path

import wdsr_cli

PACKAGE = Path(wdsr_cli.__file__).resolve().parent
CLI_MAX, ELSEWHERE_MAX, CLI_FILE_MAX = 40, 80, 500

#: "path:function" -> why it stays longer than ELSEWHERE_MAX.
LONG_ON_PURPOSE: dict[str, str] = {}


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def _too_long(path: Path, limit: int) -> list[str]:
    rel = path.relative_to(PACKAGE).as_posix()
    return [f"{rel}:{line} {name} ({length} lines)" for name, line, length in _functions(path)
            if length > limit and f"{rel}:{name}" not in LONG_ON_PURPOSE]


def test_cli_is_thin():
    cli = PACKAGE / "cli.py"
    assert _too_long(cli, CLI_MAX) == []
    assert len(cli.read_text(encoding="utf-8").splitlines()) < CLI_FILE_MAX


def test_no_long_functions_elsewhere():
    files = [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "cli.py"]
    assert len(files) > 30  # the whole package was read
    assert [f for p in files for f in _too_long(p, ELSEWHERE_MAX)] == []


def test_named_exceptions_still_exist():
    """An exception for a function that is gone or short now is stale: drop it."""
    for key in LONG_ON_PURPOSE:
        rel, name = key.split(":")
        lengths = [n for f, _, n in _functions(PACKAGE / rel) if f == name]
        assert lengths and max(lengths) > ELSEWHERE_MAX, key


def test_the_check_sees_a_long_function(tmp_path):
    """The check itself can fail: a 41-line function in a cli.py-sized file is caught."""
    body = "\n".join(f"    x{i} = {i}" for i in range(40))
    (tmp_path / "long.py").write_text(f"def f():\n{body}\n", encoding="utf-8")
    assert [length for *_, length in _functions(tmp_path / "long.py")] == [41]
