"""The engine names no chain (issue 15, "Chainlink moves into its role"): what is Chainlink's lives under
roles/chainlink/ (role.yaml, and role.py where data is not enough), loaded through nodeops.role_hooks. The same
holds for Cardano (issue 16): its words (``cardano``, ``shelley``, ``kes``, ``vrf``, ``ocert``, ...) belong under
roles/cardano/, never in the engine.

Read from the source (the AST of every module of the engine: nodeops/, and tasks/, which the wheel installs as
nodeops.tasks): an identifier (a name, an attribute, a function, class, argument or keyword, an imported name) or
a string the code uses (a literal, an f-string's text, a dict key) must not name Chainlink. Documentation may: a
docstring (a string that is a statement on its own: a module's, class's, function's or attribute's), a ``doc=``
argument (the docstring of a generated spec: nodeops.inventory.schema, shown in docs/inventory-reference.md like an
attribute docstring) and a comment may cite Chainlink as the source of a fact or as an example (``Chainlink's
node_versions``, a secret named ``chainlink/DBSecret``). So may the files that are not Python (the scaffold's
READMEs).

Nor may engine code hold the role's own words under another name (``role_words``): what its role.yaml names (the
lease's table, the backup's tables, its secrets, variables and files) and the API paths its module calls. Its
failing health checks and its password rules were such facts (a JSON:API /health body parsed in facts/health.py,
16 to 50 characters in passwords.py): they are its hook and its data now.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENGINE = (ROOT / "nodeops", ROOT / "tasks")
CHAIN = "chainlink"
ROLE = ROOT / "roles" / CHAIN


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


def names_chainlink(text: str) -> bool:
    return CHAIN in text.lower()


# Cardano's words: the long ones anywhere in a name or string, the short ones as a word of it (split at anything
# but letters and digits, and at camelCase: slotsPerKESPeriod -> slots, Per, KES, Period), so that "takes" or
# "keys" are not KES
CARDANO_ANYWHERE = ("cardano", "shelley", "ouroboros", "lovelace", "ocert", "opcert")
CARDANO_WORDS = {"kes", "vrf", "praos", "tpraos", "byron"}
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def names_cardano(text: str) -> bool:
    lower = text.lower()
    return any(w in lower for w in CARDANO_ANYWHERE) or any(w.lower() in CARDANO_WORDS for w in _WORD.findall(text))


def chain_names(source: str, names: Callable[[str], bool] = names_chainlink) -> list[str]:
    """``line: what`` for every identifier and every non-documentation string of ``source`` that names the chain
    (``names``: Chainlink's, case-insensitive, unless told); in order."""
    tree = ast.parse(source)
    docs = documentation(tree)
    found = []
    for node in ast.walk(tree):
        words = named(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            words = [repr(node.value)]
        found += [(node.lineno, w) for w in words if names(w)]
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


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"""Sum6KES over Ed25519, as cardano-base builds it."""\nx = 1', []),  # documentation may cite it
        ("x = 1  # a Cardano producer forges with its KES key", []),
        ('ROLE = "cardano"', ["1: 'cardano'"]),
        ("def kes_period(slot): pass", ["1: kes_period"]),
        ("slotsPerKESPeriod = 129600", ["1: slotsPerKESPeriod"]),
        ('FLAG = "--shelley-vrf-key"', ["1: '--shelley-vrf-key'"]),
        (
            'METRIC = "cardano_node_metrics_remainingKESPeriods_int"',
            ["1: 'cardano_node_metrics_remainingKESPeriods_int'"],
        ),
        ("class OCertIssuer: pass", ["1: OCertIssuer"]),
        ("import roles.cardano.ocert", ["1: roles.cardano.ocert"]),
        ('f(era="Byron")', ["1: 'Byron'"]),
        ("def takes(keys, makes, vrfy): return keys", []),  # kes inside words is not KES
        ('MSG = "the key takes effect"', []),
    ],
)
def test_the_check_finds_cardanos_words(source, expected):
    assert chain_names(source, names_cardano) == expected


def test_no_engine_code_names_cardano():
    modules = sorted(p for folder in ENGINE for p in folder.rglob("*.py"))
    assert len(modules) > 40  # the engine was found
    found = {str(p.relative_to(ROOT)): hits for p in modules if (hits := chain_names(p.read_text(), names_cardano))}
    assert found == {}


def code_strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string of ``source`` the code uses (documentation left out, as chain_names)."""
    tree = ast.parse(source)
    docs = documentation(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs]  # fmt: skip


def role_words() -> set[str]:
    """The built-in role's own words, read from its files: the lease's table, the backup's tables, its secrets,
    variables and file names (role.yaml), and the API paths its module calls (role.py: its strings starting with
    '/'); words of 5 characters or more (``db`` or ``.env`` would be found in any text). The lease's column names
    are left out: the engine's defaults for a role.yaml that omits them (docs/roles.md, "The role interface")."""
    role = yaml.safe_load((ROLE / "role.yaml").read_text())
    words = {role["lease"]["table"], *role["backup"]["key_tables"], role["backup"]["version_table"],
             *role["secrets"], *role["defaults"], *role["variables"],
             *(name for profile in role["profiles"].values() for name in profile["files"])}  # fmt: skip
    words |= {text for _, text in code_strings((ROLE / "role.py").read_text()) if text.startswith("/")}
    return {w for w in words if len(w) >= 5}


def test_the_role_words_are_read_from_the_role():
    words = role_words()
    assert {"lease_lock", "encrypted_key_rings", "api_email", "DATABASE_HOST", "secrets.toml"} <= words
    assert {"/sessions", "/v2/user/password"} <= words and "db" not in words


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('TABLE = "lease_lock"', [(1, "'lease_lock'")]),
        ('def f():\n    """Reads node_versions."""\n    return 1', []),  # documentation may cite them
        ('PATH = f"/v2/user/password?{x}"', [(1, "'/v2/user/password?'")]),
        ('KEY = "database"', []),  # an ordinary word
    ],
)
def test_the_role_words_check_reads_code_strings_only(source, expected):
    words = role_words()
    assert [(line, repr(text)) for line, text in code_strings(source) if any(w in text for w in words)] == expected


def test_no_engine_code_holds_the_chainlink_roles_own_words():
    words = role_words()
    found = {
        str(path.relative_to(ROOT)): hits
        for folder in ENGINE
        for path in sorted(folder.rglob("*.py"))
        if (
            hits := [
                f"{line}: {w}" for line, text in code_strings(path.read_text()) for w in sorted(words) if w in text
            ]
        )  # fmt: skip
    }
    assert found == {}
