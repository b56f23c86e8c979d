"""A planned handover on a pair: the active stopped gracefully (it releases the lease), the standby takes over,
the gap measured (nodeops.run.probe.OutageProbe); and its undoing when the standby does not take over.

``change`` is the change it runs in (nodeops.deploy.ServiceDeploy): its node actions (``on``), its waits
(nodeops.run.awaits), the inputs each node ran on (``ran_on``) and its undoings (previous_on, start_again, settle,
restore, confirm).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from nodeops.errors import OperationFailed
from nodeops.inventory import Node
from nodeops.run.awaits import SERVE_TIMEOUT
from nodeops.run.probe import OutageProbe


class PlannedHandover:
    """One handover of ``change``'s pair (see the module's docstring)."""

    def __init__(self, change: Any) -> None:
        self.change = change

    def run(self, old: Node, new: Node, restore_standby: bool = True, shred: bool = True) -> float | None:
        """Planned failover: stop the active gracefully (it releases the lease), the standby takes over.

        Returns the outage as probed every 100 ms (None when the service was not answering before the handover:
        OutageProbe.measured). If the standby does not serve in time, the old active is started again and the run
        fails: the service ends up served either way (and, in a deploy, the new standby goes back to its previous
        container; ``restore_standby`` False: it waits again on its own inputs, as promote wants). ``shred``: the
        new active's lease files once it serves (else the caller shreds them, once the old active waits again).
        """
        c = self.change
        c.keep_restorable([old.name, new.name])
        was_serving, before = c.health(old)  # an unhealthy active: its successor may fail the same checks only
        with OutageProbe(c.waits.service_answers) as probe:
            try:
                c.on(old.name).stop(int(c.job.role.stop_timeout))
            except OperationFailed as exc:  # e.g. the active's host cut off: whoever holds the lease serves
                raise c.confirm(f"{exc}; stopping the active {old.name} failed, the handover did not go on") from None
            try:
                c.waits.await_serving(new, timeout=SERVE_TIMEOUT, accept=before)
            except OperationFailed as exc:
                raise c.confirm(self.undo(old, new, str(exc), restore_standby, before)) from None
            try:
                if not before or c.serving(new):
                    c.waits.await_service()  # through the load balancer too (which answers 503 while the active does)
            except OperationFailed as exc:
                raise c.confirm(str(exc)) from None
            probe.answered_since(time.monotonic())  # the good sample that closes the gap
        stopped = c.inspect(old.name)
        code = None if stopped is None else stopped.exit_code
        how = "" if code in (0, None) else (f"; {old.name} exited {code}, not a clean stop: it may have left its lease "
                                            "to expire, and the standby to wait for that")  # fmt: skip
        outage = probe.measured(was_serving)
        if outage is None:
            since = probe.answering_after
            after = ("it does not answer yet" if since is None else
                     f"it answers since {since:.2f}s after the handover began")  # fmt: skip
            figure = (f"outage not measured: the service was not answering before the handover ({old.name} answered "
                      f"unhealthy, failing: {', '.join(before)}); {after}")  # fmt: skip
        else:
            figure = f"outage {outage:.2f}s"
        c.say(new.name, f"took over from {old.name}: {figure} ({len(probe.samples)} samples){how}",
              outage_seconds=None if outage is None else round(outage, 3), outage_measured=outage is not None,
              old_exit_code=code)  # fmt: skip
        if shred:
            c.shred(new.name, c.job.files_read("lease"))
        return outage

    def undo(self, old: Node, new: Node, why: str, restore_standby: bool, accept: Sequence[str]) -> str:
        """The standby did not take over: stopped (gracefully: a node that took the lease releases it), the old
        active started again on its own inputs (on this run's image when the standby migrated the database past
        the old one's, or not at all when nothing can run there: previous_on), then the standby put back (deploy:
        its previous container; promote: the same container, waiting again on its own inputs); returns what was
        done and what each node does, as seen. ``accept``: the checks the old active failed before (it may fail
        them again)."""
        c = self.change
        try:
            c.on(new.name).stop(int(c.job.role.stop_timeout))
        except OperationFailed as exc:
            why = f"{why}; stopping {new.name} failed: {exc}"
        job = c.ran_on[old.name]
        try:  # its own inputs; on this run's image if the database moved past its own (previous_on)
            again = c.previous_on(old.name, c.inspect(old.name))
            if again is None:
                why = f"{why}; the old active {old.name} was not started again (it could not run on the database)"
            else:
                how = c.start_again(old.name, again)
                c.waits.await_serving(old, accept=accept)
                c.shred(old.name, again.all_files)
                why = f"{why}; the old active {old.name} was started again {how}"
        except OperationFailed as exc:
            why = f"{why}; starting the old active {old.name} again failed too: {exc}"
            try:  # no file outlives the run; on a node cut off the shred fails too, said: the standby still goes back
                c.settle(old.name, job)
            except OperationFailed as again_exc:
                why = f"{why}; shredding {old.name}'s files failed too: {again_exc}"
        if restore_standby:
            return c.restore(new.name, why)
        try:
            standby = c.ran_on[new.name]
            c.upload(new.name, standby)
            c.on(new.name).start()
            return f"{why}; {new.name} was started again as the standby, and it {c.settle(new.name, standby)}"
        except OperationFailed as exc:
            return f"{why}; starting {new.name} again as the standby failed: {exc}"
