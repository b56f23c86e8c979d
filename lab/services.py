"""The lab's managed services: PostgreSQL on ``db``, Secrets Manager for the operator, HAProxy on ``lb``.

What is real: PostgreSQL 15 (its own cluster, listening only on the db host's
private address; SCRAM passwords; one role and database per service plus a
non-superuser admin role), HAProxy 2.6 (one listener per service on the load
balancer's public address, HTTP health checks on the nodes' ``/health``), and
the Secrets Manager HTTP API as boto3 speaks it.

What is simulated: Secrets Manager is ``moto_server`` on 127.0.0.1 in the
operator's network namespace. It keeps everything in memory, checks no
credentials and has no IAM; it serves every service it knows on its one port,
so Parameter Store and KMS too (the ``aws-ssm``, ``aws-kms`` and ``sops``
backends' tests; tests/e2e/test_secret_backends.py). The secrets carry the AWS Quick Start
names (``<service>/DBSecret``, ``<service>/WalletSecret``,
``<service>/ApiSecret``) plus ``nodeops/DBAdminSecret`` for the admin role. The same moto_server
is the S3 of ``fab backup`` (bucket ``nodeops-backups``); the age identity backups are encrypted to is
generated at ``lab.up`` into ``nodeops/BackupIdentity`` (never a file), and only its public key goes
into the inventory.

Credentials for moto clients: the lab writes none, anywhere. moto accepts any
key pair, but botocore refuses to sign without one, so a lab client exports
``AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing`` (``MOTO_CREDENTIALS``;
these are not secrets). The inventory fragment names only the endpoint and the
region, exactly as a real-AWS inventory would, with no ``profile``: a profile
would need a file in the operator's ``~/.aws``, outside the lab.

Every ``lab.up`` is idempotent: a secret is created only if missing (re-runs
keep its value), and every run re-applies the database passwords read back
from Secrets Manager (``VersionStage="AWSCURRENT"``). So when moto had to be
restarted, and thus re-seeded with new values, PostgreSQL follows at once and
the two never disagree; nodes deployed with the old values must be redeployed.

The module keeps its pure builders (config text, SQL text, argv tuples, secret
generation from a given RNG, the inventory fragment) apart from the functions
with side effects, which come last.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.daemons import Daemons, Started, run
from lab.topology import DB_PORT, NODE_PORT, LabPlan
from nodeops.errors import InvalidInput, OperationFailed
from nodeops.passwords import Rng, generate_password
from nodeops.roles import load_role

if TYPE_CHECKING:
    from lab.host import Lab

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HAPROXY = "/usr/sbin/haproxy"
REGION = "us-east-1"
BACKEND = "aws"  # the inventory's name for the lab's secret backend
ADMIN_ROLE = "nodeops_admin"
ADMIN_SECRET = "nodeops/DBAdminSecret"
BACKUP_SECRET = "nodeops/BackupIdentity"  # the lab's age identity for fab restore: made at lab.up, only in moto
BACKUP_BUCKET = "nodeops-backups"
ETH_CHAIN_ID = 1337
MAX_CONNECTIONS = 500  # 2 nodes per service, each with a pool and a lease connection
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")


# ---------------------------------------------------------------- secrets (pure)


def secret_names(service: str) -> dict[str, str]:
    """The AWS Quick Start secret names of one service."""
    return {"db": f"{service}/DBSecret", "wallet": f"{service}/WalletSecret", "api": f"{service}/ApiSecret"}


def api_email(service: str) -> str:
    return f"ops@{service}.nodeops.example"


def secret_documents(services: Iterable[str], rng: Rng) -> dict[str, dict[str, str]]:
    """Secret name -> its JSON document, for the admin role and every service; each password meets the lab's
    node's rules (the built-in chainlink role's ``passwords:``)."""
    rules = load_role("chainlink").passwords
    docs = {ADMIN_SECRET: {"username": ADMIN_ROLE, "password": generate_password(rng, rules=rules)}}
    for service in services:
        names, email = secret_names(service), api_email(service)
        docs[names["db"]] = {"username": service, "password": generate_password(rng, rules=rules)}
        docs[names["wallet"]] = {"password": generate_password(rng, rules=rules)}
        docs[names["api"]] = {"username": email, "password": generate_password(rng, email, rules=rules)}
    return docs


def moto_endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def inventory_fragment(plan: LabPlan, state: Mapping[str, Any]) -> dict[str, Any]:
    """What the generated inventory gets from the services: the secret backend, and per service
    its ``variables`` and ``secrets`` (references only; no value and no credential)."""

    def ref(name: str, key: str) -> dict[str, str]:
        return {"backend": BACKEND, "name": name, "key": key}

    services = {}
    for service in plan.services():
        names = secret_names(service)
        services[service] = {
            "variables": {
                "DATABASE_HOST": plan.db.private_ip,
                "DATABASE_PORT": DB_PORT,
                "DATABASE_NAME": service,
                "ETH_CHAIN_ID": ETH_CHAIN_ID,
            },
            "load_balancer": f"http://{plan.lb.public_ip}:{plan.lb_port(service)}/health",
            "secrets": {
                "db": ref(names["db"], "password"),
                "db_user": ref(names["db"], "username"),
                "keystore": ref(names["wallet"], "password"),
                "api_email": ref(names["api"], "username"),
                "api_password": ref(names["api"], "password"),
                "db_admin_user": ref(ADMIN_SECRET, "username"),  # for fab rotate-secrets --secret db
                "db_admin": ref(ADMIN_SECRET, "password"),
            },
        }
    backend = {"kind": "aws-secretsmanager", "region": REGION, "endpoint_url": moto_endpoint(state["secrets_port"])}
    fragment: dict[str, Any] = {"secret_backends": {BACKEND: backend}, "services": services}
    if state.get("backup_recipient"):  # fab backup: moto's S3, to the lab identity's public key; restore reads it
        fragment["backup"] = {"bucket": BACKUP_BUCKET, "aws": BACKEND, "recipients": [state["backup_recipient"]],
                              "identity": ref(BACKUP_SECRET, "identity"),
                              "keep_daily": 7, "keep_weekly": 4}  # fmt: skip
    return fragment


# ---------------------------------------------------------------- PostgreSQL (pure)


def private_network(plan: LabPlan) -> str:
    return str(ipaddress.ip_interface(f"{plan.db.private_ip}/{plan.private_prefixlen}").network)


def pg_hba(plan: LabPlan) -> str:
    """The whole pg_hba.conf: postgres over the socket by peer, everyone else by password from the lab's private net."""
    return (
        "# Generated by nodeops lab.up; rewritten on every run.\n"
        "local all postgres peer\n"
        f"host all all {private_network(plan)} scram-sha-256\n"
    )


