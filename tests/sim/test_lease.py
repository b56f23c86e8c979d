# ruff: noqa: UP031
"""Lease-lock failover between two simulated nodes on one real PostgreSQL database."""

import signal
import threading
import time

import psycopg2

from .support import wait_for

LEASE_S, REFRESH_S = 3.0, 1.0
WAITING = "Another application is currently holding the database lease"
GOT = "Got exclusive lease on database"


class Sampler(threading.Thread):
    """Samples both nodes' /health every 100 ms; records (t, a_serving, b_serving)."""

    def __init__(self, a_port_fn, b_port_fn):
        super().__init__(daemon=True)
        self.nodes = (a_port_fn, b_port_fn)
        self.samples = []
        self.stop_evt = threading.Event()

    def run(self):
        while not self.stop_evt.is_set():
            t = time.monotonic()
            res = []
            for fn in self.nodes:
                sp = fn()
                res.append(sp.serving() if sp is not None else False)
            self.samples.append((t, res[0], res[1]))
            self.stop_evt.wait(max(0.0, 0.1 - (time.monotonic() - t)))


def lease_owner(d):
    c = psycopg2.connect(host=d["host"], port=d["port"], user=d["user"], password=d["password"], dbname=d["dbname"])
    try:
        with c.cursor() as cur:
            cur.execute("SELECT client_id::text, expires_at > now() FROM lease_lock")
            return cur.fetchall()
    finally:
        c.close()


def test_active_standby_failover(db, sims):
    fa = sims.write_v2("a", db, lease="%ds" % LEASE_S, refresh="%ds" % REFRESH_S)
    fb = sims.write_v2("b", db, lease="%ds" % LEASE_S, refresh="%ds" % REFRESH_S)
    current = {"a": None, "b": None}

    a = current["a"] = sims.start(sims.v2_args(fa), name="a", port=fa["port"])
    a.wait_serving()
    assert GOT in a.stdout()

    b = current["b"] = sims.start(sims.v2_args(fb), name="b", port=fb["port"])
    b.wait_log(WAITING)
    # the standby blocks before opening anything: no listener on its port
    assert not b.listening()
    assert b.proc.poll() is None
    rows = lease_owner(db)
    assert len(rows) == 1 and rows[0][1] is True

    sampler = Sampler(lambda: current["a"], lambda: current["b"])
    sampler.start()
    try:
        time.sleep(1.2)  # let the sampler see the steady state (A serves, B does not)
        assert not b.listening()

        # --- planned failover: SIGTERM releases the lease, B takes over within ~refresh interval
        t0 = time.monotonic()
        a.signal(signal.SIGTERM)
        assert a.wait(10) == 0
        t_exit = time.monotonic() - t0
        wait_for(b.serving, 15, 0.02, "B to serve after SIGTERM of A")
        t_term = time.monotonic() - t0
        assert GOT in b.stdout()
        assert "Shutting down due to terminated signal received..." in a.stdout()
        assert "Graceful shutdown time:" in a.stderr()
        assert t_exit < 3.0, f"SIGTERM exit took {t_exit:.2f}s"
        assert t_term < REFRESH_S * 1.1 + 3.0, f"takeover after SIGTERM took {t_term:.2f}s"

        # --- A comes back as the standby
        a2 = current["a"] = sims.start(sims.v2_args(fa), name="a2", port=fa["port"])
        a2.wait_log(WAITING)
        assert not a2.listening()

        # --- crash: SIGKILL releases nothing, A2 waits for the lease to expire by database time
        time.sleep(0.5)
        t1 = time.monotonic()
        b.signal(signal.SIGKILL)
        b.wait(10)
        current["b"] = None
        wait_for(a2.serving, LEASE_S + 15, 0.02, "A2 to serve after SIGKILL of B")
        t_kill = time.monotonic() - t1
        assert t_kill >= LEASE_S - REFRESH_S - 0.2, f"takeover after SIGKILL too fast: {t_kill:.2f}s"
        assert t_kill < LEASE_S + REFRESH_S * 1.1 + 4.0, f"takeover after SIGKILL took {t_kill:.2f}s"
        time.sleep(0.5)
    finally:
        sampler.stop_evt.set()
        sampler.join(5)

    both = [s for s in sampler.samples if s[1] and s[2]]
    assert not both, f"both nodes served at the same sampled instant: {both[:3]!r}"
    assert len(sampler.samples) > 30
    assert any(s[1] for s in sampler.samples) and any(s[2] for s in sampler.samples)
    print("SIGTERM takeover %.2fs, SIGKILL takeover %.2fs, %d samples" % (t_term, t_kill, len(sampler.samples)))

    # the lease row now belongs to A2's client id and is live
    rows = lease_owner(db)
    assert len(rows) == 1 and rows[0][1] is True

    # A2 exits cleanly and releases the lease (expires_at = NOW())
    a2.signal(signal.SIGINT)
    assert a2.wait(10) == 0
    assert "Shutting down due to interrupt signal received..." in a2.stdout()
    rows = lease_owner(db)
    assert rows[0][1] is False


