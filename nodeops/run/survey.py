"""A change's first look at its pair, before it plans: every node connected (an unreachable node stops the run
before anything changed: exit 1 under activation lease, exit 4 under keys and all, connect_every), the files
directory RAM-backed, the image pulled on every node (its id is what "up to date" compares) or, for a dry run,
looked up without pulling, and each node's state.

``change`` is the change about to be planned (nodeops.deploy.ServiceDeploy in a run), through the ``Surveyed``
protocol below; the digest of the image as pulled and whether it was pulled on every node are written back to it
(``digest``, ``pulled``: a failed change may restart a node on that image, nodeops.run.restore.previous_on).
"""

from __future__ import annotations

from typing import Any, NoReturn, Protocol

from nodeops import program
from nodeops.commands import node as cmd
from nodeops.edges.ssh import CommandResult
from nodeops.errors import InventoryError, OperationFailed, Unsafe
from nodeops.facts import files as file_facts
from nodeops.facts import image as image_facts
from nodeops.facts.view import NodeView
from nodeops.plan import Desired, unpulled_image_id
from nodeops.run.node import NodeActions, NoSuchImage


class Surveyed(Protocol):
    """What the survey asks of a change: its service (``service``: nodeops.inventory.Service), inputs (``job``:
    nodeops.job.Job, whose config hash is wanted), fleet (its inventory names the file a bad image is reported in),
    container CLI (``runtime``), where it writes the image's registry digest (``digest``) and whether every node
    pulled it (``pulled``), its activation model (``model``: nodeops.activation.Model), and its connections, node
    actions and observations below."""

    service: Any
    job: Any
    model: Any
    fleet: Any
    runtime: str
    digest: str | None
    pulled: bool

    def connect(self, node: Any) -> None: ...
    def on(self, node: str) -> NodeActions: ...
    def x(self, node: str, command: str, stdin: bytes | None = None, check: bool = True,
          timeout: float | None = None) -> CommandResult: ...  # fmt: skip
    def why(self, res: CommandResult) -> str: ...
    def say(self, node: str, message: str, **data) -> None: ...
    def states(self) -> dict[str, NodeView]: ...


class Survey:
    """The first look of ``change`` (see the module's docstring)."""

    def __init__(self, change: Surveyed) -> None:
        self.change = change

    def observe(self, dry_run: bool = False) -> tuple[dict[str, NodeView], Desired]:
        """Each node's state and what the run wants. A deploy pulls the image on every node (its id is what "up to
        date" compares); a dry run pulls nothing and changes nothing on a node (see look_image)."""
        run = self.change
        image = run.service.image
        ids = set()
        self.connect_every()
        for node in run.service.nodes:
            self.require_tmpfs(node.name, dry_run)
            if not dry_run:
                ids.add(self.pull(node.name, image))
        if dry_run:
            return run.states(), Desired(
                image, self.look_image(), run.job.rendered.config_hash, run.job.config_hashes(), run.job.holder_hashes()
            )
        if len(ids) != 1:
            raise OperationFailed(f"{run.service.name}: {image} resolves to different images on the nodes: {ids}")
        image_id, run.digest = ids.pop()
        run.pulled = True
        job = run.job
        return run.states(), Desired(
            image, image_id, job.rendered.config_hash, job.config_hashes(), job.holder_hashes()
        )

    def connect_every(self) -> None:
        """Every node of the service connected, before anything is sent to any. Under activation lease the first
        that cannot be reached stops the run (its OperationFailed, exit 1: the pair's lease says who is active).
        Under keys and all every node is tried and those that cannot be reached are refused together as unsafe
        (Unsafe, exit 4, one line naming each, why: Model.unseen_risk, what to do): nothing planned or changed."""
        run = self.change
        risk = run.model.unseen_risk
        lost: dict[str, str] = {}
        for node in run.service.nodes:
            try:
                run.connect(node)
            except OperationFailed as exc:
                if not risk:
                    raise
                lost[node.name] = str(exc)
        if lost:
            raise Unsafe(f"{run.service.name}: {', '.join(lost)} cannot be reached ({'; '.join(lost.values())}): "
                         f"{risk}, so nothing was planned and nothing changed; make it reachable again, then run it "
                         f"again (see {program()} status --env {run.fleet.inventory.environment})")  # fmt: skip

    def require_tmpfs(self, node: str, dry_run: bool) -> None:
        """Unsafe (exit 4) unless the files directory is RAM-backed; a deploy creates it, a dry run looks at it
        (or at /run, where it would be created)."""
        run = self.change
        fs, run_fs = (cmd.sh(file_facts.filesystem_type(path)) for path in (cmd.FILES_ROOT, "/run"))
        probe = (f"if [ -d {cmd.FILES_ROOT} ]; then {fs}; else {run_fs}; fi" if dry_run
                 else f"mkdir -p -m 0755 {cmd.FILES_ROOT} && {fs}")  # fmt: skip
        found = run.x(node, probe).stdout.strip()
        if found != "tmpfs":
            raise Unsafe(f"{run.service.name} {node}: {cmd.FILES_ROOT} is on {found}, not RAM "
                         "(tmpfs): secret files would reach the disk; mount a tmpfs on /run")  # fmt: skip

    def look_image(self) -> str:
        """A dry run's view of the image, pulling nothing: the registry's digest, read with `docker manifest
        inspect` on the first node (sets ``digest``; None, said as "resolved at deploy", when the registry or the
        CLI cannot tell: a podman runtime, a multi-platform list, the registry unreachable), and the image each
        node already holds; returns the id a deploy would compare (plan.unpulled_image_id)."""
        run = self.change
        image, first = run.service.image, run.service.nodes[0].name
        config = run.x(first, cmd.sh(image_facts.registry_config(run.runtime)), check=False).stdout
        argv = image_facts.manifest_inspect(run.runtime, image, image_facts.insecure_registry(image, config))
        found = run.x(first, cmd.sh(argv), check=False) if argv else None
        run.digest = image_facts.parse_manifest_digest(found.stdout) if found and found.exit_code == 0 else None
        if found is not None and found.exit_code and image_facts.says_no_such_image(found.stderr + found.stdout):
            self.no_such_image(found)
        if run.digest is None:
            why = "not with podman" if argv is None else run.why(found) if found.exit_code else "a multi-platform list"
            run.say(first, f"registry digest of {image} not read ({why}): resolved at deploy", digest=None)
        held = []
        for node in run.service.nodes:
            res = run.x(node.name, cmd.sh(image_facts.image_id(run.runtime, image)), check=False)
            held.append(image_facts.parse_image_id(res.stdout, image) if res.exit_code == 0 else None)
        return unpulled_image_id(image, held, run.digest)

    def pull(self, node: str, image: str) -> tuple[str, str | None]:
        """Pull ``image`` on ``node``: (image id, registry digest) (NodeActions.pull); the registry saying there is
        no such image is invalid input (no_such_image)."""
        run = self.change
        try:
            return run.on(node).pull(image)
        except NoSuchImage as exc:
            self.no_such_image(exc.answer)

    def no_such_image(self, answer: CommandResult) -> NoReturn:
        """The registry says the image does not exist: invalid input (exit 2) naming services.X.image, raised
        before any container is touched (a dry run's look, a deploy's pull)."""
        run = self.change
        raise InventoryError(str(run.fleet.inventory.source), f"services.{run.service.name}.image",
                             f"the registry has no {run.service.image} ({run.why(answer)}); give a tag or digest "
                             "that was pushed (e.g. `docker manifest inspect IMAGE` where the nodes pull)")  # fmt: skip
