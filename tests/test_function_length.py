"""No function in product code (engagement/, privacy/, dashboard/) is longer than MAX_LINES,
unless its def line says why: `def f(...):  # long: <reason>`. Tests, benchmarks and scripts
are not product code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("engagement", "privacy", "dashboard")
MAX_LINES = 60  # from the def line to the last line of the body
_REASON = re.compile(r"#\s*long:\s*\S")

# Functions another change is rewriting now: split them here and the two changes collide. Each
# names the issue it waits on; an entry that is no longer long (or gone) fails the test below,
# so the list cannot outlive the work.
WAITING: dict[str, str] = {}


def long_functions(source: str, path: str = "<src>", limit: int = MAX_LINES) -> dict[str, int]:
    """`path::Qual.name` -> lines, for every function (methods and nested ones included) longer
    than `limit` whose def line carries no `# long: <reason>`."""
    lines = source.splitlines()
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = child.end_lineno - child.lineno + 1
                if length > limit and not _REASON.search(lines[child.lineno - 1]):
                    found[f"{path}::{prefix}{child.name}"] = length
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def _function(name: str, body_lines: int, def_comment: str = "", indent: str = "") -> str:
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(body_lines))
    return f"{indent}def {name}():{def_comment}\n{body}"


def test_the_checker_flags_long_functions_and_accepts_a_written_reason():
    assert long_functions(_function("fits", 59)) == {}  # 60 lines with its def line
    assert long_functions(_function("too_long", 60)) == {"<src>::too_long": 61}
    assert long_functions(_function("explained", 60, "  # long: one table of cases, read top to bottom")) == {}
    assert long_functions(_function("no_reason", 60, "  # long:")) == {"<src>::no_reason": 61}
    method = "class Pipeline:\n" + _function("run", 70, indent="    ")
    assert long_functions(method) == {"<src>::Pipeline.run": 71}
    nested = "def outer():\n" + _function("inner", 61, indent="    ") + "    return inner\n"
    assert long_functions(nested) == {"<src>::outer": 64, "<src>::outer.inner": 62}


def _product_long_functions() -> dict[str, int]:
    found: dict[str, int] = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            found.update(long_functions(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix()))
    return found


def test_no_product_function_is_long_without_a_reason():
    found = _product_long_functions()
    unexplained = {name: n for name, n in found.items() if name not in WAITING}
    assert not unexplained, (
        f"functions over {MAX_LINES} lines: split them, or write `# long: <reason>` on the def line: {unexplained}"
    )
    stale = sorted(set(WAITING) - set(found))
    assert not stale, f"no longer long (or gone): remove them from WAITING: {stale}"
