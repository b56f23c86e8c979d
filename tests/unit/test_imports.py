"""Engine modules import edges, never the libraries that reach the world (issue 15, "edges with homes").

Read from the source (the AST of every module of the wheel: nodeops/, tasks/ (nodeops.tasks) and the built-in roles'
Python, roles/), not from what a run happens to import: an import inside a function counts as much as one at the top.
The command line is the one place besides the ssh edge that uses Fabric and Invoke as what they are there: tasks/
declares Invoke tasks (``@task``, ``Exit``), and tasks/program.py is the ``fab`` program (a subclass of Fabric's).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("nodeops", "tasks", "roles")  # the wheel's Python

# A package that reaches the world -> the one edge allowed to import it (paths from the repository root): a module,
# or a package ending in "/" whose every module may. A row covers the package's submodules too ("psycopg" covers
# psycopg.sql and psycopg.errors). Not listed, so allowed anywhere: urllib.parse, which only splits and quotes
# strings and does no I/O (the inventory, render, notify and secrets modules check and build URLs with it).
EDGES = {
    "fabric": ("nodeops/edges/ssh/", "tasks/program.py"),
    "paramiko": "nodeops/edges/ssh/",
    "invoke": ("nodeops/edges/ssh/", "tasks/"),
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


def places(edge: str | tuple[str, ...]) -> tuple[str, ...]:
    return (edge,) if isinstance(edge, str) else edge


def within(module: str, edge: str | tuple[str, ...]) -> bool:
    """``module`` is one of ``edge``'s places, or lies in one that is a package ("nodeops/edges/ssh/")."""
    return any(module == place or (place.endswith("/") and module.startswith(place)) for place in places(edge))


def misplaced(module: str, source: str) -> list[str]:
    """``package (only in edge)`` for each package of EDGES that ``module`` (a path from the root) imports
    without being in one of that package's places; sorted."""
    return sorted(
        f"{package} (only in {' or '.join(places(edge))})"
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
        ("nodeops/verify.py", "from invoke.exceptions import Exit", ["invoke (only in nodeops/edges/ssh/ or tasks/)"]),
        ("tasks/deploy.py", "from invoke import Exit, task", []),
        (
            "tasks/deploy.py",
            "from fabric import Connection",
            ["fabric (only in nodeops/edges/ssh/ or tasks/program.py)"],
        ),
        ("tasks/program.py", "from fabric.main import Fab", []),
        ("tasks/status.py", "import psycopg", ["psycopg (only in nodeops/edges/postgres.py)"]),
        ("roles/chainlink/role.py", "import urllib.request", ["urllib.request (only in nodeops/edges/http.py)"]),
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
    named = {place for edge in EDGES.values() for place in places(edge)}
    assert sorted(e for e in named if not ((ROOT / e).is_dir() if e.endswith("/") else (ROOT / e).is_file())) == []


def test_only_edges_import_what_reaches_the_world():
    modules = sorted(path for folder in SCANNED for path in (ROOT / folder).rglob("*.py"))
    assert {folder: any(p.is_relative_to(ROOT / folder) for p in modules) for folder in SCANNED} == dict.fromkeys(
        SCANNED, True
    )  # each was found
    found = {
        str(path.relative_to(ROOT)): wrong
        for path in modules
        if (wrong := misplaced(str(path.relative_to(ROOT)), path.read_text()))
    }
    assert found == {}
