"""Node actions: what a change does on one node, bound to that node's connection.

Each action builds its command with nodeops.commands.node (or nodeops.facts) and sends it through the one edge
call, ``execute`` (nodeops.edges.ssh.execute unless another is given: the unit tests give a fake that records
the lines and answers from a table). A failed command raises OperationFailed naming the service, the node, the
command's first two words and its reason, masked (``reason``). Deciding *which* actions to run is the runner's
(nodeops.deploy.ServiceDeploy); nothing here looks at the other node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from nodeops.commands import node as cmd
from nodeops.edges.ssh import CommandResult, Link, execute
from nodeops.errors import OperationFailed
from nodeops.facts import image as image_facts
from nodeops.run.report import Redactor

LOG_TAIL = 20  # lines of a container's log searched for its last telling line (last_log)
SHRED_TIMEOUT = 15.0  # a shred of a few small files in RAM takes milliseconds: longer, the node was cut off

Execute = Callable[..., CommandResult]  # (link, command, stdin=, timeout=) -> CommandResult, as edges.ssh.execute


class NoSuchImage(OperationFailed):
    """The registry says the image does not exist (``answer``: the pull's or the manifest's reply); the caller
    turns it into invalid input naming the inventory's image (ServiceDeploy.no_such_image)."""

    def __init__(self, answer: CommandResult) -> None:
        super().__init__("no such image")
        self.answer = answer


def telling_line(text: str) -> str | None:
    """The last line of ``text`` that carries words (a letter or a digit), stripped; None when none does. A blank
    line, or a separator drawn with dashes, equals signs or box characters, says nothing about a failure."""
    lines = [line.strip() for line in text.splitlines() if any(ch.isalnum() for ch in line)]
    return lines[-1] if lines else None


def reason(res: CommandResult, redact: Redactor) -> str:
    """A failed command's reason: its last line of output (masked by ``redact``, clipped), else its exit status."""
    output = (res.stderr.strip() or res.stdout.strip()).splitlines()
    return redact.clip(output[-1]) if output else f"exit {res.exit_code}"


