# ruff: noqa: UP031
"""HTTP API: health shape, sessions, password change, .api handling, keys, v1 profile."""

import hashlib
import json
import signal
import subprocess
import time
import tomllib
import urllib.request

import psycopg2

from .support import db_url, free_port, wait_for


def _stop(sp):
    sp.signal(signal.SIGTERM)
    assert sp.wait(10) == 0


def test_health_shape_version_and_config_hash(db, sims, client_for):
    f = sims.write_v2("n", db)
    sp = sims.start(sims.v2_args(f), name="n", port=f["port"], env={"CHAINLINK_SIM_VERSION": "2.7.1"})
    sp.wait_serving()
    status, body = sp.health()
    assert status == 200
    assert body["data"] and all(
        c["type"] == "checks"
        and c["attributes"]["status"] == "passing"
        and c["attributes"]["output"] == ""
        and c["id"] == c["attributes"]["name"]
        for c in body["data"]
    )
    assert body["meta"]["version"] == "2.7.1"
    # the merged config without its URLs (an RPC URL may embed an API key): no secret is hashed
    config = {k: v for k, v in tomllib.loads(f["config"].read_text()).items() if k != "EVM"}
    config["EVM"] = [{"ChainID": "1337", "Nodes": [{"Name": "primary"}]}]
    assert body["meta"]["config_sha256"] == hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    assert body["meta"]["evm_nodes"] == {"1337": ["primary ws http"]}
    assert f"127.0.0.1:{sims.rpc.port}" not in json.dumps(body)
    c = client_for(f["port"])
    assert c.request("GET", "/readyz")[0] == 200
    assert c.request("GET", "/v2/build_info")[0] == 401  # authenticated, as upstream
    assert c.login(f["email"], f["api_password"])[0] == 200
    status, info = c.request("GET", "/v2/build_info")
    assert status == 200 and info["version"] == "2.7.1"
    assert "Listening and serving HTTP on 127.0.0.1:%d" % f["port"] in sp.stdout()
    assert "Chainlink booted in" in sp.stdout()


def test_the_listener_queues_as_many_connections_as_gos(db, sims):
    """Go listens with a backlog of net.core.somaxconn (golang/go src/net/sock_linux.go), not socketserver's 5:
    a burst of connections while the accepting thread waits must not cost a client TCP's 1 s SYN retransmission.
    `ss` reports a listening socket's backlog as its Send-Q."""
    f = sims.write_v2("n", db)
    sp = sims.start(sims.v2_args(f), name="n", port=f["port"])
    sp.wait_serving()
    line = subprocess.run(["ss", "-Hltn", f"sport = :{f['port']}"], capture_output=True, text=True, check=True).stdout
    with open("/proc/sys/net/core/somaxconn") as somaxconn:
        assert int(line.split()[2]) == int(somaxconn.read()), line


def failing_checks(body):
    return {
        c["attributes"]["name"]: c["attributes"]["output"]
        for c in body["data"]
        if c["attributes"]["status"] == "failing"
    }


def test_health_503_while_the_chain_rpc_does_not_answer_and_the_lease_is_kept(db, sims):
    """The head listener's check (upstream's name and output) fails while the RPC URL does not answer; the
    node keeps refreshing its lease meanwhile (it stays the active) and is healthy again once the RPC is back."""
    f = sims.write_v2("n", db, lease="3s", refresh="1s")
    sp = sims.start(sims.v2_args(f), name="n", port=f["port"])
    sp.wait_serving()
    status, body = sp.health()
    assert "EVM.1337.HeadTracker.HeadListener" in {c["id"] for c in body["data"]}
    sims.rpc.stop()
    wait_for(lambda: sp.health()[0] == 503, 10, 0.1, "503 once the RPC stops answering")
    assert failing_checks(sp.health()[1]) == {"EVM.1337.HeadTracker.HeadListener": "Listener is not connected"}
    assert "RPC Node is unreachable" in sp.stdout()
    held = lease_expiry(db)
    time.sleep(4.5)  # more than the lease duration (3s): only refreshes keep it
    assert sp.health()[0] == 503 and lease_expiry(db) > held  # still the lease holder, refreshing it
    sims.rpc.start()
    wait_for(lambda: sp.health()[0] == 200, 10, 0.1, "200 once the RPC answers again")
    assert "RPC Node is online" in sp.stdout()


def test_an_unreachable_rpc_url_answers_503_from_the_first_request(db, sims):
    f = sims.write_v2("n", db, rpc_url="ws://127.0.0.1:%d/ws" % free_port())
    sp = sims.start(sims.v2_args(f), name="n", port=f["port"])
    wait_for(sp.listening, 20, 0.05, "the node to listen")
    status, body = sp.health()
    assert status == 503 and failing_checks(body) == {"EVM.1337.HeadTracker.HeadListener": "Listener is not connected"}


