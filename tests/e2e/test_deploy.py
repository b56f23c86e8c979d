"""fab deploy on a lab of its own: two pairs, the whole path, with sentinel secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from lab.aws import read_secret, secrets_client
from lab.daemons import process_alive
from lab.host import Lab
from nodeops.inventory import load_inventory
from nodeops.roles import BUILTIN_TEMPLATES
from tests.conftest import FAB, ROOT, fab
from tests.e2e.conftest import inventory_variant, own_lab
from tests.e2e.probe import (
    PairProbe,
    Watch,
    events,
    events_of,
    files_on,
    lb_answers,
    on_the_operators_disk,
    serving_nodes,
    status,
    status_entries,
    superuser_sql,
    wait_for,
)

pytestmark = pytest.mark.lab

NAME, CIDR = "dep", "10.220.0.0/16"
# Every character that breaks a naive .env, TOML, URL or shell rendering, and a space.
SENTINEL = "Sx9%\\'\"$`#=&@:/? q-Z"


@pytest.fixture(scope="module")
def dep(root):
    with own_lab(NAME, CIDR) as lab:
        yield lab


def set_sentinel_secrets(lab: Lab, service: str) -> dict[str, str]:
    """Give ``service`` sentinel values in Secrets Manager (and its database role), before its first deploy."""
    port = lab.load_state()["secrets_port"]
    client = secrets_client(port)
    values = {"db": f"Db1{SENTINEL}db", "keystore": f"Ks1{SENTINEL}ks", "api": f"Api1{SENTINEL}api"}
    client.put_secret_value(SecretId=f"{service}/DBSecret",
                            SecretString=json.dumps({"username": service, "password": values["db"]}))  # fmt: skip
    client.put_secret_value(
        SecretId=f"{service}/WalletSecret", SecretString=json.dumps({"password": values["keystore"]})
    )
    api = json.dumps({"username": read_secret(client, f"{service}/ApiSecret")["username"], "password": values["api"]})
    client.put_secret_value(SecretId=f"{service}/ApiSecret", SecretString=api)
    literal = values["db"].replace("'", "''")
    superuser_sql(lab, f"ALTER ROLE {service} PASSWORD '{literal}';")  # on stdin: never in an argv
    return values


def fab_with(dep: Lab, suffix: str, edit, task: str, *args: str) -> subprocess.CompletedProcess:
    """`fab TASK ARGS` with a variant of the lab inventory (``edit`` applied); the variant is removed after."""
    path = inventory_variant(dep.inventory_file, dep.inventory_file.with_name(f"{NAME}-{suffix}.yaml"), edit)
    try:
        return fab(task, "--inventory", str(path), *args)
    finally:
        path.unlink()


def deploy_with(dep: Lab, suffix: str, edit, *args: str) -> subprocess.CompletedProcess:
    return fab_with(dep, suffix, edit, "deploy", *args)


def inspect_field(service: str, nodes: str, template: str) -> dict[str, str]:
    """`docker inspect --format TEMPLATE` of the service's container, per node, through the bastion."""
    res = fab("exec", "--env", NAME, "--nodes", nodes, "--json", "--command",
              f"docker inspect --format '{template}' nodeops-{service}")  # fmt: skip
    return {e["node"]: e["stdout"].strip() for e in events(res) if e["event"] == "host"}


def labels(service: str, nodes: str, label: str = "config") -> dict[str, str]:
    """A label of the service's container, per node (config hash, version, ...)."""
    return inspect_field(service, nodes, f'{{{{index .Config.Labels "io.nodeops.{label}"}}}}')