class NodeActions:
    """One node of one service, through one open connection (``link``): ``service`` and ``node`` name it in
    messages, ``runtime`` is its container CLI (docker | podman), ``redact`` masks every reason shown, ``timeout``
    bounds each command (seconds: the inventory's ssh.command_timeout), ``say`` reports a step line for the node
    (message, **event data), ``secret_files`` is the service's (shred | keep)."""

    def __init__(self, service: str, node: str, link: Link, *, runtime: str, redact: Redactor, timeout: float,
                 say: Callable[..., None], secret_files: str = "shred",
                 execute: Execute = execute) -> None:  # fmt: skip
        self.service, self.node, self.link = service, node, link
        self.runtime, self.redact, self.timeout = runtime, redact, timeout
        self.say, self.secret_files, self.execute = say, secret_files, execute
        self.name = cmd.container_name(service)

    def x(self, command: str, stdin: bytes | None = None, check: bool = True,
          timeout: float | None = None) -> CommandResult:  # fmt: skip
        """Run a shell line, within ``timeout`` seconds (``self.timeout`` by default); with ``check``, a non-zero
        exit raises OperationFailed: "SERVICE NODE: `FIRST TWO WORDS` failed: REASON"."""
        res = self.execute(self.link, command, stdin=stdin, timeout=timeout or self.timeout)
        if check and res.exit_code:
            raise OperationFailed(f"{self.service} {self.node}: `{' '.join(command.split()[:2])}` failed: "
                                  f"{self.why(res)}")  # fmt: skip
        return res

    def why(self, res: CommandResult) -> str:
        return reason(res, self.redact)

    def pull(self, image: str) -> tuple[str, str | None]:
        """Pull ``image``: (image id, registry digest). Pulling is how a tag moved in the registry is noticed; when
        the pull fails (the registry is down) and the node already holds the image, that one is used and the step
        line says so (pinned by digest, it is exactly the image asked for; a tag is the one pulled last). Raises
        NoSuchImage when the registry says there is none, OperationFailed (the pull's reason) when the node holds
        no such image either."""
        pulled = self.x(cmd.sh(cmd.pull(self.runtime, image)), check=False)
        held = self.x(cmd.sh(image_facts.image_id(self.runtime, image)), check=pulled.exit_code == 0)
        if pulled.exit_code and image_facts.says_no_such_image(pulled.stderr + pulled.stdout):
            raise NoSuchImage(pulled)
        if held.exit_code:
            raise OperationFailed(f"{self.service} {self.node}: `{self.runtime} pull` failed: {self.why(pulled)}")
        image_id, digest = image_facts.parse_image_id(held.stdout, image)
        if pulled.exit_code == 0:
            self.say(f"pulled {image} ({digest or 'no registry digest'})", digest=digest)
        else:
            which = ("pinned by digest: the very image" if "@" in image else
                     "the tag as last pulled here: a move of the tag in the registry is not seen")  # fmt: skip
            self.say(f"could not pull {image} ({self.why(pulled)}); using the image this node holds, "
                     f"{image_id[:19]} ({which})", digest=digest, pull_failed=True)  # fmt: skip
        return image_id, digest

    def upload(self, files: Mapping[str, bytes], uid: int) -> None:
        """The service's folder, then each file (name -> bytes) created 0400 for ``uid`` before its first byte,
        its content on stdin (never in an argument)."""
        self.x(cmd.prepare_dir(self.service, uid))
        for name, data in files.items():
            self.x(cmd.write_file(self.service, name, uid), stdin=data)

    def shred(self, names: Sequence[str]) -> None:
        """Shred ``names`` under the service's folder (when the service's secret files are shredded), within
        SHRED_TIMEOUT: a node cut off just after it took over must not hold the run (the old active waits to be
        started again) for the whole command timeout. OperationFailed when it did not finish."""
        if names and self.secret_files == "shred":
            self.x(cmd.shred(self.service, names), timeout=SHRED_TIMEOUT)
            self.say(f"shredded {', '.join(names)}")

    def run(self, spec: cmd.RunSpec) -> None:
        """`docker run` of ``spec`` (the service's container name must be free)."""
        self.x(cmd.sh(cmd.run(spec)))

    def start(self) -> None:
        """`docker start` of the service's container, as it stands."""
        self.x(cmd.sh(cmd.start(self.runtime, self.name)))

    def stop(self, timeout: int, name: str | None = None) -> None:
        """`docker stop` of the container ``name`` (the service's by default), giving it ``timeout`` seconds to
        end cleanly (a node releases its lease when it does)."""
        self.x(cmd.sh(cmd.stop(self.runtime, name or self.name, timeout)))

    def remove(self, name: str | None = None, check: bool = True) -> None:
        """`docker rm -f` of the container ``name`` (the service's by default); ``check=False``: its absence,
        or any failure, is no error."""
        self.x(cmd.sh(cmd.remove(self.runtime, name or self.name)), check=check)

    def set_aside(self) -> None:
        """The service's container renamed to the previous one (any older previous removed first): kept, to be
        stopped by the caller, until the change succeeded, to roll back to."""
        previous = cmd.previous_name(self.service)
        self.x(cmd.sh(cmd.remove(self.runtime, previous)) + " >/dev/null 2>&1; " +
               cmd.sh(cmd.rename(self.runtime, self.name, previous)))  # fmt: skip

    def put_back(self) -> None:
        """The previous container renamed to the service's name again (a rollback)."""
        self.x(cmd.sh(cmd.rename(self.runtime, cmd.previous_name(self.service), self.name)))

    def last_log(self) -> str:
        """``last log line: ...``: the last line of the container's log that says something (telling_line)."""
        res = self.x(cmd.sh(cmd.logs(self.runtime, self.name, tail=LOG_TAIL)) + " 2>&1", check=False)
        line = telling_line(res.stdout)
        return "last log line: " + self.redact.clip(line) if line else "no log output"

    def logged(self, marker: str) -> bool:
        """Whether the container's log holds ``marker`` (case-insensitive)."""
        res = self.x(cmd.sh(cmd.logs(self.runtime, self.name)) + " 2>&1", check=False)
        return marker.lower() in res.stdout.lower()
