"""fab monitoring.render: a role's monitoring file (validated like role.yaml), the pure render (targets, scrape
configuration, dashboards), the writer that overwrites only what a render wrote, and the command's bad input (exit
2, one line, nothing written). The alert rules themselves: tests/unit/test_alert_rules.py (promtool)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from nodeops.errors import InvalidInput
from nodeops.inventory import load_inventory
from nodeops.monitoring.base import base
from nodeops.monitoring.model import monitored_services, parse_monitoring
from nodeops.monitoring.output import manifest_name, plan_writes, write_tree
from nodeops.monitoring.render import Settings, render, seconds, uid
from nodeops.role_file import RoleError
from tasks.monitoring import settings
from tests.conftest import fab
from tests.unit.test_deploy_preflight import inventory

GOOD = """\
dashboard: Mine
scrape: {path: /metrics}
panels:
  - {title: Up, expr: 'up{env="$env"}'}
rules:
  - {alert: Down, expr: up == 0, for: 1m, summary: down}
"""


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (GOOD.replace("for: 1m", "for: 5 minutes"), "rules[0].for: expected a Prometheus duration"),
        (
            GOOD.replace("expr: up == 0", "expr: 'up{env=\"$env\"} == 0'"),
            "rules[0].expr: an alert rule holds for every environment: group by env, not $env",
        ),
        (GOOD.replace("panels:", "panel:"), "unknown key 'panel'"),
        (GOOD.replace("{title: Up,", "{title: Up, kind: pie,"), "panels[0].kind: expected 'timeseries'"),
        (GOOD + "  - {alert: Down, expr: up == 1, summary: again}\n", "rules[1].alert: alert Down is defined twice"),
        (GOOD.replace("path: /metrics", "path: metrics"), "scrape.path: expected an HTTP path starting with /"),
        ("dashboard: Mine\npanels: []\n", "panels: expected 1 to 100 panels"),
        ("dashboard: [\n", "monitoring.yaml"),
    ],
)
def test_a_bad_monitoring_file_is_one_role_error_naming_the_path(tmp_path, text, fragment):
    path = tmp_path / "monitoring.yaml"
    path.write_text(text)
    with pytest.raises(RoleError) as err:
        parse_monitoring("mine", path)
    assert str(err.value).startswith(f"{path}: ") and fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_a_good_monitoring_file(tmp_path):
    (tmp_path / "monitoring.yaml").write_text(GOOD)
    got = parse_monitoring("mine", tmp_path / "monitoring.yaml")
    got = (got.name, got.scrape.path, got.panels[0].kind, got.rules[0].for_)
    assert got == ("mine", "/metrics", "timeseries", "1m")


TWO = textwrap.dedent("""\
    environment: t
    bastion: {host: 127.0.0.1, port: 9, user: root, host_key: "KEY"}
    ssh: {user: root}
    secret_backends: {ci: {kind: env, prefix: NODEOPS_}}
    defaults:
      image: smartcontract/chainlink:2.10.0
      secrets:
        db: {backend: ci, name: x/db, key: password}
        db_user: {backend: ci, name: x/db, key: username}
        keystore: {backend: ci, name: x/w, key: password}
        api_email: {backend: ci, name: x/api, key: username}
        api_password: {backend: ci, name: x/api, key: password}
    services:
      cl:
        role: chainlink
        variables: {DATABASE_HOST: 10.0.0.9, DATABASE_NAME: cl}
        nodes:
          - {name: a, host: 10.0.0.1, preferred: active, host_key: "KEY"}
          - {name: b, host: 10.0.0.2, preferred: standby, host_key: "KEY"}
      other:
        role: chainlink
        port: 6700
        check: {secret_max_age_days: 30}
        variables: {DATABASE_HOST: 10.0.0.9, DATABASE_NAME: other}
        nodes:
          - {name: c, host: 10.0.0.3, preferred: active, host_key: "KEY"}
    """)


@pytest.fixture
def two(tmp_path):
    from tests.unit.test_deploy_preflight import KEY

    path = tmp_path / "t.yaml"
    path.write_text(TWO.replace("KEY", KEY))
    inv = load_inventory(path)
    ports, monitored = monitored_services(inv)
    return inv, render(inv, ports, monitored, base(inv), Settings(exporter="10.0.0.5:9100", interval="5s"))


def test_targets_one_group_per_node_with_its_labels(two):
    _, files = two
    cl = json.loads(files["prometheus/targets/t/chainlink/cl.json"])
    other = json.loads(files["prometheus/targets/t/chainlink/other.json"])
    assert cl == [
        {"targets": ["10.0.0.1:6688"], "labels": {"env": "t", "service": "cl", "node": "a", "role": "chainlink"}},
        {"targets": ["10.0.0.2:6688"], "labels": {"env": "t", "service": "cl", "node": "b", "role": "chainlink"}},
    ]
    assert other == [{"targets": ["10.0.0.3:6700"],  # the service's own port
                      "labels": {"env": "t", "service": "other", "node": "c", "role": "chainlink"}}]  # fmt: skip
    check = json.loads(files["prometheus/targets/t/check.json"])
    assert check == [{"targets": ["10.0.0.5:9100"], "labels": {"env": "t"}}]


def test_the_scrape_configuration(two):
    _, files = two
    config = yaml.safe_load(files["prometheus/prometheus-t.yml"])
    assert config["global"]["scrape_interval"] == "5s"
    assert config["rule_files"] == ["rules/chainlink.yml", "rules/nodeops-t.yml"]
    assert config["scrape_configs"] == [
        {"job_name": "nodeops_check", "honor_labels": True, "file_sd_configs": [{"files": ["targets/t/check.json"]}]},
        {"job_name": "nodeops_chainlink", "metrics_path": "/metrics",
         "file_sd_configs": [{"files": ["targets/t/chainlink/*.json"]}]},
    ]  # fmt: skip


def test_the_secret_rule_follows_each_services_limit(two):
    _, files = two
    rules = yaml.safe_load(files["prometheus/rules/nodeops-t.yml"])["groups"][0]["rules"]
    expr = next(r["expr"] for r in rules if r["alert"] == "NodeopsSecretDueForRotation")
    assert expr == ('nodeops_secret_age_seconds{env="t",service=~"other"} > 2332800 or '
                    'nodeops_secret_age_seconds{env="t",service=~"cl"} > 6998400')  # fmt: skip


def test_dashboards_are_provisioning_ready(two):
    _, files = two
    boards = {p: json.loads(b) for p, b in files.items() if p.startswith("grafana/dashboards/")}
    assert sorted(boards) == ["grafana/dashboards/t/nodeops-t-chainlink.json", "grafana/dashboards/t/nodeops-t.json"]
    for board in boards.values():
        shown = [{k: v.get(k) for k in ("name", "type", "query", "hide")} for v in board["templating"]["list"]]
        assert shown == [{"name": "env", "type": "constant", "query": "t", "hide": 2},
                         {"name": "interval", "type": "constant", "query": "5s", "hide": 2},
                         {"name": "interval_seconds", "type": "constant", "query": "5", "hide": 2}]  # fmt: skip
        panels = board["panels"]
        assert len({p["id"] for p in panels}) == len(panels)
        for panel in panels:
            assert panel["datasource"] == {"type": "prometheus", "uid": "nodeops-prometheus-t"}
            (target,) = panel["targets"]
            assert target["refId"] == "A" and target["expr"]
    chainlink = boards["grafana/dashboards/t/nodeops-t-chainlink.json"]
    assert chainlink["title"] == "Chainlink pairs (t)" and chainlink["uid"] == "nodeops-t-chainlink"
    source = yaml.safe_load(files["grafana/provisioning/datasources/nodeops-t.yaml"])["datasources"][0]
    assert (source["uid"], source["type"], source["url"]) == (
        "nodeops-prometheus-t",
        "prometheus",
        "http://localhost:9090",
    )
    provider = yaml.safe_load(files["grafana/provisioning/dashboards/nodeops-t.yaml"])["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards/nodeops/t"


@pytest.mark.parametrize(("duration", "expected"), [("15s", 15), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600)])
def test_seconds(duration, expected):
    assert seconds(duration) == expected


def test_a_long_uid_is_a_digest():
    assert uid("nodeops", "prod") == "nodeops-prod"
    long = uid("nodeops", "e" * 30, "r" * 20)
    assert len(long) == 40 and long.startswith("nodeops-") and long != uid("nodeops", "e" * 30, "r" * 21)


@pytest.mark.parametrize(
    ("files", "manifest", "current", "expected"),
    [
        ({"a": b"1"}, {}, {}, (["a"], [], [])),  # new
        ({"a": b"1"}, {"a": "d0"}, {"a": b"0"}, (["a"], [], [])),  # ours, unchanged since: rewritten
        ({"a": b"0"}, {"a": "d0"}, {"a": b"0"}, ([], [], [])),  # ours, same content: left alone
        ({"a": b"1"}, {"a": "d0"}, {"a": b"edited"}, ([], [], ["out/a: changed since nodeops wrote it"])),
        ({"a": b"1"}, {}, {"a": b"theirs"}, ([], [], ["out/a: not written by fab monitoring.render"])),
        ({}, {"gone": "d0"}, {"gone": b"0"}, ([], ["gone"], [])),  # ours, no longer rendered: removed
        ({}, {"gone": "d0"}, {"gone": b"edited"}, ([], [], ["out/gone: changed since nodeops wrote it"])),
        ({}, {"gone": "d0"}, {}, ([], [], [])),  # already removed by hand
    ],
)
def test_plan_writes(files, manifest, current, expected):
    import hashlib

    digests = {k: hashlib.sha256(b"0").hexdigest() for k in manifest}
    assert plan_writes(Path("out"), files, digests, current) == expected


def test_write_tree_refuses_a_foreign_file_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    write_tree(out, {"x/a.yml": b"1", "b.yml": b"2"}, "t")
    assert json.loads((out / manifest_name("t")).read_text())["files"].keys() == {"x/a.yml", "b.yml"}
    (out / "c.yml").write_text("theirs")
    with pytest.raises(InvalidInput, match=r"c.yml: not written by fab monitoring.render: move it away"):
        write_tree(out, {"x/a.yml": b"new", "c.yml": b"3"}, "t")
    assert (out / "x/a.yml").read_bytes() == b"1" and (out / "c.yml").read_text() == "theirs"
    assert write_tree(out, {"x/a.yml": b"new"}, "t") == (["x/a.yml"], ["b.yml"])
    assert not (out / "b.yml").exists() and (out / "c.yml").read_text() == "theirs"


def test_the_command_writes_the_files_and_says_so(tmp_path):
    (tmp_path / "t.yaml").write_text(inventory())
    out = tmp_path / "out"
    first = fab("monitoring.render", "--inventory", str(tmp_path / "t.yaml"), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert f"9 files for t in {out}: 9 written, 0 removed, 0 unchanged" in first.stdout
    again = fab("monitoring.render", "--inventory", str(tmp_path / "t.yaml"), "--out", str(out))
    assert "0 written, 0 removed, 9 unchanged" in again.stdout


BAD_MONITORING = "dashboard: x\npanels: [{title: t, expr: up}]\nrules: [{alert: A, expr: up, for: soon, summary: s}]\n"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "nodeops: --out is required"),
        (("--out", "OUT", "--exporter", "nohost"), "nodeops: --exporter 'nohost': expected HOST:PORT"),
        (("--out", "OUT", "--interval", "0s"), "nodeops: --interval '0s': expected a Prometheus duration above 0"),
        (("--out", "OUT", "--prometheus-url", "localhost:9090"), "nodeops: --prometheus-url 'localhost:9090'"),
        (("--out", "OUT", "--dashboards", "dash"), "nodeops: --dashboards 'dash': expected an absolute folder"),
        (("--out", "FILE"), "not a folder"),
        (("--out", "OUT", "ROLE"), "roles/chainlink/monitoring.yaml: rules[0].for: expected a Prometheus duration"),
        (("--out", "THEIRS"), "prometheus-t.yml: not written by fab monitoring.render"),
    ],
)
def test_bad_input_is_exit_2_one_line_nothing_written(tmp_path, args, fragment):
    (tmp_path / "t.yaml").write_text(inventory())
    (tmp_path / "file").write_text("")
    (tmp_path / "theirs" / "prometheus").mkdir(parents=True)
    (tmp_path / "theirs" / "prometheus" / "prometheus-t.yml").write_text("mine\n")
    if "ROLE" in args:
        (tmp_path / "roles" / "chainlink").mkdir(parents=True)
        (tmp_path / "roles" / "chainlink" / "monitoring.yaml").write_text(BAD_MONITORING)
    places = {"OUT": str(tmp_path / "out"), "FILE": str(tmp_path / "file"), "THEIRS": str(tmp_path / "theirs")}
    argv = [places.get(a, a) for a in args if a != "ROLE"]
    res = fab("monitoring.render", "--inventory", str(tmp_path / "t.yaml"), *argv)
    assert res.returncode == 2, res.stdout + res.stderr
    assert fragment in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in (tmp_path / "theirs").rglob("*")) == ["prometheus", "prometheus-t.yml"]


def test_a_projects_monitoring_file_overrides_the_built_in_one(tmp_path):
    """The project's roles/<role>/monitoring.yaml alone replaces the built-in one (its role.yaml stays built-in);
    without ``scrape`` the role's nodes are not scraped, and its dashboard and rules are still written."""
    (tmp_path / "t.yaml").write_text(inventory())
    (tmp_path / "roles" / "chainlink").mkdir(parents=True)
    (tmp_path / "roles" / "chainlink" / "monitoring.yaml").write_text(GOOD.replace("scrape: {path: /metrics}\n", ""))
    inv = load_inventory(tmp_path / "t.yaml")
    ports, monitored = monitored_services(inv)
    assert monitored["cl"].source == tmp_path / "roles" / "chainlink" / "monitoring.yaml"
    files = render(inv, ports, monitored, base(inv), Settings())
    assert not [p for p in files if p.startswith("prometheus/targets/t/chainlink/")]
    jobs = [j["job_name"] for j in yaml.safe_load(files["prometheus/prometheus-t.yml"])["scrape_configs"]]
    assert jobs == ["nodeops_check"]
    assert [r["alert"] for r in yaml.safe_load(files["prometheus/rules/chainlink.yml"])["groups"][0]["rules"]] == [
        "Down"
    ]
    board = json.loads(files["grafana/dashboards/t/nodeops-t-chainlink.json"])
    assert board["title"] == "Mine (t)" and [p["title"] for p in board["panels"]] == ["Up"]


