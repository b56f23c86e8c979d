"""The installed wheel against a real lab, from an operator's folder outside the source tree: `nodeops init`, the
generated inventory pointed at the lab (its bastion, nodes, registry image and Secrets Manager, as the lab's own
inventory file has them), then hostkeys (confirmed at a terminal), deploy --dry-run, deploy, status and logs.

The same project has a webhook (the scaffold's commented `notify:` block, uncommented): an HTTP server on
127.0.0.1 in a thread of this test receives one JSON message per operation end and one per failing check run,
none holding a secret value or the webhook's own URL; a webhook that does not answer costs a warning line and
never the exit code.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lab.aws import read_secret, secrets_client
from lab.services import secret_names
from nodeops.hostkeys import fingerprint
from nodeops.inventory import HostKey
from tests.e2e.conftest import own_lab
from tests.e2e.probe import status_entries
from tests.package.test_wheel import sh, venv  # noqa: F401 (venv: the module's fixture, the wheel installed)
from tests.unit.test_notify import free_port, hook_server

pytestmark = pytest.mark.lab

LAB, CIDR = "whl", "10.241.0.0/16"
SERVICE = "cl1"  # the lab's pair the generated inventory's one service is pointed at
TOKEN = "whl-T0KEN-5e6f7a"  # in the webhook URL's path: it must never show anywhere
HOOK = "NODEOPS_PROD_WEBHOOK_URL"  # the scaffold's reference {backend: ci, name: prod/webhook, key: url}


@pytest.fixture(scope="module")
def receiver() -> Iterator[http.server.ThreadingHTTPServer]:
    with hook_server(204) as server:
        yield server


def hook_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/hooks/{TOKEN}"


@dataclass(frozen=True)
class Project:
    folder: Path
    nodeops: Path
    lab_doc: dict
    secrets: tuple[str, ...]  # every secret value of the service, for sentinels
    hook: str

    def run(self, *args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        """`nodeops ARGS` from the project's folder (no terminal), the webhook's URL in the environment."""
        res = sh(self.nodeops, *args, cwd=self.folder, timeout=timeout, env={HOOK: self.hook} | kw.pop("env", {}),
                 **kw)  # fmt: skip
        for text in (res.stdout, res.stderr):
            assert TOKEN not in text and not [s for s in self.secrets if s in text], text
        return res


def point_at_lab(generated: dict, lab: dict) -> dict:
    """The generated inventory with the lab's bastion (pinned), ssh user and key, secret backend, and the lab's pair
    SERVICE as its one service: image, variables (at LOG_LEVEL debug), secrets and load balancer as the lab wrote
    them; its nodes' host keys left out, for hostkeys to collect into ssh.known_hosts."""
    (name, service), = generated["services"].items()  # fmt: skip
    ours = lab["services"][SERVICE]
    service |= {key: ours[key] for key in ("image", "variables", "secrets", "load_balancer")}
    service["variables"] = ours["variables"] | {"LOG_LEVEL": "debug"}  # a log line per HTTP request: logs shows some
    service["nodes"] = [{k: n[k] for k in ("name", "host", "preferred")} for n in ours["nodes"]]
    return generated | {
        "bastion": lab["bastion"],
        "ssh": lab["ssh"] | {"known_hosts": "known_hosts"},
        "secret_backends": generated["secret_backends"] | lab["secret_backends"],
        "check": {"load_max_per_cpu": 1000},  # this shared machine's load is not what is tested
        "services": {name: service},
    }


@pytest.fixture(scope="module")
def project(venv, receiver, root, tmp_path_factory) -> Iterator[Project]:  # noqa: F811 (venv: the fixture)
    folder = tmp_path_factory.mktemp("operator") / "ops"
    folder.mkdir()
    nodeops = venv / "bin" / "nodeops"
    res = sh(nodeops, "init", cwd=folder)
    assert res.returncode == 0 and "wrote inventory/prod.yaml" in res.stdout, res.stderr
    with own_lab(LAB, CIDR, nodes=2) as lab:
        inventory = folder / "inventory" / "prod.yaml"
        text = inventory.read_text().replace("# notify:\n#   webhook:", "notify:\n  webhook:")
        lab_doc = yaml.safe_load(lab.inventory_file.read_text())
        inventory.write_text(yaml.safe_dump(point_at_lab(yaml.safe_load(text), lab_doc), sort_keys=False))
        client = secrets_client(lab.load_state()["secrets_port"])
        values = {v for name in secret_names(SERVICE).values() for v in read_secret(client, name).values()}
        yield Project(folder, nodeops, lab_doc, tuple(v for v in values if len(v) >= 4),
                      hook_url(receiver.server_address[1]))  # fmt: skip


def end_entry(res: subprocess.CompletedProcess) -> dict:
    """The operation's end entry, one of the JSON lines of a run without a terminal."""
    [end] = [e for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "end"]
    return end


