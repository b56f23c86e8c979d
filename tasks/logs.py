"""nodeops logs: a service's container logs from its nodes, through the bastion, every secret masked."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence

from invoke import Exit, task

from nodeops.access import LineMasker, check_since, check_tail, logs_command
from nodeops.edges.ssh import Fleet, stream
from nodeops.errors import Interrupted, InvalidInput
from nodeops.job import prepare
from nodeops.stopping import ending_on_signals

from ._cli import INVENTORY_HELP, cli, load, services_of


@task(
    positional=[],  # every argument by its flag: a positional one would take `--help` as its value
    help={
        **INVENTORY_HELP,
        "service": "the service whose container logs to show (one)",
        "node": "only this node of the service (default: every node of it)",
        "follow": "keep streaming new lines until Ctrl-C or SIGTERM (exit 130) or the container ends",
        "since": "only lines since then: a duration (10m, 1h) or a timestamp (2026-11-30T08:00:00Z)",
        "tail": "only the last N lines of each node's log (before following)",
    },
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
    try:
        with ending_on_signals():
            (job,) = prepare(inv, [service])  # the service's secrets, for the mask: in memory only
            # closed on the way out: each node's session ends, and its command with it
            with Fleet(inv, services=[service]) as fleet:

                def run_node(n, sink: Callable[[bytes], None]) -> int:
                    conn, _ = fleet.connect(n)
                    return stream(conn, command, sink)

                codes, closed = merge_node_lines(nodes, run_node, job.redact)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM (Stopped): how --follow is meant to end
        raise Interrupted(f"logs stopped by {str(stop) or 'SIGINT'}; the log streams on the nodes were ended") from None
    if closed:
        raise BrokenPipeError  # the program's quiet_on_closed_pipe: exit 141, no traceback, no "failed" line
    failed = sorted(name for name, code in codes.items() if code != 0)
    if failed:
        raise Exit(f"nodeops: logs failed on {', '.join(failed)} (see above)", code=1)


def merge_node_lines(nodes: Sequence, run_node: Callable, mask: Callable[[str], str]) -> tuple[dict[str, int], bool]:
    """Run ``run_node(node, sink)`` for every node in its own thread and write each line it gives ``sink`` (bytes,
    any chunking) to stdout as ``NAME | line``, masked by ``mask``. Returns each node's exit status (1 when its
    run raised: one masked line on stderr) and whether stdout's reader closed the pipe: from then on nothing more
    is written, nothing is reported as failed, and the caller ends when the streams stop (its Fleet closed).
    Ctrl-C or SIGTERM (KeyboardInterrupt, nodeops.stopping.Stopped) goes through to the caller."""
    printing = threading.Lock()
    closed = threading.Event()
    codes: dict[str, int] = {}
    width = max(len(n.name) for n in nodes)

    def follow_node(n) -> None:
        def emit(line: str) -> None:
            with printing:
                if closed.is_set():
                    raise BrokenPipeError
                try:
                    sys.stdout.write(f"{n.name:<{width}} | {line}\n")
                    sys.stdout.flush()
                except BrokenPipeError:
                    closed.set()
                    raise

        masker = LineMasker(mask, emit)
        try:
            codes[n.name] = run_node(n, masker.feed)
            masker.close()
        except BrokenPipeError:
            closed.set()
        except Exception as exc:  # noqa: BLE001 (one line per node, masked, after its output)
            with printing:
                print(f"nodeops: {n.name}: {mask(str(exc))}", file=sys.stderr)
            codes[n.name] = 1
            try:
                masker.close()
            except BrokenPipeError:
                closed.set()

    threads = [threading.Thread(target=follow_node, args=(n,), daemon=True) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive() and not closed.is_set():
            t.join(0.2)  # wakes for Ctrl-C, and when the pipe closed (the other streams may never end)
    return codes, closed.is_set()