def _manifest(out: Path, entries: dict[str, bytes]) -> None:
    import hashlib

    digests = {rel: hashlib.sha256(data).hexdigest() for rel, data in entries.items()}
    (out / manifest_name("t")).write_text(json.dumps({"files": digests}))


@pytest.mark.parametrize("entry", ["../victim.txt", "sub/../../victim.txt", "ABSOLUTE", "link/victim.txt"])
def test_a_manifest_naming_a_file_outside_out_is_refused_and_nothing_is_touched(tmp_path, entry):
    """A manifest (edited, or planted in a shared folder) that names a file outside --out, by ``..``, an absolute
    path or through a symlink, would have a render remove that file: it is refused, exit 2, and nothing moves."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (elsewhere / "victim.txt").write_bytes(b"precious")
    (out / "link").symlink_to(elsewhere)
    entry = str(victim) if entry == "ABSOLUTE" else entry
    (out / "keep.yml").write_bytes(b"0")
    _manifest(out, {entry: b"precious", "keep.yml": b"0"})
    before = (out / manifest_name("t")).read_text()
    with pytest.raises(InvalidInput) as err:
        write_tree(out, {"new.yml": b"1"}, "t")
    message = str(err.value)
    assert message.startswith(f"{out / manifest_name('t')}: ") and repr(entry) in message and "\n" not in message
    assert "remove the entry" in message
    assert victim.read_bytes() == b"precious" and (elsewhere / "victim.txt").read_bytes() == b"precious"
    assert (
        (out / "keep.yml").exists()
        and not (out / "new.yml").exists()
        and (out / manifest_name("t")).read_text() == before
    )


def test_a_rendered_file_under_a_symlinked_folder_is_refused(tmp_path):
    """A symlinked folder inside --out would have a render write outside it: refused, nothing written there."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "prometheus").symlink_to(elsewhere)
    with pytest.raises(InvalidInput, match=r"prometheus/prometheus-t.yml: .*symlink"):
        write_tree(out, {"prometheus/prometheus-t.yml": b"1"}, "t")
    assert list(elsewhere.iterdir()) == [] and not (out / manifest_name("t")).exists()


