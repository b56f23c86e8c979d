"""What a change refuses before it touches anything (exit 4): a change that would move the lease to another
database while a node runs (refuse_lease_move), credentials the service's database refuses (database_version), an
image older than the version the database last ran (refuse_downgrade).

``change`` is the change about to run (nodeops.deploy.ServiceDeploy: deploy and rollback), through the ``Guarded``
protocol below; the database is read through nodeops.lease (recorded_version), with this run's credentials, from
memory.
"""

from __future__ import annotations

from typing import Any, Protocol

from nodeops.commands import node as cmd
from nodeops.edges.postgres import LoginRefused
from nodeops.errors import OperationFailed, Unsafe
from nodeops.lease import recorded_version
from nodeops.plan import lease_moves, older_than


class Guarded(Protocol):
    """What the refusals ask of a change: its service (``service``: nodeops.inventory.Service; ``name``: its
    container's), inputs (``job``: nodeops.job.Job: role, variables, resolved secrets), fleet (the lease database
    is reached through it), what it learnt of each node before the change (``ran_on``, ``was_running``:
    nodeops.run.restore.Restore.keep_restorable) and ``say``."""

    service: Any
    name: str
    job: Any
    fleet: Any
    ran_on: dict[str, Any]
    was_running: dict[str, bool]

    def say(self, node: str, message: str, **data) -> None: ...


class Guards:
    """The refusals of ``change`` before it touches anything (see the module's docstring)."""

    def __init__(self, change: Guarded) -> None:
        self.change = change

    def refuse_lease_move(self) -> None:
        """Unsafe (exit 4), before anything changed, when the change moves the lease elsewhere (plan.lease_moves)."""
        run = self.change
        lease = run.job.role.lease
        if lease is None:
            return
        wanted = run.job.variables
        for node, job in run.ran_on.items():
            if not run.was_running.get(node):  # a stopped container holds no lease: a stopped pair may move
                continue
            moves = lease_moves((lease.host, lease.port, lease.database), job.variables, wanted)
            if moves:
                raise Unsafe(f"{run.service.name} {node}: the change moves the lease ({', '.join(moves)}): a rolling "
                             "replace would leave an active in each database; stop both nodes' containers "
                             f"(docker stop {run.name}), then deploy")  # fmt: skip

    def database_version(self) -> str | None:
        """The version the service's database last ran (lease.recorded_version, logged in with this run's
        credentials, from memory). None, said in a warning line, when the database cannot be reached from here: the
        nodes' own checks still run. Raises Unsafe (exit 4), before anything changed, when the server refuses
        those credentials (a wrong password in the backend, say): the new standby would fail at boot, after the
        old one was stopped."""
        run = self.change
        try:
            return recorded_version(run.fleet, run.job)
        except LoginRefused as exc:
            lease = run.job.role.lease
            refs = " and ".join(self.secret_reference(name) for name in (lease.user, lease.password))
            raise Unsafe(f"{exc}; the database refuses the credentials this run would give the nodes ({refs}): a "
                         "node started on them could not boot; nothing was changed (fix the secret in its backend, "
                         "then deploy)") from None  # fmt: skip
        except OperationFailed as exc:
            run.say("", f"warning: {exc}; this run's database credentials and the image's version are not "
                    "checked against the database")  # fmt: skip
            return None

    def refuse_downgrade(self, recorded: str | None) -> None:
        """Unsafe (exit 4), before anything changed, when the image is older than ``recorded``, the version the
        database last ran: the node would refuse it at boot, and only once it took the lease."""
        run = self.change
        tag = cmd.image_tag(run.service.image)
        if older_than(tag, recorded):
            raise Unsafe(f"{run.service.name}: {run.service.image} is version {tag}, older than {recorded}, the "
                         "version its database last ran: the node refuses to start on it (a database migrated by "
                         "a newer version); roll the database back first, or deploy a newer image")  # fmt: skip

    def secret_reference(self, name: str) -> str:
        """``services.cl1.secrets.db (backend aws: 'cl1/DBSecret' key 'password', version 1a2b3c4d)``: where a
        secret of this run comes from (the version read, when the backend keeps versions), never its value."""
        run = self.change
        ref, version = run.service.secrets[name], run.job.secrets[name].version
        key = f" key {ref.key!r}" if ref.key else ""
        return (f"services.{run.service.name}.secrets.{name} (backend {ref.backend}: {ref.name!r}{key}"
                + (f", version {version[:8]})" if version else ")"))  # fmt: skip
