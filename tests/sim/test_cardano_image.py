"""The Cardano simulator image's files (lab/image.py CARDANO): roles/cardano copied in from the repository at build
time, laid out so that the programs run from the image's folders alone. Built here on a stand-in base rootfs (a
tar of /etc/passwd and /etc/group); tests/e2e/test_cardano_image.py builds it on the real Debian rootfs."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile

from lab import image

from .cardano import REPO, Network, Pool
from .support import wait_for

LIB = "usr/local/lib/cardano-sim"


def base_rootfs(path):
    with tarfile.open(path, "w") as out:
        for name, text in (("./etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("./etc/group", "root:x:0:\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            out.addfile(info, io.BytesIO(text.encode()))
    return path


def build(tmp_path, version="10.5.1"):
    sink = io.BytesIO()
    image.write_image_tar(base_rootfs(tmp_path / "base.tar"), version, sink, image.CARDANO)
    sink.seek(0)
    return tarfile.open(fileobj=sink)


def test_the_image_carries_the_repositorys_cardano_modules_not_a_copy_of_its_own(tmp_path):
    with build(tmp_path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for module in (REPO / "roles" / "cardano").glob("*.py"):
            member = members[f"./{LIB}/roles/cardano/{module.name}"]
            assert tar.extractfile(member).read() == module.read_bytes()
        errors = members[f"./{LIB}/nodeops/errors.py"]
        assert tar.extractfile(errors).read() == (REPO / "nodeops/errors.py").read_bytes()
        assert members["./usr/local/bin/cardano-node"].mode == 0o755 and "./usr/local/bin/cardano-chain" in members
        assert tar.extractfile(members["./usr/local/bin/VERSION"]).read() == b"10.5.1\n"
        assert tar.extractfile(members["./etc/passwd"]).read() == b"root:x:0:0:root:/root:/bin/sh\n"  # upstream's root


def test_the_programs_run_from_the_images_folders(tmp_path):
    root = tmp_path / "image"
    with build(tmp_path, "10.4.1") as tar:
        tar.extractall(root, filter="data")
    shown = subprocess.run([sys.executable, str(root / "usr/local/bin/cardano-node"), "--version"],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert shown.stdout.startswith("cardano-node 10.4.1 "), shown.stderr
    found = subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = [{str(root / LIB)!r}]; import simchain; "
                            "print(simchain.forging.__file__, simchain.envelope.InvalidInput.__module__)"],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert found.stdout.split()[0] == str(root / LIB / "roles/cardano/forging.py"), found.stderr
    net = Network(tmp_path, sim=root / "usr/local/bin")
    try:
        pool = Pool(tmp_path)
        net.start_chain(pool)
        net.node("producer", hot=pool.hot("producer", counter=0, start=net.current_period()))
        wait_for(lambda: any(b["adopted"] for b in net.blocks("producer")), 15, what="a block forged from the image")
    finally:
        net.cleanup()