def initdb_argv(data: Path) -> tuple[str, ...]:
    return (
        "runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
        "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
    )  # fmt: skip


def postgres_argv(plan: LabPlan, host_dir: Path) -> tuple[str, ...]:
    """The postmaster in the db host's netns, as postgres, behind a tiny shell that turns SIGTERM
    into SIGINT: the lab stops daemons with SIGTERM, which PostgreSQL reads as a "smart" shutdown
    that waits for every client (the nodes) to leave; SIGINT is the fast, clean shutdown.

    setpriv, not runuser: runuser stays as a parent and SIGKILLs its child 2 s after a SIGTERM.
    """
    wrapper = 'trap "kill -INT \\$pid" TERM; "$@" & pid=$!; while kill -0 $pid 2>/dev/null; do wait $pid; done'
    return (
        "nsenter", f"--net=/run/netns/{plan.db.netns}", "--",
        "sh", "-c", wrapper, "nodeops-postgres",
        "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--reset-env", "--",
        str(PG_BIN / "postgres"), "-D", str(host_dir / "pgdata"),
        "-c", f"listen_addresses={plan.db.private_ip}",
        "-c", f"port={DB_PORT}",
        "-c", f"unix_socket_directories={host_dir / 'sock'}",
        "-c", f"max_connections={MAX_CONNECTIONS}",
    )  # fmt: skip


