"""Helpers for the Cardano simulator tests (lab/images/cardano-sim): a pool's keys made with roles/cardano, a lab
network (its Shelley genesis, periods.lab_shelley_genesis) with the chain service, and node simulators started as
subprocesses from the repository (no image, no root), each killed by its pid."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2

from nodeops.roles import role_module

from .support import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
SIM = REPO / "lab" / "images" / "cardano-sim"
envelope = role_module("cardano", "envelope")
kes = role_module("cardano", "kes")
ocert = role_module("cardano", "ocert")
periods = role_module("cardano", "periods")
AGE = timedelta(seconds=600)  # the network's age at the start of a test: 300 KES periods behind it


class Pool:
    """A pool's cold key (its verification key file for the chain) and VRF key, and hot credentials issued on
    demand: a fresh KES key and a certificate with a counter and a start period."""

    def __init__(self, folder: Path, seed: int = 1) -> None:
        self.folder = folder
        self.cold = ocert.ColdKey(bytes([seed]) * 32)
        self.cold_vkey = folder / f"cold{seed}.vkey"
        self.cold_vkey.write_text(envelope.cold_verification_key_file(self.cold.verification_key))
        self.id = hashlib.blake2b(self.cold.verification_key, digest_size=28).hexdigest()  # cardano-cli's pool id
        vrf = bytes([seed + 100]) * 32 + bytes(32)  # carried only; its last 32 bytes stand for its verification key
        self.vrf = folder / f"vrf{seed}.skey"
        self.vrf.write_text(envelope.write(envelope.VRF_SIGNING, cbor2.dumps(vrf)))

    def hot(self, name: str, counter: int, start: int, cold: ocert.ColdKey | None = None,
            naming_the_pool: bool = False) -> dict[str, Path]:  # fmt: skip
        """KES key and certificate files for a producer ``name`` (the certificate signed by ``cold``, default the
        pool's; ``naming_the_pool``: carrying the pool's cold verification key whoever signed it); the node's flags
        for them."""
        key = kes.SignKey.generate()
        certificate = ocert.issue(cold or self.cold, key.verification_key, counter, start)
        if naming_the_pool:
            certificate = dataclasses.replace(certificate, cold_vk=self.cold.verification_key)
        files = {"--shelley-kes-key": self.folder / f"{name}.kes.skey",
                 "--shelley-operational-certificate": self.folder / f"{name}.node.cert"}  # fmt: skip
        files["--shelley-kes-key"].write_text(envelope.kes_signing_key_file(key))
        files["--shelley-operational-certificate"].write_text(envelope.certificate_file(certificate))
        return {**files, "--shelley-vrf-key": self.vrf}


def get(url: str):
    with urllib.request.urlopen(url, timeout=2) as answer:
        body = answer.read().decode()
    return json.loads(body) if answer.headers.get_content_type() == "application/json" else body


def metrics(text: str) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")}


class Network:
    """The lab network in a folder: genesis and node configuration files, the chain service, nodes."""

    def __init__(self, folder: Path, sim: Path = SIM, python: tuple[str, ...] = (sys.executable,),
                 chroot: Path | None = None) -> None:  # fmt: skip
        """``sim``: the folder of cardano-node and cardano-chain; ``python``: the argv that runs them; ``chroot``: the
        root they see (``folder`` and ``sim`` within it), None for this one."""
        self.folder, self.sim, self.python, self.chroot = folder, sim, python, chroot
        self.genesis_doc = periods.lab_shelley_genesis(datetime.now(UTC) - AGE)
        (folder / "shelley-genesis.json").write_text(json.dumps(self.genesis_doc, indent=2))
        self.genesis = periods.Genesis.from_shelley_genesis("lab", self.genesis_doc)
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[str, Path] = {}
        self.ports: dict[str, tuple[int, int]] = {}
        self.chain_port = free_port()
        self.chain = f"http://127.0.0.1:{self.chain_port}"

    def seen(self, path: Path) -> str:
        """``path`` as the programs see it."""
        return str(path) if self.chroot is None else f"/{path.relative_to(self.chroot)}"

    def current_period(self) -> int:
        return self.genesis.kes_period(self.genesis.slot_at(datetime.now(UTC)))

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([*self.python, *argv], stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, **(env or {})}, start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        self.logs[name] = log
        return proc

    def start_chain(self, *pools: Pool) -> None:
        argv = [self.seen(self.sim / "cardano-chain"), "--genesis", self.seen(self.folder / "shelley-genesis.json"),
                "--port", str(self.chain_port)]  # fmt: skip
        for pool in pools:
            argv += ["--pool", self.seen(pool.cold_vkey)]
        self._start("chain", argv)
        wait_for(lambda: self._up(f"{self.chain}/tip"), 10, what="the chain service's /tip")

    def _up(self, url: str) -> bool:
        try:
            get(url)
        except OSError:
            return False
        return True

    def node(self, name: str, peers: tuple[str, ...] = (), hot: dict[str, Path] | None = None,
             wait: bool = True) -> subprocess.Popen:  # fmt: skip
        """Start node ``name`` (a relay without ``hot``), its topology naming ``peers`` (started before it)."""
        port, metrics_port = self.ports.setdefault(name, (free_port(), free_port()))
        config = {"ShelleyGenesisFile": "shelley-genesis.json", "TraceOptionMetricsPrefix": "cardano.node.metrics.",
                  "TraceOptions": {"": {"backends": [f"PrometheusSimple suffix 127.0.0.1 {metrics_port}",
                                                      "Stdout HumanFormatUncoloured"]}}}  # fmt: skip
        (self.folder / f"{name}-config.json").write_text(json.dumps(config))
        roots = [{"accessPoints": [{"address": "127.0.0.1", "port": self.ports[p][0]} for p in peers],
                  "advertise": False, "trustable": True, "valency": len(peers)}]  # fmt: skip
        (self.folder / f"{name}-topology.json").write_text(json.dumps({"localRoots": roots, "publicRoots": []}))
        at = {part: self.seen(self.folder / f"{name}{part}") for part in ("-config.json", "-topology.json", "-db",
                                                                           ".socket")}  # fmt: skip
        argv = [self.seen(self.sim / "cardano-node"), "run", "--config", at["-config.json"], "--topology",
                at["-topology.json"], "--database-path", at["-db"], "--socket-path", at[".socket"],
                "--host-addr", "127.0.0.1", "--port", str(port)]  # fmt: skip
        for flag, file in (hot or {}).items():
            argv += [flag] if file is None else [flag, self.seen(file)]  # None: a flag without a value
        proc = self._start(name, argv, {"CARDANO_SIM_CHAIN": self.chain, "CARDANO_SIM_NODE": name})
        if wait:
            wait_for(lambda: proc.poll() is not None or self._up(self.metrics_url(name)), 10, what=f"{name}'s metrics")
        return proc

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name][1]}/metrics"

    def metrics(self, name: str) -> dict[str, int]:
        return metrics(get(self.metrics_url(name)))

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def tip(self) -> dict:
        return get(f"{self.chain}/tip")

    def pools(self) -> dict:
        return get(f"{self.chain}/pools")

    def duplicates(self) -> list[dict]:
        return get(f"{self.chain}/duplicates")

    def blocks(self, name: str | None = None, key: str = "forged") -> list[dict]:
        return [b for b in get(f"{self.chain}/blocks")[key] if name is None or b["node"] == name]

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    def cleanup(self) -> None:
        for proc in self.procs:
            self.stop(proc)
