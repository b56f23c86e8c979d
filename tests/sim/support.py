# ruff: noqa: UP031
"""Helpers for the Chainlink node simulator tests (lab/images/chainlink-sim).

A throwaway PostgreSQL 15 cluster per test session (127.0.0.1 only, free port,
socket dir inside the temp dir, run as the `postgres` user when we are root),
one role + database per test, and a factory that runs the simulator as a
subprocess and kills whatever it started.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg2
import pytest

REPO = Path(__file__).resolve().parents[2]
SIM = REPO / "lab" / "images" / "chainlink-sim" / "chainlink"
PG_BINDIRS = ["/usr/lib/postgresql/15/bin"]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RpcStandIn:
    """A chain RPC endpoint as the simulator's head listener sees it: a TCP port on 127.0.0.1 that
    accepts (and closes) connections until stop(); start() listens again on the same port."""

    def __init__(self):
        self.port = free_port()
        self.sock = None
        self.start()

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}"

    def start(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        self.sock = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # closed by stop()
                return
            conn.close()

    def stop(self):
        if self.sock is not None:
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.sock = None


def wait_for(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def _pg_bin(name):
    for d in PG_BINDIRS:
        p = Path(d) / name
        if p.exists():
            return str(p)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(
        f"PostgreSQL binary {name!r} not found in {PG_BINDIRS} or on PATH: install postgresql (15) to run tests/sim",
        pytrace=False,
    )


class PGCluster:
    def __init__(self):
        self.as_root = os.geteuid() == 0
        self.base = Path(tempfile.mkdtemp(prefix="clsim-pg-"))
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.log = self.base / "postgres.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.sock.mkdir()
        if self.as_root:
            import pwd

            pw = pwd.getpwnam("postgres")
            for p in (self.base, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)

    def _run(self, argv, **kw):
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120, **kw)

    def start(self):
        self._run(
            [
                _pg_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ]
        )
        opts = (
            "-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200" % (self.port, self.sock)
        )
        self._run([_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start"])
        wait_for(self._can_connect, 30, 0.1, "postgres to accept connections")

    def _can_connect(self):
        try:
            self.admin().close()
            return True
        except psycopg2.OperationalError:
            return False

    def admin(self, dbname="postgres"):
        c = psycopg2.connect(host=str(self.sock), port=self.port, user="postgres", dbname=dbname, connect_timeout=5)
        c.autocommit = True
        return c

    def new_database(self, password=None):
        """A fresh role + database; returns a dict usable to build URLs."""
        suffix = uuid.uuid4().hex[:10]
        user, db = f"cl_{suffix}", f"chainlink_{suffix}"
        password = password or ("Db-" + uuid.uuid4().hex)  # >= 16 chars: the node checks DB password complexity
        c = self.admin()
        try:
            with c.cursor() as cur:
                cur.execute(f"CREATE ROLE {user} LOGIN PASSWORD %s", (password,))
                cur.execute(f"CREATE DATABASE {db} OWNER {user}")
        finally:
            c.close()
        return {"user": user, "password": password, "dbname": db, "host": self.host, "port": self.port}

    def stop(self):
        try:
            self._run([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop"])
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def pct(s):
    from urllib.parse import quote

    return quote(s, safe="")


def db_url(d, password=None):
    return "postgresql://%s:%s@%s:%d/%s?sslmode=disable" % (
        pct(d["user"]),
        pct(password if password is not None else d["password"]),
        d["host"],
        d["port"],
        d["dbname"],
    )


class SimProcess:
    def __init__(self, proc, workdir, port, name):
        self.proc = proc
        self.workdir = workdir
        self.port = port
        self.name = name
        self.stdout_path = workdir / (f"{name}.stdout")
        self.stderr_path = workdir / (f"{name}.stderr")

    @property
    def pid(self):
        return self.proc.pid

    def stdout(self):
        return self.stdout_path.read_text(errors="replace")

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def output(self):
        return self.stdout() + self.stderr()

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def listening(self):
        with socket.socket() as s:
            s.settimeout(0.3)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def health(self, timeout=0.5):
        """(status, json) from GET /health, or (None, None) if nothing answers."""
        try:
            with urllib.request.urlopen(self.url("/health"), timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")
        except (OSError, ValueError):
            return None, None

    def serving(self):
        return self.health()[0] == 200

    def wait_serving(self, timeout=20):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before serving:\n{self.output()}")
            return self.serving()

        wait_for(ok, timeout, 0.05, f"{self.name} to serve /health")

    def wait_log(self, text, timeout=20):
        wait_for(lambda: text in self.stdout(), timeout, 0.05, f"{text!r} in {self.name}'s log")


class SimFactory:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.procs = []
        self.rpc = RpcStandIn()  # the chain RPC every node's [[EVM.Nodes]] points at (write_v2)

    def node_dir(self, name):
        d = self.tmp / name
        d.mkdir(exist_ok=True)
        return d

    def write_v2(
        self,
        name,
        d,
        *,
        port=None,
        lease="3s",
        refresh="1s",
        keystore="Keystore-Pass-0123456789",
        email="admin@example.com",
        api_password="Api-Password-0123456789",
        log_level="debug",
        extra_config="",
        url=None,
        secrets_extra="",
        rpc_url=None,
        lock=True,
    ):
        """config.toml, secrets.toml, .api for one node; returns dict of paths and values. ``lock``: [Database.Lock]
        Enabled (False: the node takes no lease and serves at once, as every node of an activation all service)."""
        nd = self.node_dir(name)
        port = port or free_port()
        config = (
            "RootDir = '%s'\n\n[Log]\nLevel = '%s'\n\n[WebServer]\nHTTPPort = %d\nListenIP = '127.0.0.1'\n"
            "SecureCookies = false\n\n[Database.Lock]\nEnabled = %s\nLeaseDuration = '%s'\n"
            "LeaseRefreshInterval = '%s'\n\n[Feature]\nLogPoller = true\n\n[[EVM]]\nChainID = '1337'\n\n"
            "[[EVM.Nodes]]\nName = 'primary'\nWSURL = '%s'\nHTTPURL = '%s'\n"
            % (
                nd / "root",
                log_level,
                port,
                "true" if lock else "false",
                lease,
                refresh,
                rpc_url or self.rpc.url,
                (rpc_url or self.rpc.url).replace("ws://", "http://", 1),
            )
        ) + extra_config
        (nd / "config.toml").write_text(config)
        the_url = url if url is not None else db_url(d)
        secrets = f"[Database]\nURL = '{the_url}'\n\n[Password]\nKeystore = '{keystore}'\n{secrets_extra}"
        (nd / "secrets.toml").write_text(secrets)
        (nd / ".api").write_text(f"{email}\n{api_password}\n")
        return {
            "dir": nd,
            "port": port,
            "config": nd / "config.toml",
            "secrets": nd / "secrets.toml",
            "api": nd / ".api",
            "email": email,
            "api_password": api_password,
            "keystore": keystore,
        }

    def v2_args(self, f):
        return ["node", "-config", str(f["config"]), "-secrets", str(f["secrets"]), "start", "-a", str(f["api"])]

    def start(self, args, *, name, port, env=None, cwd=None):
        wd = self.node_dir(name)
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(wd),
            "CHAINLINK_SIM_VERSION": "2.10.0-sim",
        }
        full_env.update(env or {})
        out = open(wd / (f"{name}.stdout"), "wb")
        err = open(wd / (f"{name}.stderr"), "wb")
        try:
            proc = subprocess.Popen(
                [sys.executable, str(SIM)] + list(args),
                stdout=out,
                stderr=err,
                env=full_env,
                cwd=str(cwd or wd),
                start_new_session=True,
            )
        finally:
            out.close()
            err.close()
        sp = SimProcess(proc, wd, port, name)
        self.procs.append(sp)
        return sp

    def run_to_exit(self, args, *, name, port=0, env=None, timeout=20):
        sp = self.start(args, name=name, port=port, env=env)
        try:
            code = sp.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name} did not exit within {timeout}s:\n{sp.output()}") from None
        return code, sp

    def cleanup(self):
        for sp in self.procs:
            if sp.proc.poll() is None:
                try:
                    os.kill(sp.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    sp.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        self.rpc.stop()


class Client:
    """A tiny cookie-keeping HTTP client for the node API."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.cookie = None

    def request(self, method, path, body=None, timeout=5):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.cookie:
            req.add_header("Cookie", self.cookie)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, headers, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, headers, raw = e.code, e.headers, e.read()
        sc = headers.get("Set-Cookie")
        if sc and sc.startswith("clsession="):
            val = sc.split(";", 1)[0]
            self.cookie = val if val != "clsession=" else None
        return status, (json.loads(raw) if raw else None)

    def login(self, email, password):
        return self.request("POST", "/sessions", {"email": email, "password": password})
