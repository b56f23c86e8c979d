"""The operator's project: found from the working folder by an upward search for nodeops.yaml; `init`
writes a commented starting point and never overwrites a file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nodeops.errors import EXIT_INVALID, InvalidInput
from nodeops.inventory import parse_inventory
from nodeops.project import MARKER, NoProject, find_project, init_files, plan_init, project_root, write_init
from tests.conftest import ROOT

NODEOPS = Path(sys.executable).with_name("nodeops")
NEW_PROJECT = (
    ".github/workflows/deploy.yml .gitignore inventory/prod.yaml nodeops.yaml roles/README.md "
    "templates/README.md"
)  # init's files


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
    done = write_init(tmp_path, "stage")
    assert (done.root, done.new_project) == (tmp_path, True)
    assert sorted(f.path for f in done.files) == NEW_PROJECT.replace("prod", "stage").split()
    assert find_project(tmp_path / "inventory") == tmp_path
    inventory = parse_inventory((tmp_path / "inventory" / "stage.yaml").read_text(), tmp_path / "inventory" / "x")
    assert inventory.environment == "stage"
    assert "nodeops deploy --env stage" in (tmp_path / ".github/workflows/deploy.yml").read_text()
    yaml.safe_load((tmp_path / ".github/workflows/deploy.yml").read_text())
    umask = os.umask(0o022)
    os.umask(umask)
    assert {(tmp_path / f.path).stat().st_mode & 0o777 for f in done.files} == {0o666 & ~umask}  # as open() makes
    (tmp_path / "roles" / "README.md").write_text("mine\n")
    (tmp_path / "inventory" / "stage.yaml").unlink()
    (tmp_path / "nodeops.yaml").unlink()  # no project any more: init starts one here, over nothing that exists
    with pytest.raises(InvalidInput, match=r"init: \.github/workflows/deploy\.yml, \.gitignore, roles/README\.md, "
                                           r"templates/README\.md already exist in .*; nothing was "
                                           r"written"):  # fmt: skip
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


def test_the_scaffold_inventory_shows_every_secret_backend_kind_and_each_loads_once_uncommented():
    """Issue 17's review: `nodeops init` showed only aws-secretsmanager and env, not sops, aws-ssm or aws-kms."""
    [text] = [f.text for f in init_files("qa") if f.path == "inventory/qa.yaml"]
    examples = {"ssm": ("aws-ssm", "db", "/qa/chainlink/db"),
                "kms": ("aws-kms", "keystore", "secrets/chainlink-wallet.b64"),
                "sops": ("sops", "api_password", "secrets/chainlink.sops.yaml")}  # fmt: skip
    for backend, (kind, secret, name) in examples.items():
        assert f"  # {backend}:" in text and f"  #   kind: {kind}\n" in text, backend
        assert f"      # {secret}: {{backend: {backend}, name: {name}" in text, backend
    lines = text.splitlines(keepends=True)
    start = lines.index("  # The other kinds (docs/secrets.md), to uncomment if your secrets live there:\n")
    lines[start + 1 : start + 9] = [line.replace("  # ", "  ", 1) for line in lines[start + 1 : start + 9]]
    uncommented = "".join(lines)
    for backend, (_kind, secret, _name) in examples.items():  # each example reference instead of the ci one
        mine = next(line for line in lines if line.startswith(f"      # {secret}: {{backend: {backend},"))
        ci = next(line for line in lines if line.startswith(f"      {secret}: {{backend: ci,"))
        uncommented = uncommented.replace(ci, mine.replace("      # ", "      ", 1)).replace(mine, "")
    inventory = parse_inventory(uncommented, Path("/x/inventory/qa.yaml"))
    assert {b.name: b.kind for b in inventory.secret_backends.values()} == {
        "aws": "aws-secretsmanager", "ci": "env", "ssm": "aws-ssm", "kms": "aws-kms", "sops": "sops"}  # fmt: skip
    secrets = inventory.services["chainlink"].secrets
    assert {s: (secrets[s].backend, secrets[s].name) for s in ("db", "keystore", "api_password")} == {
        s: (b, n) for b, (_k, s, n) in examples.items()}  # fmt: skip


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
    assert (
        res.returncode == 2 and res.stderr.startswith("nodeops: init: ") and "a nodeops project already" in res.stderr
    )
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    res = nodeops(outside, "exec", "--env", "qa", "--command", "true")
    assert res.returncode == 2 and "no nodeops project in" in res.stderr


