"""Every task is listed with a one-line help, every flag documented; the example CI pipeline stays true."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator

import pytest
import yaml

from nodeops.inventory import parse_inventory
from nodeops.project import init_files
from nodeops.roles import role_for
from nodeops.secrets.env import env_variable_name
from tasks import ns
from tasks.program import program
from tests.conftest import fab

TASKS = sorted(ns.task_names)


@contextlib.contextmanager
def help_kept() -> Iterator[None]:
    """Every task's help put back after the block: Invoke takes each flag's help out of its task as it reads its
    arguments (Task.get_arguments: help.pop), so that later tests (and later reads here) see it whole."""
    kept = {name: dict(ns[name].help) for name in TASKS}
    try:
        yield
    finally:
        for name, help_ in kept.items():
            ns[name].help = help_


def shown(capsys, *argv: str) -> str:
    """What ``nodeops ARGV`` prints, run in this process (the console script's program)."""
    with help_kept():
        program.run(["nodeops", *argv], exit=False)
    return capsys.readouterr().out


def test_fab_list_shows_every_task_with_a_one_line_help():
    listed = fab("--list")
    assert listed.returncode == 0, listed.stderr
    for name in TASKS:
        line = next((line for line in listed.stdout.splitlines() if line.strip().startswith(name + " ")), None)
        assert line is not None and len(line.split(None, 1)) == 2, f"{name} has no help in fab --list"


@pytest.mark.parametrize("name", TASKS)
def test_the_line_fab_list_shows_is_a_whole_sentence(name):
    """review14b #11: --list shows a docstring's first line; backup's stopped at "...upload it" (cut mid-sentence)."""
    first = (ns[name].__doc__ or "").strip().splitlines()[0]
    assert first.endswith("."), f"{name}: --list shows {first!r}, not a whole sentence"


@pytest.mark.parametrize("name", TASKS)
def test_every_flag_of_every_task_is_documented(name, capsys):
    task = ns[name]
    assert (task.__doc__ or "").strip(), f"{name}: no docstring"
    with help_kept():
        undocumented = [arg.names[0] for arg in task.get_arguments() if not (arg.help or "").strip()]
    assert not undocumented, f"{name}: flags without help: {undocumented}"
    assert "Options:" in shown(capsys, "--help", name)


def test_the_init_pipeline_runs_real_tasks_and_names_the_env_variables_the_backend_reads(tmp_path):
    written = {f.path: f.text for f in init_files("prod")}  # what nodeops init --env prod writes
    pipeline = yaml.safe_load(written[".github/workflows/deploy.yml"])
    job = pipeline["jobs"]["deploy"]
    steps = job["steps"]
    commands = [s["run"].split()[1] for s in steps if s.get("run", "").startswith("nodeops ")]
    assert commands and set(commands) <= set(TASKS)
    deploy = next(s for s in steps if s.get("run", "").startswith("nodeops deploy --env prod"))
    example = parse_inventory(written["inventory/prod.yaml"], tmp_path / "inventory" / "prod.yaml")
    prefix = next(b.prefix for b in example.secret_backends.values() if b.kind == "env")
    wanted = {env_variable_name(prefix, ref.name, ref.key) for s in example.services.values()
              for name, ref in s.secrets.items() if name not in role_for(example, s).admin_secrets}  # fmt: skip
    for step in steps:  # deploy and verify both render the files: each needs every secret, no admin credential
        if step.get("run", "").startswith(("nodeops deploy", "nodeops verify")):
            given = {k for k in {**job.get("env", {}), **step.get("env", {})} if k.startswith("NODEOPS_")}
            assert given == wanted, step["name"]
    # GitHub's default shell is `bash -e {0}`, without pipefail: `fab deploy | tee` would hide a failed deploy.
    # `shell: bash` (on the step or as the job's default) runs `bash --noprofile --norc -eo pipefail {0}`.
    shells = [(d or {}).get("run", {}).get("shell") for d in (job.get("defaults"), pipeline.get("defaults"))]
    default = next(filter(None, shells), None)  # the job's default, else the workflow's
    piped = [s for s in steps if re.search(r"(?<!\|)\|(?!\|)", s.get("run", ""))]  # a pipe, not `||`
    assert deploy in piped, "the deploy step pipes into tee: the check below must cover it"
    assert all(s.get("shell", default) == "bash" for s in piped), [s["name"] for s in piped]


def test_the_init_pipeline_runs_one_job_per_shard_of_the_matrix_nodeops_shards_prints(tmp_path):
    written = {f.path: f.text for f in init_files("prod")}
    pipeline = yaml.safe_load(written[".github/workflows/deploy.yml"])
    split = next(s for s in pipeline["jobs"]["shards"]["steps"] if s.get("id") == "split")
    assert "nodeops shards --env prod --count" in split["run"] and "--json" in split["run"]
    job = pipeline["jobs"]["deploy"]
    assert job["needs"] == "shards" and job["strategy"]["matrix"] == "${{ fromJSON(needs.shards.outputs.matrix) }}"
    acting = [s["run"] for s in job["steps"] if s.get("run", "").startswith(("nodeops deploy", "nodeops verify"))]
    assert acting and all("--shard ${{ matrix.shard }}" in run for run in acting)
    inventory = tmp_path / "prod.yaml"
    inventory.write_text(written["inventory/prod.yaml"])
    printed = fab("shards", "--inventory", str(inventory), "--count", "4", "--json")
    assert printed.returncode == 0, printed.stderr
    rows = json.loads(printed.stdout)["include"]  # the matrix: every key of a row is a value the job may use
    assert rows and all(set(row) == {"shard", "services", "bastions"} for row in rows)


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("name", TASKS)
def test_a_flag_for_help_after_the_task_shows_its_help(name, flag, capsys):
    """`nodeops exec -h` ran the task: an argument without a default was positional, and took `-h` as its value."""
    out = shown(capsys, name, flag)
    assert out.startswith(f"Usage: nodeops [--core-opts] {name} ") and "Options:" in out, out[:200]
