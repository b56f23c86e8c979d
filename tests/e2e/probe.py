"""Watching a node pair while something happens to it, and waiting on conditions, not sleeps; and the
helpers every lab module reads the systems with (fab's JSON events, status, the database, a killed run)."""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import jsonschema
import psycopg

from lab.host import Lab
from nodeops.edges.ssh import Fleet
from nodeops.inventory import load_inventory
from tests.conftest import FAB, ROOT, fab

STATUS_SCHEMA = json.loads((ROOT / "docs" / "status.schema.json").read_text())


def wait_for(predicate, what: str, timeout: float = 60):
    """Poll ``predicate`` until it returns something true, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def serves(fleet: Fleet, host: str) -> bool:
    """Does the node at ``host`` answer 200 on its /health (through the bastion)?"""
    return (reply := fleet.http_get(host, 6688, "/health")) is not None and reply[0] == 200


class PairProbe:
    """Every 100 ms, until the block ends: both nodes' /health through the bastion (they have no
    route from here) and the service through its load balancer, as users reach it.

    A sample is (time, whether each node serves, who answered through the load balancer: the
    answering process's appID, "answered" when its reply has none, None when nothing answered).
    A sample's requests run at once, beside those of the samples after it: one that waits its
    whole timeout (a node whose container is being torn down answers nothing for 2 s) delays
    when its sample and the later ones are recorded, never when they are taken, so no wait
    stretches the time between two samples or moves a gap's ends.
    """

    def __init__(self, inventory: Path, service: str, nodes: bool = True) -> None:
        self.with_nodes = nodes  # False when a node is cut off: its probe would stall on the timeout
        self.inventory = load_inventory(inventory)
        self.service = self.inventory.services[service]
        self.samples: list[tuple[float, tuple[bool, ...], str | None]] = []
        self.failures: dict[float, str] = {}  # why the load balancer gave no answer, at each such sample's time
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        taken: collections.deque[tuple[float, list[Future], Future]] = collections.deque()
        # a request waits 2 s at most, a sample is taken every 100 ms: about 20 samples in flight at worst
        with Fleet(self.inventory) as fleet, ThreadPoolExecutor(max_workers=64) as requests:
            deadline = time.monotonic() + 300  # bounded, whatever happens to the test
            while not self.stop.is_set() and time.monotonic() < deadline:
                t = time.monotonic()
                nodes = [requests.submit(serves, fleet, n.host) for n in self.service.nodes if self.with_nodes]
                taken.append((t, nodes, requests.submit(self.through_load_balancer, t)))
                while taken and all(f.done() for f in (*taken[0][1], taken[0][2])):  # in the order taken
                    self.record(*taken.popleft())
                time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
            while taken:
                self.record(*taken.popleft())

    def record(self, t: float, nodes: list[Future], answer: Future) -> None:
        self.samples.append((t, tuple(node.result() for node in nodes), answer.result()))

    def through_load_balancer(self, t: float) -> str | None:
        try:
            # an answer that comes is an answer: HAProxy itself gives up on a node in 1 s (its connect timeout) and
            # answers 503; at 0.5 s, a 200 slowed by a loaded machine read as an outage (CI, twice)
            with urllib.request.urlopen(self.service.load_balancer, timeout=2.0) as resp:
                body = resp.read()
        except (OSError, http.client.HTTPException) as e:  # a 503 is an HTTPError, an OSError
            self.failures[t] = f"{type(e).__name__}: {e} after {time.monotonic() - t:.2f}s"
            return None
        try:
            return str(json.loads(body)["meta"]["appID"])
        except (ValueError, KeyError, TypeError):
            return "answered"

    def __enter__(self) -> PairProbe:
        self.started = time.monotonic()
        self.thread.start()
        wait_for(lambda: self.samples, "the probe's first sample", timeout=10)  # a baseline before the block
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        assert self.thread.is_alive(), "the probe died: the pair was not watched"
        watched = time.monotonic() - self.started
        self.stop.set()
        self.thread.join(timeout=10)
        assert len(self.samples) >= watched / 0.1 * 0.5, (len(self.samples), watched)  # about every 100 ms

    def explain(self, lines: int = 40, lab: Lab | None = None) -> str:
        """For a failed assertion's message: the gaps, and each node's last log lines about the lease, start and
        shutdown (how a handover went); with ``lab``, the lab's HAProxy's last lines about the service too: each check
        that took a node out or put it back, and each request that did not end in a 200 (the node it went to, if any,
        its timings and how it ended)."""
        words = "lease|Shutting|shutdown|grace|Listening|booted|exit|rror"
        noise = "ConnectionResetError"  # the node's traceback for each RST that ends a load balancer check
        command = (f"docker logs --timestamps nodeops-{self.service.name} 2>&1 | grep -E '{words}' | "
                   f"grep -v {noise} | tail -n {lines}")  # fmt: skip
        with Fleet(self.inventory) as fleet:
            logs = [f"--- {o.node.name}\n{o.value.stdout if o.ok else o.error}"
                    for o in fleet.run(self.service.nodes, command)]  # fmt: skip
        start = self.samples[0][0] if self.samples else 0.0
        why = [f"{t - start:.2f}s: {reason}" for t, reason in self.failures.items()][:10]
        if lab is not None:  # a check that took a node out or put it back, and each request that was not a 200
            haproxy = (lab.host_dir("lb") / "haproxy.log").read_text(errors="replace").splitlines()
            told = [line for line in haproxy if f"{self.service.name}/" in line and " 200 " not in line]
            logs.insert(0, "--- haproxy\n" + "\n".join(told[-lines:]))  # first: a report may show only the start
        return "\n".join([f"load balancer gaps: {[round(g, 2) for g in self.gaps]}", *why, *logs])

    @property
    def both(self) -> list[float]:
        """Sampled instants at which every node served."""
        return [t for t, nodes, _ in self.samples if nodes and all(nodes)]

    @property
    def gaps(self) -> list[float]:
        """Load balancer outages: last answered sample to first answered sample."""
        gaps, last_good, failed = [], None, False
        for t, _, lb in self.samples:
            if lb is not None and failed and last_good is not None:
                gaps.append(t - last_good)
            if lb is not None:
                last_good, failed = t, False
            else:
                failed = True
        return gaps

    def serving(self, node: int, since: float) -> float | None:
        """The first sampled time >= ``since`` at which node ``node`` (its index) served."""
        return next((t for t, nodes, _ in self.samples if t >= since and nodes[node]), None)

    def last_serving(self, node: int, before: float) -> float:
        return max(t for t, nodes, _ in self.samples if t <= before and nodes[node])


def serving_nodes(lab, service: str) -> list[str]:
    """The nodes of ``service`` that serve /health, asked through the lab's bastion."""
    inv = load_inventory(lab.inventory_file)
    with Fleet(inv) as fleet:
        return [n.name for n in inv.services[service].nodes if serves(fleet, n.host)]


def lb_answers(lab, service: str) -> bool:
    """Does ``service`` answer 200 through its load balancer, as users reach it? (A 503, a refused or timed-out
    connection: no.)"""
    try:
        with urllib.request.urlopen(load_inventory(lab.inventory_file).services[service].load_balancer,
                                    timeout=5) as r:  # fmt: skip
            return r.status == 200
    except OSError:  # HTTPError and URLError are OSErrors
        return False


def events(res) -> list[dict]:
    """The JSON events of a `fab ... --json` run (lines that are not JSON objects are skipped)."""
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def status_entries(res) -> dict[str, dict]:
    """A `fab status --json` run, by service: it succeeded, and every line of its stdout is an entry
    valid against docs/status.schema.json (no other line)."""
    assert res.returncode == 0, res.stdout + res.stderr
    found = {}
    for line in res.stdout.splitlines():
        entry = json.loads(line)
        jsonschema.validate(entry, STATUS_SCHEMA)
        found[entry["service"]] = entry
    assert found, f"no status entry: {res.stdout!r} {res.stderr!r}"
    return found


def status(env: str, *args: str) -> dict[str, dict]:
    """`fab status --env ENV --json ARGS`, by service, each entry checked against the schema."""
    return status_entries(fab("status", "--env", env, "--json", *args))


def superuser_sql(lab: Lab, sql: str, database: str = "postgres") -> str:
    """psql as the database superuser over the db host's socket (the lab operator's access): ``sql`` (statements
    and psql meta-commands such as ``\\c``) on stdin, never in an argument list, where a password it sets would
    show; stops at the first error (raising), and returns the output unaligned, tuples only."""
    sock = lab.host_dir("db") / "sock"
    res = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-h", str(sock), "-d", database,
                          "-v", "ON_ERROR_STOP=1", "-AtqX"], input=sql, capture_output=True, text=True,
                         check=True)  # fmt: skip
    return res.stdout


