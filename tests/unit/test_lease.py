"""The lease: how it reads, what it says, and what a role may declare about it."""

from __future__ import annotations

import pytest

from nodeops.lease import Lease, lease_query
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


def test_query_uses_the_database_clock():
    assert lease_query("lease_lock") == (
        "SELECT client_id::text, EXTRACT(EPOCH FROM expires_at - now())::float8 FROM lease_lock"
    )


def test_the_chainlink_role_declares_its_lease():
    lease = load_role("chainlink", [BUILTIN_ROLES]).lease
    assert (lease.table, lease.host, lease.user, lease.password) == ("lease_lock", "DATABASE_HOST", "db_user", "db")


LEASE = """lease:
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
        (("  host: DATABASE_HOST\n", ""), "lease.host", "missing required key 'host'"),
    ],
)
def test_a_bad_lease_declaration_is_refused(tmp_path, change, where, problem):
    text = GOOD.replace("secrets: [pw]", "secrets: [pw, db_user, db]") + LEASE.replace(*change)
    with pytest.raises(RoleError) as err:
        load_role("thing", [make_role(tmp_path, text)])
    assert err.value.where == where and problem in err.value.problem