def pg_isready_argv(host_dir: Path) -> tuple[str, ...]:
    """As postgres: a probe by any other user is logged by the server as a failed login."""
    sock = str(host_dir / "sock")
    return ("runuser", "-u", "postgres", "--", str(PG_BIN / "pg_isready"), "-q", "-h", sock, "-p", str(DB_PORT))


def psql_argv(host_dir: Path) -> tuple[str, ...]:
    """psql as the postgres superuser over the socket, reading its script (and so every password) from stdin."""
    return (
        "runuser", "-u", "postgres", "--", str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
        "-h", str(host_dir / "sock"), "-p", str(DB_PORT), "-d", "postgres", "-f", "-",
    )  # fmt: skip


def quote_ident(name: str) -> str:
    """A role or database name, double-quoted; only plain lowercase names are accepted."""
    if not _IDENT.fullmatch(name):
        raise InvalidInput(f"lab: {name[:40]!r} is not a plain PostgreSQL name ([a-z_][a-z0-9_]*, at most 63)")
    return f'"{name}"'


def quote_literal(value: str) -> str:
    """A SQL string literal, as PostgreSQL's quote_literal() writes it (E'' if there is a backslash)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidInput("lab: a SQL literal may not contain control characters (one line of text)")
    quoted = value.replace("'", "''")
    return f"E'{quoted.replace(chr(92), chr(92) * 2)}'" if "\\" in value else f"'{quoted}'"


def _create_if_missing(catalog: str, column: str, name: str, create: str) -> str:
    """A query whose one row (if any) psql's \\gexec runs: CREATE ... only when ``name`` is not in ``catalog``."""
    exists = f"SELECT FROM {catalog} WHERE {column} = {quote_literal(name)}"
    return f"SELECT {quote_literal(create)} WHERE NOT EXISTS ({exists})\\gexec"


