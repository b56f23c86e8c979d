"""The lab's managed services, pure parts: config text, SQL text, argv, secrets, inventory fragment."""

import random
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lab import aws, balancer, postgres, services
from lab.topology import plan_lab
from nodeops.errors import InvalidInput
from nodeops.inventory import parse_inventory
from nodeops.passwords import password_problems
from nodeops.roles import load_role

PLAN = plan_lab("lab", "10.213.0.0/16", 4)
HDIR = Path("/var/lib/nodeops-lab/lab/hosts/db")


def test_haproxy_config_has_one_listener_per_service_on_the_lb_public_address():
    text = balancer.haproxy_config(PLAN)
    listeners = text[text.index("listen cl1") :]
    assert listeners == (
        "listen cl1\n"
        "    bind 10.213.255.250:6688\n"
        "    option httpchk GET /health\n"
        "    http-check expect status 200\n"
        "    server cl1-a 10.213.0.10:6688 check\n"
        "    server cl1-b 10.213.0.11:6688 check\n"
        "listen cl2\n"
        "    bind 10.213.255.250:6689\n"
        "    option httpchk GET /health\n"
        "    http-check expect status 200\n"
        "    server cl2-a 10.213.0.12:6688 check\n"
        "    server cl2-b 10.213.0.13:6688 check\n"
    )
    defaults = text[: text.index("listen cl1")]
    assert "    timeout connect 1s\n" in defaults
    assert "    timeout check 3s\n" in defaults  # above the node's own 2 s database ping: a slow answer is no failure
    assert "    default-server inter 200ms fastinter 200ms downinter 200ms fall 1 rise 1\n" in defaults


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy is not installed")
def test_haproxy_accepts_the_config(tmp_path):
    config = tmp_path / "haproxy.cfg"
    config.write_text(balancer.haproxy_config(plan_lab("lab", "10.213.0.0/16", 64)))
    check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "[WARNING]" not in check.stdout + check.stderr


def test_pg_hba_admits_postgres_by_peer_and_the_private_net_by_scram_only():
    rules = [line for line in postgres.pg_hba(PLAN).splitlines() if not line.startswith("#")]
    assert rules == ["local all postgres peer", "host all all 10.213.0.0/17 scram-sha-256"]


def cmd(line: str) -> tuple[str, ...]:
    return tuple(line.split())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            postgres.initdb_argv(HDIR / "pgdata"),
            cmd(
                "runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D /var/lib/nodeops-lab/lab/hosts/db/pgdata"
                " -U postgres --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8"
            ),
        ),
        (
            postgres.psql_argv(HDIR),
            cmd(
                "runuser -u postgres -- /usr/lib/postgresql/15/bin/psql -X -q -v ON_ERROR_STOP=1"
                " -h /var/lib/nodeops-lab/lab/hosts/db/sock -p 5432 -d postgres -f -"
            ),
        ),
        (
            postgres.pg_isready_argv(HDIR),
            cmd(
                "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_isready -q"
                " -h /var/lib/nodeops-lab/lab/hosts/db/sock -p 5432"
            ),
        ),
        (
            balancer.haproxy_argv(PLAN, Path("/x/haproxy.cfg")),
            cmd("nsenter --net=/run/netns/nodeops-lab-lb -- /usr/sbin/haproxy -W -db -f /x/haproxy.cfg"),
        ),
        (
            aws.moto_argv("/v/bin/moto_server", 40123),
            cmd("/v/bin/moto_server --host 127.0.0.1 --port=40123"),
        ),
    ],
)
def test_argv(argv, expected):
    assert argv == expected


def test_postgres_runs_in_the_db_netns_as_postgres_listening_on_its_private_address_only():
    argv = postgres.postgres_argv(PLAN, HDIR)
    assert argv[:3] == ("nsenter", "--net=/run/netns/nodeops-lab-db", "--")
    assert argv[3:5] == ("sh", "-c") and 'trap "kill -INT \\$pid" TERM' in argv[5]  # SIGTERM -> fast shutdown
    rest = argv[7:]
    assert rest[: rest.index("--") + 1] == (
        "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--reset-env", "--",
    )  # fmt: skip
    assert rest[rest.index("--") + 1 :] == (
        "/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/nodeops-lab/lab/hosts/db/pgdata",
        "-c", "listen_addresses=10.213.0.2",
        "-c", "port=5432",
        "-c", "unix_socket_directories=/var/lib/nodeops-lab/lab/hosts/db/sock",
        "-c", "max_connections=500",
    )  # fmt: skip