def pg_accepts(lab: Lab, service: str, user: str, password: str) -> bool:
    """A login to the service's database as the nodes do it (through the bastion: we have no route), at the
    address its inventory names (``DATABASE_HOST``)."""
    inv = load_inventory(lab.inventory_file)
    host = str(inv.services[service].variables["DATABASE_HOST"])
    with Fleet(inv) as fleet, fleet.tunnel(host, 5432) as port:
        try:
            psycopg.connect(host=host, hostaddr="127.0.0.1", port=port, dbname=service, user=user,
                            password=password, connect_timeout=5).close()  # fmt: skip
        except psycopg.OperationalError as exc:
            assert "password authentication failed" in str(exc), exc
            return False
    return True


def events_of(args: list[str]) -> subprocess.Popen:
    """`fab ARGS` (with --json) started, its events to be read as they come.

    PYTHONUNBUFFERED=1 in the child's environment, whatever ours holds: its stdout is a pipe, block-buffered
    otherwise, and an event would arrive only once the run had finished (a signal would come too late)."""
    return subprocess.Popen([str(FAB), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip


def _signalled_at(proc: subprocess.Popen, when: Callable[[dict], bool], signum: int, after: float = 0.0) -> list[dict]:
    """Read ``proc``'s events until one ``when`` accepts, then send ``signum`` (``after`` seconds later); the events
    read are returned."""
    seen = []
    for line in proc.stdout:
        if line.startswith("{"):
            seen.append(json.loads(line))
            if when(seen[-1]):
                time.sleep(after)  # the run goes on meanwhile: its pipe holds what it prints
                os.kill(proc.pid, signum)
                break
    return seen


@contextlib.contextmanager
def frozen_at_first_step(args: list[str]) -> Iterator[subprocess.Popen]:
    """`fab ARGS` (with --json) started and frozen (SIGSTOP) at its first step, which a changing run reports under
    its locks: the block runs while it holds them, and resumes it (SIGCONT) and reads the rest itself. Killed on
    leaving if it still runs (it must not go on holding a lock)."""
    proc = events_of(args)
    try:
        seen = _signalled_at(proc, lambda e: e.get("event") == "step", signal.SIGSTOP)
        assert seen and seen[-1].get("event") == "step", "the run ended before its first step"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=60)


def serialised_shards(inventory: str, holder: str, other: str, holds: list[str], shared: str,
                      while_held: Callable[[], None] = lambda: None) -> None:  # fmt: skip
    """Two `fab deploy --shard` runs given one service ``shared``: shard ``holder`` (its services ``holds``) frozen at
    its first step, under its locks (``while_held`` runs then); shard ``other`` exits 3 naming ``shared`` and the
    lock; the first, resumed, ends 0 with ``holds``; ``other`` run again then deploys ``shared``, exit 0."""
    with frozen_at_first_step(["deploy", "--inventory", inventory, "--shard", holder, "--json"]) as first:
        while_held()
        second = fab("deploy", "--inventory", inventory, "--shard", other, "--json")
        first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=600)
    assert second.returncode == 3, second.stdout + second.stderr
    assert shared in second.stderr and "lock" in second.stderr, second.stderr
    assert first.returncode == 0, out[-2000:] + err
    ends = [e for e in map(json.loads, (x for x in out.splitlines() if x.startswith("{"))) if e.get("event") == "end"]
    assert [e["services"] for e in ends] == [holds], ends
    again = fab("deploy", "--inventory", inventory, "--shard", other, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [e["services"] for e in events(again) if e.get("event") == "end"] == [[shared]]


def terminated_at(args: list[str], when: Callable[[dict], bool],
                  signum: int = signal.SIGTERM, after: float = 0.0) -> tuple[int, list[dict], str]:  # fmt: skip
    """Run `fab ARGS` (with --json), send it SIGTERM (as a CI runner cancelling the job; ``signum``: SIGINT, a
    person's Ctrl-C) as soon as it reports an event ``when`` accepts (or ``after`` seconds later), and let it end as
    it chooses (at most 300 s). Returns its exit code, every event it printed and its whole output (stdout and
    stderr)."""
    proc = events_of(args)
    try:
        seen = _signalled_at(proc, when, signum, after)
        rest, errors = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # a timeout: the run must not go on holding the service's lock
            proc.kill()
            proc.wait()
    assert seen and when(seen[-1]), "the run ended before the event it was to be stopped at"
    seen += [json.loads(line) for line in rest.splitlines() if line.startswith("{")]
    return proc.returncode, seen, rest + errors


def killed_at(args: list[str], when: Callable[[dict], bool]) -> list[dict]:
    """Run `fab ARGS` (with --json) and SIGKILL it as soon as it reports an event ``when`` accepts: the run dies
    right after that step, with no chance to clean up. The events it printed are returned."""
    proc = events_of(args)
    try:
        seen = _signalled_at(proc, when, signal.SIGKILL)
    finally:
        proc.wait(timeout=120)
        stderr = proc.stderr.read()
        proc.stdout.close(), proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, seen[-3:], stderr)
    assert seen and when(seen[-1]), "the run ended before the event it was to be killed at"
    return seen


