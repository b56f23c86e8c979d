"""nodeops init: a commented starting point for the operator's own repository in the working folder, or one
more environment in the project around it."""

from __future__ import annotations

from pathlib import Path

from invoke import task

from nodeops.project import write_init

from ._cli import cli


@task(
    help={
        "env": "the environment: in a new project its first one (default prod); inside an existing project, "
        "adds only inventory/ENV.yaml to it",
        "nested": "start a separate project in this folder even though a project above holds it",
    }
)
@cli
def init(c, env=None, nested=False):
    """Start a nodeops project here, or add an environment (--env) to the project around this folder."""
    here = Path.cwd().resolve()
    done = write_init(here, env, nested)
    for f in done.files:
        path = done.root / f.path
        print(f"wrote {path.relative_to(here) if path.is_relative_to(here) else path}")
    inventory = next(f.path for f in done.files if f.path.startswith("inventory/"))
    name = Path(inventory).stem
    print(f"next: replace every TODO in {inventory}, then: nodeops deploy --env {name} --dry-run")
