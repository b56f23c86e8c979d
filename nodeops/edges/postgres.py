"""PostgreSQL: connections to a database server on the private network, through a tunnel on the bastion.

The only module that imports psycopg. The rest of nodeops gets from here: ``session`` (a connection, its
failures classified into one redacted line), the errors it catches by name (``Error``, ``UndefinedTable``),
``sql`` (psycopg's composition of identifiers and literals, re-exported: the SQL is written beside its
purpose, in lease.py, backup/ and rotate.py, but quoting is the driver's, done with the connection's
escaping when the statement runs, so the driver stays here) and ``scram_verifier``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator

import psycopg
from psycopg import sql

from nodeops.edges.ssh import Fleet
from nodeops.errors import OperationFailed

__all__ = ["CONNECT_TIMEOUT", "Connection", "Error", "LoginRefused", "UndefinedTable", "refused_login",
           "scram_verifier", "session", "sql"]  # fmt: skip

Error = psycopg.Error  # any error the driver raises: a failed statement, a connection lost
UndefinedTable = psycopg.errors.UndefinedTable  # SQLSTATE 42P01: a table the nodes have not created yet
Connection = psycopg.Connection  # what session yields: execute(), transaction(), info

CONNECT_TIMEOUT = 10  # seconds, libpq's connect_timeout (whole seconds): the tunnel, then the server's answer


class LoginRefused(OperationFailed):
    """The database server answered and refused the credentials (a wrong password or user, a pg_hba rule): what a
    node given them would meet at boot. A server that cannot be reached is a plain OperationFailed."""


# libpq's text for a refused login: the server's FATAL message for SQLSTATE 28P01 (invalid_password, also sent
# for a user that does not exist) and 28000 (invalid_authorization_specification: no pg_hba.conf entry). libpq
# gives a failed connection no SQLSTATE, so its message is all there is; a server whose lc_messages is not
# English says it otherwise, and such a refusal is then taken for an unreachable server (a warning, not a refusal).
REFUSED_LOGIN = re.compile(r"password authentication failed|authentication failed for user|no pg_hba\.conf entry")


def refused_login(message: str) -> bool:
    """Whether a psycopg connection error's message says the server refused the login (LoginRefused)."""
    return REFUSED_LOGIN.search(message) is not None


@contextlib.contextmanager
def session(fleet: Fleet, host: str, port: int, dbname: str, sslmode: str, user: str, password: str, *,
            service: str, purpose: str, clip: Callable[[str], str]) -> Iterator[psycopg.Connection]:  # fmt: skip
    """An autocommit connection to ``host:port/dbname`` through a tunnel on ``service``'s bastion (``fleet.tunnel``), as
    ``user``; closed on exit. ``conn.info.port`` is the tunnel's local end (a pg_dump of the same server goes
    through it too). ``host`` stays the server's real name for TLS verification, ``hostaddr`` is the tunnel.
    The credentials stay in memory. A failure to connect, or a driver error inside the block, is one line naming
    ``service``, ``purpose`` and the server, the driver's message given to ``clip`` (the caller's redactor):
    OperationFailed, or LoginRefused when the server refused the credentials."""
    with fleet.tunnel(host, port, service=service) as local:
        try:
            conn = psycopg.connect(
                host=host,
                hostaddr="127.0.0.1",
                port=local,
                dbname=dbname,
                connect_timeout=CONNECT_TIMEOUT,
                user=user,
                password=password,
                sslmode=sslmode,
                application_name="nodeops",
                autocommit=True,
            )
        except psycopg.Error as exc:
            failure = LoginRefused if refused_login(str(exc)) else OperationFailed
            raise failure(f"{service}: cannot {purpose} in {host}:{port}/{dbname}: {clip(str(exc))}") from None
        try:
            yield conn
        except psycopg.Error as exc:
            raise OperationFailed(f"{service}: {purpose} in {host}:{port}/{dbname} failed: {clip(str(exc))}") from None
        finally:
            conn.close()


def scram_verifier(conn: psycopg.Connection, user: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password`` for ``user``, computed here by libpq (as psql's \\password): an
    ALTER ROLE ... PASSWORD with it never sends the password to the server or its log."""
    return conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()
