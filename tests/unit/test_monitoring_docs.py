"""docs/monitoring.md's Prometheus configuration, checked with the real ``promtool check config`` (Debian's 2.42,
which ./setup installs) so the page an operator copies from cannot stop loading: every ```yaml block of the page
holding ``scrape_configs`` is written out as a prometheus.yml and must pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.test_alert_rules import promtool

PAGE = Path(__file__).parents[2] / "docs" / "monitoring.md"


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