def test_deploy_fresh_then_nothing_then_upgrade(dep, figures):
    since = time.time()
    values = set_sentinel_secrets(dep, "cl2")
    inv = load_inventory(dep.inventory_file)
    with Watch(dep, [n.name for n in inv.nodes]) as watch:
        # under a pseudo-terminal, as a person runs it: the human progress lines, not JSON
        tty = ["script", "--quiet", "--return", "--command", f"{FAB} deploy --env {NAME}", "/dev/null"]
        first = subprocess.run(tty, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    assert "cl2-a" in out and "serving after" in out and not out.lstrip().startswith("{")
    for service in inv.services.values():
        active, standby = service.nodes  # a fresh pair: the preferred active took the lease
        with urllib.request.urlopen(service.load_balancer, timeout=5) as resp:
            assert resp.status == 200
        assert files_on(dep, active.name, service.name) == []  # every secret file shredded
        assert files_on(dep, standby.name, service.name) == [".api"]  # read only once it holds the lease

    # The sentinel secrets worked (cl2 booted against PostgreSQL with them) and leaked nowhere.
    for value in values.values():
        for form in (value, SENTINEL):
            assert form not in out
            assert not any(form in argv for argv in watch.argvs), "a secret was in a process argument list"
    # ... and the sampler did see the processes that would carry them: each service's docker run and upload
    for service in inv.services:
        assert watch.saw("docker", f"run --detach --name nodeops-{service} "), f"no docker run of {service} seen"
        assert watch.saw(f"cat > /run/nodeops/{service}/"), f"no upload of {service}'s files seen"
    # Never a group or world bit, not even for an instant (`install` creates the empty file 0600,
    # then sets 0400 and the owner; the content is written after).
    assert watch.modes and watch.modes <= {"0o400", "0o600"}, watch.modes
    tmpfs = fab("exec", "--env", NAME, "--json", "--command", "stat --file-system --format %T /run/nodeops")
    assert {e["stdout"].strip() for e in events(tmpfs) if e["event"] == "host"} == {"tmpfs"}
    inspect = fab("exec", "--env", NAME, "--nodes", "cl2-a,cl2-b", "--command", "docker inspect nodeops-cl2")
    assert inspect.returncode == 0 and SENTINEL not in inspect.stdout and "Sx9" not in inspect.stdout
    written = on_the_operators_disk([SENTINEL], since, dep.dir)
    assert written == [], f"a secret reached the operator's disk: {written}"

    again = fab("deploy", "--env", NAME, "--json")
    assert again.returncode == 0, again.stderr
    summary = events(again)[-1]["message"]
    assert summary == "deployed 2 service(s): 0 changed, 2 unchanged"

    # Version 2 over version 1: standby first, one planned handover, never two actives.
    doc = yaml.safe_load(dep.inventory_file.read_text())
    doc["services"]["cl1"]["image"] = doc["services"]["cl1"]["image"].replace(":2.10.0", ":2.11.0")
    dep.inventory_file.write_text(yaml.safe_dump(doc))  # as an operator would: edit the inventory, deploy
    with PairProbe(dep.inventory_file, "cl1") as probe:
        upgrade = fab("deploy", "--env", NAME, "--service", "cl1", "--json")
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert not probe.both, "two nodes served at once"
    assert len(probe.gaps) <= 1, probe.explain()
    figures(f"upgrade 2.10.0 -> 2.11.0: load balancer gap {max(probe.gaps, default=0):.2f}s "
          f"over {len(probe.samples)} samples")  # fmt: skip
    assert set(labels("cl1", "cl1-a,cl1-b", "version").values()) == {"2.11.0"}


def test_a_downgrade_the_database_refuses_is_refused_before_anything_changes(dep):
    """A downgrade onto a database a newer version migrated: the node would refuse it at boot, and only once it
    held the lease (the handover: an outage, then both nodes put back). nodeops reads the version the database
    last ran (node_versions) and refuses first, dry run too; nothing changes."""
    before = labels("cl1", "cl1-a,cl1-b")
    downgrade = lambda d: d["services"]["cl1"].update(  # noqa: E731
        image=d["services"]["cl1"]["image"].replace(":2.11.0", ":2.10.0"))  # fmt: skip
    for args in (("--service", "cl1", "--dry-run"), ("--service", "cl1")):
        res = deploy_with(dep, "downgrade", downgrade, *args)
        out = res.stdout + res.stderr
        assert res.returncode == 4, out
        assert "is version 2.10.0, older than 2.11.0, the version its database last ran" in out, out
    assert labels("cl1", "cl1-a,cl1-b") == before
    left = files_on(dep, "cl1-a", "cl1") + files_on(dep, "cl1-b", "cl1")
    assert left in ([], [".api"]), left  # at most the standby's .api: nothing the failed run wrote
    assert lb_answers(dep, "cl1")
    again = fab("deploy", "--env", NAME, "--service", "cl1", "--json")  # and the pair is sound
    assert again.returncode == 0, again.stdout + again.stderr


def test_dry_run_prints_the_plan_and_changes_nothing(dep):
    before = labels("cl1", "cl1-a,cl1-b")
    res = deploy_with(dep, "dry", lambda d: d["services"]["cl1"]["variables"].update(LOG_LEVEL="debug"),
                      "--service", "cl1", "--dry-run", "--json")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    plan = next(e for e in events(res) if e["message"].startswith("plan:"))
    assert plan["steps"][0].startswith("replace") and any(step.startswith("hand over") for step in plan["steps"])
    assert events(res)[-1]["message"] == "dry run: 1 service(s), 1 would change; nothing was changed"
    assert labels("cl1", "cl1-a,cl1-b") == before


def test_a_changed_secret_template_alone_is_deployed(dep, tmp_path):
    """Issue 15: an operator's override of a secret file's template (templates/chainlink/v2/secrets.toml.j2 in a
    project of its own, tmp_path) moved no config hash, so deploy said "no change" and never shipped it. Now the
    dry run says the pair would change (a warning names the secret files' templates, never their content), the
    deploy rolls both nodes onto it, and a second deploy is a no-op; the built-in template again rolls them back."""
    assert fab("deploy", "--env", NAME, "--service", "cl1").returncode == 0  # the lab's inventory, as it runs
    before = labels("cl1", "cl1-a,cl1-b")
    path = inventory_variant(dep.inventory_file, tmp_path / "inventory.yaml", lambda _: None)
    mine = tmp_path / "templates" / "chainlink" / "v2" / "secrets.toml.j2"
    mine.parent.mkdir(parents=True)
    mine.write_text((BUILTIN_TEMPLATES / "chainlink" / "v2" / "secrets.toml.j2").read_text() + "# ops: TplMarker\n")
    try:
        dry = fab("deploy", "--inventory", str(path), "--service", "cl1", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert events(dry)[-1]["message"] == "dry run: 1 service(s), 1 would change; nothing was changed"
        assert any("secret files' templates changed" in e["message"] for e in events(dry)), events(dry)
        assert "TplMarker" not in dry.stdout + dry.stderr
        res = fab("deploy", "--inventory", str(path), "--service", "cl1", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        assert events(res)[-1]["message"] == "deployed 1 service(s): 1 changed, 0 unchanged"
        after = labels("cl1", "cl1-a,cl1-b")
        assert len(set(after.values())) == 1 and set(after.values()).isdisjoint(before.values()), (before, after)
        again = fab("deploy", "--inventory", str(path), "--service", "cl1", "--json")
        assert events(again)[-1]["message"] == "deployed 1 service(s): 0 changed, 1 unchanged"
    finally:
        back = fab("deploy", "--env", NAME, "--service", "cl1", "--json")
    assert back.returncode == 0 and labels("cl1", "cl1-a,cl1-b") == before, back.stdout + back.stderr


def test_leftovers_of_an_interrupted_run_are_shredded_by_the_next(dep):
    planted = fab("exec", "--env", NAME, "--nodes", "cl1-a,cl1-b", "--command",
                  "echo leftover > /run/nodeops/cl1/secrets.toml")  # fmt: skip
    assert planted.returncode == 0
    res = fab("deploy", "--env", NAME, "--service", "cl1", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert events(res)[-1]["message"] == "deployed 1 service(s): 0 changed, 1 unchanged"
    assert "secrets.toml" not in files_on(dep, "cl1-a", "cl1") + files_on(dep, "cl1-b", "cl1")


def test_a_node_that_does_not_come_up_is_rolled_back_and_the_error_holds_no_secret(dep):
    """On cl2, whose secrets are the sentinels: the failure path must not print them either."""
    before = labels("cl2", "cl2-a,cl2-b")
    # A refresh interval above half the lease: the node refuses to start, as the real one does.
    res = deploy_with(dep, "broken", lambda d: d["services"]["cl2"]["variables"].update(LEASE_REFRESH_INTERVAL="9s"),
                      "--service", "cl2")  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "cl2-" in out and "not a waiting standby" in out
    assert "previous container was started again on its own inputs" in out and out.rstrip().endswith(" serves")
    assert "Traceback" not in out and SENTINEL not in out and "Sx9" not in out
    assert labels("cl2", "cl2-a,cl2-b") == before  # both nodes run what they ran before
    left = files_on(dep, "cl2-a", "cl2") + files_on(dep, "cl2-b", "cl2")
    assert left in ([], [".api"]), left  # at most the standby's .api: nothing the failed run wrote
    assert lb_answers(dep, "cl2")


def test_an_unreachable_node_stops_the_run_before_any_change(dep):
    before = labels("cl2", "cl2-a,cl2-b")
    netns = f"nodeops-{NAME}-cl2-b"

    def edit(doc: dict) -> None:
        doc["services"]["cl2"]["variables"]["LOG_LEVEL"] = "debug"
        doc["ssh"].update(connect_timeout=2, connect_retries=0)

    subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
    try:
        res = deploy_with(dep, "unreachable", edit, "--service", "cl2")
        seen = fab_with(dep, "unreachable", edit, "status", "--service", "cl2", "--json")
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
    assert res.returncode == 1 and "cl2-b" in res.stdout + res.stderr
    assert labels("cl2", "cl2-a,cl2-b") == before  # nothing changed anywhere
    # rv6 finding 3: status says why the node is unknown, in the words deploy printed
    cut = {n["node"]: n for n in status_entries(seen)["cl2"]["nodes"]}["cl2-b"]
    assert (cut["role"], cut["health"]) == ("unknown", "unknown") and "cl2-b" in cut["unreachable"], cut
    assert "cannot connect after 1 attempt(s)" in cut["unreachable"], cut
    assert cut["unreachable"] in res.stdout + res.stderr, (cut, res.stderr)


def started_at(service: str, node: str) -> str:
    return inspect_field(service, node, "{{.State.StartedAt}}")[node]


def test_promote_standby_swaps_the_pair_and_running_it_again_swaps_back(dep, figures):
    first = serving_nodes(dep, "cl1")
    assert len(first) == 1
    outages = []
    for expected in ({"cl1-a", "cl1-b"} - set(first), set(first)):
        with PairProbe(dep.inventory_file, "cl1") as probe:
            res = fab("promote-standby", "--env", NAME, "--service", "cl1", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        assert set(serving_nodes(dep, "cl1")) == expected
        assert not probe.both, "two nodes served at once"
        took = next(e for e in events(res) if "outage_seconds" in e)
        assert took["old_exit_code"] == 0, (took["message"], probe.explain())  # a clean stop: it released the lease
        outages.append(took["outage_seconds"])
        assert outages[-1] < 2.0, probe.explain()  # with the lab's 1 s lease refresh
        assert max(probe.gaps, default=0) < 2.0, probe.explain()  # what users saw agrees
        standby = ({"cl1-a", "cl1-b"} - expected).pop()
        assert files_on(dep, standby, "cl1") == [".api"]  # the old active, restarted as the standby
    figures(f"planned promotion outages: {outages}")


def warn_level(doc: dict) -> None:
    doc["services"]["cl1"]["variables"]["LOG_LEVEL"] = "warn"


def test_a_standby_at_log_level_warn_is_recognised_by_the_lease(dep):
    """Issue 13 review: at LOG_LEVEL warn a standby never prints its info-level "waiting for lease" line; deploy
    waited for it, rolled the healthy standby back after 60 s and blamed the node, and promote-standby refused.
    Now the lease row, held by the node that answers, shows it waits; the log line is extra evidence only."""
    res = deploy_with(dep, "warn", warn_level, "--service", "cl1", "--json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    waits = [e for e in events(res) if e.get("message") == "waiting for the lease"]
    assert waits and all("the lease is held by" in e["evidence"] for e in waits), waits
    assert not any("its log says" in e["evidence"] for e in waits), waits  # the level did hide the line
    (active,) = serving_nodes(dep, "cl1")
    standby = ({"cl1-a", "cl1-b"} - {active}).pop()
    logs = fab("exec", "--env", NAME, "--nodes", standby, "--command", "docker logs nodeops-cl1 2>&1")
    assert logs.returncode == 0 and "waiting for lease" not in logs.stdout.lower(), logs.stdout[-2000:]
    assert status_of("cl1")["state"] == "healthy"
    promoted = fab_with(dep, "warn", warn_level, "promote-standby", "--service", "cl1", "--json")
    assert promoted.returncode == 0, promoted.stdout[-3000:] + promoted.stderr
    assert serving_nodes(dep, "cl1") == [standby] and status_of("cl1")["state"] == "healthy"
    assert fab("deploy", "--env", NAME, "--service", "cl1").returncode == 0  # back to the lab's inventory


def test_sigterm_during_the_promotion_finishes_the_handover_then_exits_130(dep):
    """Issue 13 review: a stop (SIGTERM, as a CI runner cancels; Ctrl-C alike) during promote-standby's handover
    ended with exit 0 while deploy ends 130 at its safe point. Now the handover finishes, the old active waits as
    the standby, and the run ends 130 saying what runs, on stderr and in the audit log."""
    assert fab("deploy", "--env", NAME, "--service", "cl1").returncode == 0  # a whole pair (a no-op after the above)
    (active,) = serving_nodes(dep, "cl1")
    standby = ({"cl1-a", "cl1-b"} - {active}).pop()
    proc = events_of(["promote-standby", "--env", NAME, "--service", "cl1", "--json"])
    seen = []
    while line := proc.stdout.readline():  # readline, not iteration: communicate() must see what is left
        if line.startswith("{"):
            seen.append(json.loads(line))
            if seen[-1].get("message", "").startswith(f"promote {standby}: stop {active} gracefully"):
                proc.send_signal(signal.SIGTERM)  # the handover begins right after this line
                break
    out, err = proc.communicate(timeout=300)
    assert seen and seen[-1].get("message", "").startswith("promote "), (seen[-3:], err)
    assert proc.returncode == 130, out[-3000:] + err
    assert "Traceback" not in err
    assert "cl1: the promotion was complete when the stop came; now: " in err and f"{standby} serves" in err, err
    assert f"{active} waits" in err, err  # the old active restarted as the standby before the run ended
    assert serving_nodes(dep, "cl1") == [standby] and lb_answers(dep, "cl1")
    assert status_of("cl1")["state"] == "healthy"
    end = [e for e in events(fab("audit", "--env", NAME, "--json")) if e.get("event") == "end"][-1]
    assert end["op"] == "promote-standby" and end["exit_code"] == 130 and end["result"] == "stopped", end
    assert "now: " in end["error"] and f"{standby} serves" in end["error"], end


def test_promote_refuses_a_broken_standby_before_touching_the_active(dep):
    (active,) = serving_nodes(dep, "cl1")
    standby = ({"cl1-a", "cl1-b"} - {active}).pop()
    before = started_at("cl1", active)
    assert fab("exec", "--env", NAME, "--nodes", standby, "--command", "docker rm -f nodeops-cl1").returncode == 0
    res = fab("promote-standby", "--env", NAME, "--service", "cl1")
    out = res.stdout + res.stderr
    assert res.returncode == 4, out
    assert f"refusing before touching the active {active}: standby {standby} has no running container" in out
    assert started_at("cl1", active) == before and serving_nodes(dep, "cl1") == [active]
    assert fab("deploy", "--env", NAME, "--service", "cl1").returncode == 0  # deploy brings the standby back


def test_a_standby_that_fails_to_take_over_leaves_the_old_active_serving(dep):
    (active,) = serving_nodes(dep, "cl1")
    standby = ({"cl1-a", "cl1-b"} - {active}).pop()
    # The node reads .api only once it holds the lease: without it, the standby takes the lease and dies.
    sabotage = fab("exec", "--env", NAME, "--nodes", standby, "--command", "shred -u /run/nodeops/cl1/.api")
    assert sabotage.returncode == 0
    res = fab("promote-standby", "--env", NAME, "--service", "cl1")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert f"the old active {active} was started again on its own inputs" in out and ".api" in out
    assert f"{standby} was started again as the standby, and it waits for the lease; {active} serves" in out  # the
    # pair whole again, on its own inputs, each node's state as seen (not as hoped)
    assert serving_nodes(dep, "cl1") == [active] and lb_answers(dep, "cl1")
    assert status_of("cl1")["state"] == "healthy"
    assert fab("deploy", "--env", NAME, "--service", "cl1").returncode == 0  # and deploy repairs the pair


def status_of(service: str) -> dict:
    return status(NAME, "--service", service)[service]


def fast_connect(doc: dict) -> None:
    doc["ssh"].update(connect_timeout=2, connect_retries=0)  # an unreachable node costs 2 s, not 40


def test_unplanned_failover_waits_for_the_lease_by_database_time(dep, figures):
    assert status_of("cl1")["state"] == "healthy"
    (active,) = serving_nodes(dep, "cl1")
    standby = ({"cl1-a", "cl1-b"} - {active}).pop()
    netns = f"nodeops-{NAME}-{active}"
    with PairProbe(dep.inventory_file, "cl1", nodes=False) as probe:  # the load balancer, as users see it
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)  # host cut off
        try:
            refused = fab_with(dep, "refused", fast_connect, "promote-standby", "--service", "cl1")
            assert refused.returncode == 4, refused.stdout + refused.stderr
            assert "no node serves (" in refused.stderr and f"{active}: unreachable" in refused.stderr
            forced = fab_with(dep, "forced", fast_connect, "promote-standby", "--service", "cl1", "--force", "--json")
            assert forced.returncode == 0, forced.stdout + forced.stderr
            seen = fab_with(dep, "status", fast_connect, "status", "--service", "cl1", "--json")
            degraded = status_entries(seen)["cl1"]
        finally:
            subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
    took = next(e for e in events(forced) if "took the lease" in e["message"])
    assert took["node"] == standby and "held by" in took["message"]
    assert degraded["state"] == "degraded", degraded
    assert {n["node"]: n["role"] for n in degraded["nodes"]} == {active: "unknown", standby: "active"}
    assert "held by" in degraded["lease"]["describe"] and "expires in" in degraded["lease"]["describe"]
    assert len(probe.gaps) == 1, [(round(t - probe.samples[0][0], 1), lb) for t, _, lb in probe.samples][::5]
    (gap,) = probe.gaps
    figures(f"unplanned failover (host cut off): load balancer outage {gap:.2f}s, lease 10s")
    assert 8.0 <= gap <= 16.0  # about LeaseDuration (10 s): the standby waited for the lease to expire
    # Back on the network, the old active finds its lease taken and exits; deploy makes the pair whole.
    wait_for(lambda: {n["node"]: n["role"] for n in status_of("cl1")["nodes"]}[active] == "down",
               "the old active to give up")  # fmt: skip
    assert fab("deploy", "--env", NAME, "--service", "cl1").returncode == 0
    assert status_of("cl1")["state"] == "healthy"


def test_v1_profile_deploys_and_runs(dep):
    res = deploy_with(dep, "v1", lambda d: d["services"]["cl2"]["variables"].update(PROFILE="v1"), "--service", "cl2")
    assert res.returncode == 0, res.stdout + res.stderr
    service = load_inventory(dep.inventory_file).services["cl2"]
    with urllib.request.urlopen(service.load_balancer, timeout=5) as resp:
        assert json.load(resp)["meta"]["profile"] == "v1"


def test_a_configuration_change_needs_no_registry(dep):
    """Issue 13: deploy always pulled, so with the registry down even a configuration change failed. Now a node
    that holds the image uses it and says so; an image the nodes do not hold still fails, before any change."""
    assert fab("deploy", "--env", NAME).returncode == 0  # the nodes hold the images (a no-op after the tests above)
    entry = dep.load_state()["daemons"]["registry/registry"]
    os.kill(entry["pid"], signal.SIGKILL)
    wait_for(lambda: not process_alive(entry["pid"]), "the registry to die", timeout=10)
    inventory = dep.inventory_file.read_text()  # lab.up rewrites it when it restarts the registry
    try:
        before = labels("cl1", "cl1-a,cl1-b")
        missing = deploy_with(dep, "noimage", lambda d: d["services"]["cl1"].update(
            image=d["services"]["cl1"]["image"].rsplit(":", 1)[0] + ":9.9.9"), "--service", "cl1")  # fmt: skip
        assert missing.returncode == 1, missing.stdout + missing.stderr
        assert "`docker pull` failed" in missing.stderr and "9.9.9" in missing.stderr
        assert labels("cl1", "cl1-a,cl1-b") == before  # nothing changed
        changed = deploy_with(dep, "noregistry", lambda d: d["services"]["cl2"]["variables"].update(LOG_LEVEL="debug"),
                              "--service", "cl2", "--json")  # fmt: skip
        assert changed.returncode == 0, changed.stdout + changed.stderr
        fallbacks = {e["node"]: e["message"] for e in events(changed) if e.get("pull_failed")}
        assert set(fallbacks) == {"cl2-a", "cl2-b"}, events(changed)
        assert all("using the image this node holds" in m and "a move of the tag" in m for m in fallbacks.values())
        assert events(changed)[-1]["message"] == "deployed 1 service(s): 1 changed, 0 unchanged"
        assert lb_answers(dep, "cl2")
    finally:
        up = fab("lab.up", "--name", NAME, "--nodes", "4", "--cidr", CIDR)
        dep.inventory_file.write_text(inventory)
        assert up.returncode == 0, up.stderr
