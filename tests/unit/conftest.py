"""Fixtures the unit modules share."""

from __future__ import annotations

import pytest

from nodeops.inventory import load_inventory
from nodeops.job import prepare
from tests.unit.test_deploy_preflight import ENV, inventory


@pytest.fixture
def job(tmp_path, monkeypatch):
    """The preflight of a one-service Chainlink inventory (``tmp_path / "t.yaml"``, env backend), as deploy makes it."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.yaml"
    path.write_text(inventory())
    return prepare(load_inventory(path))[0]
