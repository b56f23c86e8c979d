"""The Cardano simulator image (lab/image.py CARDANO) on its real Debian rootfs: Debian's python3, PyNaCl and cbor2
run the repository's roles/cardano, the chain service and a producer that forges, in a chroot of the image's
filesystem (root: debootstrap, chroot; no lab, no registry). The first run builds the rootfs (about a minute);
it is cached in the lab's cache beside the Chainlink one."""

from __future__ import annotations

import subprocess

import pytest

from lab import image
from lab.host import CACHE
from tests.sim.cardano import Network, Pool
from tests.sim.support import wait_for

pytestmark = pytest.mark.lab  # root: debootstrap, chroot


@pytest.fixture(scope="module")
def filesystem(root, tmp_path_factory):
    base = image.rootfs(CACHE, image.CARDANO.packages)
    folder = tmp_path_factory.mktemp("cardano-image")
    tar = folder / "image.tar"
    with open(tar, "wb") as sink:
        image.write_image_tar(base, "10.5.1", sink, image.CARDANO)
    tree = folder / "root"
    tree.mkdir()
    subprocess.run(["tar", "--numeric-owner", "-C", str(tree), "-xf", str(tar)], check=True)
    tar.unlink()
    return tree


def in_image(tree, *argv):
    return subprocess.run(["chroot", str(tree), *argv], capture_output=True, text=True, timeout=60)


def test_the_image_runs_the_node_with_debians_python_and_libraries(filesystem):
    shown = in_image(filesystem, "/usr/local/bin/cardano-node", "--version")
    assert shown.stdout.startswith("cardano-node 10.5.1 "), shown.stderr
    versions = in_image(filesystem, "python3", "-c", "import nacl, cbor2; print(nacl.__version__, cbor2.__file__)")
    assert versions.returncode == 0 and "/usr/lib/python3/dist-packages/cbor2" in versions.stdout, versions.stderr


def test_a_producer_in_the_image_forges_on_the_chain_service_in_the_image(filesystem):
    work = filesystem / "work"
    work.mkdir()
    net = Network(work, sim=filesystem / "usr/local/bin", python=("chroot", str(filesystem), "python3"),
                  chroot=filesystem)  # fmt: skip
    try:
        pool = Pool(work)
        net.start_chain(pool)
        net.node("relay")
        net.node("producer", peers=("relay",), hot=pool.hot("producer", counter=0, start=net.current_period()))
        wait_for(lambda: sum(b["adopted"] for b in net.blocks("producer")) >= 2, 20, what="2 blocks from the image")
        assert net.metrics("producer")["cardano_node_metrics_forging_enabled_int"] == 1
        assert net.metrics("relay")["cardano_node_metrics_connectedPeers_int"] == 0
    finally:
        net.cleanup()