def test_roles_sql_creates_what_is_missing_with_its_password_and_keeps_an_existing_roles_password():
    """Issue 17's review: a rerun of lab.up set every role's password back to the seeded one, so a password rotated
    into another backend (sops, aws-ssm) no longer logged in. A role's password is now set when the role is created,
    or when its secret was just seeded again (``reset``: a restarted moto came back empty), never otherwise."""
    sql = postgres.roles_sql("Admin-pw-0123456789", {"cl1": "Pw1-0123456789abc", "cl2": "Pw2-0123456789abc"},
                             reset={"cl2"})  # fmt: skip
    assert sql.splitlines() == [
        "SET log_min_error_statement = panic;",
        "SELECT 'CREATE ROLE \"nodeops_admin\" PASSWORD ''Admin-pw-0123456789''' WHERE NOT EXISTS "
        "(SELECT FROM pg_roles WHERE rolname = 'nodeops_admin')\\gexec",
        'ALTER ROLE "nodeops_admin" WITH LOGIN NOSUPERUSER CREATEROLE CREATEDB;',
        "SELECT 'CREATE ROLE \"cl1\" PASSWORD ''Pw1-0123456789abc''' WHERE NOT EXISTS "
        "(SELECT FROM pg_roles WHERE rolname = 'cl1')\\gexec",
        'ALTER ROLE "cl1" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;',
        'SELECT \'CREATE DATABASE "cl1" OWNER "cl1"\' WHERE NOT EXISTS '
        "(SELECT FROM pg_database WHERE datname = 'cl1')\\gexec",
        'ALTER DATABASE "cl1" OWNER TO "cl1";',
        'REVOKE ALL ON DATABASE "cl1" FROM PUBLIC;',
        'GRANT "cl1" TO "nodeops_admin";',
        "SELECT 'CREATE ROLE \"cl2\" PASSWORD ''Pw2-0123456789abc''' WHERE NOT EXISTS "
        "(SELECT FROM pg_roles WHERE rolname = 'cl2')\\gexec",
        "ALTER ROLE \"cl2\" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'Pw2-0123456789abc';",
        'SELECT \'CREATE DATABASE "cl2" OWNER "cl2"\' WHERE NOT EXISTS '
        "(SELECT FROM pg_database WHERE datname = 'cl2')\\gexec",
        'ALTER DATABASE "cl2" OWNER TO "cl2";',
        'REVOKE ALL ON DATABASE "cl2" FROM PUBLIC;',
        'GRANT "cl2" TO "nodeops_admin";',
    ]


@pytest.mark.parametrize(
    ("created", "services_", "reset"),
    [
        ([], ["cl1", "cl2"], set()),
        (["cl2/DBSecret", "cl2/ApiSecret"], ["cl1", "cl2"], {"cl2"}),
        (["nodeops/DBAdminSecret", "cl1/DBSecret", "cl1/WalletSecret"], ["cl1"], {"nodeops_admin", "cl1"}),
    ],
    ids=["nothing-seeded", "one-service-seeded", "moto-restarted"],
)
def test_the_roles_whose_password_is_set_again_are_those_whose_secret_was_just_seeded(created, services_, reset):
    assert services.reseeded_roles(created, services_) == reset


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain-Pass_word.1", "'plain-Pass_word.1'"),
        ("x'; DROP ROLE postgres; --", "'x''; DROP ROLE postgres; --'"),  # stays one literal
        ("a\\'; SELECT 1; --", "E'a\\\\''; SELECT 1; --'"),  # backslash doubled, as quote_literal() does
        ("100%@/!*~", "'100%@/!*~'"),
    ],
)
def test_quote_literal(value, literal):
    assert postgres.quote_literal(value) == literal


def test_an_injection_shaped_password_cannot_end_its_literal():
    sql = postgres.roles_sql("a", {"cl1": "x'; DROP ROLE postgres; --"}, reset={"cl1"})
    assert "PASSWORD 'x''; DROP ROLE postgres; --';" in sql  # set again
    assert "PASSWORD ''x''''; DROP ROLE postgres; --'''" in sql  # at its creation: a literal in \gexec's literal
    assert "PASSWORD 'x'; DROP" not in sql


@pytest.mark.parametrize("value", ["two\nlines", "nul\x00", "tab\there"])
def test_quote_literal_refuses_control_characters(value):
    with pytest.raises(InvalidInput, match="control characters"):
        postgres.quote_literal(value)


@pytest.mark.parametrize("name", ['cl1"; DROP DATABASE postgres; --', "Cl1", "1cl", "", "a" * 64, "cl-1", "c l"])
def test_names_that_are_not_plain_identifiers_are_refused(name):
    with pytest.raises(InvalidInput, match="not a plain PostgreSQL name"):
        postgres.roles_sql("Admin-pw-0123456789", {name: "Pw1-0123456789abc"})