def roles_sql(admin_password: str, service_passwords: Mapping[str, str], reset: Collection[str] = ()) -> str:
    """A psql script that makes the roles and databases match, whatever exists already.

    The admin role may create roles and databases but is no superuser. Each
    service gets a role and a database of its name, owned by that role and
    closed to other roles. A role gets its password when it is created, and
    again only when it is in ``reset`` (its secret was just seeded anew:
    reseeded_roles); otherwise an existing role keeps the password it has,
    which ``rotate-secrets`` may have changed in a backend this lab does not
    seed (sops, aws-ssm). Roles and databases of services no longer in the
    lab (it shrank) are left alone, with their data.
    """

    def role(name: str, password: str, attributes: str) -> list[str]:
        ident, literal = quote_ident(name), quote_literal(password)
        again = f" PASSWORD {literal}" if name in reset else ""
        return [_create_if_missing("pg_roles", "rolname", name, f"CREATE ROLE {ident} PASSWORD {literal}"),
                f"ALTER ROLE {ident} WITH {attributes}{again};"]  # fmt: skip

    admin = quote_ident(ADMIN_ROLE)
    lines = [
        "SET log_min_error_statement = panic;",  # a failing statement is not logged with its password
        *role(ADMIN_ROLE, admin_password, "LOGIN NOSUPERUSER CREATEROLE CREATEDB"),
    ]
    for service, password in service_passwords.items():
        ident = quote_ident(service)
        lines += [
            *role(service, password, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"),
            _create_if_missing("pg_database", "datname", service, f"CREATE DATABASE {ident} OWNER {ident}"),
            f"ALTER DATABASE {ident} OWNER TO {ident};",
            f"REVOKE ALL ON DATABASE {ident} FROM PUBLIC;",
            f"GRANT {ident} TO {admin};",  # fab restore: the admin creates databases owned by the service's role
        ]
    return "\n".join(lines) + "\n"


def reseeded_roles(created: Iterable[str], services: Iterable[str]) -> set[str]:
    """The roles whose password secret is among ``created`` (the secrets seed_secrets just made: a restarted moto
    came back empty): their password is set again, to the new secret's (roles_sql's ``reset``)."""
    made = set(created)
    roles = {ADMIN_ROLE} if ADMIN_SECRET in made else set()
    return roles | {service for service in services if secret_names(service)["db"] in made}


# ---------------------------------------------------------------- HAProxy and moto (pure)


def haproxy_config(plan: LabPlan) -> str:
    """One listener per service on the lb's public address; its nodes checked on /health every 200 ms,
    one failed check takes a node out and one good check puts it back."""
    lines = [
        "# Generated by nodeops lab.up; rewritten on every run.",
        "global",
        "    log stdout format raw local0",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        # No retry: a standby has no listener until it holds the lease, so a retry would meet a dead node
        # again after HAProxy's turn-around second; a request that finds its node just gone gets a 503 now.
        "    retries 0",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout check 500ms",
        "    default-server inter 200ms fastinter 200ms downinter 200ms fall 1 rise 1",
    ]
    for service, nodes in plan.services().items():
        lines += [
            f"listen {service}",
            f"    bind {plan.lb.public_ip}:{plan.lb_port(service)}",
            "    option httpchk GET /health",
            "    http-check expect status 200",
            *(f"    server {n.name} {n.private_ip}:{NODE_PORT} check" for n in nodes),
        ]
    return "\n".join(lines) + "\n"


def haproxy_argv(plan: LabPlan, config: Path) -> tuple[str, ...]:
    return ("nsenter", f"--net=/run/netns/{plan.lb.netns}", "--", HAPROXY, "-W", "-db", "-f", str(config))


def moto_argv(moto_server: str, port: int) -> tuple[str, ...]:
    """moto_server on loopback; ``--port=N`` as one word, so that it can serve as the Daemons marker."""
    return (moto_server, "--host", "127.0.0.1", f"--port={port}")


# ---------------------------------------------------------------- side effects


def ensure(lab: Lab, daemons: Daemons, plan: LabPlan) -> None:
    """Make the three services run and agree with ``plan`` (idempotent; called by Lab.up).

    When the lab shrank, HAProxy drops the gone services' listeners, but their
    roles, databases (with their data) and secrets stay; ``lab.down`` removes all.
    """
    started = [
        s
        for s in (_ensure_postgres(lab, daemons, plan), _ensure_moto(lab, daemons), _ensure_haproxy(lab, daemons, plan))
        if s
    ]
    Daemons.wait(started)
    client = secrets_client(lab.state["secrets_port"])
    created = seed_secrets(client, secret_documents(plan.services(), secrets.SystemRandom()))
    admin = read_secret(client, ADMIN_SECRET)["password"]
    passwords = {svc: read_secret(client, secret_names(svc)["db"])["password"] for svc in plan.services()}
    reset = reseeded_roles(created, plan.services())  # an existing role keeps its password (a rotation's, say)
    _psql(lab.host_dir(plan.db), roles_sql(admin, passwords, reset), hide=[admin, *passwords.values()])
    recipient = ensure_backup_store(client, lab.state["secrets_port"])
    if lab.state.get("backup_recipient") != recipient:
        lab.state["backup_recipient"] = recipient
        lab.save()


def ensure_backup_store(client: Any, port: int) -> str:
    """The bucket in moto's S3 and the age identity in moto's Secrets Manager (made once, never on disk);
    returns its public key, the recipient the inventory names."""
    import pyrage

    # Made once; a rerun keeps it (a restarted moto starts empty: new identity, new bucket, no old backups).
    seed_secrets(client, {BACKUP_SECRET: {"identity": str(pyrage.x25519.Identity.generate())}})
    identity = pyrage.x25519.Identity.from_str(read_secret(client, BACKUP_SECRET)["identity"])
    s3 = aws_client_for(port, "s3")
    if BACKUP_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BACKUP_BUCKET)
    return str(identity.to_public())


def secrets_client(port: int) -> Any:
    """A boto3 Secrets Manager client for the lab's moto (its dummy credentials passed, not exported)."""
    return aws_client_for(port, "secretsmanager")


