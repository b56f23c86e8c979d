"""No module under nodeops/, roles/ (a role's Python keeps to the engine's limits), tasks/ or lab/ over MODULE_LINES
lines, no class over CLASS_LINES (issue 15: "no class over about 150 lines; no module over about 400"), read from the
source, the lines of a file as ``wc -l`` counts them and a class from its ``class`` line to its last (decorators
left out)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE_LINES = 400
CLASS_LINES = 150


def oversized(source: str) -> list[str]:
    """What in ``source`` is over a limit: ``N lines`` for the module, ``class C: N lines`` for each class (nested
    ones too); empty when within."""
    lines = len(source.splitlines())
    found = [f"{lines} lines"] if lines > MODULE_LINES else []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and (size := node.end_lineno - node.lineno + 1) > CLASS_LINES:
            found.append(f"class {node.name}: {size} lines")
    return found


def klass(name: str, body_lines: int) -> str:
    return f"class {name}:\n" + "    x = 1\n" * (body_lines - 1)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\n" * MODULE_LINES, []),
        ("x = 1\n" * (MODULE_LINES + 1), [f"{MODULE_LINES + 1} lines"]),
        (klass("A", CLASS_LINES), []),
        (klass("A", CLASS_LINES + 1), [f"class A: {CLASS_LINES + 1} lines"]),
        ("def f():\n" + "    " + klass("Inner", CLASS_LINES + 1).replace("\n", "\n    "), ["class Inner: 151 lines"]),
        ("@decorated\n" + klass("A", CLASS_LINES), []),  # the decorator is not the class's
    ],
)
def test_the_check_counts_modules_and_classes(source, expected):
    assert oversized(source) == expected


def test_no_module_nor_class_over_the_limits():
    found = {
        str(path.relative_to(ROOT)): wrong
        for folder in ("nodeops", "roles", "tasks", "lab")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (wrong := oversized(path.read_text()))
    }
    assert found == {}