def test_standby_sigterm_while_waiting(db, sims):
    """A standby stopped before it holds the lease exits 1 with 'stopped' (upstream TakeAndHold behaviour)."""
    fa = sims.write_v2("a", db)
    fb = sims.write_v2("b", db)
    a = sims.start(sims.v2_args(fa), name="a", port=fa["port"])
    a.wait_serving()
    b = sims.start(sims.v2_args(fb), name="b", port=fb["port"])
    b.wait_log(WAITING)
    b.signal(signal.SIGTERM)
    assert b.wait(10) == 1
    assert "opening db: failed to take initial lease on database: stopped" in b.stderr()
    assert a.serving()


def test_lost_lease_exits_immediately(db, sims):
    """If another client overwrites the lease row, the holder exits at its next refresh."""
    fa = sims.write_v2("a", db)
    a = sims.start(sims.v2_args(fa), name="a", port=fa["port"])
    a.wait_serving()
    c = psycopg2.connect(
        host=db["host"], port=db["port"], user=db["user"], password=db["password"], dbname=db["dbname"]
    )
    try:
        with c.cursor() as cur:
            cur.execute("UPDATE lease_lock SET client_id = gen_random_uuid(), expires_at = now() + interval '1 hour'")
        c.commit()
    finally:
        c.close()
    assert a.wait(10) == 1
    assert "Another node has taken the lease, exiting immediately" in a.stdout()


def test_without_the_database_lock_every_node_serves_at_once(db, sims):
    """`[Database.Lock] Enabled = false` (upstream docs/CONFIG.md: "Enabled enables the database lock"; locked_db.go
    takes no lease then): the node boots straight through, no lease row, no waiting line; two such nodes on one
    database both serve (nodeops' activation all)."""
    fa = sims.write_v2("a", db, lock=False)
    fb = sims.write_v2("b", db, lock=False)
    a = sims.start(sims.v2_args(fa), name="a", port=fa["port"])
    a.wait_serving()  # one at a time, as deploy rolls them: two first boots would race the migrations
    b = sims.start(sims.v2_args(fb), name="b", port=fb["port"])
    b.wait_serving()  # while a serves: nothing to wait for
    assert a.serving() and b.serving()
    for node in (a, b):
        assert "Using database locking mode: none" in node.stdout()
        assert WAITING not in node.stdout() and GOT not in node.stdout()
    c = psycopg2.connect(**{k: db[k] for k in ("host", "port", "user", "password", "dbname")})
    try:
        with c.cursor() as cur:
            cur.execute("SELECT to_regclass('lease_lock') IS NOT NULL")
            (exists,) = cur.fetchone()
            if exists:
                cur.execute("SELECT count(*) FROM lease_lock WHERE expires_at > now()")
                assert cur.fetchone()[0] == 0
    finally:
        c.close()