@contextlib.contextmanager
def frozen_at(args: list[str], when: Callable[[dict], bool]) -> Iterator[list[dict]]:
    """Run `fab ARGS` (with --json) and SIGSTOP it at the event ``when`` accepts, as a machine that freezes or
    is cut off: its process and its connections stay, nothing more comes from it. Yields the events it printed;
    SIGKILLed when the block ends."""
    proc = events_of(args)
    try:
        seen = _signalled_at(proc, when, signal.SIGSTOP)
        assert seen and when(seen[-1]), "the run ended before the event it was to be frozen at"
        yield seen
    finally:
        proc.kill()
        proc.wait(timeout=120)
        proc.stdout.close(), proc.stderr.close()


def files_on(lab: Lab, node: str, service: str) -> list[str]:
    """The files under ``node``'s /run/nodeops/SERVICE, seen from here (the host's own mounts)."""
    d = Path(f"/proc/{lab.sshd_pid_of(node)}/root/run/nodeops/{service}")
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def on_the_operators_disk(needles: list[str], since: float, *roots: Path) -> list[str]:
    """The files that hold any of ``needles`` among those created or changed since ``since`` (epoch seconds) under
    ``roots`` and the places an operator's run could write: the repository, the temporary folders and the home
    folder. A value made after ``since`` can only be in a file changed after it, and a file's change time (ctime)
    is one no program can set back, so only those files are read: the whole home folder (pip's and pyenv's
    gigabytes) was read in 30 s before, these in well under one."""
    places = [str(p) for p in (ROOT, *roots, tempfile.gettempdir(), "/var/tmp", Path.home())]
    found = subprocess.run(["find", *places, "-type", "f", "-newerct", f"@{int(since) - 1}", "-print0"],
                           capture_output=True, check=False)  # fmt: skip
    wanted = [n.encode() for n in needles]
    holding = []
    for name in dict.fromkeys(filter(None, found.stdout.split(b"\0"))):  # a place inside another lists them twice
        try:
            data = Path(os.fsdecode(name)).read_bytes()
        except OSError:  # gone since it was listed (a run's lock file, a socket's temporary)
            continue
        if any(n in data for n in wanted):
            holding.append(os.fsdecode(name))
    return holding


