"""fab check's pure parts: parsing what a node printed, what passes, warns and fails, the Prometheus
textfile, the inventory's `check:` settings; and its CLI contract (bad input: exit 2, before any host)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat

import pytest
import yaml

from nodeops.activation import MODELS
from nodeops.check import (
    Metric,
    check_disk,
    check_drift,
    check_lease,
    check_load,
    check_logs,
    check_memory,
    check_secret_ages,
    check_standby,
    finding,
    level,
    render_textfile,
    textfile_target,
    write_textfile,
)
from nodeops.check_serving import check_active, check_service
from nodeops.errors import InvalidInput, InventoryError
from nodeops.facts.container import parse_inspect
from nodeops.facts.logs import error_candidates, error_lines
from nodeops.facts.observe import Observer
from nodeops.facts.resources import Resources, host_resources, parse_df, parse_load, parse_meminfo, parse_resources
from nodeops.facts.view import NodeView
from nodeops.inventory import CheckPolicy, Node
from nodeops.roles import load_role
from nodeops.run.report import Redactor
from nodeops.secrets import Secret, SecretAge
from nodeops.verify import Check, failure_summary
from tests.conftest import fab
from tests.unit.test_deploy_preflight import ENV, inventory
from tests.unit.test_inventory import edited, parse

HOOKS = load_role("chainlink").hooks  # the built-in role's log format and lease client (roles/chainlink/role.py)
CUT = "unreachable"  # a NodeView's why, for a node that could not be reached

DF = """Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda         264212084 25834372  80556540      25% /
run                  65536    61440      4096      94% /run
/dev/vdb          10000000        0  10000000       0% /var/lib/my docker
"""
MEMINFO = "MemTotal:       1000000 kB\nMemFree:         100000 kB\nMemAvailable:    250000 kB\nBuffers: 1 kB\n"
RESOURCES = f"engine /var/lib/docker\n{DF}--\n{MEMINFO}--\n3.87 1.50 2.78 4/272 6940\n2\n"


# -- parsing ---------------------------------------------------------------------------------------
def test_parse_df_reads_each_row_in_order_mount_points_with_spaces_too():
    assert parse_df(DF) == [
        ("/", 25834372 / (25834372 + 80556540)),
        ("/run", 61440 / 65536),
        ("/var/lib/my docker", 0.0),
    ]
    assert parse_df("df: /nope: No such file or directory\n") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MEMINFO, 0.75),
        ("MemTotal: 100 kB\nMemAvailable: 100 kB\n", 0.0),
        ("MemTotal: 100 kB\n", None),  # a kernel before 3.14: no MemAvailable
        ("", None),
    ],
)
def test_parse_meminfo(text, expected):
    assert parse_meminfo(text) == expected


@pytest.mark.parametrize(
    ("loadavg", "nproc", "expected"),
    [("3.87 1.50 2.78 4/272 6940", "2\n", (1.5, 2)), ("3.87", "2", None), ("1 2 3", "0", None), ("1 2 3", "x", None)],
)
def test_parse_load_takes_the_5_minute_average(loadavg, nproc, expected):
    assert parse_load(loadavg, nproc) == expected


def test_parse_resources_labels_each_disk():
    res = parse_resources(RESOURCES)
    assert [d[:3] for d in res.disks] == [("/", "/", "/"), ("/run", "/run", "/run"),
                                          ("engine storage", "/var/lib/docker", "/var/lib/my docker")]  # fmt: skip
    assert (res.memory, res.load) == (0.75, (1.5, 2))
    no_engine = parse_resources(RESOURCES.replace("engine /var/lib/docker", "engine "))
    assert [d[0] for d in no_engine.disks] == ["/", "/run"]  # its third row is not claimed for anything
    assert parse_resources("garbage") == Resources((), None, None)


def test_error_lines_counts_error_levels_only():
    text = "\n".join(
        ["x [ERROR] a", "x [WARN] b", '{"level":"crit"}', '{"level":"dpanic"}', "Traceback", "x [INFO] err"]
    )
    assert error_lines(text, HOOKS.log_level) == ["x [ERROR] a", '{"level":"crit"}', '{"level":"dpanic"}']


# -- what passes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "limit", "expected"), [(0.5, 1, "pass"), (0.9, 1, "pass"), (0.91, 1, "warn"),
                                                          (1, 1, "warn"), (1.01, 1, "fail")])  # fmt: skip
def test_level_warns_within_a_tenth_of_the_limit(value, limit, expected):
    assert level(value, limit) == expected


def body(app: str | None) -> bytes:
    return json.dumps({"data": [], "meta": {"appID": app} if app else {}}).encode()


LB = "http://lb:6688/health"


@pytest.mark.parametrize(
    ("serving", "lb_url", "lb", "status", "fragment"),
    [
        (
            {"a": body("aaaa1111")},
            LB,
            (200, body("aaaa1111")),
            "pass",
            "a serves; the load balancer answers 200 from it",
        ),
        ({"a": body("aaaa1111")}, None, None, "pass", "no load balancer in the inventory"),
        ({"a": body(None)}, LB, (200, b"ok"), "pass", "does not say which node answered"),
        ({}, LB, (503, b""), "fail", "no node serves /health"),
        ({"a": body("1"), "b": body("2")}, LB, (200, body("1")), "fail", "2 nodes serve /health (a, b)"),
        ({"a": body("aaaa1111")}, LB, None, "fail", f"the load balancer {LB} does not answer"),
        ({"a": body("aaaa1111")}, LB, (503, b"no server"), "fail", "answers HTTP 503"),
        ({"a": body("aaaa1111")}, LB, (200, body("bbbb2222")), "fail", "answers from bbbb2222, not from the active a"),
    ],
)
def test_check_active(serving, lb_url, lb, status, fragment):
    got = check_active(serving, "/health", lb_url, lb, lease_client=HOOKS.lease_client)
    assert got[0] == status and fragment in got[1], got


@pytest.mark.parametrize("lb_reply", [body("aaaa1111"), body("bbbb2222")], ids=["from-the-holder", "from-the-other"])
def test_check_active_under_keys_does_not_ask_the_load_balancer_which_node_answered(lb_reply):
    """Activation keys (issue 15): every node answers 200, so the load balancer answers from either; its reply's
    lease client id says nothing about the holder. The model says so (Model.lb_answers_from_active): the verdict is
    the same whichever node the load balancer picked."""
    model = MODELS["keys"]
    assert not model.lb_answers_from_active and MODELS["lease"].lb_answers_from_active
    got = check_active({"a": body("aaaa1111")}, "/health", LB, (200, lb_reply), lease_client=HOOKS.lease_client,
                       model=model)  # fmt: skip
    assert got == ("pass", "a is the active; the load balancer answers 200 (every node serves: any may answer)"), got


def test_check_active_fails_on_an_unhealthy_active_naming_its_checks():
    rpc = "EVM.1.HeadTracker.HeadListener"
    got = check_active({"a": body("x1")}, "/health", "http://lb/health", (503, b""), (rpc,),
                       lease_client=HOOKS.lease_client)  # fmt: skip
    assert got == ("fail", f"a holds the lease but answers /health unhealthy (failing: {rpc})")
    lease = {"held": True, "holder": "x1", "describe": "held by x1"}
    assert check_lease(lease, "a", "x1") == ("pass", "held by x1: the active a")  # it is the lease holder


HELD = {"holder": "aaaa1111-2222", "held": True, "describe": "held by aaaa1111, expires in 9.0s (database time)"}


@pytest.mark.parametrize(
    ("lease", "active", "active_id", "status", "fragment"),
    [
        (HELD, "a", "aaaa1111-2222", "pass", "the active a"),
        (HELD, "a", None, "pass", "does not name its lease id"),
        (None, "a", "x", "unknown", "keeps no lease"),
        ({"error": "cl: cannot read the lease"}, "a", "x", "fail", "unreadable: cl: cannot read the lease"),
        ({**HELD, "held": False, "describe": "expired 3.0s ago"}, "a", "x", "fail", "not held: expired"),
        (HELD, None, None, "fail", "not exactly one node serves"),
        (HELD, "a", "bbbb", "fail", "but the active a is bbbb"),
    ],
)
def test_check_lease(lease, active, active_id, status, fragment):
    got = check_lease(lease, active, active_id)
    assert got[0] == status and fragment in got[1], got


NODE = Node("b", "10.0.0.2", 22, "standby", (), "cl")


def container(running: bool):
    doc = [{"Name": "/nodeops-cl", "Image": "sha256:abc", "Config": {"User": "14933", "Labels": {}},
            "State": {"Running": running, "Status": "running" if running else "exited", "Pid": 1}}]  # fmt: skip
    return parse_inspect(json.dumps(doc))


@pytest.mark.parametrize(
    ("seen", "status", "reason"),
    [
        (NodeView(NODE, container(True), False), "pass", "running, not serving: waits for the lease"),
        (NodeView(NODE, container(True), True), "fail", "serves as well: two actives"),
        (NodeView(NODE, container(False), False), "fail", "container exited, not running"),
        (NodeView(NODE, None, False), "fail", "no container"),
        (NodeView(NODE, None, False, unreachable=CUT), "fail", "unreachable through the bastion"),
    ],
)
def test_check_standby(seen, status, reason):
    assert check_standby(seen) == (status, reason)


DAY = 86400.0


SM, SSM, SOPS = "aws-secretsmanager", "aws-ssm", "sops"


@pytest.mark.parametrize(
    ("ages", "status", "reason"),
    [
        ({"db": (3 * DAY, SM), "api": (10 * DAY, SSM)}, "pass", "oldest api: 10.0 days (limit 90)"),
        ({"db": (85 * DAY, SOPS)}, "warn", "oldest db: 85.0 days (limit 90)"),
        (
            {"db": (91 * DAY, SM), "api": (None, "env")},
            "fail",
            "oldest db: 91.0 days, over the rotation limit (limit 90); age unknown (env backend keeps no date): api",
        ),
        # issue 17's review: an aws-kms or sops secret was said to be of the env backend
        (
            {"wallet.b64": (None, "aws-kms"), "x.sops.yaml": (2 * DAY, SOPS), "API": (None, "env")},
            "pass",
            "oldest x.sops.yaml: 2.0 days (limit 90); age unknown (aws-kms backend keeps no date): wallet.b64; "
            "age unknown (env backend keeps no date): API",
        ),
        ({"db": (None, "env")}, "unknown", "age unknown (env backend keeps no date): db"),
        ({"a.b64": (None, "aws-kms"), "b.b64": (None, "aws-kms")}, "unknown",
         "age unknown (aws-kms backend keeps no date): a.b64, b.b64"),
        ({}, "unknown", "the service has no secrets"),
    ],
)  # fmt: skip
def test_check_secret_ages(ages, status, reason):
    assert check_secret_ages({n: SecretAge(*a) for n, a in ages.items()}, 90) == (status, reason)


DISKS = [("/", "/", "/", 0.25), ("/run", "/run", "/run", 0.5), ("engine storage", "/var/lib/docker", "/", 0.25)]


@pytest.mark.parametrize(
    ("disks", "status", "reason"),
    [
        (DISKS, "pass", "used: / 25%, /run 50%, engine storage 25% (limit 90%)"),
        ([*DISKS[:1], ("/run", "/run", "/run", 0.85)], "warn", "used: / 25%, /run 85% (limit 90%)"),
        ([*DISKS[:1], ("/run", "/run", "/run", 0.94)], "fail", "/run 94% used, over 90% (/ 25%, /run 94%)"),
        ([], "fail", "no disk usage read (df)"),
    ],
)
def test_check_disk(disks, status, reason):
    assert check_disk(disks, 90) == (status, reason)


@pytest.mark.parametrize(
    ("used", "status", "reason"),
    [(0.5, "pass", "50% used (limit 90%)"), (0.95, "fail", "95% used (limit 90%)"),
     (None, "fail", "no memory figures read (/proc/meminfo)")],
)  # fmt: skip
def test_check_memory(used, status, reason):
    assert check_memory(used, 90) == (status, reason)


@pytest.mark.parametrize(
    ("load", "status", "fragment"),
    [((2.0, 2), "pass", "5-minute load 2.00 on 2 CPUs: 1.00 per CPU (limit 2)"), ((3.8, 2), "warn", "1.90 per CPU"),
     ((8.0, 2), "fail", "4.00 per CPU"), (None, "fail", "no load read")],
)  # fmt: skip
def test_check_load(load, status, fragment):
    got = check_load(load, 2.0)
    assert got[0] == status and fragment in got[1]


SENTINEL = "Pa55w0rd-sentinel-value"


@pytest.mark.parametrize(
    ("errors", "status", "fragment"),
    [
        ([], "pass", "no error-level lines in the last 15 min"),
        (["x [ERROR] one"], "warn", "1 error-level lines in the last 15 min (limit 2); last: x [ERROR] one"),
        (["x [ERROR] a"] * 3, "fail", "3 error-level lines"),
    ],
)
def test_check_logs(errors, status, fragment):
    got = check_logs(errors, 2, 15, Redactor([]))
    assert got[0] == status and fragment in got[1], got


def test_check_logs_masks_secrets_before_cutting_the_line():
    # The secret straddles the cut: cut first, and half of it would be shown unmasked.
    line = "x [ERROR] " + "y" * 140 + f" url=postgres://u:{SENTINEL}@db/cl"
    status, reason = check_logs([line], 0, 15, Redactor([Secret(SENTINEL, "db")]))
    assert status == "fail" and SENTINEL[:6] not in reason and reason.endswith("...")
    assert "*****" in check_logs([f"[ERROR] {SENTINEL}"], 0, 15, Redactor([Secret(SENTINEL, "db")]))[1]


def test_finding_fails_only_on_fail():
    assert [finding("s", "n", "c", (r, "why")).ok for r in ("pass", "warn", "unknown", "fail")] == [1, 1, 1, 0]


def test_failure_summary_names_service_checks_by_service():
    checks = [
        finding("cl1", "", "active", ("fail", "x")),
        finding("cl1", "cl1-a", "standby", ("fail", "y")),
        finding("cl1", "cl1-a", "disk", ("fail", "z")),
        finding("cl2", "cl2-a", "disk", ("warn", "w")),
    ]
    assert failure_summary(checks) == "3 of 4 checks failed: cl1: active; cl1 cl1-a: standby, disk"
    assert failure_summary([Check("cl1", "cl1-a", "port", True, "ok")]) is None


# -- the Prometheus textfile ----------------------------------------------------------------------
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+-]+$')


def test_render_textfile_groups_samples_and_escapes_labels():
    metrics = [
        Metric("nodeops_check_ok", (("service", "cl1"), ("node", ""), ("check", "active")), 1.0),
        Metric("nodeops_node_disk_used_ratio", (("path", 'a "b"\\c\nd'),), 0.25),
        Metric("nodeops_check_ok", (("service", "cl1"), ("node", "a"), ("check", "disk")), 0.0),
        Metric("nodeops_check_timestamp_seconds", (), 1763727000.123456),
    ]
    text = render_textfile(metrics)
    lines = text.splitlines()
    assert lines[:4] == [
        "# HELP nodeops_check_ok 1 when the check passed, warned or had nothing to measure; 0 when it failed.",
        "# TYPE nodeops_check_ok gauge",
        'nodeops_check_ok{service="cl1",node="",check="active"} 1.0',
        'nodeops_check_ok{service="cl1",node="a",check="disk"} 0.0',
    ]
    assert 'nodeops_node_disk_used_ratio{path="a \\"b\\"\\\\c\\nd"} 0.25' in lines
    assert "nodeops_check_timestamp_seconds 1763727000.123456" in lines and text.endswith("\n")
    assert all(line.startswith("# ") or SAMPLE.match(line) for line in lines), lines
    assert sum(line.startswith("# TYPE nodeops_check_ok ") for line in lines) == 1


def test_textfile_target_refuses_what_the_collector_would_not_read(tmp_path):
    assert textfile_target(str(tmp_path / "nodeops.prom")) == tmp_path / "nodeops.prom"
    for path, fragment in [(tmp_path / "x.txt", "name it *.prom"), (tmp_path / "no" / "x.prom", "does not exist")]:
        with pytest.raises(InvalidInput, match=re.escape(fragment)):
            textfile_target(str(path))
    (tmp_path / "d.prom").mkdir()
    with pytest.raises(InvalidInput, match="is a directory"):
        textfile_target(str(tmp_path / "d.prom"))


def test_write_textfile_replaces_it_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "nodeops.prom"
    target.write_text("old\n")
    inode = target.stat().st_ino
    write_textfile(target, "new 1\n")
    assert target.read_text() == "new 1\n" and target.stat().st_ino != inode  # renamed over, not rewritten
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 and os.listdir(tmp_path) == ["nodeops.prom"]


# -- commands --------------------------------------------------------------------------------------
def test_host_resources_and_error_candidates_commands():
    assert host_resources("docker") == (
        "root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null); echo \"engine $root\"; "
        'df -P -k / /run ${root:+"$root"}; echo --; cat /proc/meminfo; echo --; cat /proc/loadavg; nproc'
    )
    assert "podman info --format '{{.Store.GraphRoot}}'" in host_resources("podman")
    assert error_candidates("docker", "nodeops-cl1", 15) == (
        "docker logs --since 15m nodeops-cl1 2>&1 | grep -aiE 'err|crit|panic|fatal'"
    )
    # The node-side cut keeps every line the classifier counts.
    kept = re.compile("err|crit|panic|fatal", re.IGNORECASE)
    for line in ("x [ERROR] a", "x [CRIT] b", '{"level":"dpanic"}', "[FATAL] c", "level=err d"):
        assert kept.search(line) and error_lines(line, HOOKS.log_level)


# -- the inventory's check: settings --------------------------------------------------------------
def test_check_policy_defaults_and_per_service_overrides():
    assert parse(edited()).services["chainlink"].check == CheckPolicy()
    inv = parse(edited(("check", {"disk_max_percent": 80, "log_minutes": 30}),
                       ("services.chainlink.check", {"disk_max_percent": 95, "load_max_per_cpu": 4})))  # fmt: skip
    assert inv.services["chainlink"].check == CheckPolicy(disk_max_percent=95, log_minutes=30, load_max_per_cpu=4.0)


@pytest.mark.parametrize(
    ("changes", "where", "fragment"),
    [
        (("check", {"disk_max_percent": 101}), "check.disk_max_percent", "expected an integer 1..100, got 101"),
        (("check", {"secret_max_age_days": 0}), "check.secret_max_age_days", "an integer 1..3650"),
        (("check", {"load_max_per_cpu": True}), "check.load_max_per_cpu", "a number > 0 and <= 1000, got True"),
        (("check", {"log_minutes": "15m"}), "check.log_minutes", "an integer 1..1440"),
        (("check", {"disk_max": 90}), "check.disk_max", "unknown key 'disk_max' (allowed: secret_max_age_days,"),
        (("services.chainlink.check", {"log_error_lines": -1}), "services.chainlink.check.log_error_lines",
         "an integer 0..1000000"),
        (("check", [90]), "check", "expected a mapping"),
    ],
)  # fmt: skip
def test_check_policy_errors_are_one_located_line(changes, where, fragment):
    with pytest.raises(InventoryError) as err:
        parse(edited(changes))
    assert err.value.where == where and fragment in err.value.problem and "\n" not in str(err.value)


# -- one health GET per node ----------------------------------------------------------------------
def test_who_serves_and_its_reply_come_from_one_health_get_per_node(monkeypatch):
    """The active answers 200 once, then 503 (a failover under way): the finding is the one reply the observer got,
    not a second GET that would contradict it."""
    import types

    from nodeops import check as chk

    a, b = Node("a", "10.0.0.1", 22, "active", (), "cl"), NODE
    replies = {a.host: [(200, b'{"meta": {"appID": "0b9f3c1e-aaaa"}}'), (503, b"")], b.host: [None, None]}
    gets = []

    class Fleet:
        def http_get(self, host, port, path, **_where):
            gets.append((host, port, path))
            return replies[host].pop(0)

    # The observer as it is, but no SSH: each node reached, its container running; its health GET is the Fleet's.
    monkeypatch.setattr(Observer, "connect", lambda _self, _node: None)
    monkeypatch.setattr(Observer, "container", lambda _self, _node, _name=None: container(True))
    monkeypatch.setattr(chk, "secret_ages", lambda *_: {})
    monkeypatch.setattr(chk, "lease_status", lambda *_: {"held": True, "holder": "0b9f3c1e-aaaa", "describe": "held"})
    monkeypatch.setattr(chk, "probe_node", lambda *_, **__: ([], []))
    service = types.SimpleNamespace(name="cl", runtime="docker", nodes=[a, b], check=CheckPolicy(), load_balancer=None)
    role = types.SimpleNamespace(port=6688, health="/health", hooks=HOOKS, activation="lease")  # appID: the holder
    rendered = types.SimpleNamespace(config_hash="c1", secret_versions={})
    job = types.SimpleNamespace(service=service, role=role, redact=Redactor([]), rendered=rendered, config_hashes=dict)
    result = chk.probe_service(Fleet(), types.SimpleNamespace(environment="t"), job)
    assert sorted(gets) == [(a.host, 6688, "/health"), (b.host, 6688, "/health")]
    verdicts = {f.check: (f.result, f.reason) for f in result.findings}
    assert verdicts["active"] == ("pass", "a serves /health (no load balancer in the inventory)")
    assert verdicts["lease"] == ("pass", "held: the active a")


@pytest.mark.parametrize(
    ("replies", "lb", "verdict"),
    [
        ({"10.0.0.1": 200, "10.0.0.2": 200, "10.0.0.3": 200}, (200, b""),
         ("pass", "all 3 nodes serve /health; the load balancer answers 200")),
        ({"10.0.0.1": 200, "10.0.0.2": None, "10.0.0.3": 503}, (200, b""),
         ("fail", "2 of 3 nodes do not serve /health (b: not serving; c: not serving (failing: HTTP 503)): all "
                  "should")),
        ({"10.0.0.1": 200, "10.0.0.2": 200, "10.0.0.3": 200}, None,
         ("fail", "all 3 nodes serve, but the load balancer http://lb/health does not answer")),
    ],
    ids=["every-node-serves", "fewer-than-all", "load-balancer-silent"],
)  # fmt: skip
def test_under_activation_all_check_fails_unless_every_node_serves(monkeypatch, replies, lb, verdict):
    """Activation all: one `serving` finding for the service in place of active, lease and standby: it fails when
    fewer than all nodes answer 200, or the load balancer does not; no node is judged as a standby."""
    import types

    from nodeops import check as chk

    nodes = [Node(n, f"10.0.0.{i}", 22, "active" if i == 1 else "standby", (), "r") for i, n in enumerate("abc", 1)]

    class Fleet:
        def http_get(self, host, _port, _path, **_where):
            return None if replies[host] is None else (replies[host], b"{}")

    monkeypatch.setattr(Observer, "connect", lambda _self, _node: None)
    monkeypatch.setattr(Observer, "container", lambda _self, _node, _name=None: container(True))
    monkeypatch.setattr(chk, "secret_ages", lambda *_: {})
    monkeypatch.setattr(chk, "lease_status", lambda *_: pytest.fail("activation all keeps no lease"))
    monkeypatch.setattr(chk, "probe_node", lambda *_, standby: ([("standby", ("fail", "x"))] if standby else [], []))
    monkeypatch.setattr(chk.http, "request", lambda *_, **__: lb)
    service = types.SimpleNamespace(name="r", runtime="docker", nodes=nodes, check=CheckPolicy(),
                                    load_balancer="http://lb/health")  # fmt: skip
    role = types.SimpleNamespace(port=6688, health="/health", hooks=HOOKS, activation="all")
    rendered = types.SimpleNamespace(config_hash="c1", secret_versions={})
    job = types.SimpleNamespace(service=service, role=role, redact=Redactor([]), rendered=rendered, config_hashes=dict)
    result = chk.probe_service(Fleet(), types.SimpleNamespace(environment="t"), job)
    verdicts = {f.check: (f.result, f.reason) for f in result.findings}
    assert verdicts["serving"] == verdict
    assert not {"active", "lease", "standby"} & set(verdicts)


def test_under_activation_keys_the_holder_is_the_active_and_the_other_a_standby_though_both_answer(monkeypatch):
    """Issue 15, keys: both nodes answer 200, only a carries io.nodeops.hot=true. The active check judges the
    holder (it failed: "2 nodes serve"), the lease is not the role's, and b alone is checked as a standby: running
    without the hot keys passes, holding them too is two holders."""
    import types

    from nodeops import check as chk

    a, b = Node("a", "10.0.0.1", 22, "active", (), "cp"), NODE

    def running(_self, node, _name=None):
        labels = {"io.nodeops.hot": "true"} if node == "a" else {}
        return parse_inspect(json.dumps([{"Name": "/nodeops-cp", "Image": "sha256:abc", "Config": {"Labels": labels},
                                          "State": {"Running": True, "Status": "running", "Pid": 1}}]))  # fmt: skip

    class Fleet:
        def http_get(self, _host, _port, _path, **_where):
            return 200, b"{}"

    judged = {}

    def probe_node(_observer, _job, s, standby):
        judged[s.node.name] = standby
        return [], []

    monkeypatch.setattr(Observer, "connect", lambda _self, _node: None)
    monkeypatch.setattr(Observer, "container", running)
    monkeypatch.setattr(chk, "secret_ages", lambda *_: {})
    monkeypatch.setattr(chk, "probe_node", probe_node)
    service = types.SimpleNamespace(name="cp", runtime="docker", nodes=[a, b], check=CheckPolicy(), load_balancer=None)
    role = types.SimpleNamespace(port=6688, health="/health", hooks=HOOKS, activation="keys", lease=None)
    rendered = types.SimpleNamespace(config_hash="c1", secret_versions={})
    job = types.SimpleNamespace(
        service=service, role=role, redact=Redactor([]), rendered=rendered, config_hashes=lambda _holders: {}
    )
    result = chk.probe_service(Fleet(), types.SimpleNamespace(environment="t"), job)
    verdicts = {f.check: (f.result, f.reason) for f in result.findings}
    assert verdicts["active"] == ("pass", "a holds the hot keys and serves /health (no load balancer in the inventory)")
    assert verdicts["lease"] == ("unknown", "the role keeps no lease")
    assert judged == {"a": False, "b": True}
    views = [NodeView(b, running(None, "b"), True), NodeView(b, running(None, "a"), True)]
    assert [chk.check_standby(v, "keys") for v in views] == [
        ("pass", "running without the hot keys"), ("fail", "holds the hot keys as well: two holders")]  # fmt: skip


# -- the CLI ---------------------------------------------------------------------------------------
def test_cli_refuses_bad_input_before_any_host(tmp_path, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.yaml"
    path.write_text(inventory())  # its bastion is 127.0.0.1:9, where nothing listens
    for args, fragment in [
        (("--textfile", str(tmp_path / "out.txt")), "nodeops: --textfile"),
        (("--textfile", str(tmp_path / "missing" / "x.prom")), "does not exist"),
        (("--service", "nope"), "nodeops: --service nope: no such service"),
    ]:
        res = fab("check", "--inventory", str(path), *args)
        assert res.returncode == 2 and fragment in res.stderr and res.stderr.count("\n") == 1, res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**yaml.safe_load(inventory()), "check": {"disk_max_percent": 0}}))
    res = fab("check", "--inventory", str(bad))
    assert res.returncode == 2 and "check.disk_max_percent: expected an integer 1..100, got 0" in res.stderr
    res = fab("check", "--inventory", str(path), "--textfile", str(tmp_path / "out.prom"))
    assert res.returncode == 1 and "bastion (127.0.0.1:9): cannot connect" in res.stderr  # the control
    assert "Traceback" not in res.stderr and not (tmp_path / "out.prom").exists()


def labelled(running: bool, config: str, secrets: dict | None = None):
    c = container(running)
    labels = {"io.nodeops.config": config, **({"io.nodeops.secrets": json.dumps(secrets)} if secrets else {})}
    return dataclasses.replace(c, labels=labels)


@pytest.mark.parametrize(
    ("containers", "result", "reason"),
    [
        ({"a": labelled(True, "c1"), "b": labelled(True, "c1")}, "pass", "every running node is on the inventory's"),
        (
            {"a": labelled(True, "c0"), "b": labelled(True, "c1")},
            "warn",
            "a not on the inventory's configuration (the image, variables or templates differ)",
        ),
        (
            {"a": labelled(True, "c0", {"keystore": "v1"}), "b": labelled(True, "c0", {"keystore": "v1"})},
            "warn",
            "a, b not on the inventory's configuration (secret keystore: version v1 on a -> v2; secret keystore: "
            "version v1 on b -> v2)",
        ),
        ({"a": labelled(True, "c1"), "b": labelled(False, "c0")}, "pass", "every running node"),  # standby check's
        ({"a": labelled(True, "c1"), "b": None}, "pass", "every running node"),
    ],
    ids=["same", "variables", "secret-moved", "stopped", "none"],
)
def test_drift_warns_of_a_change_not_deployed_naming_moved_secret_versions(containers, result, reason):
    seen = {name: NodeView(dataclasses.replace(NODE, name=name), c, False) for name, c in containers.items()}
    got = check_drift(seen, "c1", {"keystore": "v2"})
    assert got[0] == result and got[1].startswith(reason), got


def test_a_raising_log_level_hook_fails_only_the_logs_check():
    """review15 F9b: a role whose ``log_level`` hook raised made disk, memory and load fail as "not checked: ...
    log_level raised", though they do not use the hook: only the check that uses it fails."""
    import types

    from nodeops.check import probe_node
    from nodeops.role_hooks import RoleHookFailed

    def log_level(_line):
        raise RoleHookFailed("role thing: its hook log_level raised KeyError (role.py:2): fix the role's module")

    class Seen:
        name = "nodeops-svc"

        def run(self, _node, command):
            return types.SimpleNamespace(stdout=RESOURCES if command == host_resources("docker") else "[ERROR] x\n")

    job = types.SimpleNamespace(service=types.SimpleNamespace(check=CheckPolicy(), runtime="docker"),
                                role=types.SimpleNamespace(hooks=types.SimpleNamespace(log_level=log_level)),
                                redact=Redactor([]))  # fmt: skip
    view = NodeView(Node("a", "10.0.0.1", 22, "active", (), "svc"), object(), True)
    verdicts, metrics = probe_node(Seen(), job, view, standby=False)  # type: ignore[arg-type]
    got = dict(verdicts)
    assert got["logs"] == ("fail", "not checked: role thing: its hook log_level raised KeyError (role.py:2): fix the "
                                   "role's module")  # fmt: skip
    assert all(got[name][0] != "fail" or "not checked" not in got[name][1] for name in ("disk", "memory", "load"))
    assert metrics  # disk, memory and load were measured


