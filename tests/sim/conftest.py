"""Fixtures for the node simulator tests (lab/images/chainlink-sim, lab/images/cardano-sim).

A throwaway PostgreSQL 15 cluster per test session (see support.PGCluster), a
fresh role + database per test, and a factory that runs the simulator as a
subprocess and kills every process it started (by pid).
"""

import shutil
import subprocess

import pytest

from .cardano import Network
from .support import Client, PGCluster, SimFactory


@pytest.fixture(scope="session")
def pg():
    cluster = PGCluster()
    try:
        cluster.start()
    except subprocess.CalledProcessError as e:
        shutil.rmtree(cluster.base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {e}\n{e.stdout}{e.stderr}", pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture
def db(pg):
    return pg.new_database()


@pytest.fixture
def sims(tmp_path):
    f = SimFactory(tmp_path)
    yield f
    f.cleanup()


@pytest.fixture
def client_for():
    return Client


@pytest.fixture
def net(tmp_path):
    """A lab Cardano network (lab/images/cardano-sim) in tmp_path; its processes killed by pid afterwards."""
    network = Network(tmp_path)
    yield network
    network.cleanup()