# Run as a process of its own (no GIL shared with the test): subscribes to the kernel's process events (the proc
# connector, linux/cn_proc.h) and prints, for every exec on the machine, the new program's argv (NUL -> space) as
# one line of UTF-8, read from /proc the moment the event arrives. A scan of /proc misses a process that lives
# less than one scan (a `cat > file` upload: milliseconds); an exec event is never missed.
_EXEC_LISTENER = r"""
import os, socket, struct, sys, time
deadline = time.monotonic() + float(sys.argv[1])  # bounded, even if the test that started it is gone
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 11)  # NETLINK_CONNECTOR
sock.settimeout(1)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
sock.bind((os.getpid(), 1))  # CN_IDX_PROC
op = struct.pack("=I", 1)  # PROC_CN_MCAST_LISTEN
cn_msg = struct.pack("=IIIIHH", 1, 1, 0, 0, len(op), 0) + op  # cb_id {CN_IDX_PROC, CN_VAL_PROC}, seq, ack, len, flags
sock.send(struct.pack("=IHHII", 16 + len(cn_msg), 3, 0, 0, os.getpid()) + cn_msg)  # nlmsghdr, NLMSG_DONE
out = sys.stdout.buffer
out.write(b"listening\n")
out.flush()
while time.monotonic() < deadline:
    try:
        data = sock.recv(65536)
    except TimeoutError:
        continue
    (what,) = struct.unpack_from("=I", data, 36)  # after nlmsghdr (16) and cn_msg (20)
    if what != 2:  # PROC_EVENT_EXEC
        continue
    (pid,) = struct.unpack_from("=I", data, 52)  # after what, cpu, timestamp_ns
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read()
    except OSError:
        continue
    out.write(argv.replace(b"\0", b" ").replace(b"\n", b" ") + b"\n")
    out.flush()
"""