def test_the_command_refuses_an_escaping_manifest_with_exit_2(tmp_path):
    (tmp_path / "t.yaml").write_text(inventory())
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "victim.txt").write_bytes(b"precious")
    _manifest(out, {"../victim.txt": b"precious"})
    res = fab("monitoring.render", "--inventory", str(tmp_path / "t.yaml"), "--out", str(out))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"{out / manifest_name('t')}: entry '../victim.txt' is outside" in res.stderr
    assert (tmp_path / "victim.txt").read_bytes() == b"precious" and sorted(p.name for p in out.iterdir()) == [
        manifest_name("t")
    ]


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--exporter", "host:0"),
        ("--exporter", "host:65536"),
        ("--exporter", "::9100"),
        ("--exporter", "::1:9100"),
        ("--exporter", "[::1:9100"),
        ("--exporter", "[nothost]:9100"),
        ("--exporter", "-host:9100"),
        ("--exporter", "a..b:9100"),
        ("--exporter", "999.1.1.1:9100"),
        ("--prometheus-url", "http://:9090"),
        ("--prometheus-url", "http://prometheus:99999"),
        ("--prometheus-url", "http://admin:secret@prometheus:9090"),
        ("--prometheus-url", "http://prom etheus:9090"),
        ("--interval", "99999999999999h"),
        ("--dashboards", "/var/lib/grafana/../../etc"),
        ("--dashboards", '/var/lib/"grafana"'),
    ],
)
def test_a_bad_option_is_exit_2_one_line(flag, value):
    """Values the flags' patterns let through before, each of which wrote a configuration Prometheus or Grafana
    refuses (or, for a URL with a password, a credential into a provisioning file)."""
    with pytest.raises(InvalidInput) as err:
        settings(**{**GOOD_OPTIONS, flag.removeprefix("--").replace("-", "_"): value})
    assert str(err.value).startswith(f"{flag} {value!r}: expected") and "\n" not in str(err.value)


