"""The lab's managed services on a real lab: PostgreSQL on db, Secrets Manager (moto), HAProxy on lb."""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
import pytest

from lab import aws, postgres
from lab.daemons import process_alive
from lab.host import Lab
from nodeops.passwords import password_problems
from nodeops.roles import load_role
from tests.conftest import ROOT, fab
from tests.e2e.probe import superuser_sql

pytestmark = pytest.mark.lab

# Run inside a node's netns; the password comes on stdin, never on the command line.
LOGIN = """
import sys, psycopg
host, user, db = sys.argv[1:4]
try:
    with psycopg.connect(host=host, port=5432, user=user, dbname=db, password=sys.stdin.read(), connect_timeout=5) as c:
        print("ok", *c.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user").fetchone())
except psycopg.OperationalError as e:
    print("refused", " ".join(str(e).split()))
"""

# A node stand-in for the load balancer: every path (so /health too) answers 200 with the node's name.
SERVER = """
import http.server, sys
ip, name = sys.argv[1:3]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer((ip, 6688), Handler)
print("listening", flush=True)
server.serve_forever()
"""


def state(lab) -> dict:
    return Lab(ROOT, lab.plan.name).load_state()


def secrets_manager(lab):
    """A client configured as the docs tell a lab user: endpoint from the inventory, dummy keys from the env."""
    backend = lab.doc()["secret_backends"]["aws"]
    env = {**os.environ, **aws.MOTO_CREDENTIALS}
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]
    )
    return session.client("secretsmanager", region_name=backend["region"], endpoint_url=backend["endpoint_url"])


def secret(client, name: str) -> dict:
    return json.loads(client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"])


def all_secrets(client) -> dict[str, dict]:
    pages = client.get_paginator("list_secrets").paginate()
    return {s["Name"]: secret(client, s["Name"]) for page in pages for s in page["SecretList"]}


def login(lab, node_name: str, user: str, password: str, db: str | None = None) -> str:
    node = next(n for n in lab.plan.nodes if n.name == node_name)
    argv = ["nsenter", f"--net=/run/netns/{node.netns}", sys.executable, "-c", LOGIN]
    argv += [lab.plan.db.private_ip, user, db or user]
    out = subprocess.run(argv, input=password, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def up_again(lab) -> None:
    plan = lab.plan
    res = fab("lab.up", "--name", plan.name, "--nodes", str(len(plan.nodes)), "--cidr", plan.cidr)
    assert res.returncode == 0, res.stderr


def test_postgres_answers_nodes_on_the_private_net_but_not_the_operator(lab):
    db = lab.plan.db.private_ip
    node = lab.plan.nodes[-1].name
    ready = lab.nsenter(node, "/usr/lib/postgresql/15/bin/pg_isready", "-h", db, "-p", "5432")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert "accepting connections" in ready.stdout
    with pytest.raises(OSError) as err:
        socket.create_connection((db, 5432), timeout=3)
    assert err.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)  # the lab's unreachable route, at once


def test_service_roles_log_in_with_their_secret_and_nothing_else(lab):
    sm = secrets_manager(lab)
    first, last = list(lab.plan.services())[0], list(lab.plan.services())[-1]
    node = lab.plan.services()[first][0].name
    cred = secret(sm, f"{first}/DBSecret")
    assert cred["username"] == first
    assert login(lab, node, first, cred["password"]) == f"ok {first} False"
    wrong = login(lab, node, first, cred["password"] + "x")
    assert wrong.startswith("refused") and "password authentication failed" in wrong
    if last != first:  # a service's database is closed to other services' roles
        other = login(lab, node, last, secret(sm, f"{last}/DBSecret")["password"], db=first)
        assert other.startswith("refused") and "permission denied" in other
    admin = secret(sm, "nodeops/DBAdminSecret")
    assert admin["username"] == "nodeops_admin"
    assert login(lab, node, "nodeops_admin", admin["password"], db="postgres") == "ok nodeops_admin False"


def test_secrets_have_the_quick_start_names_and_meet_the_node_rules(lab):
    found = all_secrets(secrets_manager(lab))
    wanted = {"nodeops/DBAdminSecret"} | {
        f"{svc}/{kind}" for svc in lab.plan.services() for kind in ("DBSecret", "WalletSecret", "ApiSecret")
    }
    assert wanted <= set(found)
    rules = load_role("chainlink").passwords  # the node's rules (its role.yaml passwords:)
    for name in wanted:
        doc = found[name]
        assert password_problems(doc["password"], doc.get("username", ""), rules=rules) == [], name
    for svc, spec in lab.doc()["services"].items():
        for key, ref in spec["secrets"].items():  # every reference in the inventory resolves
            assert ref["backend"] == "aws" and found[ref["name"]][ref["key"]], f"{svc}.secrets.{key}"
        assert spec["variables"]["DATABASE_HOST"] == lab.plan.db.private_ip


def test_the_load_balancer_routes_to_the_healthy_node_and_fails_over(lab):
    svc, (a, b) = list(lab.plan.services().items())[-1]
    url = f"http://{lab.plan.lb.public_ip}:{lab.plan.lb_port(svc)}/"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an http_proxy from the env

    def probe() -> str:
        try:
            return opener.open(url, timeout=1).read().decode()
        except urllib.error.HTTPError as e:
            return str(e.code)
        except OSError as e:
            return type(e).__name__

    def serve(node) -> subprocess.Popen:
        """Start the stand-in on the node's address; return once it listens."""
        argv = ["nsenter", f"--net=/run/netns/{node.netns}", sys.executable, "-c", SERVER, node.private_ip, node.name]
        server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        servers.append(server)
        ready, _, _ = select.select([server.stdout], [], [], 10)
        assert ready and server.stdout.readline() == b"listening\n", server.stderr.read1().decode()
        return server

    def until(answer: str, server: subprocess.Popen, within: float = 5.0) -> tuple[float, list[str]]:
        start, seen = time.monotonic(), []
        while time.monotonic() - start < within:
            assert server.poll() is None, server.stderr.read().decode()
            seen.append(probe())
            if seen[-1] == answer:
                return time.monotonic() - start, seen
            time.sleep(0.1)
        log = (Lab(ROOT, lab.plan.name).host_dir(lab.plan.lb) / "haproxy.log").read_text().splitlines()
        pytest.fail(f"{url} did not answer {answer!r} within {within}s: {seen[-10:]}; haproxy.log ends {log[-4:]}")

    servers: list[subprocess.Popen] = []
    try:
        until(a.name, serve(a))
        steady = []
        for _ in range(5):
            steady.append(probe())
            time.sleep(0.1)
        assert steady == [a.name] * 5

        servers[0].send_signal(signal.SIGTERM)
        servers[0].wait(timeout=5)
        took, seen = until(b.name, serve(b))  # from the moment b listens
        assert a.name not in seen
        assert took < 1.0, f"failover took {took:.2f}s: {seen}"
        print(f"failover {a.name} -> {b.name}: routed to b {took:.2f}s after it listened: {seen}")
    finally:
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=5)


