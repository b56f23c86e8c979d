"""fab monitoring.render on a lab of its own, watched by a real Prometheus (Debian's package) inside the lab's
private network: it scrapes every node (the simulator's /metrics; a waiting standby is a target that is down) and the
textfile `fab check` writes (through a real node_exporter's textfile collector). Every dashboard panel's query and
every metric an alert rule reads returns series; killing the active makes the pair-health alert go pending.

The monitoring host is the lab's db host (10.206.0.2, on the private bridge, as the bastion is): the lab has no host
of its own for it, and a process there reaches every node as a monitoring host in the nodes' network would."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.topology import plan_lab
from tests.conftest import fab
from tests.e2e.conftest import own_lab
from tests.e2e.probe import wait_for

pytestmark = pytest.mark.lab

NAME, CIDR = "mon", "10.206.0.0/16"
SELECTOR = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}")  # a metric with its label matchers, in a rule


@pytest.fixture(scope="module")
def mon(root):
    with own_lab(NAME, CIDR, deployed=True) as lab:
        yield lab


@contextlib.contextmanager
def daemon(netns: str, log: Path, *argv: str) -> Iterator[subprocess.Popen]:
    """A process in the lab host's network namespace (its output to ``log``), ended by its pid at the end."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", *argv], stdout=sink, stderr=sink)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Prometheus:
    """Prometheus' HTTP API, asked from inside the monitoring host's namespace (the operator has no route there)."""

    def __init__(self, netns: str, address: str) -> None:
        self.netns, self.base = netns, f"http://{address}"

    def get(self, path: str, **params: str) -> dict | None:
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
        res = subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}", sys.executable, "-c", code, url],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        return json.loads(res.stdout) if res.returncode == 0 and res.stdout.startswith("{") else None

    def query(self, expr: str) -> list[dict]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer and answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]


@pytest.fixture(scope="module")
def watched(mon, tmp_path_factory):
    """The lab rendered, checked once by fab check into a node_exporter's textfile folder, and a Prometheus
    scraping it all every second: (Prometheus, the rendered folder)."""
    work = tmp_path_factory.mktemp("mon")
    doc = yaml.safe_load(mon.inventory_file.read_text())
    doc["check"] = {"load_max_per_cpu": 1000}  # a shared 2-core machine's load is not this test's subject
    inventory = work / f"{NAME}.yaml"
    inventory.write_text(yaml.safe_dump(doc))
    db = plan_lab(NAME, CIDR, 4).db
    textfiles = work / "textfile"
    textfiles.mkdir()
    check = fab("check", "--inventory", str(inventory), "--json", "--textfile", str(textfiles / "nodeops.prom"))
    assert (textfiles / "nodeops.prom").is_file(), check.stdout + check.stderr
    out = work / "out"
    render = fab("monitoring.render", "--inventory", str(inventory), "--out", str(out),
                 "--exporter", f"{db.private_ip}:9100", "--interval", "1s")  # fmt: skip
    assert render.returncode == 0, render.stdout + render.stderr
    exporter = ("prometheus-node-exporter", "--collector.disable-defaults", "--collector.textfile",
                f"--collector.textfile.directory={textfiles}",
                f"--web.listen-address={db.private_ip}:9100")  # fmt: skip
    server = ("prometheus", f"--config.file={out / 'prometheus' / f'prometheus-{NAME}.yml'}",
              f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address={db.private_ip}:9090")  # fmt: skip
    with daemon(db.netns, work / "exporter.log", *exporter), daemon(db.netns, work / "prometheus.log", *server) as p:
        api = Prometheus(db.netns, f"{db.private_ip}:9090")
        wait_for(lambda: p.poll() is not None or api.get("/api/v1/status/buildinfo"), "Prometheus to answer")
        assert p.poll() is None, (work / "prometheus.log").read_text()[-2000:]
        yield api, out


def targets(api: Prometheus) -> dict[str, str] | None:
    """Each active target's health by its node label (the textfile's exporter as "check"), once all were scraped."""
    answer = api.get("/api/v1/targets")
    if not answer:
        return None
    found = {t["labels"].get("node", "check"): t["health"] for t in answer["data"]["activeTargets"]}
    return found if len(found) == 5 and "unknown" not in found.values() else None


def test_prometheus_scrapes_every_node_and_the_textfile(watched):
    api, _ = watched
    health = wait_for(lambda: targets(api), "every target to be scraped once", timeout=60)
    # the actives serve metrics; a standby waits for the lease with no listener: its target is down, by design
    assert health == {"check": "up", "cl1-a": "up", "cl1-b": "down", "cl2-a": "up", "cl2-b": "down"}
    up = {r["metric"]["node"]: r["metric"] for r in api.query(f'up{{env="{NAME}",role="chainlink"}}')}
    assert up["cl1-a"]["service"] == "cl1" and up["cl1-a"]["job"] == "nodeops_chainlink"
    checks = api.query(f'nodeops_check_ok{{env="{NAME}",check="standby"}}')
    assert {r["metric"]["node"] for r in checks} == {"cl1-b", "cl2-b"}  # the textfile's own labels, kept


def grafana(expr: str, board: dict) -> str:
    """``expr`` with the dashboard's constant variables put in, as Grafana does (``$name``, the whole word)."""
    values = {v["name"]: v["query"] for v in board["templating"]["list"]}
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], expr)


def test_every_panel_query_and_rule_metric_returns_series(watched):
    api, out = watched
    wait_for(lambda: targets(api), "every target to be scraped once", timeout=60)
    queries = [(board.name, panel["title"], grafana(panel["targets"][0]["expr"], json.loads(board.read_text())))
               for board in sorted((out / "grafana" / "dashboards" / NAME).glob("*.json"))
               for panel in json.loads(board.read_text())["panels"]]  # fmt: skip
    assert len(queries) == 15
    empty = [(board, title) for board, title, expr in queries if not api.query(expr)]
    assert empty == []
    selectors = {s for rules in (out / "prometheus" / "rules").glob("*.yml")
                 for group in yaml.safe_load(rules.read_text())["groups"] for rule in group["rules"]
                 for s in SELECTOR.findall(rule["expr"])}  # fmt: skip
    assert {s.split("{")[0] for s in selectors} == {
        "up",
        "health",
        "nodeops_check_ok",
        "nodeops_check_timestamp_seconds",
        "nodeops_secret_age_seconds",
    }
    assert [s for s in sorted(selectors) if not api.query(s)] == []


def pending(api: Prometheus, service: str) -> bool:
    answer = api.get("/api/v1/alerts") or {"data": {"alerts": []}}
    return any(a["labels"].get("alertname") == "ChainlinkPairNoActive" and a["labels"].get("service") == service
               and a["state"] == "pending" for a in answer["data"]["alerts"])  # fmt: skip


def test_killing_the_active_makes_the_pair_health_alert_pending(watched, mon):
    """Killed (SIGKILL: the lease is not released), the active leaves nobody serving until the standby's wait for
    the lease's expiry (LeaseDuration, 10 s) ends: ChainlinkPairNoActive is pending meanwhile."""
    api, _ = watched
    wait_for(lambda: targets(api), "every target to be scraped once", timeout=60)
    assert not pending(api, "cl1")
    killed = fab("exec", "--inventory", str(mon.inventory_file), "--nodes", "cl1-a", "--command",
                 "docker kill nodeops-cl1", "--json")  # fmt: skip
    assert killed.returncode == 0, killed.stdout + killed.stderr
    wait_for(lambda: pending(api, "cl1"), "ChainlinkPairNoActive to go pending for cl1", timeout=30)
    assert not pending(api, "cl2")
