"""The operator's project: found from the working folder by an upward search for nodeops.yaml; `init`
writes a commented starting point and never overwrites a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nodeops.errors import EXIT_INVALID, InvalidInput
from nodeops.inventory import parse_inventory
from nodeops.project import MARKER, NoProject, find_project, init_files, project_root, write_init
from tests.conftest import ROOT

NODEOPS = Path(sys.executable).with_name("nodeops")


@pytest.mark.parametrize(
    ("markers", "start", "expected"),
    [
        ((), "a/b", None),
        (("",), "", ""),
        (("",), "a/b/c", ""),  # upward, as git and Fabric search
        (("", "a"), "a/b", "a"),  # the nearest wins
        (("a/b",), "a", None),  # never downward
        (("a/nodeops.yaml/",), "a", None),  # a folder of that name is no marker
    ],
)
def test_find_project(tmp_path, markers, start, expected):
    for m in markers:
        if m.endswith("/"):
            (tmp_path / m).mkdir(parents=True)
        else:
            (tmp_path / m).mkdir(parents=True, exist_ok=True)
            (tmp_path / m / MARKER).write_text("# here\n")
    (tmp_path / start).mkdir(parents=True, exist_ok=True)
    got = find_project(tmp_path / start)
    assert got == (None if expected is None else (tmp_path / expected).resolve())


def test_no_project_names_where_it_looked_and_the_ways_out(tmp_path):
    with pytest.raises(NoProject) as err:
        project_root(tmp_path)
    assert err.value.exit_code == EXIT_INVALID
    assert str(err.value) == (f"--env: no nodeops project in {tmp_path} or above (no nodeops.yaml): run nodeops "
                              "init there, or give --inventory PATH")  # fmt: skip


@pytest.mark.parametrize("text", ["environment: prod\n", "- a\n", "a: [\n"])
def test_a_marker_with_content_is_refused_not_ignored(tmp_path, text):
    (tmp_path / MARKER).write_text(text)
    with pytest.raises(InvalidInput, match=rf"^{tmp_path}/nodeops.yaml: (unexpected content|unreadable)"):
        find_project(tmp_path)


def test_this_repository_is_a_project():
    assert find_project(ROOT / "tests" / "unit") == ROOT


def test_init_writes_a_project_that_loads_and_refuses_to_overwrite(tmp_path):
    written = write_init(tmp_path, "stage")
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert names == [".github/workflows/deploy.yml", ".gitignore", "inventory/stage.yaml", "nodeops.yaml",
                     "roles/README.md"]  # fmt: skip
    assert find_project(tmp_path / "inventory") == tmp_path
    inventory = parse_inventory((tmp_path / "inventory" / "stage.yaml").read_text(), tmp_path / "inventory" / "x")
    assert inventory.environment == "stage"
    assert "nodeops deploy --env stage" in (tmp_path / ".github/workflows/deploy.yml").read_text()
    yaml.safe_load((tmp_path / ".github/workflows/deploy.yml").read_text())
    (tmp_path / "roles" / "README.md").write_text("mine\n")
    (tmp_path / "inventory" / "stage.yaml").unlink()
    with pytest.raises(InvalidInput, match=r"init: \.github/workflows/deploy\.yml, \.gitignore, nodeops\.yaml, "
                                           r"roles/README\.md already exist in .*; nothing was written"):  # fmt: skip
        write_init(tmp_path, "stage")
    assert not (tmp_path / "inventory" / "stage.yaml").exists()  # nothing half written
    assert (tmp_path / "roles" / "README.md").read_text() == "mine\n"
    with pytest.raises(InvalidInput, match="invalid environment name"):
        write_init(tmp_path / "new", "../x")


def test_every_scaffold_file_is_written_with_its_environment():
    files = init_files("qa")
    assert all("{env}" not in f.text and "ENV" not in f.path for f in files)


def test_the_scaffold_inventorys_commented_webhook_loads_once_uncommented():
    [text] = [f.text for f in init_files("qa") if f.path == "inventory/qa.yaml"]
    assert "# notify:\n#   webhook: {backend: ci, name: qa/webhook, key: url}\n" in text
    uncommented = text.replace("# notify:\n#   webhook:", "notify:\n  webhook:")
    assert parse_inventory(uncommented, Path("/x/inventory/qa.yaml")).webhook.name == "qa/webhook"


def nodeops(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(NODEOPS), *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def test_env_means_the_projects_inventory_from_any_folder_inside_it(tmp_path):
    res = nodeops(tmp_path, "init", "--env", "qa")
    assert res.returncode == 0 and "wrote inventory/qa.yaml" in res.stdout, res.stderr
    (tmp_path / "deep" / "er").mkdir(parents=True)
    res = nodeops(tmp_path / "deep" / "er", "exec", "--env", "qa", "--nodes", "zz", "--command", "true")
    assert res.returncode == 2 and "unknown node 'zz' (known: cl-a, cl-b)" in res.stderr, res.stderr  # it loaded
    res = nodeops(tmp_path, "init")
    assert res.returncode == 2 and res.stderr.startswith("nodeops: init: ") and "already exist" in res.stderr
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    res = nodeops(outside, "exec", "--env", "qa", "--command", "true")
    assert res.returncode == 2 and "no nodeops project in" in res.stderr