def answered_at_a_terminal(project: Project, answer: bytes, *args: str) -> subprocess.CompletedProcess:
    """`nodeops ARGS` with a terminal on stdin (its question is asked), ``answer`` typed into it."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer)  # the terminal keeps the line until the question reads it
        return project.run(*args, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


def test_the_installed_nodeops_runs_the_lab_from_an_operators_folder(project, receiver):
    known = project.folder / "inventory" / "known_hosts"
    nodes = project.lab_doc["services"][SERVICE]["nodes"]

    res = project.run("hostkeys", "--env", "prod", "--write")  # no terminal: nobody to confirm
    assert res.returncode == 2 and "nothing written: no terminal to confirm on; pass --yes" in res.stderr, res.stderr
    assert not known.exists()
    res = answered_at_a_terminal(project, b"y\n", "hostkeys", "--env", "prod", "--write")
    wrote = {"event": "wrote", "path": str(known), "keys": len(nodes)}  # stdout is no terminal: JSON lines
    assert res.returncode == 0 and "Proceed? [y/N]" in res.stderr and json.dumps(wrote) in res.stdout, res.stderr
    for node in nodes:  # each node's key as the lab made it, read through the bastion, now pinned
        printed = fingerprint(HostKey(*node["host_key"].split()[:2]))
        assert node["name"] in res.stdout and printed in res.stdout, res.stdout
        assert f"{node['host']} {node['host_key']}" in known.read_text()

    res = project.run("deploy", "--env", "prod", "--dry-run")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    assert (end_entry(res)["event"], end_entry(res)["result"]) == ("end", "ok")

    deploy = project.run("deploy", "--env", "prod", timeout=600)
    assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr
    assert "deployed 1 service(s): 1 changed, 0 unchanged" in deploy.stdout
    assert end_entry(deploy)["result"] == "ok" and deploy.stderr == ""

    [entry] = status_entries(project.run("status", "--env", "prod")).values()
    roles = {n["node"]: n["role"] for n in entry["nodes"]}
    assert entry["state"] == "healthy" and roles == {f"{SERVICE}-a": "active", f"{SERVICE}-b": "standby"}, entry

    res = project.run("logs", "--env", "prod", "--service", "chainlink", "--since", "1m")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()  # at LOG_LEVEL debug the active logs the load balancer's health checks
    assert any(line.startswith(f"{SERVICE}-a | ") for line in lines), res.stdout[-2000:]
    assert all(line.startswith((f"{SERVICE}-a | ", f"{SERVICE}-b | ")) for line in lines), res.stdout[-2000:]

    # the webhook: one message per operation end, posted as JSON; the deploy's is its audit end entry; the dry
    # run, which changes nothing, sends none
    assert {(path, kind) for path, kind, _ in receiver.got} == {(f"/hooks/{TOKEN}", "application/json")}
    assert [(m["kind"], m["op"], m["result"]) for _, _, m in receiver.got] == [("operation", "deploy", "ok")]
    [deployed] = [m for _, _, m in receiver.got if m["run"] == end_entry(deploy)["run"]]
    assert {k: v for k, v in deployed.items() if k not in ("kind", "text")} == end_entry(deploy)
    assert deployed["text"].startswith("nodeops deploy --env prod: ok (exit 0") and deployed["results"][0]["changed"]
    for _, _, message in receiver.got:
        text = json.dumps(message)
        assert TOKEN not in text and not [s for s in project.secrets if s in text], text


def test_a_failing_check_is_one_message_and_a_dead_webhook_only_a_warning(project, receiver):
    res = project.run("deploy", "--env", "prod", timeout=600)  # the pair as the inventory says (unchanged if so)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    res = project.run("exec", "--env", "prod", "--nodes", f"{SERVICE}-b", "--command",
                      "docker rm --force nodeops-chainlink")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    before = len(receiver.got)

    res = project.run("check", "--env", "prod")
    failed = f"nodeops: 1 of 13 checks failed: chainlink {SERVICE}-b: standby\n"
    assert res.returncode == 1 and res.stderr == failed, res.stdout + res.stderr
    [(_, _, message)] = receiver.got[before:]
    assert message["kind"] == "check" and message["env"] == "prod" and message["checks"] == 13
    assert message["failed"] == [{"service": "chainlink", "node": f"{SERVICE}-b", "check": "standby",
                                  "reason": "no container"}]  # fmt: skip

    # nothing listens there: the same exit code and line, and one warning
    res = project.run("check", "--env", "prod", env={HOOK: hook_url(free_port())})
    warning = "nodeops: warning: the webhook (notify.webhook) did not take the check message: unreachable"
    assert res.returncode == 1 and res.stderr.startswith(warning) and res.stderr.endswith(failed), res.stderr
    assert len(res.stderr.splitlines()) == 2

    # a webhook that takes longer than the bound: the operation's exit 0 stands, after one warning
    receiver.delay = 8.0
    try:
        res = project.run("deploy", "--env", "prod", timeout=600)  # puts the standby back
    finally:
        receiver.delay = 0.0
    assert res.returncode == 0 and "deployed 1 service(s): 1 changed" in res.stdout, res.stdout[-2000:] + res.stderr
    assert res.stderr == "nodeops: warning: the webhook (notify.webhook) did not take the operation message: no " \
                         "answer within 5 s; the run's result stands\n"  # fmt: skip
    assert receiver.got[-1][2]["run"] == end_entry(res)["run"]  # it was sent; only its answer was late