def metrics(sp):
    """GET /metrics as {sample name with labels: value}, and its text."""
    with urllib.request.urlopen(sp.url("/metrics"), timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {k: float(v) for k, v in samples.items()}, text


def test_metrics_carry_the_real_nodes_names_and_follow_health(db, sims):
    """/metrics (no session, as upstream's ginprom route): health{service_id} 1 per passing check of /health, 0 for a
    failing one (chainlink-common promhealth), uptime_seconds, version{version,commit}, process_start_time_seconds."""
    f = sims.write_v2("n", db, lease="3s", refresh="1s")
    sp = sims.start(sims.v2_args(f), name="n", port=f["port"], env={"CHAINLINK_SIM_VERSION": "2.7.1"})
    sp.wait_serving()
    got, text = metrics(sp)
    names = {c["id"] for c in sp.health()[1]["data"]}
    assert {k for k in got if k.startswith("health{")} == {'health{service_id="%s"}' % n for n in names}
    assert all(got['health{service_id="%s"}' % n] == 1 for n in names)
    assert got['version{commit="unset",version="2.7.1"}'] == 1 and 0 <= got["uptime_seconds"] < 120
    assert abs(got["process_start_time_seconds"] - time.time()) < 120
    assert "# TYPE health gauge" in text and "# TYPE uptime_seconds counter" in text
    sims.rpc.stop()
    wait_for(lambda: sp.health()[0] == 503, 10, 0.1, "503 once the RPC stops answering")
    got, _ = metrics(sp)
    assert got['health{service_id="EVM.1337.HeadTracker.HeadListener"}'] == 0
    assert got['health{service_id="Database"}'] == 1


def lease_expiry(d):
    conn = psycopg2.connect(host=d["host"], port=d["port"], user=d["user"], password=d["password"], dbname=d["dbname"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT expires_at FROM lease_lock")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_health_503_when_database_unreachable(pg, db, sims):
    f = sims.write_v2("n", db, lease="30s", refresh="1s")
    sp = sims.start(sims.v2_args(f), name="n", port=f["port"])
    sp.wait_serving()
    admin = pg.admin()
    try:
        with admin.cursor() as cur:
            cur.execute("ALTER DATABASE {} ALLOW_CONNECTIONS false".format(db["dbname"]))
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db["dbname"],))
        status, body = sp.health(timeout=5)
        assert status == 503
        failing = [c["attributes"] for c in body["data"] if c["attributes"]["status"] == "failing"]
        assert any(c["name"] == "Database" and c["output"] for c in failing)
        assert db["password"] not in str(body)
    finally:
        with admin.cursor() as cur:
            cur.execute("ALTER DATABASE {} ALLOW_CONNECTIONS true".format(db["dbname"]))
        admin.close()
    # the node keeps its lease (refresh errors are logged, not fatal) and recovers
    wait_for(lambda: sp.health(timeout=5)[0] == 200, 15, 0.2, "health to recover")
    assert sp.proc.poll() is None


def test_sessions_password_change_and_api_file_ignored(db, sims, client_for):
    f = sims.write_v2("n", db)
    sp = sims.start(sims.v2_args(f), name="first", port=f["port"])
    sp.wait_serving()
    c = client_for(f["port"])
    assert c.login(f["email"], "Wrong-Password-0123456789")[0] == 401
    status, body = c.login(f["email"], f["api_password"])
    assert status == 200 and body["data"]["attributes"]["authenticated"] is True
    status, keys = c.request("GET", "/v2/keys/eth")
    assert status == 200 and len(keys["data"]) == 1
    key = keys["data"][0]["attributes"]["address"]
    assert keys["data"][0]["attributes"]["evmChainID"] == "1337"
    _stop(sp)

    # a different .api on a database that already has users: ignored entirely (upstream behaviour)
    f["api"].write_text("someone-else@example.com\nAnother-Password-987654321\n")
    sp = sims.start(sims.v2_args(f), name="second", port=f["port"])
    sp.wait_serving()
    assert "Defaulted to assume single DB API User" in sp.stdout()
    c = client_for(f["port"])
    assert c.login("someone-else@example.com", "Another-Password-987654321")[0] == 401
    assert c.login(f["email"], f["api_password"])[0] == 200
    # same keystore key after a restart
    assert c.request("GET", "/v2/keys/eth")[1]["data"][0]["attributes"]["address"] == key

    # PATCH /v2/user/password: wrong old password -> 409, weak new password -> 422
    new = "New-Api-Password-2468013579"
    status, body = c.request("PATCH", "/v2/user/password", {"oldPassword": "nope", "newPassword": new})
    assert status == 409 and body["errors"][0]["detail"] == "old password does not match"
    status, body = c.request("PATCH", "/v2/user/password", {"oldPassword": f["api_password"], "newPassword": "short"})
    assert status == 422 and "password is less than 16 characters long" in body["errors"][0]["detail"]
    status, body = c.request(
        "PATCH", "/v2/user/password", {"oldPassword": f["api_password"], "newPassword": "x-" + f["email"] + "-padding"}
    )
    assert status == 422 and "password may not contain" in body["errors"][0]["detail"]
    status, body = c.request("PATCH", "/v2/user/password", {"oldPassword": f["api_password"], "newPassword": " " + new})
    assert status == 422

    other = client_for(f["port"])
    assert other.login(f["email"], f["api_password"])[0] == 200
    status, body = c.request("PATCH", "/v2/user/password", {"oldPassword": f["api_password"], "newPassword": new})
    assert status == 200 and body["data"]["attributes"]["email"] == f["email"]
    # other sessions are cleared, the current one survives
    assert other.request("GET", "/v2/ping")[0] == 401
    assert c.request("GET", "/v2/ping")[0] == 200

    assert client_for(f["port"]).login(f["email"], f["api_password"])[0] == 401
    assert client_for(f["port"]).login(f["email"], new)[0] == 200

    # logout
    status, body = c.request("DELETE", "/sessions")
    assert status == 200 and body["data"]["attributes"]["authenticated"] is False
    assert c.request("GET", "/v2/ping")[0] == 401
    assert f["api_password"] not in sp.output() and new not in sp.output()


def test_v1_env_profile_with_percent_encoded_password(pg, sims, client_for):
    nasty = "p%a@s:s/w?o#r'd\"\\x-0123456789"
    d = pg.new_database(password=nasty)
    port = sims.write_v2("unused", d)["port"]
    nd = sims.node_dir("v1")
    (nd / ".password").write_text("Keystore-Pass-0123456789\n")
    (nd / ".api").write_text("ops@example.com\nApi-Password-0123456789\n")
    env = {
        "ROOT": str(nd / "root"),
        "ETH_CHAIN_ID": "5",
        "ETH_URL": sims.rpc.url,
        "DATABASE_URL": db_url(d),
        "DATABASE_LOCKING_MODE": "dual",
        "LEASE_LOCK_DURATION": "3s",
        "LEASE_LOCK_REFRESH_INTERVAL": "1s",
        "CHAINLINK_PORT": str(port),
        "LOG_LEVEL": "debug",
    }
    assert "%25" in env["DATABASE_URL"] and "%40" in env["DATABASE_URL"] and "%3F" in env["DATABASE_URL"]
    sp = sims.start(["local", "n", "-p", str(nd / ".password"), "-a", str(nd / ".api")], name="v1", port=port, env=env)
    sp.wait_serving()
    status, body = sp.health()
    assert body["meta"]["profile"] == "v1"
    conf = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "ETH_URL")}
    want = hashlib.sha256("".join(f"{k}={conf[k]}\n" for k in sorted(conf)).encode()).hexdigest()
    assert body["meta"]["config_sha256"] == want
    c = client_for(port)
    assert c.login("ops@example.com", "Api-Password-0123456789")[0] == 200
    assert c.request("GET", "/v2/keys/eth")[1]["data"][0]["attributes"]["evmChainID"] == "5"
    assert nasty not in sp.output()
    # the node really connected with the decoded password
    conn = psycopg2.connect(host=d["host"], port=d["port"], user=d["user"], password=nasty, dbname=d["dbname"])
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM lease_lock")
        assert cur.fetchone()[0] == 1
    conn.close()
    _stop(sp)


def test_secret_file_permissions_reduced_with_warning(db, sims):
    """Files named .api/.password in RootDir are chmod'ed to <= 0700 with a warning (checkFilePermissions)."""
    f = sims.write_v2("n", db)
    root = f["dir"] / "root"
    root.mkdir(mode=0o755)
    api = root / ".api"
    api.write_text(f["api"].read_text())
    api.chmod(0o644)
    args = ["node", "-c", str(f["config"]), "-s", str(f["secrets"]), "start", "--api", str(api)]
    sp = sims.start(args, name="n", port=f["port"])
    sp.wait_serving()
    assert (api.stat().st_mode & 0o777) == 0o600
    assert (root.stat().st_mode & 0o777) == 0o700
    assert f"{api} has overly permissive file permissions, reducing them from -rw-r--r-- to -rw-------" in sp.stdout()
