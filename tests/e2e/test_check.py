"""fab check on a lab of its own: exit 0 on a healthy lab; exit 1 naming the check and node when the
active's container is stopped, when the standby is gone, and when a node's /run tmpfs is nearly full;
the --textfile output is Prometheus text and holds the failing metric."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.aws import read_secret, secrets_client
from tests.conftest import fab
from tests.e2e.conftest import own_lab
from tests.e2e.probe import lb_answers, wait_for

pytestmark = pytest.mark.lab

NAME, CIDR = "chk", "10.227.0.0/16"
NODES = ("cl1-a", "cl1-b", "cl2-a", "cl2-b")
SERVICE_CHECKS = ("active", "lease", "secret-age", "drift")
NODE_CHECKS = ("disk", "memory", "load", "logs")
# One line of the Prometheus text format: a comment, or name{label="value",...} number.
SAMPLE = re.compile(
    r'^(# (HELP|TYPE) .*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+-]+)$'
)


@pytest.fixture(scope="module")
def chk(root):
    with own_lab(NAME, CIDR, deployed=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def inventory(chk, tmp_path_factory) -> Path:
    """The lab's inventory with a load limit this shared 2-core machine keeps to whatever else runs on it
    (other labs' tests push the 5-minute load past the default 2 per CPU); every other limit is the default."""
    doc = yaml.safe_load(chk.inventory_file.read_text())
    doc["check"] = {"load_max_per_cpu": 1000}
    path = tmp_path_factory.mktemp("chk") / f"{NAME}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def check(inventory: Path, textfile: Path) -> tuple[subprocess.CompletedProcess, list[dict], list[str]]:
    res = fab("check", "--inventory", str(inventory), "--json", "--textfile", str(textfile))
    lines = textfile.read_text().splitlines()
    assert lines and all(SAMPLE.match(line) for line in lines), [x for x in lines if not SAMPLE.match(x)]
    return res, [json.loads(line) for line in res.stdout.splitlines()], lines


def failed(findings: list[dict]) -> set[tuple[str, str]]:
    return {(f["node"], f["check"]) for f in findings if not f["ok"]}


def on(inventory: Path, node: str, command: str) -> None:
    res = fab("exec", "--inventory", str(inventory), "--nodes", node, "--command", command, "--json")
    assert res.returncode == 0, res.stdout + res.stderr


def restore(inventory: Path) -> None:
    res = fab("deploy", "--inventory", str(inventory), "--json", timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr


def only_failure(res, findings: list[dict], lines: list[str], node: str, check: str) -> dict:
    """The run failed on exactly this check, said so in its one stderr line and its metric; its finding."""
    service = node[:3]
    assert res.returncode == 1 and failed(findings) == {(node, check)}, res.stdout + res.stderr
    assert res.stderr == f"nodeops: 1 of 26 checks failed: {service} {node}: {check}\n"
    assert f'nodeops_check_ok{{env="{NAME}",service="{service}",node="{node}",check="{check}"}} 0.0' in lines
    return next(f for f in findings if (f["node"], f["check"]) == (node, check))


def test_a_healthy_lab_passes(chk, inventory, tmp_path):
    res, findings, lines = check(inventory, tmp_path / "nodeops.prom")
    assert res.returncode == 0 and res.stderr == "", res.stdout + res.stderr
    assert all(f["result"] in ("pass", "warn") and f["reason"] for f in findings), findings
    expected = {(s, "", c) for s in ("cl1", "cl2") for c in SERVICE_CHECKS}
    expected |= {(n[:3], n, c) for n in NODES for c in NODE_CHECKS} | {("cl1", "cl1-b", "standby"),
                                                                       ("cl2", "cl2-b", "standby")}  # fmt: skip
    assert {(f["service"], f["node"], f["check"]) for f in findings} == expected
    active = {f["service"]: f["reason"] for f in findings if f["check"] == "active"}
    assert active["cl1"].startswith("cl1-a serves; the load balancer answers 200 from it")
    lease = {f["service"]: f["reason"] for f in findings if f["check"] == "lease"}
    assert lease["cl1"].endswith(": the active cl1-a")
    assert {f["result"] for f in findings if f["check"] == "drift"} == {"pass"}  # both pairs run the inventory
    assert sum(line.startswith("nodeops_check_ok{") for line in lines) == len(findings)
    assert all(line.endswith(" 1.0") for line in lines if line.startswith("nodeops_check_ok{"))
    assert any(line.startswith('nodeops_secret_age_seconds{env="chk",service="cl1",secret="cl1/DBSecret"}')
               for line in lines)  # fmt: skip
    assert any(re.fullmatch(r'nodeops_check_timestamp_seconds\{env="chk"\} \d{10}\.\d+', line) for line in lines)
    client = secrets_client(chk.load_state()["secrets_port"])
    for name in ("DBSecret", "WalletSecret", "ApiSecret"):
        assert read_secret(client, f"cl1/{name}")["password"] not in res.stdout + "\n".join(lines)


def test_a_stopped_active_is_named(chk, inventory, tmp_path):
    on(inventory, "cl1-a", "docker stop nodeops-cl1")
    wait_for(lambda: lb_answers(chk, "cl1"), "cl1-b to take over behind the load balancer", timeout=30)
    try:
        res, findings, lines = check(inventory, tmp_path / "nodeops.prom")
    finally:
        restore(inventory)
    assert only_failure(res, findings, lines, "cl1-a", "standby")["reason"] == "container exited, not running"
    active = next(f["reason"] for f in findings if (f["service"], f["check"]) == ("cl1", "active"))
    assert active.startswith("cl1-b serves; the load balancer answers 200 from it")  # the standby took over


def test_a_gone_standby_is_named(chk, inventory, tmp_path):
    on(inventory, "cl2-b", "docker rm --force nodeops-cl2")
    try:
        res, findings, lines = check(inventory, tmp_path / "nodeops.prom")
    finally:
        restore(inventory)
    standby = only_failure(res, findings, lines, "cl2-b", "standby")
    assert (standby["result"], standby["reason"]) == ("fail", "no container")
    logs = next(f for f in findings if (f["node"], f["check"]) == ("cl2-b", "logs"))
    assert (logs["result"], logs["reason"]) == ("unknown", "no container")


def test_a_nearly_full_disk_is_named_and_passes_once_freed(chk, inventory, tmp_path):
    # A lab node's /run is a 64 MiB tmpfs of its own (where the secret files live): fill it to ~94%.
    on(inventory, "cl2-a", "df -k /run | grep -q ' 65536 ' && head -c 60M /dev/zero > /run/nodeops-check-fill")
    try:
        res, findings, lines = check(inventory, tmp_path / "nodeops.prom")
    finally:
        on(inventory, "cl2-a", "rm -f /run/nodeops-check-fill")
    reason = only_failure(res, findings, lines, "cl2-a", "disk")["reason"]
    assert re.match(r"/run 9\d% used, over 90% \(", reason), reason
    ratio = next(line for line in lines if line.startswith(
        'nodeops_node_disk_used_ratio{env="chk",service="cl2",node="cl2-a",path="/run"'))  # fmt: skip
    assert float(ratio.rsplit(" ", 1)[1]) > 0.9

    res, findings, _ = check(inventory, tmp_path / "nodeops.prom")
    assert res.returncode == 0 and not failed(findings), res.stdout + res.stderr
