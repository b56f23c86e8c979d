"""Several bastions in one inventory (issue 18), on two labs of this module's own: each lab is a bastion with two
pairs behind it, and one inventory names both bastions (``bastions:``) and, per service, its own. One `fab deploy`
reaches both; `status` and `exec` too; four `--shard` processes in parallel each exit 0 and together cover every
service once; each service's lock and audit records are on its own bastion, where two shards given one service are
serialised."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lab.host import Lab
from lab.topology import plan_lab
from tests.conftest import FAB, ROOT, fab
from tests.e2e.conftest import own_lab
from tests.e2e.probe import events, serialised_shards

pytestmark = pytest.mark.lab

LABS = {"a": ("basta", "10.249.0.0/16"), "b": ("bastb", "10.250.0.0/16")}  # bastion name: (lab name, range)
ENV = "bastions"
SERVICES = {"a": {"cl1": "cl1", "cl2": "cl2"}, "b": {"cl1": "cl3", "cl2": "cl4"}}  # each lab's services, renamed


def merged(labs: dict[str, Lab], path: Path) -> Path:
    """One inventory over both labs: ``bastions:`` a and b, each lab's services behind its own (lab b's renamed
    cl3 and cl4, its secret backend ``lab-b``); the nodes' identity is lab a's, which lab b's hosts are made to
    accept."""
    docs = {name: yaml.safe_load(lab.inventory_file.read_text()) for name, lab in labs.items()}
    doc = {
        "environment": ENV,
        "ssh": docs["a"]["ssh"],
        "bastions": {},
        "secret_backends": {},
        "services": {},
        "check": {"load_max_per_cpu": 1000},
    }  # this shared machine's load is not the nodes' (test_check.py)
    for name, d in docs.items():
        doc["bastions"][name] = d["bastion"]
        (backend, spec), renamed = next(iter(d["secret_backends"].items())), f"lab-{name}"
        doc["secret_backends"][renamed] = spec
        for old, service in d["services"].items():
            for ref in service["secrets"].values():
                assert ref["backend"] == backend
                ref["backend"] = renamed
            for node in service["nodes"]:
                node["name"] = node["name"].replace(old, SERVICES[name][old], 1)
            doc["services"][SERVICES[name][old]] = {**service, "bastion": name}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    operator = (labs["a"].dir / "operator" / "id_ed25519.pub").read_text()
    with (labs["b"].dir / "operator" / "authorized_keys").open("a") as keys:  # read by sshd at each login
        keys.write(operator)
    return path


@pytest.fixture(scope="module")
def two(root, tmp_path_factory):
    with contextlib.ExitStack() as stack:
        labs = {name: stack.enter_context(own_lab(lab, cidr, nodes=4)) for name, (lab, cidr) in LABS.items()}
        yield labs, merged(labs, tmp_path_factory.mktemp("bastions") / f"{ENV}.yaml")


def bastion_dir(lab: Lab) -> Path:
    """The folder of ``lab``'s bastion host: its own /root (bind-mounted) and its sshd's log."""
    name, cidr = next(v for v in LABS.values() if v[0] == lab.name)
    return lab.host_dir(plan_lab(name, cidr, 4).bastion)


def stored(lab: Lab, *parts: str) -> Path:
    """A path under the default ``state_dir`` of ``lab``'s bastion."""
    return bastion_dir(lab) / "root" / ".nodeops" / ENV / Path(*parts)


def logins(lab: Lab) -> int:
    """The logins ``lab``'s bastion has accepted so far (its sshd logs each at the default LogLevel INFO)."""
    return (bastion_dir(lab) / "sshd.log").read_text(errors="replace").count("Accepted publickey for ")


