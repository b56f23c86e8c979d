"""nodeops init: a commented starting point for the operator's own repository, in the working folder."""

from __future__ import annotations

from pathlib import Path

from invoke import task

from nodeops.project import write_init

from ._cli import cli


@task(help={"env": "the first environment: writes inventory/ENV.yaml (default prod)"})
@cli
def init(c, env="prod"):
    """Start a nodeops project here: nodeops.yaml, inventory/ENV.yaml, roles/, a CI workflow, .gitignore."""
    root = Path.cwd()
    for path in write_init(root, env):
        print(f"wrote {path.relative_to(root)}")
    print(f"next: replace every TODO in inventory/{env}.yaml, then: nodeops deploy --env {env} --dry-run")