# -- init inside a project: refused, or one more environment, or (asked for) a separate nested project ---------------
OPS, SUB = Path("/ops"), Path("/ops/a/b")
INSIDE = (
    f"init: {SUB} is inside the nodeops project at {OPS} (nodeops.yaml); nothing was written: add an environment to it "
)
INSIDE += "with nodeops init --env NAME, or start a separate project here with nodeops init --nested"
AT_ROOT = (
    f"init: {OPS} is a nodeops project already (nodeops.yaml); nothing was written: add an environment to it with "
)
AT_ROOT += "nodeops init --env NAME"
NESTED_AT_ROOT = f"init --nested: {OPS} is a nodeops project's root already (nodeops.yaml); nothing was written: a "
NESTED_AT_ROOT += "nested project goes in a folder below it (or add an environment: nodeops init --env NAME)"


@pytest.mark.parametrize(
    ("here", "project", "env", "nested", "expected"),
    [
        (OPS, None, None, False, (OPS, NEW_PROJECT, True)),  # no project around: a new one, prod by default
        (OPS, None, "qa", False, (OPS, NEW_PROJECT.replace("prod", "qa"), True)),
        (OPS, None, None, True, (OPS, NEW_PROJECT, True)),  # --nested with nothing to nest in: a project all the same
        (OPS, OPS, None, False, AT_ROOT),  # was: files refused one by one, never saying it is a project
        (SUB, OPS, None, False, INSIDE),  # was: a second project silently nested in a/b
        (OPS, OPS, "staging", False, (OPS, "inventory/staging.yaml", False)),  # one more environment, nothing else
        (SUB, OPS, "staging", False, (OPS, "inventory/staging.yaml", False)),  # in the root, however deep here is
        (SUB, SUB.parent, "staging", False, (SUB.parent, "inventory/staging.yaml", False)),  # the nearest project
        (SUB, OPS, None, True, (SUB, NEW_PROJECT, True)),  # asked for: a separate project, nearer, so it wins
        (SUB, OPS, "qa", True, (SUB, NEW_PROJECT.replace("prod", "qa"), True)),
        (OPS, OPS, None, True, NESTED_AT_ROOT),
        (OPS, OPS, "qa", True, NESTED_AT_ROOT),
        (SUB, OPS, "../x", False, "invalid environment name '../x'"),  # before anything else
        (OPS, None, "Prod", False, "invalid environment name 'Prod'"),
    ],
)
def test_plan_init(here, project, env, nested, expected):
    if isinstance(expected, str):
        with pytest.raises(InvalidInput) as err:
            plan_init(here, project, env, nested)
        assert str(err.value).startswith(expected) and err.value.exit_code == EXIT_INVALID
        return
    init = plan_init(here, project, env, nested)
    root, paths, new_project = expected
    assert (init.root, [f.path for f in init.files], init.new_project) == (root, paths.split(), new_project)


def test_an_added_environment_is_the_same_commented_starting_point_as_a_new_projects():
    [added] = plan_init(OPS, OPS, "staging", False).files
    assert added == next(f for f in init_files("staging") if f.path == "inventory/staging.yaml")


