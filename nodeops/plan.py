"""Pure planning: (inventory, what the nodes report) -> the steps of a deploy.

Nothing here touches a host; the executor (nodeops/deploy.py) gathers the
facts and carries the steps out, and `--dry-run` prints them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nodeops import program
from nodeops.errors import Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Service

if TYPE_CHECKING:
    from nodeops.lease import Lease


def standby_evidence(other: str | None, other_answers: bool, other_id: str | None, lease: object,
                     logged: bool, connected: bool | None = None) -> tuple[bool, str]:  # fmt: skip
    """Whether a node whose container runs, stably, and answers nothing on its port is a standby waiting for the
    lease, and why (or why not yet), without depending on what its log level lets it print.

    ``other``: the pair's other node (None for a single node); ``other_answers``: it answers its health path,
    200 or not (a Chainlink node opens its port only while it holds the lease: DESIGN.md); ``other_id``: the
    process id its health reply names (app_id), if any; ``lease``: the lease row as read (nodeops.lease.Lease),
    a string saying why it could not be read, or None when the role keeps no lease; ``logged``: the node's log
    has the role's ``standby_log`` line (only at info level or below: extra evidence, never required);
    ``connected``: the node's process holds a connection to the lease database's port (facts.container.connected_to),
    None when that could not be read. A process connects only once it has read its start files (the database's
    address and credentials are in them): until then a running, silent container whose pair's lease is held is
    no waiting standby yet, only a process still starting (slow under load), and the files it has not read must
    not be shredded (a rollback's standby then failed at the handover: "failed to read config file").
    Returns (True, the evidence) or (False, what is missing)."""
    log = "; its log says it waits for the lease" if logged else ""
    if lease is None:  # nothing to wait for but quiet: a running container that answers nothing
        return True, "running, not serving (the role keeps no lease)" + log
    if connected is False:
        return False, "its process holds no connection to the lease database yet: it may not have read its files"
    if isinstance(lease, str):
        if other_answers:
            return True, f"{other} answers its health path, so it holds the lease (lease row not read: {lease})" + log
        if logged:
            return True, f"its log says it waits for the lease (lease row not read: {lease})"
        return False, f"the lease row could not be read ({lease}) and no other node answers"
    if not lease.held:
        return False, f"the lease is {lease.describe()}: nobody holds it for this node to wait on"
    if other_id is not None:
        if lease.holder == other_id:
            return True, f"the lease is {lease.describe()}: {other}'s" + log
        return False, f"the lease is {lease.describe()}, not by {other} ({other_id[:8]})"
    if other_answers:
        return True, (f"the lease is {lease.describe()} and {other} answers its health path (a node opens its port "
                      "only while it holds the lease)" + log)  # fmt: skip
    return False, f"the lease is {lease.describe()}, but no other node answers"


def the_active(states: Iterable[NodeView], service: str, purpose: str) -> NodeView:
    """The one node that holds the lease: ``NodeView.active`` (it answers its health path, 200 or not; a
    Chainlink node opens its port only once it holds the database lease), healthy or not. Shared by every
    command that acts from the active.

    Raises Unsafe (exit 4) naming who answers when not exactly one does; ``purpose`` says what needs the one."""
    found = [s for s in states if s.active]
    if len(found) != 1:
        names = ", ".join(s.node.name for s in found) or "none"
        raise Unsafe(f"{service}: {len(found)} nodes hold the lease (answer their health path: {names}); "
                     f"{purpose} (see {program()} status)")  # fmt: skip
    return found[0]


def moved_versions(recorded: Mapping[str, str | None], versions: Mapping[str, str | None]) -> list[tuple]:
    """(name, recorded version, version now) of each secret in ``versions`` whose backend version id differs
    from the one ``recorded`` (a container's ``secrets`` label, nodeops.job.input_labels); a secret the
    record lacks, or a backend without versions (None on both sides), is no move."""
    return [(name, recorded[name], version) for name, version in versions.items()
            if recorded.get(name, version) != version]  # fmt: skip


def secret_changes(states: Iterable[NodeView], versions: Mapping[str, str | None]) -> list[str]:
    """One line per secret whose backend version differs from the one a node's container records in its
    ``secrets`` label (moved_versions): ``secret db: version 1f2e3d4c on a -> 9a8b7c6d``. Names and version ids
    only, never a value; a container without the label, or a backend without versions, says nothing."""
    lines = []
    for state in states:
        c = state.container
        recorded = json.loads(c.label("secrets") or "{}") if c else {}
        lines += [moved_line(name, was, state.node.name, now) for name, was, now in moved_versions(recorded, versions)]
    return lines


def moved_line(name: str, was: str | None, node: str, now: str | None) -> str:
    """``secret db: version 1f2e3d4c on a -> 9a8b7c6d``: version ids cut to 8 characters."""
    return f"secret {name}: version {str(was)[:8]} on {node} -> {str(now)[:8]}"


def lease_moves(lease_vars: Iterable[str], running: Mapping[str, object], wanted: Mapping[str, object]) -> list[str]:
    """The variables locating the pair's lease (``lease_vars``: host, port, database names) whose value differs
    between what a node runs (``running``) and what the change wants: ``DATABASE_NAME cl1 -> cl1r``. A rolling
    replace cannot cross such a change: the new standby would find the other database's lease free and serve
    beside the active (two actives)."""
    return [f"{v} {running.get(v)} -> {wanted.get(v)}" for v in lease_vars
            if str(running.get(v)) != str(wanted.get(v))]  # as the templates write them: '5432' is 5432  # fmt: skip


def version_key(version: str) -> tuple[int, ...] | None:
    """``2.11.0`` (also ``2.11.0@sha``, ``v2.11.0-rc1``'s ``2.11.0``) as (2, 11, 0); None when it has no number."""
    numbers = re.findall(r"\d+", version.split("@", 1)[0].lstrip("v").split("-", 1)[0])
    return tuple(int(n) for n in numbers) if numbers else None


def older_than(tag: str, recorded: str | None) -> bool:
    """Whether image tag ``tag`` is an older version than ``recorded`` (what the database last ran); False when
    either is no version (a tag such as ``latest`` cannot be judged here: the node's own check still runs)."""
    mine, theirs = version_key(tag), version_key(recorded or "")
    return mine is not None and theirs is not None and mine < theirs


def restart_image(previous: str, change: str, before: str | None, now: str | None) -> str:
    """The image a node's previous inputs go back on after a failed change: ``"previous"`` (the container as it
    was), ``"change"`` (the same inputs on the change's image: a new container) or ``"neither"``.

    ``previous``, ``change``: the two images' tags; ``before``: the version the database recorded when the run began
    (its preflight), ``now``: after the failure (None: unknown, the database unreadable or recording none). A node
    that took the lease migrates the database before anything else can fail (Chainlink writes ``node_versions``
    first); an older image then refuses to start on it (CheckVersion), only once it took the lease itself. So:

    - ``now`` unknown, or the previous image at least ``now``: the previous container, as it was (when the version
      is unknown the node's own check still applies, and what serves is confirmed after);
    - the previous image older than ``now`` (or its tag naming no version while the database moved during this
      run, from a known ``before``): the change's image when it is at least ``now`` (or names no version but is
      what moved the database);
    - otherwise neither: no image this run knows can run on the database (the caller refuses to restart a node
      into a crash loop and says so, exit 4)."""
    moved = before is not None and now != before  # moved during this run, as far as it can tell

    def runs_on(tag: str) -> bool | None:
        if version_key(tag) is None or version_key(now or "") is None:
            return None
        return not older_than(tag, now)

    if now is None:
        return "previous"
    previous_ok = runs_on(previous)
    if previous_ok or (previous_ok is None and not moved):
        return "previous"
    change_ok = runs_on(change)
    return "change" if change_ok or (change_ok is None and moved) else "neither"


@dataclass(frozen=True)
class Desired:
    image: str
    image_id: str  # of the image as pulled on the nodes
    config_hash: str
    nodes: Mapping[str, str] = field(default_factory=dict)  # node -> its own hash (Job.config_hashes); {}: one
    holders: Mapping[str, str] = field(default_factory=dict)  # node -> its hash holding the hot files, where it
    # differs (Job.holder_hashes: the versions of the secrets only they use); a change never moves the keys

    def matches(self, c: Container | None, node: str | None = None) -> bool:
        """Whether ``c`` (``node``'s container) runs what is wanted: this image, running, ``node``'s config hash (the
        holder's, ``holders``, for a container started with the hot files)."""
        config = self.nodes.get(node, self.config_hash) if node else self.config_hash
        config = self.holders[node] if c is not None and c.started_hot and node in self.holders else config
        return c is not None and c.running and c.image_id == self.image_id and c.label("config") == config


def unpulled_image_id(image: str, held: Iterable[tuple[str, str | None] | None], digest: str | None) -> str:
    """The image id a deploy would find after its pull, as far as a dry run knows without pulling: ``held``
    (each node's (image id, registry digest) of ``image``, None where it holds none), ``digest`` (the registry's
    digest now, None when it could not be read). Every node holding the same image, and the registry's digest
    being that image's (or unknown: as a failed pull, the image as last pulled), gives that image's id;
    otherwise an id no container runs (``unpulled:<digest or reference>``): the image changes."""
    ids = set(held)
    one = ids.pop() if len(ids) == 1 else None
    if one is not None and (digest is None or digest == one[1]):
        return one[0]
    return f"unpulled:{digest or image}"


@dataclass(frozen=True)
class Step:
    action: str  # replace | await-serving | await-waiting | handover; activation keys: stop | await-fenced;
    # a promotion (Model.plan_promotion) after its handover: start-again | keep-stopped, then shred
    node: str
    detail: str = ""
    to: str | None = None  # handover: the node that takes over; a step of a ``part``: the node that gets the keys
    hot: bool = False  # replace (activation keys): the node is started with the role's hot files
    part: str = ""  # deploy --via-standby (activation keys): the promotion this step is of, "handover" or "hand back"
    # (carried out as a planned promotion: nodeops.run.via); "" for a change's own step

    def describe(self) -> str:
        if self.action == "handover":
            return f"hand over from {self.node} to {self.to} (planned failover)"
        detail = ": ".join(d for d in (f"{self.part} to {self.to}" if self.part else "", self.detail) if d)
        return f"{self.action} {self.node}" + (f" ({detail})" if detail else "")


IN_PLACE = "the active in place with its hot keys, no handover"  # the detail of a keys holder's restart in place: its
# outage is measured (nodeops.run.keys.in_place_gap)


SINGLE = "single node"  # the detail of a single node's replace: the one node of a service that has no standby
NOT_SERVING = "not serving"  # the detail of an all plan's replace planned while no other node serves (run.rolling)


def replaces_a_standby(step: Step) -> bool:
    """Whether ``step`` stops a node the plan took for not serving: every replace of a pair's node (the standby, the
    old active once it handed over, or a node with nothing running), not a single node's. Such a node must not hold
    the lease (answer its health path at all) just before the step: if it does, it took over since the plan (the
    active was cut off and lost its lease), and going on would stop the node that serves."""
    return step.action == "replace" and step.detail != SINGLE


@dataclass(frozen=True)
class ServicePlan:
    service: str
    steps: tuple[Step, ...]
    reason: str  # why these steps (or why none)

    @property
    def changes(self) -> bool:
        return bool(self.steps)


@dataclass(frozen=True)
class LeaseFacts:
    """The lease as deploy read it before planning, at the edge (nodeops.deploy): ``row``: nodeops.lease.Lease, a
    string saying why it could not be read, or None (the role keeps no lease); ``active_id``: the lease client id
    the serving node's health reply names (the role's ``lease_client`` hook), None when it names none."""

    row: Lease | str | None
    active_id: str | None


def starts_beside_serving(plan: ServicePlan, states: Mapping[str, NodeView]) -> bool:
    """Whether ``plan`` starts a node beside the one node of ``states`` that serves (answers its health path at all):
    it changes something on a service of more than one node, exactly one of which serves. The only plan the lease
    facts decide (refuse_a_serving_non_holder): deploy reads them for it alone. Pure."""
    return plan.changes and len(states) > 1 and sum(s.active for s in states.values()) == 1


def refuse_a_serving_non_holder(service: str, active: str, lease: LeaseFacts | None) -> None:
    """Unsafe (exit 4) when ``active``, the node that serves, is seen not to hold the lease: the row is held by
    nobody, or by another client id than the one ``active``'s reply names. Such a node runs without the lease (its
    service's activation model changed from ``all``): a standby started beside it would take the free lease and
    serve as well. Nothing is refused when the row could not be read or compared (the standby's await still
    requires the lease held by the other node: standby_evidence). Pure."""
    if lease is None or lease.row is None or isinstance(lease.row, str):
        return
    row, mine = lease.row, lease.active_id
    if row.held and mine in (None, row.holder):
        return
    theirs = f", not {active}'s ({mine[:8]})" if row.held and mine else ""
    raise Unsafe(f"{service}: {active} serves but does not hold the lease (the lease is {row.describe()}{theirs}): "
                 "it runs without the lease (its service's activation model changed?), and a standby started beside "
                 "it would serve as well; nothing was changed: change the model as docs/roles.md#activation says "
                 f"(stop every node's container, then {program()} deploy)")  # fmt: skip


def plan_service(
    service: Service,
    states: Mapping[str, NodeView],
    desired: Desired,
    force: bool = False,
    lease: LeaseFacts | None = None,
) -> ServicePlan:
    """The steps that bring the service's nodes to ``desired``, the active last.

    ``force``: nodes that already match ``desired`` are replaced too (a rotation: the nodes read a
    secret only when they start, and the config hash leaves secrets out).

    The active is the node that answers its health path at all (NodeView.active), healthy or not: an
    active that answers 503 is rolled like a healthy one, standby first, so a deploy can ship its fix.

    Refuses (Unsafe) when the pair's state is unclear: two nodes answering, or
    a container running on a pair where nobody answers; or when ``lease`` (the lease as read: LeaseFacts) shows
    that the node that serves does not hold it and a node would start beside it (refuse_a_serving_non_holder).
    """
    name = service.name
    serving = [s for s in states.values() if s.active]
    running = [s for s in states.values() if s.container and s.container.running]
    if len(serving) > 1:
        nodes = ", ".join(s.node.name for s in serving)
        raise Unsafe(
            f"{name}: two nodes serve at once ({nodes}); resolve that before deploying (see {program()} status; after "
            "a change of the service's activation model, docs/roles.md#activation says how)"
        )
    if len(service.nodes) == 1:
        only = service.nodes[0]
        if not force and desired.matches(states[only.name].container, only.name) and states[only.name].serving:
            return ServicePlan(name, (), "up to date")
        return ServicePlan(name, (Step("replace", only.name, SINGLE), Step("await-serving", only.name)),
                           "single node out of date")  # fmt: skip
    if not running:
        active, standby = service.active_preferred, service.standby_preferred
        return ServicePlan(name, (
            Step("replace", active.name, "preferred active"),
            Step("await-serving", active.name),
            Step("replace", standby.name, "standby"),
            Step("await-waiting", standby.name),
        ), "no container runs: fresh start, preferred active first")  # fmt: skip
    if not serving:
        nodes = ", ".join(s.node.name for s in running)
        raise Unsafe(f"{name}: containers run on {nodes} but no node serves its health check; "
                     f"resolve that before deploying (see {program()} status, "
                     f"{program()} promote-standby --force)")  # fmt: skip
    active = serving[0].node
    standby = next(n for n in service.nodes if n.name != active.name)
    steps: list[Step] = []
    if force or not desired.matches(states[standby.name].container, standby.name):
        steps += [Step("replace", standby.name, "standby first"), Step("await-waiting", standby.name)]
    if force or not desired.matches(states[active.name].container, active.name):
        steps += [
            Step("handover", active.name, to=standby.name),
            Step("replace", active.name, "old active, now the standby"),
            Step("await-waiting", active.name),
        ]
    if steps:  # a node started beside the one that serves: it must be the lease holder
        refuse_a_serving_non_holder(name, active.name, lease)
    reason = "rolling replace, standby first" if steps else "up to date"
    sick = states[active.name].failing
    if sick:
        reason += f"; the active {active.name} answers unhealthy (failing: {', '.join(sick)})"
    return ServicePlan(name, tuple(steps), reason)
