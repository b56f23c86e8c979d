"""Activation models on a lab of its own (one deployed Chainlink pair): the model a role.yaml chooses is what deploy
plans from the real nodes (a dry run changes nothing); promote-standby refuses an all role, which has no standby.

The role is the operator's copy of the built-in one (a project in tmp_path) saying ``activation: all``, its
lease-only keys removed (``lease:``, ``backup:``, the database password rotation, ``.api``'s ``read: lease``: the
validator refuses them under ``all``). Deploying it for real (every node serving, the simulator without the lease,
a rolling upgrade behind a load balancer, a failed replace undone) is tests/e2e/test_activation_all.py, on a lab of
its own.
"""

from __future__ import annotations

import pytest
import yaml

from nodeops.roles import BUILTIN_ROLES
from tests.conftest import fab
from tests.e2e.conftest import inventory_variant, own_lab
from tests.e2e.probe import events

pytestmark = pytest.mark.lab

NAME, CIDR = "act2", "10.211.0.0/16"
SERVICE = "cl1"


@pytest.fixture(scope="module")
def act(root):
    with own_lab(NAME, CIDR, nodes=2, deployed=True) as lab:
        yield lab


def all_role(project) -> None:
    """``project/roles/chainlink/role.yaml``: the built-in role with ``activation: all`` and no lease."""
    doc = yaml.safe_load((BUILTIN_ROLES / "chainlink" / "role.yaml").read_text())
    assert doc.pop("activation") == "lease"
    doc = {**doc, "activation": "all"}
    del doc["lease"], doc["backup"], doc["rotation"]["db"]
    for profile in doc["profiles"].values():
        profile["files"][".api"].pop("read")
    (project / "roles" / "chainlink").mkdir(parents=True)
    (project / "roles" / "chainlink" / "role.yaml").write_text(yaml.safe_dump(doc))


def containers() -> dict[str, str]:
    """Each node's container id and start time: what any change would move."""
    res = fab("exec", "--env", NAME, "--json", "--command",
              f"docker inspect --format '{{{{.Id}}}} {{{{.State.StartedAt}}}}' nodeops-{SERVICE}")  # fmt: skip
    return {e["node"]: e["stdout"].strip() for e in events(res) if e["event"] == "host"}


def test_the_roles_model_is_planned_from_the_real_nodes_and_promote_standby_refuses_all(act, tmp_path):
    before = containers()
    assert set(before) == {f"{SERVICE}-a", f"{SERVICE}-b"} and all(before.values()), before
    all_role(tmp_path)
    path = inventory_variant(act.inventory_file, tmp_path / "inventory.yaml", lambda _doc: None)
    dry = fab("deploy", "--inventory", str(path), "--service", SERVICE, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    planned = next(e["steps"] for e in events(dry) if e.get("message", "").startswith("plan:"))
    # the lease pair as deployed: a (the preferred active) serves, b waits silently. Under all, b answers nothing: it
    # goes first, replaced and awaited serving while a serves; then a, while b serves (both run the lease's config:
    # under all Chainlink's config says [Database.Lock] Enabled = false, another config hash): no handover, no
    # await-waiting
    assert planned == [
        f"replace {SERVICE}-b (rolling, {SERVICE}-a serves)",
        f"await-serving {SERVICE}-b",
        f"replace {SERVICE}-a (rolling, {SERVICE}-b serves)",
        f"await-serving {SERVICE}-a",
    ], planned
    assert containers() == before  # a dry run changes nothing
    promoted = fab("promote-standby", "--inventory", str(path), "--service", SERVICE, "--json")
    out = promoted.stdout + promoted.stderr
    assert promoted.returncode == 4 and "activation all has no standby to promote: every node serves" in out, out
    assert containers() == before
    again = fab("deploy", "--inventory", str(act.inventory_file), "--service", SERVICE, "--dry-run", "--json")
    assert again.returncode == 0, again.stdout + again.stderr  # the lease role, as deployed: nothing to change
    assert next(e["steps"] for e in events(again) if e.get("message", "").startswith("plan:")) == [], again.stdout
