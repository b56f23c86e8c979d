"""docs/monitoring.md's Prometheus configuration, checked with the real ``promtool check config`` (Debian's 2.42,
which ./setup installs) so the page an operator copies from cannot stop loading: every ```yaml block of the page
holding ``scrape_configs`` is written out as a prometheus.yml and must pass. Step 3's block is Debian's default
prometheus.yml with the nodeops parts merged in, and the crontab lines write where Debian's node_exporter reads
(both against the distribution's packages: /etc/prometheus/prometheus.yml, ``prometheus-node-exporter --help``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.test_alert_rules import promtool

DOCS = Path(__file__).parents[2] / "docs"
PAGE = DOCS / "monitoring.md"
DEBIAN_CONFIG = Path("/etc/prometheus/prometheus.yml")  # Debian's prometheus package's default (a conffile)


def prometheus_blocks(text: str) -> list[str]:
    """The ```yaml blocks of a Markdown page that are Prometheus configurations (they hold scrape_configs)."""
    return [b for b in re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M) if "scrape_configs:" in b]


def test_the_page_has_a_prometheus_configuration():
    assert prometheus_blocks(PAGE.read_text()), f"{PAGE} has no ```yaml block with scrape_configs"


@pytest.mark.parametrize("block", prometheus_blocks(PAGE.read_text()))
def test_the_documented_prometheus_configuration_passes_promtool(tmp_path, block):
    config = tmp_path / "prometheus.yml"
    config.write_text(block)
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_step_3_shows_debians_default_prometheus_yml_with_the_nodeops_parts_merged_in():
    """Review rv17 F5: step 3 said "add to your prometheus.yml" a block with its own rule_files: and
    scrape_configs:, keys Debian's default file has already: appended, Prometheus refuses the file."""
    text = PAGE.read_text()
    step3 = text[text.index("## 3. Prometheus") : text.index("## 4. Grafana")]
    (block,) = prometheus_blocks(step3)
    doc, debian = yaml.safe_load(block), yaml.safe_load(DEBIAN_CONFIG.read_text())
    rules = [r for r in doc["rule_files"] if r.startswith("/etc/prometheus/nodeops/")]
    jobs = [j for j in doc["scrape_configs"] if j["job_name"].startswith("nodeops_")]
    assert rules and {j["job_name"] for j in jobs} == {"nodeops_check", "nodeops_chainlink"}
    merged = {**debian, "rule_files": [*(debian.get("rule_files") or []), *rules],
              "scrape_configs": [*debian["scrape_configs"], *jobs]}  # fmt: skip
    assert doc == merged


def test_the_crontab_writes_fab_checks_textfile_where_debians_node_exporter_reads():
    """Review rv17 F4: the crontab wrote under /var/lib/node_exporter/textfile, which nothing creates, so every run
    was exit 2; Debian's node_exporter reads /var/lib/prometheus/node-exporter as it is installed."""
    helped = subprocess.run(["prometheus-node-exporter", "--help"], capture_output=True, text=True, timeout=30)
    default = re.search(r'--collector\.textfile\.directory="([^"]+)"', helped.stdout + helped.stderr)
    assert default, helped.stdout + helped.stderr
    for page in (PAGE, DOCS / "commands" / "check.md"):
        paths = re.findall(r"--textfile (/\S+)", page.read_text())  # the crontab lines
        assert paths and {str(Path(p).parent) for p in paths} == {default.group(1)}, (page, paths)