def aws_client_for(port: int, service: str) -> Any:
    """A boto3 client of the lab's moto for ``service`` (secretsmanager, s3), its dummy credentials passed."""
    import boto3  # here: boto3 takes ~0.3 s to import and only lab.up needs it

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=moto_endpoint(port),
        aws_access_key_id=MOTO_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=MOTO_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def seed_secrets(client: Any, documents: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Create each secret that does not exist yet; never overwrite. Returns the names created."""
    existing = {s["Name"] for page in client.get_paginator("list_secrets").paginate() for s in page["SecretList"]}
    created = []
    for name, doc in documents.items():
        if name in existing:
            continue
        try:
            client.create_secret(Name=name, SecretString=json.dumps(doc))
        except client.exceptions.ResourceExistsException:
            continue
        created.append(name)
    return created


def read_secret(client: Any, name: str) -> dict[str, str]:
    return json.loads(client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"])


def _psql(host_dir: Path, script: str, hide: Sequence[str]) -> None:
    run(psql_argv(host_dir), stdin=script, hide=hide)


def _postgres_owned(path: Path, mode: int) -> None:
    user = pwd.getpwnam("postgres")
    path.mkdir(mode=mode, exist_ok=True)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)


def _ensure_postgres(lab: Lab, daemons: Daemons, plan: LabPlan) -> Started | None:
    hdir = lab.host_dir(plan.db)
    hdir.mkdir(parents=True, mode=0o711, exist_ok=True)
    for parent in (lab.dir.parent, lab.dir, hdir.parent, hdir):  # postgres traverses to its own directories
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)
    data = hdir / "pgdata"
    if not (data / "PG_VERSION").exists():
        if data.exists() and any(data.iterdir()):
            raise OperationFailed(f"lab: {data} holds no complete cluster; remove it or run lab.down")
        _postgres_owned(data, 0o700)
        run(initdb_argv(data))
    _postgres_owned(hdir / "sock", 0o700)
    hba = data / "pg_hba.conf"
    wanted = pg_hba(plan)
    changed = hba.read_text() != wanted
    if changed:
        hba.write_text(wanted)
    key = "db/postgres"
    if daemons.running(key):
        if changed:
            run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "reload", "-s", "-D", str(data)])
        return None

    def ready() -> bool:
        return subprocess.run(pg_isready_argv(hdir), capture_output=True).returncode == 0

    return daemons.start(key, postgres_argv(plan, hdir), str(data), hdir / "postgres.log", ready)


def _port_free(port: int) -> bool:
    """Whether a server may listen on the port (SO_REUSEADDR, as moto's server sets: a TIME_WAIT is no obstacle)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _ensure_moto(lab: Lab, daemons: Daemons) -> Started | None:
    """moto_server on the port kept in the lab's state (a new one only if another program took it)."""
    key = "operator/moto"
    if daemons.running(key):
        return None
    moto_server = Path(sys.executable).with_name("moto_server")
    if not moto_server.exists():
        raise OperationFailed(f"lab: {moto_server} not found; install the test extras (pip install -e '.[test]')")
    port = lab.state.get("secrets_port")
    if port is None or not _port_free(port):
        lab.state["secrets_port"] = port = _free_port()
        lab.save()
    log = lab.dir / "operator" / "moto.log"
    log.parent.mkdir(mode=0o700, exist_ok=True)
    return daemons.start(
        key, moto_argv(str(moto_server), port), f"--port={port}", log, lambda: _accepts("127.0.0.1", port)
    )


def _ensure_haproxy(lab: Lab, daemons: Daemons, plan: LabPlan) -> Started | None:
    """HAProxy in the lb's netns; restarted when its configuration changed (the lab grew or shrank)."""
    hdir = lab.host_dir(plan.lb)
    hdir.mkdir(mode=0o700, exist_ok=True)
    config = hdir / "haproxy.cfg"
    wanted = haproxy_config(plan)
    key = "lb/haproxy"
    changed = not config.exists() or config.read_text() != wanted
    if changed:
        candidate = config.with_suffix(".new")
        candidate.write_text(wanted)
        run([HAPROXY, "-c", "-q", "-f", str(candidate)])  # a config HAProxy refuses never replaces a good one
        candidate.replace(config)
    if daemons.running(key):
        if not changed:
            return None
        daemons.stop([key])
    ports = [plan.lb_port(s) for s in plan.services()]

    def ready() -> bool:
        return all(_accepts(plan.lb.public_ip, p) for p in ports)

    return daemons.start(key, haproxy_argv(plan, config), str(config), hdir / "haproxy.log", ready)
