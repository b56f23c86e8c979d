"""Engine modules import edges, never the libraries that reach the world (issue 15, "edges with homes").

Read from the source (the AST of every module under nodeops/), not from what a run happens to import: an
import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "nodeops"

# A package that reaches the world -> the one edge allowed to import it (paths from the repository root): a module,
# or a package ending in "/" whose every module may. A row covers the package's submodules too ("psycopg" covers
# psycopg.sql and psycopg.errors). Not listed, so allowed anywhere: urllib.parse, which only splits and quotes
# strings and does no I/O (the inventory, render, notify and secrets modules check and build URLs with it).
EDGES = {
    "fabric": "nodeops/edges/ssh/",
    "paramiko": "nodeops/edges/ssh/",
    "invoke": "nodeops/edges/ssh/",
    "urllib.request": "nodeops/edges/http.py",
    "urllib.error": "nodeops/edges/http.py",
    "http.client": "nodeops/edges/http.py",
    "psycopg": "nodeops/edges/postgres.py",
    "subprocess": "nodeops/edges/proc.py",
    "boto3": "nodeops/edges/aws.py",
    "botocore": "nodeops/edges/aws.py",
}


def imported(source: str) -> set[str]:
    """Every module name ``source`` imports, anywhere in it: ``import a.b`` gives a.b; ``from a import b`` gives
    a and a.b (b may be a submodule: ``from urllib import request``). Relative imports are nodeops' own."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def covers(package: str, name: str) -> bool:
    return name == package or name.startswith(package + ".")


def within(module: str, edge: str) -> bool:
    """``module`` is ``edge``, or lies in it when ``edge`` is a package ("nodeops/edges/ssh/")."""
    return module == edge or (edge.endswith("/") and module.startswith(edge))


def misplaced(module: str, source: str) -> list[str]:
    """``package (only in edge)`` for each package of EDGES that ``module`` (a path from the root) imports
    without being in that package's edge; sorted."""
    return sorted(
        f"{package} (only in {edge})"
        for package, edge in EDGES.items()
        if not within(module, edge) and any(covers(package, name) for name in imported(source))
    )


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("nodeops/deploy.py", "import urllib.request", ["urllib.request (only in nodeops/edges/http.py)"]),
        ("nodeops/deploy.py", "from urllib import request", ["urllib.request (only in nodeops/edges/http.py)"]),
        ("nodeops/deploy.py", "from urllib.parse import quote", []),
        ("nodeops/lease.py", "def f():\n    import psycopg.errors", ["psycopg (only in nodeops/edges/postgres.py)"]),
        ("nodeops/rotate/database.py", "from psycopg import sql", ["psycopg (only in nodeops/edges/postgres.py)"]),
        ("nodeops/edges/postgres.py", "import psycopg\nfrom psycopg import sql", []),
        ("nodeops/edges/http.py", "import paramiko", ["paramiko (only in nodeops/edges/ssh/)"]),
        ("nodeops/edges/ssh/connection.py", "from fabric import Connection\nimport paramiko", []),
        ("nodeops/edges/ssh/scan.py", "import paramiko", []),
        ("nodeops/edges/ssh.py", "import paramiko", ["paramiko (only in nodeops/edges/ssh/)"]),  # not in the package
        ("nodeops/edges/sshx/a.py", "import paramiko", ["paramiko (only in nodeops/edges/ssh/)"]),
        ("nodeops/verify.py", "from invoke.exceptions import Exit", ["invoke (only in nodeops/edges/ssh/)"]),
        ("nodeops/backup.py", "import subprocess", ["subprocess (only in nodeops/edges/proc.py)"]),
        ("nodeops/backup.py", "import subprocessing", []),  # a name that starts like one is not it
        ("nodeops/secrets/aws.py", "import boto3", ["boto3 (only in nodeops/edges/aws.py)"]),
        ("nodeops/rotate/versions.py", "from botocore import exceptions", ["botocore (only in nodeops/edges/aws.py)"]),
        ("nodeops/edges/aws.py", "import boto3\nfrom botocore.config import Config", []),
        (
            "nodeops/check.py",
            "import http.client\nfrom nodeops.edges import http",
            ["http.client (only in nodeops/edges/http.py)"],
        ),
        ("nodeops/check.py", "from . import plan", []),
    ],
)
def test_the_check_reads_every_form_of_import(module, source, expected):
    assert misplaced(module, source) == expected


def test_every_edge_of_the_table_exists():
    assert (
        sorted(e for e in set(EDGES.values()) if not ((ROOT / e).is_dir() if e.endswith("/") else (ROOT / e).is_file()))
        == []
    )


def test_only_edges_import_what_reaches_the_world():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20  # the package was found
    found = {
        str(path.relative_to(ROOT)): wrong
        for path in modules
        if (wrong := misplaced(str(path.relative_to(ROOT)), path.read_text()))
    }
    assert found == {}
