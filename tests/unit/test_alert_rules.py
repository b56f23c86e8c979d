"""The alert rules fab monitoring.render writes, tested with the real ``promtool`` (Debian's ``prometheus`` package;
./setup installs it, so the suite fails without it rather than skip): every rule file and the scrape configuration
pass ``promtool check``, the cases in tests/unit/promtool/ (one file per rule file: the engine's ``nodeops.yaml``,
a role's ``<role>.yaml``) pass ``promtool test rules``, and each alert has a case where it fires and one where it
stays quiet."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from nodeops.inventory import load_inventory
from nodeops.monitoring.base import base
from nodeops.monitoring.model import MONITORING_FILE, monitored_services
from nodeops.monitoring.output import write_tree
from nodeops.monitoring.render import Settings, render
from nodeops.roles import BUILTIN_ROLES
from tests.unit.test_deploy_preflight import inventory

CASES = Path(__file__).parent / "promtool"


def promtool(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: ./setup installs Debian's prometheus package, which ships it"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """The monitoring of the one-service inventory (environment t, service cl, role chainlink), written out."""
    folder = tmp_path_factory.mktemp("monitoring")
    (folder / "t.yaml").write_text(inventory())
    inv = load_inventory(folder / "t.yaml")
    ports, monitored = monitored_services(inv)
    write_tree(folder / "out", render(inv, ports, monitored, base(inv), Settings()), inv.environment)
    return folder / "out" / "prometheus"


def case_file(rule_file: Path) -> Path:
    """The cases of a rendered rule file: rules/nodeops-t.yml -> nodeops.yaml, rules/chainlink.yml -> chainlink.yaml."""
    return CASES / f"{rule_file.stem.removesuffix('-t')}.yaml"


def rule_files(folder: Path) -> list[Path]:
    return sorted((folder / "rules").glob("*.yml"))


def test_every_built_in_role_with_monitoring_has_rule_cases():
    roles = sorted(p.parent.name for p in BUILTIN_ROLES.glob(f"*/{MONITORING_FILE}"))
    assert roles, "no built-in role has a monitoring file"
    assert [r for r in roles if not (CASES / f"{r}.yaml").is_file()] == []


def test_the_configuration_and_rules_pass_promtool_check(rendered):
    config = promtool("check", "config", str(rendered / "prometheus-t.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    assert "2 rule files found" in config.stdout  # rule_files resolves relative to prometheus.yml
    rules = promtool("check", "rules", *map(str, rule_files(rendered)))
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_the_rule_tests_pass(rendered, tmp_path):
    files = rule_files(rendered)
    assert [f.name for f in files] == ["chainlink.yml", "nodeops-t.yml"]
    for rules in files:
        cases = yaml.safe_load(case_file(rules).read_text())
        cases["rule_files"] = [str(rules)]
        test = tmp_path / f"{rules.stem}.test.yml"
        test.write_text(yaml.safe_dump(cases, sort_keys=False))
        run = promtool("test", "rules", str(test))
        assert run.returncode == 0, f"{case_file(rules).name}:\n{run.stdout}{run.stderr}"
        assert "SUCCESS" in run.stdout


def test_a_wrong_expectation_fails_the_rule_tests(rendered, tmp_path):
    """The control: promtool really compares (a case that expects the wrong severity fails)."""
    rules = rendered / "rules" / "chainlink.yml"
    cases = yaml.safe_load(case_file(rules).read_text())
    cases["rule_files"] = [str(rules)]
    cases["tests"][0]["alert_rule_test"][1]["exp_alerts"][0]["exp_labels"]["severity"] = "info"
    test = tmp_path / "wrong.test.yml"
    test.write_text(yaml.safe_dump(cases, sort_keys=False))
    run = promtool("test", "rules", str(test))
    assert run.returncode != 0 and "ChainlinkPairNoActive" in run.stdout + run.stderr


def test_each_alert_has_a_firing_and_a_quiet_case(rendered):
    for rules in rule_files(rendered):
        alerts = [r["alert"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]]
        checks = [c for t in yaml.safe_load(case_file(rules).read_text())["tests"] for c in t["alert_rule_test"]]
        firing = {c["alertname"] for c in checks if c.get("exp_alerts")}
        quiet = {c["alertname"] for c in checks if not c.get("exp_alerts")}
        assert alerts, rules
        assert [a for a in alerts if a not in firing] == [], f"{rules.name}: alerts without a firing case"
        assert [a for a in alerts if a not in quiet] == [], f"{rules.name}: alerts without a quiet case"