@pytest.mark.parametrize(
    ("password", "disallowed", "problem"),
    [
        ("Aa1-bcdefghijklm", (), None),
        ("Aa1-bcdefghijkl", (), "length 15 not in 16..50"),
        ("Aa1-" + "bc" * 24, (), "length 52 not in 16..50"),
        ("Aa1 bcdefghijklmn", (), "outside the alphabet"),
        ("Aa1'bcdefghijklmn", (), "outside the alphabet"),
        ("Aa1\\bcdefghijklmn", (), "outside the alphabet"),
        ("aa1-bcdefghijklmn", (), "no upper"),
        ("Aab-bcdefghijklmn", (), "no digit"),
        ("Aa1bcdefghijklmno", (), "no symbol"),
        ("-Aa1bcdefghijklmn", (), "starts or ends with a symbol"),
        ("Aa1-bcdefghijkkkl", (), "three times in a row"),
        ("Aa1-OPS@cl1.nodeops.example", ("ops@cl1.nodeops.example",), "contains"),
    ],
)
def test_password_problems(password, disallowed, problem):
    found = password_problems(password, *disallowed, rules=load_role("chainlink").passwords)
    if problem is None:
        assert found == []
    else:
        assert any(problem in p for p in found), found


def test_generated_secrets_meet_the_rules_over_many_seeds():
    rules = load_role("chainlink").passwords
    for seed in range(300):
        docs = services.secret_documents(["cl1", "cl2"], random.Random(seed))
        assert set(docs) == {
            "nodeops/DBAdminSecret",
            "cl1/DBSecret", "cl1/WalletSecret", "cl1/ApiSecret",
            "cl2/DBSecret", "cl2/WalletSecret", "cl2/ApiSecret",
        }  # fmt: skip
        assert docs["nodeops/DBAdminSecret"]["username"] == "nodeops_admin"
        assert docs["cl2/DBSecret"]["username"] == "cl2"
        assert docs["cl1/ApiSecret"]["username"] == "ops@cl1.nodeops.example"
        assert set(docs["cl1/WalletSecret"]) == {"password"}
        for doc in docs.values():
            assert password_problems(doc["password"], doc.get("username", ""), rules=rules) == []
        passwords = [d["password"] for d in docs.values()]
        assert len(set(passwords)) == len(passwords)


def test_the_same_seed_gives_the_same_secrets():
    assert services.secret_documents(["cl1"], random.Random(7)) == services.secret_documents(["cl1"], random.Random(7))


def test_the_inventory_fragment_validates_inside_a_full_inventory(tmp_path):
    fragment = services.inventory_fragment(PLAN, {"secrets_port": 40123})
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    doc = {
        "environment": "lab",
        "bastion": {"host": PLAN.bastion_public_ip, "user": "root", "host_key": key},
        "ssh": {"user": "root"},
        "secret_backends": fragment["secret_backends"],
        "services": {
            svc: {
                "role": "chainlink",
                "image": "smartcontract/chainlink:2.10.0",
                "nodes": [
                    {"name": n.name, "host": n.private_ip, "preferred": n.preferred, "host_key": key} for n in nodes
                ],  # fmt: skip
                **fragment["services"][svc],
            }
            for svc, nodes in PLAN.services().items()
        },
    }
    inv = parse_inventory(yaml.safe_dump(doc), tmp_path / "lab.yaml")
    backend = inv.secret_backends["aws"]
    assert (backend.kind, backend.region, backend.endpoint_url) == (
        "aws-secretsmanager",
        "us-east-1",
        "http://127.0.0.1:40123",
    )
    assert (backend.profile, backend.prefix) == (None, None)  # no credentials, no profile
    cl2 = inv.services["cl2"]
    assert dict(cl2.variables) == {
        "DATABASE_HOST": "10.213.0.2",
        "DATABASE_PORT": 5432,
        "DATABASE_NAME": "cl2",
        "ETH_CHAIN_ID": 1337,
    }
    assert str(cl2.load_balancer).endswith(":6689/health")  # the port HAProxy serves cl2 on: in its URL only
    assert {k: (r.backend, r.name, r.key) for k, r in cl2.secrets.items()} == {
        "db": ("aws", "cl2/DBSecret", "password"),
        "db_user": ("aws", "cl2/DBSecret", "username"),
        "keystore": ("aws", "cl2/WalletSecret", "password"),
        "api_email": ("aws", "cl2/ApiSecret", "username"),
        "api_password": ("aws", "cl2/ApiSecret", "password"),
        "db_admin_user": ("aws", "nodeops/DBAdminSecret", "username"),
        "db_admin": ("aws", "nodeops/DBAdminSecret", "password"),
    }