def tree(folder: Path) -> dict[str, str]:
    """Every entry under folder: a file's text, a folder's "/" and a symbolic link's "-> target"."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = f"-> {os.readlink(p)}" if p.is_symlink() else "/" if p.is_dir() else p.read_text()
    return out


PROJECT = {"nodeops.yaml": "# mine\n", "inventory/prod.yaml": "mine\n", "a/b/": ""}  # an operator's project


@pytest.mark.parametrize(
    ("before", "here", "args", "added", "error"),
    [
        ({}, "", {}, NEW_PROJECT, None),
        (PROJECT, "", {}, "", "init: {root} is a nodeops project already"),
        (PROJECT, "a/b", {}, "", "init: {root}/a/b is inside the nodeops project at {root} "),
        (PROJECT, "a/b", {"env": "staging"}, "inventory/staging.yaml", None),
        (
            PROJECT,
            "a/b",
            {"env": "prod"},
            "",
            "init: inventory/prod.yaml already exists in {root}; nothing was written "
            "(edit that file, or choose another --env name)",
        ),
        ({"nodeops.yaml": "# mine\n"}, "", {"env": "qa"}, "inventory/qa.yaml", None),  # inventory/ made if missing
        (
            {**PROJECT, "inventory/qa.yaml": "-> gone.yaml"},
            "",
            {"env": "qa"},
            "",
            "init: inventory/qa.yaml already exists in {root}",
        ),  # a dangling link is there too
        (PROJECT, "a/b", {"nested": True}, " ".join(f"a/b/{p}" for p in NEW_PROJECT.split()), None),
        (PROJECT, "", {"nested": True}, "", "init --nested: {root} is a nodeops project's root already"),
        # roles is a file: the 5th file cannot be written; the 4 before it are taken back, folders included
        (
            {"roles": "x\n"},
            "",
            {},
            "",
            "init: cannot write roles/README.md in {root}: File exists: {root}/roles; nothing was written",
        ),
        ({"nodeops.yaml": "env: prod\n", "a/": ""}, "a", {"env": "qa"}, "", "{root}/nodeops.yaml: unexpected content"),
    ],
)
def test_write_init_writes_what_it_says_or_nothing(tmp_path, before, here, args, added, error):
    for rel, text in before.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("/"):
            path.mkdir(exist_ok=True)
        elif text.startswith("-> "):
            path.symlink_to(text[3:])
        else:
            path.write_text(text)
    was = tree(tmp_path)
    if error:
        with pytest.raises(InvalidInput) as err:
            write_init(tmp_path / here, **args)
        assert str(err.value).startswith(error.format(root=tmp_path)) and err.value.exit_code == EXIT_INVALID
        assert tree(tmp_path) == was  # nothing written, nothing left behind
        return
    done = write_init(tmp_path / here, **args)
    now = tree(tmp_path)
    new_files = sorted(k for k in now.keys() - was.keys() if now[k] != "/")
    assert new_files == sorted(added.split())
    assert {k: now[k] for k in was} == was  # nothing that was there changed
    assert {(done.root / f.path).read_text() for f in done.files} == {f.text for f in done.files}


@pytest.mark.parametrize(
    ("fail_at", "failure", "expected"),
    [
        (
            2,
            "appears",
            InvalidInput(
                "init: inventory/prod.yaml appeared in {root} meanwhile; nothing was written "
                "(move them away, or init another folder)"
            ),
        ),
        (4, "appears", InvalidInput("init: roles/README.md appeared in {root} meanwhile; nothing was written")),
        (
            0,
            OSError(28, "No space left on device"),
            InvalidInput("init: cannot write .github/workflows/deploy.yml in {root}: No space left on device; nothing"),
        ),
        (3, KeyboardInterrupt(), KeyboardInterrupt()),  # Ctrl-C: taken back, then the interrupt goes on
    ],
)
def test_a_write_that_fails_half_way_takes_back_what_it_placed(tmp_path, monkeypatch, fail_at, failure, expected):
    """Files are placed one by one (os.link): the one at fail_at fails, after fail_at files were placed."""
    real_link, calls = os.link, []

    def link(src, dst):
        calls.append(dst)
        if len(calls) - 1 == fail_at:
            if failure == "appears":  # someone else's file, made between the check and the link: never replaced
                Path(dst).write_text("theirs\n")
            else:
                raise failure
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(type(expected)) as err:
        write_init(tmp_path)
    assert str(err.value).startswith(str(expected).format(root=tmp_path))
    left = {}  # what is left: only the other's file, and the folders it is in
    if failure == "appears":
        theirs = Path(calls[fail_at]).relative_to(tmp_path)
        left = {p.as_posix(): "/" for p in theirs.parents if p != Path(".")} | {theirs.as_posix(): "theirs\n"}
    assert tree(tmp_path) == left


@pytest.mark.parametrize(
    ("cwd", "args", "code", "out"),
    [
        ("", ["init"], 2, "nodeops: init: {root} is a nodeops project already (nodeops.yaml); nothing was written: "
                          "add an environment to it with nodeops init --env NAME\n"),
        ("a/b", ["init"], 2, "nodeops: init: {root}/a/b is inside the nodeops project at {root} (nodeops.yaml); "
                             "nothing was written: add an environment to it with nodeops init --env NAME, or start a "
                             "separate project here with nodeops init --nested\n"),  # was: a project nested silently
        ("a/b", ["init", "--env", "prod"], 2, "nodeops: init: inventory/prod.yaml already exists in {root}; nothing "
                                              "was written (edit that file, or choose another --env name)\n"),
        ("a/b", ["init", "--env", "staging"], 0, "wrote {root}/inventory/staging.yaml\nnext: replace every TODO in "
                                                 "inventory/staging.yaml, then: nodeops deploy --env staging "
                                                 "--dry-run\n"),
        ("a/b", ["init", "--nested", "--env", "qa"], 0, "wrote .github/workflows/deploy.yml\n"),
    ],
)  # fmt: skip
def test_init_in_a_project_on_the_command_line(tmp_path, cwd, args, code, out):
    write_init(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    res = nodeops(tmp_path / cwd, *args)
    assert res.returncode == code, res.stderr
    if code:
        assert (res.stdout, res.stderr) == ("", out.format(root=tmp_path))
    else:
        assert res.stderr == "" and res.stdout.startswith(out.format(root=tmp_path))