def audit(lab: Lab) -> list[dict]:
    path = stored(lab, "audit.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ended(found: list[dict]) -> dict:
    return next(e for e in found if e.get("event") == "end")


def test_one_run_deploys_behind_both_bastions_and_each_keeps_its_own_records(two, figures):
    labs, inventory = two
    started = time.monotonic()
    res = fab("deploy", "--inventory", str(inventory), "--json", timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    figures(f"one deploy behind 2 bastions, 4 fresh pairs: {time.monotonic() - started:.1f}s")
    end = ended(events(res))
    assert end["result"] == "ok" and end["services"] == ["cl1", "cl2", "cl3", "cl4"], end
    run = end["run"]
    for name, lab in labs.items():  # each bastion's log: this run, with only its own services and their steps
        mine = sorted(SERVICES[name].values())
        entries = [e for e in audit(lab) if e["run"] == run]
        assert [e["services"] for e in entries if e["event"] in ("start", "end")] == [mine, mine], name
        assert sorted({r["service"] for e in entries if e["event"] == "end" for r in e["results"]}) == mine
        assert {e["service"] for e in entries if e["event"] == "step"} - {""} == set(mine), name
    status = fab("status", "--inventory", str(inventory), "--json")
    assert status.returncode == 0, status.stderr
    assert {e["service"]: e["state"] for e in events(status)} == dict.fromkeys(["cl1", "cl2", "cl3", "cl4"], "healthy")
    before = {name: logins(lab) for name, lab in labs.items()}
    ran = fab("exec", "--inventory", str(inventory), "--command", "hostname", "--json")
    assert ran.returncode == 0, ran.stderr
    hosts = {e["node"] for e in events(ran) if e["event"] == "host"}
    assert hosts == {f"cl{i}-{s}" for i in range(1, 5) for s in "ab"}  # every node, behind either bastion
    assert {name: logins(lab) - before[name] for name, lab in labs.items()} == {"a": 1, "b": 1}  # one login each
    checked = fab("check", "--inventory", str(inventory), "--json")  # the lease read through each one's bastion
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr
    assert {e["service"] for e in events(checked) if e.get("event") == "check"} == {"cl1", "cl2", "cl3", "cl4"}
    logged = fab("audit", "--inventory", str(inventory), "--json")  # both bastions' logs, merged
    assert logged.returncode == 0, logged.stderr
    starts = [e["services"] for e in events(logged) if e["event"] == "start" and e["run"] == run]
    assert sorted(starts) == [["cl1", "cl2"], ["cl3", "cl4"]], starts


def test_four_shards_in_parallel_cover_every_service_once(two, figures):
    """A change for every service (LOG_LEVEL), run as four `fab deploy --shard I/4` processes at once."""
    _, inventory = two
    doc = yaml.safe_load(inventory.read_text())
    for service in doc["services"].values():
        service["variables"]["LOG_LEVEL"] = "debug"
    changed = inventory.with_name(f"{ENV}-debug.yaml")
    changed.write_text(yaml.safe_dump(doc, sort_keys=False))
    printed = fab("shards", "--inventory", str(changed), "--count", "4", "--json")
    assert printed.returncode == 0, printed.stderr
    rows = json.loads(printed.stdout)["include"]
    assert [row["shard"] for row in rows] == ["1/4", "2/4", "3/4", "4/4"]
    started = time.monotonic()
    runs = [
        subprocess.Popen([str(FAB), "deploy", "--inventory", str(changed), "--shard", row["shard"], "--json"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        for row in rows
    ]  # fmt: skip
    done = [(run, *run.communicate(timeout=900)) for run in runs]
    figures(f"4 shards over 2 bastions, separate processes in parallel: {time.monotonic() - started:.1f}s")
    covered = []
    for (run, out, err), row in zip(done, rows, strict=True):
        assert run.returncode == 0, f"shard {row['shard']}: {out[-2000:]} {err}"
        end = ended([json.loads(line) for line in out.splitlines() if line.startswith("{")])
        assert end["result"] == "ok" and end["services"] == row["services"].split(","), end
        assert any(r.get("changed") for r in end["results"]), end  # each shard changed its service
        covered += end["services"]
    assert sorted(covered) == ["cl1", "cl2", "cl3", "cl4"]  # every service, exactly once


def test_two_shards_given_one_service_are_serialised_by_its_lock_on_its_bastion(two):
    """Shard I/2 holding lab b's bastion's services, frozen mid-run: its locks are on that bastion only; a shard
    of four given one of them exits 3 naming it. Once the first has finished, the second runs."""
    labs, inventory = two
    rows = json.loads(fab("shards", "--inventory", str(inventory), "--count", "2", "--json").stdout)["include"]
    b_address = f"{yaml.safe_load(labs['b'].inventory_file.read_text())['bastion']['host']}:22"
    (half,) = [row for row in rows if row["bastions"] == b_address]
    assert half["services"] == "cl3,cl4"  # one bastion's services together
    quarters = json.loads(fab("shards", "--inventory", str(inventory), "--count", "4", "--json").stdout)["include"]
    quarter = next(row for row in quarters if row["services"] == "cl3")

    def on_its_bastion_only() -> None:
        for service in ("cl3", "cl4"):
            assert stored(labs["b"], "locks", f"{service}.json").exists(), service
            assert not stored(labs["a"], "locks", f"{service}.json").exists(), service

    serialised_shards(str(inventory), half["shard"], quarter["shard"], ["cl3", "cl4"], "cl3", on_its_bastion_only)
