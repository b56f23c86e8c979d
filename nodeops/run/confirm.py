"""After a failed change: what serves now, waited for, said, and the pair made whole where it can be (a stopped old
active started again when no node serves; this run's stopped standby started again; a missing standby named with the
command that brings it back).

``change`` is the failed change (nodeops.deploy.ServiceDeploy): its service, job, fleet, observations (inspect,
health, waits.service_answers), node actions (``on``, upload, shred, settle) and what it recorded (``ran_on``,
``was_running``, ``moved``, ``forward``, ``stuck``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from nodeops import program
from nodeops.errors import OperationFailed
from nodeops.facts.container import Container
from nodeops.run.awaits import LB_TIMEOUT, POLL, SERVE_TIMEOUT
from nodeops.run.runner import ChangeFailed, ChangeRefused


class WhatServes:
    """The end of one failed change (see the module's docstring)."""

    def __init__(self, change: Any) -> None:
        self.change = change

    def failure(self, what: str, unsafe: bool = False) -> ChangeFailed:
        """The error that ends a failed change, saying what serves *now* (waited for up to LB_TIMEOUT): one active
        serving, directly and through the load balancer; or one active answering unhealthy (the load balancer
        cannot pass it); or SERVICE DOWN with the next command to run. While a node's container runs it may be
        waiting for a lease a dead node left to expire: then the wait is SERVE_TIMEOUT, not LB_TIMEOUT. When the
        change cannot be undone (``forward``: the database was migrated past the previous image), the message ends
        with the fix forward, in place of a redeploy of the same change. ChangeRefused (exit 4) when a node was left
        stopped for it, or with ``unsafe``."""
        run = self.change
        found: dict[str, Container | None] = {}
        for n in run.service.nodes:
            with contextlib.suppress(OperationFailed):  # a node cut off: it can serve no one from here anyway
                found[n.name] = run.inspect(n.name)
        again = "" if any(any(run.health(n)) for n in run.service.nodes) else self.previous_again(found)
        running = any(c is not None and c.running for c in found.values())
        deadline = time.monotonic() + (SERVE_TIMEOUT if running else LB_TIMEOUT)
        while True:
            health = {n.name: run.health(n) for n in run.service.nodes}
            actives = [name for name, (ok, failing) in health.items() if ok or failing]
            through = run.waits.service_answers()
            whole = len(actives) == 1 and (through or not health[actives[0]][0])
            if whole or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        failure = ChangeRefused if run.stuck or unsafe else ChangeFailed
        forward = "".join(f"; {note}" for note in run.forward)
        if whole:
            (active,) = actives
            with contextlib.suppress(OperationFailed):  # it answers, so it has read every file: none stays
                run.shred(active, run.job.all_files)
            failing = health[active][1]
            if failing:
                state = f"{active} is the active, unhealthy (failing: {', '.join(failing)})"
            else:
                state = f"{active} serves"
                via = " and through its load balancer" if run.service.load_balancer else ""
                run.say(active, f"serves (checked directly{via}) after the failure", restored=True)
            standby = self.standby_again(active, found)
            missing = "" if run.stuck else self.without_standby(active, found)  # stuck: ``forward`` says the way
            return failure(f"{what}{again}; {state}{standby}{missing}" + forward)
        seen = ", ".join(actives) + " answer" if actives else "no node serves"
        down = (f"SERVICE DOWN: {seen}" + ("" if through or not run.service.load_balancer
                                           else ", the load balancer answers no 200"))  # fmt: skip
        env = run.fleet.inventory.environment
        run.say("", down, service_down=True)
        if forward:
            return failure(f"{what}{again}; {down}{forward}")
        return failure(f"{what}{again}; {down}; see {program()} status --env {env}, then {run.rerun} (or "
                       "promote-standby --force)")  # fmt: skip

    def previous_again(self, found: dict[str, Container | None]) -> str:
        """After a failed change that left no node answering: a reachable node's own container, stopped by this run
        (the old active of a handover whose new active was then cut off, say) but never replaced by it, is started
        again on the inputs it ran with (``ran_on``), to wait for the lease: the lease (by database time) lets it
        serve only once the holder's lease expired, so the service comes back by itself when the node it lost is
        really gone, and a holder still alive keeps it waiting. ``found``: each reachable node's container, updated
        in place. Returns what was done, as "; ..." ("" when nothing). Not when a node was left stopped because
        its image cannot run on the database (``stuck``)."""
        run = self.change
        notes = ""
        for name, c in found.items():
            if run.stuck or c is None or c.running or not run.was_running.get(name) or name in run.moved:
                continue
            job = run.ran_on[name]
            try:
                run.upload(name, job)
                run.on(name).start()
                run.say(name, f"no node serves: started {run.name} again on its own inputs, to take over once the "
                         "lease is free")  # fmt: skip
                notes += f"; no node served: {name}'s container, stopped by this run, was started again on its own "
                notes += f"inputs, and it {run.settle(name, job)}"
                found[name] = run.inspect(name)
            except OperationFailed as exc:
                notes += f"; starting {name}'s container again (no node served) failed: {exc}"
        return notes

    def without_standby(self, active: str, found: Mapping[str, Container | None]) -> str:
        """After a failed change that ends with ``active`` serving: "; ..." naming each other node that is no standby
        (unreachable, or its container not running, as seen now) and the command that makes it one again; "" when
        the pair has its standby. ``found``: each reachable node's container, as inspected before."""
        run = self.change
        notes, again = "", run.rerun
        for n in run.service.nodes:
            if n.name == active:
                continue
            if n.name not in found:
                notes += f"; {n.name} is unreachable, so the pair has no standby: once it is back, {again}"
                continue
            c = found[n.name]
            if c is None or not c.running:
                with contextlib.suppress(OperationFailed):
                    c = run.inspect(n.name)
            if c is None or not c.running:
                state = "gone" if c is None else c.status
                notes += f"; {n.name}'s container is {state}, so the pair has no standby: {again}"
        return notes

    def standby_again(self, active: str, found: Mapping[str, Container | None]) -> str:
        """After a failed change that ends with ``active`` serving: another node whose container is this run's own
        (labelled with this run's config) but stopped (killed after it took over, say) is started again on this
        run's inputs and checked as the standby (settle), so that the pair keeps its standby; ``found``: each
        reachable node's container, as inspected. Returns what was done, as "; ..." ("" when nothing). A container
        on other inputs is left as the failure's undoing left it (a previous container, stopped as it was)."""
        run = self.change
        notes = ""
        for name, c in found.items():
            if name == active or c is None or c.running or c.label("config") != run.job.at(name).rendered.config_hash:
                continue
            try:
                run.upload(name, run.job)
                run.on(name).start()
                run.say(name, f"started {run.name} again, as the standby")
                state = run.settle(name, run.job)
                notes += f"; {name}'s container had stopped: started again as the standby, and it {state}"
            except OperationFailed as exc:
                notes += f"; starting {name}'s stopped container again failed: {exc}"
        return notes
