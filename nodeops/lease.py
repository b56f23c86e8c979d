"""Who holds the active role, read where the nodes keep it: the lease row in their database.

The database is on the private network: it is reached through a tunnel on
the bastion, logged in with the service's own credentials (in memory only),
and timed by the database's clock, the one the nodes' lease uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg

from nodeops.errors import InvalidInput, OperationFailed
from nodeops.remote import Fleet


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


def lease_query(table: str) -> str:
    """The role's table name is validated as a plain identifier when the role is loaded."""
    return f"SELECT client_id::text, EXTRACT(EPOCH FROM expires_at - now())::float8 FROM {table}"


@contextlib.contextmanager
def lease_reader(fleet: Fleet, job) -> Iterator[Callable[[], Lease]]:
    """A function that reads the service's lease, over one tunnel and one connection."""
    spec, v, service = job.role.lease, job.variables, job.service.name
    try:
        host, port, dbname = str(v[spec.host]), int(v[spec.port]), str(v[spec.database])
    except KeyError as missing:
        raise InvalidInput(f"{service}: variable {missing} locates the lease database; set it") from None
    with fleet.tunnel(host, port) as local:
        try:
            conn = psycopg.connect(
                host=host,
                hostaddr="127.0.0.1",
                port=local,
                dbname=dbname,
                connect_timeout=10,
                user=job.secrets[spec.user].reveal(),
                password=job.secrets[spec.password].reveal(),
                sslmode=str(v.get(spec.sslmode, "prefer")),
                application_name="nodeops",
                autocommit=True,
            )  # fmt: skip  (host= keeps TLS verification on the real name; hostaddr= is the tunnel)
        except psycopg.Error as exc:
            reason = job.redact(" ".join(str(exc).split())[:300])
            raise OperationFailed(f"{service}: cannot read the lease in {host}:{port}/{dbname}: {reason}") from None

        def read() -> Lease:
            try:
                row = conn.execute(lease_query(spec.table)).fetchone()
            except psycopg.errors.UndefinedTable:
                return Lease(None, 0.0)  # no node ever started on this database
            except psycopg.Error as exc:
                raise OperationFailed(f"{service}: reading the lease failed: {job.redact(str(exc)[:300])}") from None
            return Lease(row[0], row[1]) if row else Lease(None, 0.0)

        try:
            yield read
        finally:
            conn.close()
