"""fab check: a monitoring probe for cron or a CI schedule; exit 1 naming each failed check, and one message
listing them to the inventory's webhook (notify.webhook), if it has one."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import uuid

from invoke import task
from rich.console import Console

from nodeops.check import Metric, render_textfile, textfile_target, write_textfile
from nodeops.check import check as run_checks
from nodeops.edges.ssh import Fleet
from nodeops.errors import OperationFailed
from nodeops.job import prepare
from nodeops.notify import check_message, webhook
from nodeops.operation import holder_record, now
from nodeops.verify import failure_summary

from ._cli import SHARDED_HELP, Sharded, cli, is_interactive, load, print_checks, services_of


@task(klass=Sharded,
      help={**SHARDED_HELP, "json": "one JSON object per check (the default when stdout is not a terminal)",
            "textfile": "also write the results as a Prometheus textfile (PATH.prom, replaced atomically) "
                        "for node_exporter's textfile collector"})  # fmt: skip
@cli
def check(c, env=None, inventory=None, service=None, shard=None, json_=False, textfile=None):
    """Probe every pair for alerting: active and standby, lease, load balancer, secret age, disk, memory, load, logs."""
    inv = load(env, inventory)
    target = textfile_target(textfile) if textfile else None
    jobs = prepare(inv, services_of(inv, service, shard))  # the lease's credentials, and the redactor for log lines
    hook = webhook(inv)  # told once per run when checks fail (nodeops.notify)
    with Fleet(inv, services=[job.service.name for job in jobs]) as fleet:
        result = run_checks(fleet, inv, jobs)
    if target:
        stamp = Metric("nodeops_check_timestamp_seconds", (("env", inv.environment),), time.time())
        write_textfile(target, render_textfile([*result.metrics, stamp]))
    if json_ or not is_interactive():
        for f in result.findings:
            print(json.dumps({"event": "check", **dataclasses.asdict(f)}))
    else:
        print_checks(result.findings, lambda f: "FAIL" if f.result == "fail" else f.result)
        warned = sum(f.result == "warn" for f in result.findings)
        passed = sum(f.ok for f in result.findings)
        Console(highlight=False).print(f"{passed}/{len(result.findings)} checks passed, {warned} with a warning")
    failed = failure_summary(result.findings)
    message = check_message(inv.environment, now(), holder_record(uuid.uuid4().hex[:16], sys.argv[1:], os.environ),
                            result.findings)  # fmt: skip
    if hook is not None and message is not None:
        hook.send(message)  # at most notify.TIMEOUT; a failure is one warning line, the exit code stays
    if failed:
        raise OperationFailed(failed)