GOOD_OPTIONS = {"exporter": "localhost:9100", "interval": "15s", "prometheus_url": "http://localhost:9090",
                "dashboards": "/var/lib/grafana/dashboards/nodeops"}  # fmt: skip


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--exporter", "10.0.0.5:9100"), ("--exporter", "[::1]:9100"), ("--exporter", "ops-1.internal:1"),
     ("--exporter", "localhost:65535"), ("--prometheus-url", "https://prom.internal/prometheus"),
     ("--prometheus-url", "http://[fd00::1]:9090"), ("--interval", "1m30s"), ("--interval", "500ms")],
)  # fmt: skip
def test_good_options_pass(flag, value):
    settings(**{**GOOD_OPTIONS, flag.removeprefix("--").replace("-", "_"): value})


def test_two_environments_rendered_into_one_tree_coexist(tmp_path):
    """prod and staging (same service names) rendered into one folder: neither overwrites nor removes the other's
    files, and once copied into one Prometheus and one Grafana nothing collides: target files, rule files and
    dashboard files are per environment (the role's rules, the same for both, shared), each environment has its own
    dashboard folder, dashboard uids and titles, and its own datasource that its dashboards query."""
    out = tmp_path / "out"
    for env in ("prod", "staging"):
        (tmp_path / f"{env}.yaml").write_text(inventory().replace("environment: t", f"environment: {env}"))
        res = fab("monitoring.render", "--inventory", str(tmp_path / f"{env}.yaml"), "--out", str(out))
        assert res.returncode == 0, res.stderr
    again = fab("monitoring.render", "--inventory", str(tmp_path / "prod.yaml"), "--out", str(out))
    assert again.returncode == 0 and "0 written, 0 removed" in again.stdout, again.stdout + again.stderr
    owned = {env: set(json.loads((out / f".nodeops-monitoring-{env}.json").read_text())["files"])
             for env in ("prod", "staging")}  # fmt: skip
    assert owned["prod"] & owned["staging"] == {"prometheus/rules/chainlink.yml"}
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert on_disk == owned["prod"] | owned["staging"]
    boards = [json.loads((out / p).read_text()) for p in sorted(on_disk) if p.startswith("grafana/dashboards/")]
    assert len(boards) == 4 and len({b["uid"] for b in boards}) == 4 and len({b["title"] for b in boards}) == 4
    for env in ("prod", "staging"):
        source = yaml.safe_load((out / f"grafana/provisioning/datasources/nodeops-{env}.yaml").read_text())
        (source,) = source["datasources"]
        provider = yaml.safe_load((out / f"grafana/provisioning/dashboards/nodeops-{env}.yaml").read_text())
        assert provider["providers"][0]["options"]["path"] == f"/var/lib/grafana/dashboards/nodeops/{env}"
        mine = [b for b in boards if env in b["tags"]]
        assert len(mine) == 2 and {p["datasource"]["uid"] for b in mine for p in b["panels"]} == {source["uid"]}
        assert all(p.startswith(f"grafana/dashboards/{env}/") for p in owned[env] if p.startswith("grafana/dash"))
        config = yaml.safe_load((out / f"prometheus/prometheus-{env}.yml").read_text())
        files = [f for job in config["scrape_configs"] for sd in job["file_sd_configs"] for f in sd["files"]]
        assert all(f.startswith(f"targets/{env}/") for f in files), files
        assert config["rule_files"] == ["rules/chainlink.yml", f"rules/nodeops-{env}.yml"]
    names = {yaml.safe_load((out / f"grafana/provisioning/datasources/nodeops-{e}.yaml").read_text())["datasources"][0]
             ["name"] for e in ("prod", "staging")}  # fmt: skip
    assert len(names) == 2


