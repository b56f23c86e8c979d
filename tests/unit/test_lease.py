"""The lease: how it reads, what it says, and what a role may declare about it."""

from __future__ import annotations

import contextlib

import pytest

from nodeops.edges.postgres import refused_login
from nodeops.lease import Lease, lease_query
from nodeops.role_file import LeaseSpec
from nodeops.roles import BUILTIN_ROLES, RoleError, load_role
from tests.unit.test_roles import GOOD, make_role

HOLDER = "0b9f3c1e-5d2a-4f6b-8c7d-9e0f1a2b3c4d"


@pytest.mark.parametrize(
    ("lease", "held", "text"),
    [
        (Lease(HOLDER, 7.25), True, "held by 0b9f3c1e, expires in 7.2s (database time)"),
        (Lease(HOLDER, -3.0), False, "held by 0b9f3c1e, expired 3.0s ago (database time)"),
        (Lease(None, 0.0), False, "never taken"),
    ],
)
def test_lease_reads_by_database_time(lease, held, text):
    assert lease.held is held and lease.describe() == text


def test_query_uses_the_database_clock_and_the_roles_columns():
    spec = load_role("chainlink", [BUILTIN_ROLES]).lease
    assert lease_query(spec) == (
        "SELECT client_id::text, EXTRACT(EPOCH FROM expires_at - now())::float8 FROM lease_lock"
    )
    other = LeaseSpec("leases", "H", "P", "D", "S", "u", "p", client="holder", expires="until")
    assert lease_query(other) == "SELECT holder::text, EXTRACT(EPOCH FROM until - now())::float8 FROM leases"


def test_the_chainlink_role_declares_its_lease():
    lease = load_role("chainlink", [BUILTIN_ROLES]).lease
    assert (lease.table, lease.host, lease.user, lease.password) == ("lease_lock", "DATABASE_HOST", "db_user", "db")


LEASE = """variables: [DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_SSLMODE]
lease:
  table: lease_lock
  host: DATABASE_HOST
  port: DATABASE_PORT
  database: DATABASE_NAME
  sslmode: DATABASE_SSLMODE
  user: db_user
  password: db
"""


@pytest.mark.parametrize(
    ("change", "where", "problem"),
    [
        (("table: lease_lock", "table: lease_lock; DROP TABLE users"), "lease.table", "expected a table name"),
        (("user: db_user", "user: root"), "lease.user", "expected one of the role's secrets (pw, db_user, db)"),
        (("  password: db\n", "  password: db\n  extra: x\n"), "lease.extra", "unknown key 'extra'"),
        (("  password: db\n", "  password: db\n  client: id;x\n"), "lease.client", "expected a column name"),
        (("  password: db\n", "  password: db\n  expires: 3\n"), "lease.expires", "expected a column name"),
        (("  host: DATABASE_HOST\n", ""), "lease.host", "missing required key 'host'"),
        (
            ("host: DATABASE_HOST", "host: DB_HOST"),
            "lease.host",
            "expected a variable of the role's defaults or variables, got 'DB_HOST'",
        ),  # one no service could set
    ],
)
def test_a_bad_lease_declaration_is_refused(tmp_path, change, where, problem):
    text = GOOD.replace("secrets: [pw]", "secrets: [pw, db_user, db]") + LEASE.replace(*change)
    with pytest.raises(RoleError) as err:
        load_role("thing", [make_role(tmp_path, text)])
    assert err.value.where == where and problem in err.value.problem


# ---------------------------------------------------------------- locating and connecting (no server: fakes)


def job_of(variables: dict, password: str = "pw-Secret.1234"):
    import types

    from nodeops.run.report import Redactor
    from nodeops.secrets import Secret

    spec = LeaseSpec("lease_lock", "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_SSLMODE", "u", "p")
    secrets = {"u": Secret("cl1", "u"), "p": Secret(password, "p")}
    service, redact = types.SimpleNamespace(name="cl1"), Redactor(secrets.values())
    return types.SimpleNamespace(role=types.SimpleNamespace(lease=spec), variables=variables, secrets=secrets,
                                 service=service, redact=redact)  # fmt: skip


