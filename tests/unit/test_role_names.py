"""The engine names no chain (issue 15, "Chainlink moves into its role"): what is Chainlink's lives under
roles/chainlink/ (role.yaml, and role.py where data is not enough), loaded through nodeops.role_hooks.

Read from the source (the AST of every module of the engine: nodeops/, and tasks/, which the wheel installs as
nodeops.tasks): an identifier (a name, an attribute, a function, class, argument or keyword, an imported name) or
a string the code uses (a literal, an f-string's text, a dict key) must not name Chainlink. Documentation may: a
docstring (a string that is a statement on its own: a module's, class's, function's or attribute's), a ``doc=``
argument (the docstring of a generated spec: nodeops.inventory.schema, shown in docs/inventory-reference.md like an
attribute docstring) and a comment may cite Chainlink as the source of a fact or as an example (``Chainlink's
node_versions``, a secret named ``chainlink/DBSecret``). So may the files that are not Python (the scaffold's
READMEs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = (ROOT / "nodeops", ROOT / "tasks")
CHAIN = "chainlink"


def documentation(tree: ast.AST) -> set[int]:
    """The ids of the string constants that document: statements on their own (docstrings: no effect on the
    code) and ``doc=`` arguments (a generated spec's docstring)."""
    return {
        id(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr | ast.keyword)
        and (isinstance(node, ast.Expr) or node.arg == "doc")
        and isinstance(value := node.value, ast.Constant)
        and isinstance(value.value, str)
    }


def named(node: ast.AST) -> list[str]:
    """The identifiers ``node`` itself introduces or uses."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.keyword) and node.arg:
        return [node.arg]
    if isinstance(node, ast.alias):
        return [node.name, *([node.asname] if node.asname else [])]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module]
    return []


def chain_names(source: str) -> list[str]:
    """``line: what`` for every identifier and every non-documentation string of ``source`` that names the chain
    (case-insensitive); in order."""
    tree = ast.parse(source)
    docs = documentation(tree)
    found = []
    for node in ast.walk(tree):
        words = named(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            words = [repr(node.value)]
        found += [(node.lineno, w) for w in words if CHAIN in w.lower()]
    return [f"{line}: {w}" for line, w in sorted(found)]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"""Facts from Chainlink\'s source."""\nx = 1', []),  # a module docstring cites it
        ('def f():\n    """Chainlink writes node_versions."""\n    return 1', []),
        ("class A:\n    x: int = 1\n    '''as in Chainlink'''", []),  # an attribute docstring
        ("x = 1  # Chainlink opens its port only once it holds the lease", []),  # a comment
        ('KIND = "chainlink-api-password"', ["1: 'chainlink-api-password'"]),
        ('KINDS = {"Chainlink": 1}', ["1: 'Chainlink'"]),  # a dict key
        ('def f(v):\n    return f"{v} Chainlink"', ["2: ' Chainlink'"]),  # an f-string's text
        ('_spec(Model, doc="a reference {name: chainlink/DBSecret}")', []),  # a generated spec's docstring
        ('f(text="a Chainlink node")', ["1: 'a Chainlink node'"]),  # any other string argument is data
        ('f("a Chainlink node")', ["1: 'a Chainlink node'"]),
        ("def chainlink_login(): pass", ["1: chainlink_login"]),
        ("class ChainlinkApi: pass", ["1: ChainlinkApi"]),
        ("def f(chainlink): pass", ["1: chainlink"]),
        ("x.chainlink_id = 1", ["1: chainlink_id"]),
        ("g(chainlink=1)", ["1: chainlink"]),
        ("import chainlink_sdk as cl", ["1: chainlink_sdk"]),
        ("from roles.chainlink import role", ["1: roles.chainlink"]),
        ('profile = "v1"', []),
    ],
)
def test_the_check_finds_every_form_of_a_name(source, expected):
    assert chain_names(source) == expected


def test_no_engine_code_names_chainlink():
    modules = sorted(p for folder in ENGINE for p in folder.rglob("*.py"))
    assert len(modules) > 40  # the engine was found
    found = {str(p.relative_to(ROOT)): hits for p in modules if (hits := chain_names(p.read_text()))}
    assert found == {}
