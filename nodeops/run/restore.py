"""Undoing a failed change on one node: what each node's container ran on, learnt before the change touches it
(keep_restorable), the previous container put back on those inputs (rollback, restore), the inputs it goes back on
when the database moved past its image (previous_on), a container stopped by the change started again (start_again),
and the files a node read shredded once it waits or serves (settle).

``change`` is the change being undone (nodeops.deploy.ServiceDeploy in a run), through the ``Restorable`` protocol
below: what it recorded of each node (``ran_on``, ``was_running``, ``moved``) and of the database (``recorded``,
``pulled``), where this module writes the way out of a change that cannot be undone (``forward``, ``stuck``), its node
actions (``on``) and observations (``inspect``, ``health``, ``waits``). Nothing here decides when to undo: that is the
runner's (nodeops.run.runner) and the handover's (nodeops.run.handover).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from nodeops import program
from nodeops.commands import node as cmd
from nodeops.errors import NodeopsError, OperationFailed, Unsafe
from nodeops.facts.container import Container, served_port
from nodeops.job import Job, changed_inputs, job_for, restore_job
from nodeops.lease import recorded_version
from nodeops.plan import restart_image
from nodeops.run.node import NodeActions


class Restorable(Protocol):
    """What undoing a change asks of it: the service (``service``: nodeops.inventory.Service; ``name``: its
    container's), this run's inputs (``job``, whose redactor widens as older inputs are read), the fleet (its
    inventory and the lease database's credentials), what it recorded (``ran_on``: node -> the inputs its container
    ran on; ``was_running``: node -> whether it ran when the change began; ``moved``: nodes whose container this run
    set aside; ``recorded``: the database's version when the change began; ``pulled``: the image was pulled on every
    node; ``inexact_ok``: --allow-inexact-restore; ``ports``: node -> the port its container serves), the way out it
    gives when the change cannot be undone (``forward``, ``stuck``), and its actions and observations below."""

    service: Any
    name: str
    job: Job
    fleet: Any
    model: Any  # nodeops.activation.Model, the role's: whether a started node is awaited serving
    ran_on: dict[str, Job]
    was_running: dict[str, bool]
    moved: set[str]
    recorded: str | None
    pulled: bool
    inexact_ok: bool
    ports: dict[str, int]
    forward: list[str]
    stuck: bool
    waits: Any  # nodeops.run.awaits.Awaits: await_waiting

    def on(self, node: str) -> NodeActions: ...
    def inspect(self, node: str, name: str | None = None) -> Container | None: ...
    def health(self, node) -> tuple[bool, tuple[str, ...]]: ...
    def say(self, node: str, message: str, **data) -> None: ...
    def shred(self, node: str, names: Sequence[str]) -> None: ...
    def upload(self, node: str, job: Job | None = None, hot: bool | None = None) -> bool: ...
    def start_new(self, node: str, job: Job | None = None) -> None: ...
    def keep_restorable(self, nodes: Iterable[str]) -> None: ...


def previous_on(run: Restorable, node: str, container: Container | None) -> Job | None:
    """The inputs ``node``'s previous ``container`` goes back on after a failed change, judged by the version the
    database records *now* (plan.restart_image): ``ran_on[node]`` itself (the previous container, as it was);
    the same inputs rendered on this run's image, for a new container, when the database was migrated past the
    previous image; None when no image this run holds can run on it. The last two add the way out to
    ``forward``; None also sets ``stuck`` (the run ends with exit 4).

    Why the change's image rather than a refusal: the new node took the lease and migrated the database before
    it failed (Chainlink writes ``node_versions`` first), and the previous image refuses to start on a newer
    database (CheckVersion), only once it took the lease itself: restarting it is a crash loop that leaves
    nothing serving. Undoing the migration needs a database restore (what was written since is lost), which a
    deploy must not do on its own. The previous inputs on the image that migrated the database are the nearest
    thing to what ran that can run at all: only the image differs, it already ran on this database, this run
    pulled it on both nodes, and the start is checked like any other (what serves is confirmed after). The pair
    serves again and the way out is a fix forward of the inputs the change changed, which the message names.
    Only when that cannot be done (the previous inputs unknown, no image pulled, a database newer than both
    images) is the node left stopped, said, exit 4."""
    job = run.ran_on[node]
    now = database_now(run)
    old = cmd.image_tag(container.reference if container and container.reference else job.service.image)
    new = cmd.image_tag(run.service.image)
    choice = restart_image(old, new, run.recorded, now)
    if choice == "previous":
        return job
    again, why_not = None, f"neither can {new}, this run's image"
    if choice == "change":
        why_not = ("this run pulled no image to start it on" if not run.pulled else
                   "its inputs are unknown (--allow-inexact-restore)" if job is run.job else "")  # fmt: skip
        try:
            if not why_not:
                again = dataclasses.replace(job_for(run.fleet.inventory, dataclasses.replace(
                    job.service, image=run.service.image), secrets=job.secrets), redact=job.redact)  # fmt: skip
        except NodeopsError as exc:  # the role refuses those inputs on that image
            why_not = f"its inputs do not render on {new}: {exc}"
    by = f" by {run.service.image}" if now != run.recorded else ""
    changed = changed_inputs(job, run.job) if job is not run.job else ["what the change changed"]
    fix = (f"correct {', '.join(changed)} in the inventory, then deploy" if changed else
           f"deploy an image of {now} or newer that starts (only the image changed)")  # fmt: skip
    if again is None:
        run.stuck = True
        note = (f"the database was migrated to {now}{by}: {old}, the previous image, cannot run on it and "
                f"{why_not}, so it was not started again; the way out is forward: {fix}")  # fmt: skip
    else:
        note = (f"the database was migrated to {now}{by} and {old} refuses to run on it, so the previous inputs "
                f"went back on {new} (back to {old} only with the database restored from before); fix forward: "
                f"{fix}")  # fmt: skip
    if note not in run.forward:
        run.forward.append(note)
    return again


def database_now(run: Restorable) -> str | None:
    """The version the database records now (lease.recorded_version), after a failed step; None, said, when it
    cannot be read (the previous image then restarts as it was, under its own check)."""
    try:
        return recorded_version(run.fleet, run.job)
    except NodeopsError as exc:
        run.say("", f"note: {exc}; the database's version is unknown: the previous image is started as it was")
        return None


class Restore:
    """The undoing of ``change`` (see the module's docstring)."""

    def __init__(self, change: Restorable) -> None:
        self.change = change

    def new_change(self) -> None:
        """Forget what keep_restorable() learnt: the next execute() is another change (a rotation rolls twice)."""
        run = self.change
        run.ran_on.clear()
        run.was_running.clear()
        run.moved.clear()

    def keep_restorable(self, nodes: Iterable[str]) -> None:
        """Before a change touches ``nodes``: the inputs each one's container was started from, rendered again
        (restore_job), so that a failure starts it again on exactly those. Refused (Unsafe) before anything
        changed when that is impossible, unless ``inexact_ok``."""
        run = self.change
        for node in nodes:
            if node in run.ran_on:
                continue
            c = run.inspect(node)
            if c is None:
                continue
            run.was_running[node] = c.running
            try:
                job = run.ran_on[node] = restore_job(run.fleet.inventory, run.job, node, c)
                # every message of the run masks the old values too: a restored node's log may show them
                run.job = dataclasses.replace(run.job, redact=job.redact)
            except Unsafe as exc:
                if not run.inexact_ok:
                    raise
                run.say(node, f"warning: {exc}; going on (--allow-inexact-restore)")
                run.ran_on[node] = run.job
                continue
            if job.rendered.config(c.started_hot) != c.label("config"):
                run.say(node, f"note: the role's templates or defaults, or a secret file (aws-kms), changed since "
                        f"{c.name} started (its inputs render to config {job.rendered.config(c.started_hot)[:12]}, not "
                        f"{str(c.label('config'))[:12]}): a failure restarts it on today's templates and files with "
                        "its own image, variables and other secret versions", inexact_restore=True)  # fmt: skip

    def rollback(self, node: str, why: str) -> str:
        """Put the previous container back on ``node``, if there was one, on the inputs it was started from,
        and running only if it ran before; returns what was done and what the node does now, as seen (the caller
        confirms what serves). When the database has moved past the previous image, its inputs go back on this
        run's image instead (a new container), or the previous container stays stopped (previous_on)."""
        run = self.change
        previous = cmd.previous_name(run.service.name)
        if node in run.was_running and node not in run.moved:
            return f"{why}; {node}'s container was not touched"
        run.on(node).remove(check=False)
        if not (back := run.inspect(node, previous)):
            run.ports.pop(node, None)
            run.shred(node, run.job.all_files)
            return f"{why}; {node} had no previous container to put back"
        again = previous_on(run, node, back) if run.was_running.get(node) else None
        if again is not None and again is not run.ran_on[node]:  # the database moved past its image
            run.on(node).remove(previous)
            run.start_new(node, again)
            tag = cmd.image_tag(again.service.image)
            run.say(node, f"started {run.name} on its previous inputs on {tag} (config "
                    f"{again.rendered.config_hash[:12]})")  # fmt: skip
            return f"{why}; {node}'s previous inputs were started again on {tag}, and it {self.settle(node, again)}"
        run.on(node).put_back()
        run.ports[node] = served_port(back, run.job.role.port)
        if again is None:
            run.shred(node, run.job.all_files)
            if not run.was_running.get(node):
                return f"{why}; {node}'s previous container is back, stopped as it was"
            return (f"{why}; {node}'s previous container is back, stopped: {back.version or 'its image'} "
                    "cannot run on the database")  # fmt: skip
        run.upload(node, again)  # its files were shredded once read: its own inputs again, never this run's
        run.on(node).start()
        run.say(node, f"started the previous container again (config {again.rendered.config_hash[:12]})")
        state = self.settle(node, again)
        return f"{why}; {node}'s previous container was started again on its own inputs, and it {state}"

    def settle(self, name: str, job: Job) -> str:
        """After a start on ``job``'s files: shred what the node has read once it waits (stably: its log
        may still hold the last run's lines) or serves, and everything if it does neither. No
        file outlives a run, failed or not. Returns what the node does, as seen: "waits for the lease",
        "holds the lease" or "is down (...)"; under a model where every node serves (Model.every_node_serves: keys,
        all) it is awaited serving: "serves" or "is down (...)"."""
        run = self.change
        node = next(n for n in run.service.nodes if n.name == name)
        if run.model.every_node_serves:  # under keys the holder has the hot keys, and the others serve too
            try:
                run.waits.await_serving(node)
            except OperationFailed as exc:
                return f"is down ({exc})"
            finally:
                run.shred(name, job.all_files)
            return "serves"
        try:
            run.waits.await_waiting(node, job)
        except OperationFailed as exc:
            run.shred(name, job.all_files)  # it serves (all read), or it is down
            return "holds the lease" if any(run.health(node)) else f"is down ({exc})"
        run.shred(name, job.files_read("start"))
        return "waits for the lease"

    def start_again(self, node: str, again: Job) -> str:
        """``node``'s container, stopped by this run but never replaced (the old active of a handover), started
        again on ``again`` (previous_on's choice): the same container when ``again`` is its own inputs
        (``ran_on``), else a new one on ``again`` (its image cannot run on the database any more). Returns how, for
        a message: "on its own inputs[, on IMAGE]"."""
        run = self.change
        if again is run.ran_on[node]:
            run.upload(node, again)  # its files were shredded once read: its own inputs again, never this run's
            run.on(node).start()
            return "on its own inputs"
        run.on(node).remove()  # its image cannot run any more
        run.start_new(node, again)
        return f"on its own inputs, on {run.service.image}"

    def restore(self, node: str, why: str) -> str:
        """rollback(), whose own failure (the node unreachable, say) is said in the message rather than raised:
        what serves is confirmed after it either way."""
        try:
            return self.rollback(node, why)
        except OperationFailed as exc:
            return f"{why}; putting {node}'s previous container back failed too: {exc}"


def start_own(run: Restorable, node: Any, hot: bool) -> None:
    """``node``'s (a nodeops.inventory.Node) container of before the change (put back when a replace set it aside:
    the one that replaced it goes) started again on its own inputs (``ran_on``), with its hot files when ``hot``
    (upload observes first that no other node holds them), awaited serving, its files shredded. OperationFailed (a
    step failed) or Unsafe (another node holds the keys) as the step's."""
    own = run.ran_on[node.name]
    if node.name in run.moved:
        run.on(node.name).remove(check=False)
        run.on(node.name).put_back()
    run.upload(node.name, own, hot=hot)
    run.on(node.name).start()
    run.waits.await_serving(node)
    run.shred(node.name, own.all_files)


def labelled_hot(container: Container | None) -> bool:
    """Whether ``container`` was started with the role's hot files (its ``io.nodeops.hot=true`` label), running or
    not: what a node's containers say of the keys it last held, where Container.hot says what it holds now."""
    return container is not None and container.label("hot") == "true"


def half_replaced_holder(run: Restorable, node: str, own: Container | None) -> bool:
    """Whether ``node`` is the holder of the hot keys by what is on it, though no container of it runs with them: a
    replace that a run killed in its middle left half done (its own container, ``own`` as observed, absent or
    stopped; the one the replace set aside, ``nodeops-<service>-previous``, labelled hot, running or stopped), or its
    own container labelled hot but stopped (a rerun killed once it had put that back). Labels only, never guessed:
    a node that held nothing has neither. OperationFailed when the node cannot be seen."""
    if own is not None and own.running:
        return False
    return labelled_hot(own) or labelled_hot(run.inspect(node, cmd.previous_name(run.service.name)))


def restart_half_replaced(run: Restorable, node: Any) -> str:
    """The holder ``node`` (half_replaced_holder) made whole as before the killed replace: its own container, when
    stopped beside a set-aside one labelled hot (the killed run's new one, never seen serving), removed and the
    set-aside one put back under the service's name, as a failed change's rollback does; then, when that is not
    running, started again on its own inputs with its hot files (keep_restorable, start_own). Returns what was done,
    for a message. OperationFailed or Unsafe as start_own's."""
    name, done = node.name, []
    own, previous = run.inspect(name), run.inspect(name, cmd.previous_name(run.service.name))
    if labelled_hot(previous) and (own is None or not own.running):
        run.on(name).remove(check=False)
        run.on(name).put_back()
        done.append(f"{previous.name}, set aside by the killed replace, put back")
        own = previous
    if not own.running:
        run.keep_restorable([name])
        start_own(run, node, hot=True)
        done.append("started again on its own inputs with the hot keys")
    return " and ".join(done)


def resume_half_replaced(run: Restorable, views: Iterable[Any]) -> Any:
    """With no node of ``views`` (nodeops.facts.view.NodeView, as observed) running with the hot keys: the one node a
    killed replace left holding them by its labels (half_replaced_holder), made whole (restart_half_replaced) and
    said, returned (its nodeops.inventory.Node); None when there is none. Unsafe (exit 4), nothing changed, when
    several are labelled so: which one holds the keys cannot be told."""
    half = [v.node for v in views if half_replaced_holder(run, v.node.name, v.container)]
    if len(half) > 1:
        raise Unsafe(f"{run.service.name}: no node runs with the hot keys and the containers of "
                     f"{', '.join(n.name for n in half)} are each labelled with them: which one holds them cannot be "
                     f"told; see {program()} status, then deploy")  # fmt: skip
    if not half:
        return None
    done = restart_half_replaced(run, half[0])
    run.say(half[0].name, f"runs no container with the hot keys, but its containers' labels say it holds them (a "
            f"replace of it was killed): {done}", resumed=True)  # fmt: skip
    return half[0]