def test_a_tree_from_before_per_environment_names_is_refused_with_the_upgrade(tmp_path):
    (tmp_path / "t.yaml").write_text(inventory())
    out = tmp_path / "out"
    out.mkdir()
    (out / ".nodeops-monitoring.json").write_text('{"files": {}}')
    res = fab("monitoring.render", "--inventory", str(tmp_path / "t.yaml"), "--out", str(out))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "older nodeops" in res.stderr and "docs/monitoring.md" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == [".nodeops-monitoring.json"]


@pytest.mark.parametrize(
    ("files", "manifest", "current", "others", "expected"),
    [
        ({"r": b"0"}, {}, {"r": b"0"}, {"r": "d0"}, ([], [], [])),  # another env's, same content: shared
        ({"r": b"1"}, {}, {"r": b"0"}, {"r": "d0"},
         ([], [], ["out/r: written by another environment's render, with other content"])),
        ({}, {"r": "d0"}, {"r": b"0"}, {"r": "d0"}, ([], [], [])),  # no longer ours, still theirs: kept
        ({"r": b"0"}, {}, {"r": b"0"}, {}, ([], [], ["out/r: not written by fab monitoring.render"])),
    ],
)  # fmt: skip
def test_plan_writes_beside_another_environment(files, manifest, current, others, expected):
    import hashlib

    digest = hashlib.sha256(b"0").hexdigest()
    mine = {k: digest for k in manifest}
    assert plan_writes(Path("out"), files, mine, current, {k: digest for k in others}) == expected


def test_a_listed_file_that_is_now_a_symlink_is_refused_not_followed(tmp_path):
    """A file the manifest lists, replaced by a symlink to a file outside --out with the listed digest: never
    removed or written through (the link is not a file a render wrote)."""
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (out / "gone.yml").symlink_to(victim)
    _manifest(out, {"gone.yml": b"precious", "kept.yml": b"precious"})
    with pytest.raises(InvalidInput, match=r"gone.yml: changed since nodeops wrote it"):
        write_tree(out, {"kept.yml": b"1"}, "t")
    assert victim.read_bytes() == b"precious" and (out / "gone.yml").is_symlink()
