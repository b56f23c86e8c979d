"""nodeops logs: a service's container logs from its nodes, through the bastion, every secret masked."""

from __future__ import annotations

import sys
import threading

from invoke import Exit, task

from nodeops.access import LineMasker, check_since, check_tail, logs_command
from nodeops.deploy import prepare
from nodeops.errors import InvalidInput
from nodeops.remote import Fleet, stream

from ._cli import INVENTORY_HELP, cli, load, services_of


@task(
    help={
        **INVENTORY_HELP,
        "service": "the service whose container logs to show (one)",
        "node": "only this node of the service (default: every node of it)",
        "follow": "keep streaming new lines until Ctrl-C or the container ends",
        "since": "only lines since then: a duration (10m, 1h) or a timestamp (2026-11-30T08:00:00Z)",
        "tail": "only the last N lines of each node's log (before following)",
    }
)
@cli
def logs(c, service, env=None, inventory=None, node=None, follow=False, since=None, tail=None):
    """A service's container logs, each line prefixed with its node and every secret of the service masked."""
    if since is not None:
        check_since(since)
    if tail is not None:
        check_tail(tail)
    inv = load(env, inventory)
    services_of(inv, service)
    if "," in service:
        raise InvalidInput(f"--service {service}: logs shows one service; name one")
    svc = inv.services[service]
    nodes = [n for n in svc.nodes if node in (None, n.name)]
    if not nodes:
        raise InvalidInput(f"--node {node}: not a node of {service} (nodes: {', '.join(n.name for n in svc.nodes)})")
    command = logs_command(svc.runtime, service, since, tail, follow)
    (job,) = prepare(inv, [service])  # the service's secrets, for the mask: in memory only
    printing = threading.Lock()
    codes: dict[str, int] = {}
    width = max(len(n.name) for n in nodes)

    def follow_node(fleet: Fleet, n) -> None:
        def emit(line: str) -> None:
            with printing:
                sys.stdout.write(f"{n.name:<{width}} | {line}\n")
                sys.stdout.flush()

        masker = LineMasker(job.redact, emit)
        try:
            conn, _ = fleet.connect(n)
            codes[n.name] = stream(conn, command, masker.feed)
        except Exception as exc:  # noqa: BLE001 (one line per node, masked, after its output)
            with printing:
                print(f"nodeops: {n.name}: {job.redact(str(exc))}", file=sys.stderr)
            codes[n.name] = 1
        finally:
            masker.close()

    with Fleet(inv) as fleet:
        threads = [threading.Thread(target=follow_node, args=(fleet, n), daemon=True) for n in nodes]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)  # wakes for Ctrl-C
        except KeyboardInterrupt:
            return  # the Fleet closes: every stream ends; Ctrl-C is how --follow is meant to end
    failed = sorted(name for name, code in codes.items() if code != 0)
    if failed:
        raise Exit(f"nodeops: logs failed on {', '.join(failed)} (see above)", code=1)