class Watch:
    """Samples, until stopped: every process's argv on this machine (lab hosts share our pid namespace), from each
    exec as it happens (_EXEC_LISTENER) and by scanning /proc (what ran before the watch began), and the modes of
    files under each node's /run/nodeops.

    Bounded (``limit`` seconds), and loud about it: a block that outlives the sampler, or a sampler that died,
    fails when the block ends, since what it did not see it cannot vouch for. ``saw`` is the other half of an
    "it never appeared" assertion: that the processes which would carry a secret were sampled at all."""

    def __init__(self, lab: Lab, nodes: list[str], limit: float = 300) -> None:
        self.runs = [Path(f"/proc/{lab.sshd_pid_of(n)}/root/run/nodeops") for n in nodes]
        self.limit = limit
        self.argvs: set[str] = set()
        self.modes: set[str] = set()
        self.rounds = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.listener: subprocess.Popen | None = None
        self.reader = threading.Thread(target=self.read_execs, daemon=True)

    def read_execs(self) -> None:
        for line in self.listener.stdout:
            self.argvs.add(line.decode(errors="replace").rstrip("\n"))

    def loop(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self.stop.is_set() and time.monotonic() < deadline:
            for pid in os.listdir("/proc"):  # not Path.glob: its stat of a process that just ended raises
                if not pid.isdigit():
                    continue
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:  # ended between the listing and the read
                    continue
                self.argvs.add(argv.replace(b"\0", b" ").decode(errors="replace"))
            for run in self.runs:
                with contextlib.suppress(OSError):  # a file or directory shredded mid-walk ends this walk only
                    for f in run.rglob("*"):
                        with contextlib.suppress(OSError):
                            if f.is_file():
                                self.modes.add(oct(f.stat().st_mode & 0o777))
            self.rounds += 1

    def saw(self, *fragments: str) -> bool:
        """Whether one sampled argv held every fragment."""
        return any(all(f in argv for f in fragments) for argv in self.argvs)

    def __enter__(self):
        self.started = time.monotonic()
        self.listener = subprocess.Popen([sys.executable, "-c", _EXEC_LISTENER, str(self.limit + 30)],
                                         stdout=subprocess.PIPE)  # fmt: skip
        assert self.listener.stdout.readline() == b"listening\n", "the exec listener did not start"
        self.reader.start()
        self.thread.start()
        return self

    def __exit__(self, exc_type, *exc):
        sampling = self.thread.is_alive() and self.listener.poll() is None
        self.stop.set()
        self.thread.join(timeout=10)
        self.listener.kill()  # by its pid; bounded by the block (itself bounded by the test's timeouts)
        self.listener.wait(timeout=10)
        self.reader.join(timeout=10)
        if exc_type is None:  # an error in the block is the one to report
            watched = time.monotonic() - self.started
            assert sampling, (f"the argv sampler stopped before the block ended ({watched:.0f} s; its limit is "
                              f"{self.limit:g} s, or it died): what it did not see it cannot vouch for")  # fmt: skip
            assert self.rounds >= 2, f"the argv sampler took {self.rounds} round(s) in {watched:.1f} s"