def seen_as(*nodes: str) -> dict[str, NodeView]:
    """Each node as a word: ``hot`` (its container carries io.nodeops.hot=true), then ``200`` (answers 200), ``503``
    (answers unhealthy, failing RPC) or ``silent`` (runs, answers nothing): ``a=hot+200``, ``b=200``; ``gone``: it
    cannot be reached."""
    views = {}
    for spec in nodes:
        name, how = spec.split("=")
        if how == "gone":
            node = Node(name, f"10.0.0.{len(views) + 1}", 22, "standby", (), "cl")
            views[name] = NodeView(node, None, False, unreachable=f"{name}: cannot connect")
            continue
        labels = {"io.nodeops.hot": "true"} if "hot" in how else {}
        c = parse_inspect(json.dumps([{"Name": "/nodeops-cl", "Image": "sha256:abc", "Config": {"Labels": labels},
                                       "State": {"Running": True, "Status": "running", "Pid": 1}}]))  # fmt: skip
        node = Node(name, f"10.0.0.{len(views) + 1}", 22, "active" if name == "a" else "standby", (), "cl")
        views[name] = NodeView(node, c, "200" in how, ("RPC",) if "503" in how else ())
    return views


@pytest.mark.parametrize(
    ("model", "nodes", "check", "verdict"),
    [
        ("lease", ["a=200", "b=silent"], "active", ("pass", "a serves /health (no load balancer in the inventory)")),
        ("lease", ["a=silent", "b=silent"], "active", ("fail", "no node serves /health")),
        ("lease", ["a=503", "b=silent"], "active",
         ("fail", "a holds the lease but answers /health unhealthy (failing: RPC)")),
        ("lease", ["a=200", "b=200"], "active", ("fail", "2 nodes serve /health (a, b): expected exactly one")),
        ("keys", ["a=hot+200", "b=200"], "active",
         ("pass", "a holds the hot keys and serves /health (no load balancer in the inventory)")),
        ("keys", ["a=200", "b=200"], "active", ("fail", "no node holds the hot keys")),
        ("keys", ["a=hot+503", "b=200"], "active",
         ("fail", "a holds the hot keys but answers /health unhealthy (failing: RPC)")),
        ("keys", ["a=hot+200", "b=hot+200"], "active",
         ("fail", "2 nodes hold the hot keys (a, b): expected exactly one")),
        ("keys", ["a=hot+silent", "b=200"], "active", ("fail", "a holds the hot keys but does not answer /health")),
        ("all", ["a=200", "b=200"], "serving", ("pass", "all 2 nodes serve /health")),
        ("all", ["a=200", "b=silent"], "serving",
         ("fail", "1 of 2 nodes do not serve /health (b: not serving): all should")),
        # review rv15 F2: the active unseen is not "no node serves": it may be the unreachable node
        ("keys", ["a=200", "b=gone"], "active",
         ("fail", "no node reached holds the hot keys; b cannot be reached, and it may be the one that does")),
        ("lease", ["a=gone", "b=silent"], "active",
         ("fail", "no node reached serves /health; a cannot be reached, and it may be the one that does")),
        ("keys", ["a=hot+200", "b=gone"], "active",
         ("pass", "a holds the hot keys and serves /health (no load balancer in the inventory)")),
    ],
    ids=["lease-serves", "lease-none", "lease-unhealthy", "lease-two", "keys-holder-serves", "keys-no-holder",
         "keys-unhealthy", "keys-two-holders", "keys-silent-holder", "all-serve", "all-one-silent",
         "keys-holder-unreachable", "lease-active-unreachable", "keys-standby-unreachable"],
)  # fmt: skip
def test_the_serving_check_speaks_the_models_words(model, nodes, check, verdict):
    """Issue 15: under keys, check worded its serving check in lease terms (an unhealthy holder "holds the lease", no
    holder "no node serves /health" while both nodes serve) and a holder that answered nothing raised (no reply to
    read). The verdict is the model's (Model.one_active and its siblings), for each of the three models."""
    seen = seen_as(*nodes)
    answers = {name: body(None) for name, s in seen.items() if s.serving or s.failing}
    assert check_service(MODELS[model], seen, answers, "/health", None, None, HOOKS.lease_client) == (check, verdict)