def test_a_second_up_keeps_everything_and_a_restarted_moto_gets_new_values_in_both_places(lab):
    sm = secrets_manager(lab)
    svc = list(lab.plan.services())[0]
    node = lab.plan.services()[svc][0].name
    before, port = all_secrets(sm), state(lab)["secrets_port"]

    up_again(lab)
    assert all_secrets(sm) == before and state(lab)["secrets_port"] == port
    old = before[f"{svc}/DBSecret"]["password"]
    assert login(lab, node, svc, old) == f"ok {svc} False"

    # moto keeps secrets in memory: killed, it comes back empty; lab.up re-seeds it and PostgreSQL follows.
    moto = state(lab)["daemons"]["operator/moto"]["pid"]
    os.kill(moto, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while process_alive(moto):
        assert time.monotonic() < deadline, "moto outlived SIGTERM by 10 s"
        time.sleep(0.05)
    try:
        up_again(lab)
        assert state(lab)["secrets_port"] == port  # the inventory's endpoint stays valid
        after = all_secrets(sm)
        assert set(after) == set(before) and all(after[n] != before[n] for n in before)
        new = after[f"{svc}/DBSecret"]["password"]
        assert login(lab, node, svc, new) == f"ok {svc} False"
        assert "password authentication failed" in login(lab, node, svc, old)
        # A secret changed where lab.up did not seed it (as rotate-secrets changes one in another backend): the role
        # keeps the password it has (issue 17's review: lab.up used to set it back to the seeded one).
        sm.put_secret_value(SecretId=f"{svc}/DBSecret", SecretString=json.dumps(before[f"{svc}/DBSecret"]))
        up_again(lab)
        assert login(lab, node, svc, new) == f"ok {svc} False"
    finally:
        # Put the earlier values back, in the secrets and in the roles (lab.up keeps an existing role's password),
        # so that the rest of the session sees the lab as it was.
        for name, doc in before.items():
            sm.put_secret_value(SecretId=name, SecretString=json.dumps(doc))
        roles = {doc["username"]: doc["password"] for name, doc in before.items()
                 if name.endswith(("/DBSecret", "/DBAdminSecret"))}  # fmt: skip
        superuser_sql(Lab(ROOT, lab.plan.name), "".join(
            f"ALTER ROLE {postgres.quote_ident(user)} PASSWORD {postgres.quote_literal(password)};\n"
            for user, password in roles.items()))  # fmt: skip
        up_again(lab)
    assert all_secrets(sm) == before
    assert login(lab, node, svc, old) == f"ok {svc} False"