WHERE = {"DATABASE_HOST": "db.internal", "DATABASE_PORT": "5432", "DATABASE_NAME": "cl1"}


@pytest.mark.parametrize(
    ("variables", "located"),
    [
        (WHERE, ("db.internal", 5432, "cl1", "prefer")),
        ({**WHERE, "DATABASE_SSLMODE": "verify-full"}, ("db.internal", 5432, "cl1", "verify-full")),
        ({k: v for k, v in WHERE.items() if k != "DATABASE_PORT"}, "variable 'DATABASE_PORT' locates the lease"),
        ({**WHERE, "DATABASE_PORT": "fivefour"}, "variable DATABASE_PORT must be a port number"),
    ],
)
def test_locate_names_a_missing_variable_as_bad_input(variables, located):
    from nodeops.errors import InvalidInput
    from nodeops.lease import locate

    if isinstance(located, tuple):
        assert locate(job_of(variables)) == located
        return
    with pytest.raises(InvalidInput, match=located):
        locate(job_of(variables))


class FakeConn:
    def __init__(self, error: Exception) -> None:
        self.error, self.closed = error, False

    def execute(self, *_args):
        raise self.error

    def close(self) -> None:
        self.closed = True


class FakeFleet:
    @contextlib.contextmanager
    def tunnel(self, _host, _port, **_where):
        yield 40001


def test_a_database_error_inside_the_block_is_one_redacted_line(monkeypatch):
    import psycopg

    from nodeops import lease
    from nodeops.edges import postgres
    from nodeops.errors import OperationFailed

    conn = FakeConn(psycopg.errors.InsufficientPrivilege("permission denied near 'pw-Secret.1234'"))
    monkeypatch.setattr(postgres.psycopg, "connect", lambda **_: conn)
    job = job_of(WHERE)
    with pytest.raises(OperationFailed) as err, lease.database(FakeFleet(), job, "cl1", "x", "other", "do it") as c:
        c.execute("SELECT 1")
    assert str(err.value).startswith("cl1: do it in db.internal:5432/other failed: permission denied near")
    assert "pw-Secret.1234" not in str(err.value) and err.value.__cause__ is None and conn.closed
    # the lease reader's own case still holds: no table yet is "never taken", not an error
    monkeypatch.setattr(
        postgres.psycopg, "connect", lambda **_: FakeConn(psycopg.errors.UndefinedTable("no lease_lock"))
    )
    with lease.lease_reader(FakeFleet(), job) as read:
        assert read() == Lease(None, 0.0)


@pytest.mark.parametrize(
    ("message", "refused"),
    [  # libpq's messages as psycopg shows them (the server's FATAL line after libpq's prefix)
        ('connection failed: connection to server at "127.0.0.1", port 41234 failed: FATAL:  password '
         'authentication failed for user "cl1"', True),  # 28P01: a wrong password, or a user that does not exist
        ('connection failed: connection to server at "127.0.0.1", port 41234 failed: FATAL:  no pg_hba.conf entry '
         'for host "10.0.0.3", user "cl1", database "cl1", no encryption', True),  # 28000
        ('connection failed: connection to server at "127.0.0.1", port 41234 failed: Connection refused', False),
        ("connection failed: connection to server at \"127.0.0.1\", port 41234 failed: timeout expired", False),
        ('connection failed: FATAL:  database "cl1r" does not exist', False),  # not the credentials: the node's own
        ('connection failed: FATAL:  the database system is starting up', False),
    ],
    ids=["wrong-password", "pg-hba", "refused", "timeout", "no-database", "starting-up"],
)  # fmt: skip
def test_a_refused_login_is_told_from_an_unreachable_server(message, refused):
    assert refused_login(message) is refused
