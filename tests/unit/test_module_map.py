"""docs/architecture.md's module map names every package and module of nodeops/, tasks/, lab/ and roles/ once, in a
row of its own, and names nothing that does not exist: a module added, moved or removed without its line fails here."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("nodeops", "tasks", "lab", "roles")


def mapped(page: str) -> list[str]:
    """The first cell of each row of the page's module map (its ``## Module map`` section), backticks removed."""
    section = page.split("\n## Module map\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [row.split(" | ", 1)[0].removeprefix("| ").strip("`") for row in rows]


def code() -> set[str]:
    """Every module (``.py``, a package's ``__init__.py`` being the package) and every folder that holds one (a
    package, a namespace package such as nodeops/facts/, a role folder) under TREES, as paths from the root; a
    folder ends with ``/``."""
    found = set()
    for tree in TREES:
        for module in (ROOT / tree).rglob("*.py"):
            if "__pycache__" in module.parts:
                continue
            found.add(f"{module.parent.relative_to(ROOT)}/")
            if module.name != "__init__.py":
                found.add(str(module.relative_to(ROOT)))
    return found


def test_the_module_map_names_every_module_once_and_nothing_else():
    names = mapped((ROOT / "docs" / "architecture.md").read_text())
    assert len(names) > len(TREES), "no module map found"
    assert sorted({n for n in names if names.count(n) > 1}) == [], "named more than once"
    assert [n for n in names if not (ROOT / n).exists() or n.endswith("/") != (ROOT / n).is_dir()] == [], (
        "named, but no such module or folder"
    )
    assert sorted(code() - set(names)) == [], "modules and packages the map does not name"


def test_the_check_reads_a_map_of_rows():
    page = "# A\n\n## Module map\n\n| module | what |\n|---|---|\n| `tasks/` | tasks |\n| `lab/host.py` | x |\n\n## B\n"
    assert mapped(page) == ["tasks/", "lab/host.py"]
