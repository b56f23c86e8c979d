"""Fixtures the unit modules share."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nodeops.inventory import load_inventory
from nodeops.job import prepare
from tests.conftest import end_process
from tests.unit.test_deploy_preflight import ENV, inventory


@pytest.fixture
def job(tmp_path, monkeypatch):
    """The preflight of a one-service Chainlink inventory (``tmp_path / "t.yaml"``, env backend), as deploy makes it."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.yaml"
    path.write_text(inventory())
    return prepare(load_inventory(path))[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A real moto_server on 127.0.0.1 (its own free port), killed at the end."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    exe = Path(sys.executable).with_name("moto_server")
    with log.open("wb") as out:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        end_process(proc)


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """No ambient AWS credentials or config: the loopback rule must supply the dummy pair itself."""
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
