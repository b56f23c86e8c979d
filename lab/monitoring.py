"""The lab's monitoring host ``mon``: a real Prometheus (Debian's ``prometheus`` package) running the files
``fab monitoring.render --env <lab>`` writes, and a real node_exporter (``prometheus-node-exporter``, its textfile
collector alone) serving what ``fab check --textfile`` writes, both in the mon host's network namespace on the
lab's private network: they reach every node as a monitoring host inside the nodes' network would, and the operator
reaches them only through the bastion (``ssh -L``: tunnel_command), as the nodes.

Prometheus scrapes and evaluates every ``INTERVAL`` (2 s: a killed active's outage, the lease's 10 s, is seen by
ChainlinkPairNoActive). Its files are rendered on every ``lab.up`` into ``<lab>/hosts/mon/monitoring``, written as
``fab monitoring.render`` writes them; a change of its configuration or rules restarts it, a change of targets alone
is read by its file-based discovery. ``lab.down`` stops both with the mon host and removes their files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lab.daemons import Daemons, Started, listening
from lab.topology import EXPORTER_PORT, LabPlan
from nodeops.inventory import load_inventory
from nodeops.monitoring import render_inventory
from nodeops.monitoring.output import write_tree
from nodeops.monitoring.render import Settings

if TYPE_CHECKING:
    from lab.host import Lab

PROMETHEUS = "/usr/bin/prometheus"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
INTERVAL = "2s"
RETENTION = "1d"


def textfile_dir(lab: Lab, plan: LabPlan) -> Path:
    """The folder the lab's node_exporter reads textfiles from: ``fab check --textfile <it>/nodeops.prom``."""
    return lab.host_dir(plan.monitoring) / "textfile"


def rendered_dir(lab: Lab, plan: LabPlan) -> Path:
    """The ``--out`` folder of the lab's monitoring (its Prometheus configuration: prometheus/prometheus-<lab>.yml)."""
    return lab.host_dir(plan.monitoring) / "monitoring"


def settings(plan: LabPlan) -> Settings:
    """fab monitoring.render's options for the lab: its exporter and Prometheus on the mon host."""
    return Settings(exporter=f"{plan.monitoring.private_ip}:{EXPORTER_PORT}", interval=INTERVAL,
                    prometheus_url=f"http://{plan.prometheus_address}")  # fmt: skip


def in_mon(plan: LabPlan, *argv: str) -> tuple[str, ...]:
    return ("nsenter", f"--net=/run/netns/{plan.monitoring.netns}", "--", *argv)


def prometheus_argv(plan: LabPlan, out: Path, tsdb: Path) -> tuple[str, ...]:
    return in_mon(plan, PROMETHEUS, f"--config.file={out / 'prometheus' / f'prometheus-{plan.name}.yml'}",
                  f"--storage.tsdb.path={tsdb}", f"--storage.tsdb.retention.time={RETENTION}",
                  f"--web.listen-address={plan.prometheus_address}")  # fmt: skip


def exporter_argv(plan: LabPlan, textfiles: Path) -> tuple[str, ...]:
    return in_mon(plan, NODE_EXPORTER, "--collector.disable-defaults", "--collector.textfile",
                  f"--collector.textfile.directory={textfiles}",
                  f"--web.listen-address={plan.monitoring.private_ip}:{EXPORTER_PORT}")  # fmt: skip


def tunnel_command(lab: Lab, plan: LabPlan) -> str:
    """The operator's way to the lab's Prometheus: a local forward through the bastion (which allows only that),
    its host key pinned from the lab's own known_hosts file (written by ensure)."""
    operator = lab.dir / "operator"
    return (f"ssh -i {operator / 'id_ed25519'} -o UserKnownHostsFile={operator / 'known_hosts'} -N "
            f"-L 9090:{plan.prometheus_address} root@{plan.bastion_public_ip}")  # fmt: skip


def ensure(lab: Lab, daemons: Daemons, plan: LabPlan, inventory: Path) -> None:
    """Render the lab's monitoring from ``inventory`` and make its Prometheus and node_exporter run it (idempotent;
    called by Lab.up once the inventory is written)."""
    hdir = lab.host_dir(plan.monitoring)
    hdir.mkdir(parents=True, mode=0o700, exist_ok=True)
    textfiles = textfile_dir(lab, plan)
    textfiles.mkdir(exist_ok=True)
    kind, blob = (lab.host_dir(plan.bastion) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    (lab.dir / "operator" / "known_hosts").write_text(f"{plan.bastion_public_ip} {kind} {blob}\n")
    out = rendered_dir(lab, plan)
    written, _ = write_tree(out, render_inventory(load_inventory(inventory), settings(plan)), plan.name)
    started: list[Started] = []
    exporter, server = "mon/node_exporter", "mon/prometheus"
    if not daemons.running(exporter):
        ready = listening(plan.monitoring.netns, f"{plan.monitoring.private_ip}:{EXPORTER_PORT}")
        started.append(daemons.start(exporter, exporter_argv(plan, textfiles), str(textfiles),
                                     hdir / "node_exporter.log", ready))  # fmt: skip
    if daemons.running(server) and any(p.startswith("prometheus/") and "/targets/" not in p for p in written):
        daemons.stop([server])  # a new configuration or rule file: restarted (targets alone are rediscovered)
    if not daemons.running(server):
        tsdb = hdir / "tsdb"
        started.append(daemons.start(server, prometheus_argv(plan, out, tsdb), str(tsdb), hdir / "prometheus.log",
                                     listening(plan.monitoring.netns, plan.prometheus_address)))  # fmt: skip
    Daemons.wait(started)
