"""The container fact: `docker container inspect` of a node's container, and what it says (Container); and which
TCP connections its process holds (socket_table, connected_to).

The command and its parser live here together; nodeops.facts.observe runs the command on a node.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from nodeops.commands.node import image_tag


def inspect(runtime: str, name: str) -> tuple[str, ...]:
    """JSON of the container, or exit 1 with 'No such' when there is none."""
    return (runtime, "container", "inspect", name)


@dataclass(frozen=True)
class Container:
    """What `docker container inspect` says about a node's container."""

    name: str
    running: bool
    status: str
    image_id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    exit_code: int = 0
    env: tuple[str, ...] = ()  # KEY=value, as the container process sees them
    args: tuple[str, ...] = ()  # entrypoint + command line
    user: str = ""  # as configured (`--user`); "" is the image's default user
    pid: int = 0  # of its main process on the node host; 0 when it does not run
    started: str = ""  # when it last started (RFC 3339, the engine's clock)
    image: str = ""  # the reference it was created from, as the engine reports it (Config.Image; see ``reference``)

    def label(self, key: str) -> str | None:
        return self.labels.get(f"io.nodeops.{key}")

    @property
    def hot(self) -> bool:
        """Holds the hot keys (activation keys): it runs and was started with the role's hot files, as its
        ``io.nodeops.hot`` label (``true``) records. A stopped container holds nothing (its keys were in memory)."""
        return self.running and self.started_hot

    @property
    def started_hot(self) -> bool:
        """It was started with the role's hot files, running or not (its ``io.nodeops.hot`` label): its ``config``
        and ``secrets`` labels are then the holder's (Rendered.config, Rendered.versions)."""
        return self.label("hot") == "true"

    @property
    def reference(self) -> str:
        """The image reference nodeops started the container with (``reg/repo:2.10.0@sha256:<64 hex>``): its
        ``image`` label (deploy.input_labels), not the engine's word. Podman (behind the docker CLI too)
        reports a reference pinned by digest without its tag (``reg/repo@sha256:...``), so every reader of what a
        container runs (status, the diff, restore, rollback, promote) reads this. A container started before the
        label existed: Config.Image, given back its tag from the ``version`` label when the engine dropped it
        (with_tag); "" when neither is known (a container started by hand from an image id)."""
        return self.label("image") or with_tag(self.image, self.label("version"))

    @property
    def version(self) -> str | None:
        """The version (image tag) the container runs: its ``version`` label, else ``reference``'s tag; None when
        neither is known."""
        return self.label("version") or (image_tag(self.reference) if self.reference else None)


def with_tag(image: str, tag: str | None) -> str:
    """``image`` with ``tag`` put back when it is pinned by digest and names no tag (podman's Config.Image of a
    container started as ``repo:2.10.0@sha256:...``): ``reg:5000/repo@sha256:ab``, ``2.10.0`` ->
    ``reg:5000/repo:2.10.0@sha256:ab``. Unchanged otherwise: no digest, a tag already there, no tag given, or
    ``latest`` (what image_tag says of a reference without a tag, so nothing to put back)."""
    name, at, digest = image.partition("@")
    if not at or not tag or tag == "latest" or ":" in name.rsplit("/", 1)[-1]:
        return image
    return f"{name}:{tag}@{digest}"


def parse_inspect(text: str) -> Container | None:
    """Parse `docker container inspect NAME` output; None when it lists nothing."""
    items = json.loads(text or "[]")
    if not items:
        return None
    c = items[0]
    state = c.get("State", {})
    config = c.get("Config") or {}
    return Container(
        name=c.get("Name", "").lstrip("/"),
        running=bool(state.get("Running")) and not state.get("Restarting"),
        status=state.get("Status", "unknown"),
        image_id=c.get("Image", ""),
        labels=dict(config.get("Labels") or {}),
        exit_code=int(state.get("ExitCode") or 0),
        env=tuple(config.get("Env") or ()),
        args=(*(config.get("Entrypoint") or ()), *(config.get("Cmd") or ())),
        user=config.get("User") or "",
        pid=int(state.get("Pid") or 0),
        started=state.get("StartedAt") or "",
        image=config.get("Image") or "",
    )


def served_port(container: Container | None, configured: int) -> int:
    """The port ``container`` serves its health path on: the ``io.nodeops.port`` label `docker run` recorded
    (nodeops.job.run_spec); ``configured`` (the inventory's, else the role's) when there is no container,
    or it was started before the label existed, or the label is not a port number (1-65535). Probing what the
    container serves, not what the inventory now says, keeps a port change an ordinary rolling change."""
    recorded = container.label("port") if container else None
    if recorded and recorded.isdigit() and 1 <= int(recorded) <= 65535:
        return int(recorded)
    return configured


def socket_table(pid: int) -> str:
    """The kernel's TCP socket tables (``/proc/PID/net/tcp`` and ``tcp6``) of the network namespace process ``pid``
    (a container's main process, Container.pid, a pid on the node host) runs in; prints nothing when the process is
    gone or the tables cannot be read."""
    return f"cat /proc/{int(pid)}/net/tcp /proc/{int(pid)}/net/tcp6 2>/dev/null"


def connected_to(table: str, port: int) -> bool | None:
    """Whether ``table`` (socket_table's output: a header line starting ``sl``, then one line per socket whose
    third field is ``REMOTE_HEX_ADDRESS:REMOTE_HEX_PORT`` and fourth the state, ``01`` for established) holds an
    established connection to remote ``port``; None when it holds no table (nothing was read)."""
    rows = [line.split() for line in table.splitlines()]
    if not any(row[:1] == ["sl"] for row in rows):
        return None
    for row in rows:
        if len(row) > 3 and row[0] != "sl" and row[3] == "01":
            with contextlib.suppress(ValueError):
                if int(row[2].rpartition(":")[2], 16) == port:
                    return True
    return False
