"""Who holds the active role, read where the nodes keep it: the lease row in their database.

The database is on the private network: it is reached through a tunnel on
the bastion, logged in with the service's own credentials (in memory only),
and timed by the database's clock, the one the nodes' lease uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from nodeops.edges import postgres
from nodeops.edges.postgres import sql
from nodeops.edges.ssh import Fleet
from nodeops.errors import InvalidInput, NodeopsError
from nodeops.role_file import LeaseSpec


@dataclass(frozen=True)
class Lease:
    holder: str | None  # the holder's client id; None when no node ever took it
    remaining: float  # seconds until it expires, by the database's clock; <= 0 once expired

    @property
    def held(self) -> bool:
        return self.holder is not None and self.remaining > 0

    def describe(self) -> str:
        if self.holder is None:
            return "never taken"
        state = f"expires in {self.remaining:.1f}s" if self.held else f"expired {-self.remaining:.1f}s ago"
        return f"held by {self.holder[:8]}, {state} (database time)"


def lease_query(spec: LeaseSpec) -> str:
    """The lease row as (holder's client id as text, seconds until it expires by the database's clock), from the
    role's ``lease:`` table and columns (validated as plain identifiers when the role is loaded)."""
    return f"SELECT {spec.client}::text, EXTRACT(EPOCH FROM {spec.expires} - now())::float8 FROM {spec.table}"


ADMIN_DATABASE = "postgres"  # where the admin role logs in (RDS and stock PostgreSQL have it)


def locate(job) -> tuple[str, int, str, str]:
    """(host, port, database, sslmode) of the service's database server, from the variables its role's
    lease: names; a missing or malformed one is the operator's to set (InvalidInput)."""
    spec, v, service = job.role.lease, job.variables, job.service.name
    try:
        host, port, dbname = str(v[spec.host]), int(v[spec.port]), str(v[spec.database])
    except KeyError as missing:
        raise InvalidInput(f"{service}: variable {missing} locates the lease database; set it") from None
    except (TypeError, ValueError):
        raise InvalidInput(f"{service}: variable {spec.port} must be a port number") from None
    return host, port, dbname, str(v.get(spec.sslmode, "prefer"))


@contextlib.contextmanager
def database(fleet: Fleet, job, user: str, password: str, dbname: str | None = None,
             purpose: str = "read the lease") -> Iterator[postgres.Connection]:  # fmt: skip
    """A connection to the service's database server (the one its role's lease: locates), as ``user``, to
    ``dbname`` (default: the service's database): nodeops.edges.postgres.session, its failures redacted by the
    job's redactor (OperationFailed; LoginRefused when the server refused the credentials)."""
    host, port, default, sslmode = locate(job)
    with postgres.session(fleet, host, port, dbname or default, sslmode, user, password, service=job.service.name,
                          purpose=purpose, clip=job.redact.clip) as conn:  # fmt: skip
        yield conn


@contextlib.contextmanager
def lease_reader(fleet: Fleet, job) -> Iterator[Callable[[], Lease]]:
    """A function that reads the service's lease, over one tunnel and one connection; call it inside the
    block (a database error then leaves through database(): one redacted line)."""
    spec = job.role.lease
    with database(fleet, job, job.secrets[spec.user].reveal(), job.secrets[spec.password].reveal()) as conn:

        def read() -> Lease:
            try:
                row = conn.execute(lease_query(spec)).fetchone()
            except postgres.UndefinedTable:
                return Lease(None, 0.0)  # no node ever started on this database
            return Lease(row[0], row[1]) if row else Lease(None, 0.0)

        yield read


class LeaseView:
    """The service's lease read again and again over one tunnel and connection, opened at the first read; a read
    that cannot be done returns why (one redacted line) instead of raising, and every later read says the same
    (use as a context manager: the connection is closed on exit). Returns None when the role keeps no lease."""

    def __init__(self, fleet: Fleet, job) -> None:
        self.fleet, self.job = fleet, job
        self.stack = contextlib.ExitStack()
        self.read: Callable[[], Lease] | None = None
        self.error: str | None = None

    def __call__(self) -> Lease | str | None:
        if self.job.role.lease is None:
            return None
        if self.error is None:
            try:
                if self.read is None:
                    self.read = self.stack.enter_context(lease_reader(self.fleet, self.job))
                return self.read()
            except NodeopsError as exc:  # cannot connect, or the lease database is not located (InvalidInput)
                self.error = str(exc)
            except postgres.Error as exc:  # a read on the open connection
                self.error = f"{self.job.service.name}: read the lease failed: {self.job.redact.clip(str(exc))}"
            self.stack.close()
        return self.error

    def __enter__(self) -> LeaseView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()


def recorded_version(fleet: Fleet, job) -> str | None:
    """The node version the service's database last ran: the newest row of the role's ``backup.version_table``
    (Chainlink's ``node_versions``, which its CheckVersion compares at boot), read with ``job``'s database
    credentials (in memory), the ones its nodes would boot on; None when the role names no such table or the
    database has none yet. It logs in whenever the role keeps a lease, table or not: LoginRefused when the server
    refuses those credentials (a node given them could not boot), OperationFailed when it cannot be reached."""
    if job.role.lease is None:
        return None
    table = job.role.backup.version_table if job.role.backup else None
    spec = job.role.lease
    user, password = job.secrets[spec.user].reveal(), job.secrets[spec.password].reveal()
    with database(fleet, job, user, password, purpose="read the node version") as conn:
        if not table:
            return None
        try:
            query = sql.SQL("SELECT version FROM {} ORDER BY created_at DESC LIMIT 1").format(sql.Identifier(table))
            row = conn.execute(query).fetchone()
        except postgres.UndefinedTable:
            return None
    return str(row[0]) if row and row[0] else None
