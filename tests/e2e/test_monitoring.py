"""The lab's own monitoring (lab/monitoring.py), on a lab of this module's own: `fab lab.up` runs a real Prometheus
(Debian's package) on the lab's monitoring host ``mon``, inside the lab's private network, on the files
`fab monitoring.render --env <lab>` writes; it scrapes every node (the simulator's /metrics; a waiting standby is a
target that is down) and the textfile `fab check` writes (through the lab's real node_exporter). The test reaches it
as the docs tell an operator to: an ``ssh -L`` through the bastion. Every dashboard panel's query and every metric an
alert rule reads returns series; killing the active makes the pair-health alert go pending; `fab lab.down` leaves
no Prometheus, node_exporter or file behind."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab import monitoring
from lab.daemons import process_alive
from lab.topology import plan_lab
from tests.conftest import end_process, fab
from tests.e2e.conftest import own_lab
from tests.e2e.probe import wait_for

pytestmark = pytest.mark.lab

NAME, CIDR = "mon", "10.206.0.0/16"
SELECTOR = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}")  # a metric with its label matchers, in a rule


@pytest.fixture(scope="module")
def mon(root):
    with own_lab(NAME, CIDR, deployed=True) as lab:
        yield lab


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tunnel(command: str, port: int, log: Path) -> Iterator[subprocess.Popen]:
    """The operator's ``ssh -L`` to the lab's Prometheus (lab.up's line, on a free local port), ended by its pid."""
    argv = command.replace("-L 9090:", f"-L 127.0.0.1:{port}:").split()
    argv[1:1] = ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    try:
        yield proc
    finally:
        end_process(proc, grace=15)


class Prometheus:
    """Prometheus' HTTP API, through the tunnel (the operator has no route to the mon host)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> dict | None:
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return json.loads(answer.read())
        except (OSError, ValueError):
            return None

    def query(self, expr: str) -> list[dict]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer and answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]


@pytest.fixture(scope="module")
def watched(mon, tmp_path_factory):
    """The lab checked once by fab check into the lab's textfile folder, and its Prometheus through a tunnel:
    (Prometheus, the folder lab.up rendered into)."""
    work = tmp_path_factory.mktemp("mon")
    plan = plan_lab(NAME, CIDR, 4)
    doc = yaml.safe_load(mon.inventory_file.read_text())
    doc["check"] = {"load_max_per_cpu": 1000}  # a shared 2-core machine's load is not this test's subject
    inventory = work / f"{NAME}.yaml"
    inventory.write_text(yaml.safe_dump(doc))
    textfile = monitoring.textfile_dir(mon, plan) / "nodeops.prom"
    check = fab("check", "--inventory", str(inventory), "--json", "--textfile", str(textfile))
    assert textfile.is_file(), check.stdout + check.stderr
    port = free_port()
    with tunnel(monitoring.tunnel_command(mon, plan), port, work / "ssh.log") as ssh:
        api = Prometheus(port)
        wait_for(lambda: ssh.poll() is not None or api.get("/api/v1/status/buildinfo"), "Prometheus to answer")
        assert ssh.poll() is None, (work / "ssh.log").read_text()[-2000:]
        # the textfile is read at the exporter's next scrape, which a loaded machine delays (a CI run queried
        # before it and found no series): wait for its series; a file the exporter refuses says so
        with contextlib.suppress(AssertionError):
            wait_for(lambda: api.query(f'nodeops_check_ok{{env="{NAME}"}}'), "the textfile's series", timeout=60)
        refused = api.query("node_textfile_scrape_error == 1")
        assert api.query(f'nodeops_check_ok{{env="{NAME}"}}'), (refused, textfile.read_text()[:2000])
        yield api, monitoring.rendered_dir(mon, plan)


def test_the_labs_prometheus_runs_what_monitoring_render_writes(watched, mon, tmp_path):
    """lab.up's files are fab monitoring.render --env <lab>'s, with the mon host's exporter and Prometheus."""
    _, rendered = watched
    plan = plan_lab(NAME, CIDR, 4)
    out = tmp_path / "out"
    res = fab("monitoring.render", "--env", NAME, "--out", str(out), "--interval", monitoring.INTERVAL,
              "--exporter", f"{plan.monitoring.private_ip}:9100",
              "--prometheus-url", f"http://{plan.prometheus_address}")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr

    def tree(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    assert tree(out) == tree(rendered)


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
    alerts = {rule["alert"] for rules in (out / "prometheus" / "rules").glob("*.yml")
              for group in yaml.safe_load(rules.read_text())["groups"] for rule in group["rules"]}  # fmt: skip
    health = wait_for(lambda: evaluated(api), "every alert rule to be evaluated once", timeout=30)
    assert health == dict.fromkeys(alerts, "ok")  # every alert expression loaded and evaluated without an error


def evaluated(api: Prometheus) -> dict[str, str] | None:
    """Each alert rule's health by its name ("ok": its expression evaluated without an error), once all were."""
    answer = api.get("/api/v1/rules", type="alert")
    if not answer:
        return None
    found = {r["name"]: r["health"] for g in answer["data"]["groups"] for r in g["rules"]}
    return found if found and "unknown" not in found.values() else None


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


def test_lab_down_stops_prometheus_and_leaves_nothing(mon):
    """Last: fab lab.down ends the mon host's Prometheus and node_exporter and removes their files."""
    daemons = json.loads(mon.state_file.read_text())["daemons"]
    pids = [daemons[key]["pid"] for key in ("mon/prometheus", "mon/node_exporter")]
    assert all(process_alive(pid) for pid in pids)
    down = fab("lab.down", "--name", NAME)
    assert down.returncode == 0, down.stderr
    assert [pid for pid in pids if process_alive(pid)] == []
    assert (
        not mon.dir.exists()
        and f"nodeops-{NAME}-" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
