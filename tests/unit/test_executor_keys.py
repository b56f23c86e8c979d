"""Activation ``keys`` carried out by the executor, as tables: (the pair's containers, what the edge and the nodes do)
-> the steps planned (nodeops.activation), the lines sent to each node in order, and how the run ends.

The change is a real ServiceDeploy on a real Job of a small ``keys`` role (two hot files, a plain file and a secret
one); its node actions send their lines through a fake of the one edge call that plays each node's container engine
(``Engine``: `docker run/stop/start/rm/rename` change its containers, `docker container inspect` answers from them,
the observer's parser reads the answer). Health replies come from the same containers. The fake claims no remote work:
the lab proves the lines on real hosts (deferred to issue 16: no built-in role uses ``keys`` yet).

Checked on every row: the hot files' bytes go only to the node started as the holder (on stdin, never in a line), the
``io.nodeops.hot=true`` label only on its `docker run`, each file shredded once its node serves, and no secret value in
any line sent."""

from __future__ import annotations

import json
import re
import shlex
import threading
import types

import pytest

from nodeops import program, promote_keys
from nodeops.activation import KIND_MODELS, MODELS
from nodeops.commands.node import sh
from nodeops.deploy import ServiceDeploy
from nodeops.edges.ssh import CommandResult
from nodeops.errors import EXIT_INTERRUPTED, EXIT_UNSAFE, Interrupted, InvalidInput, OperationFailed, Unsafe
from nodeops.facts.container import Container, inspect, parse_inspect
from nodeops.facts.now import now_of
from nodeops.facts.view import NodeView
from nodeops.inventory import Node, Service
from nodeops.job import Job
from nodeops.plan import Desired
from nodeops.render import render
from nodeops.roles import load_role
from nodeops.run import keys as keys_module
from nodeops.run.report import Redactor
from nodeops.run.runner import ChangeFailed, ServiceRunner
from nodeops.secrets import Secret
from nodeops.stopping import StopRequests
from tasks.promote import outage_line

NAME, PREVIOUS = "nodeops-pool", "nodeops-pool-previous"
A, B = Node("a", "10.0.0.1", 22, "active", (), "pool"), Node("b", "10.0.0.2", 22, "standby", (), "pool")
KES, VRF = "s3ntinel-KES-0123456789", "s3ntinel-VRF-0123456789"
PW = "s3ntinel-pw-0123456789"
ROLE = """\
description: a keys role for the tables
user: 1000
port: 8080
health: /health
mount: /data
stop_timeout: 5
activation: keys
secrets: [kes, vrf, pw]
profiles:
  main:
    files:
      node.conf: {template: conf.j2, secret: false}
      .pw: {template: pw.j2, secret: true}
      kes.skey: {template: kes.j2, secret: true, hot: true}
      vrf.skey: {template: vrf.j2, secret: true, hot: true}
    command: [node, --config, "{mount}/node.conf"]
default_profile: main
"""
IN_USE = """\
import json

ASKED = []  # each body the hook was asked about

def keys_in_use(body):
    ASKED.append(body)
    return json.loads(body).get("forging")
"""
HOT_FILES = ("kes.skey", "vrf.skey")
HELD_DIGEST = "sha256:" + "e" * 64  # the registry digest of the image a node holds (`docker image inspect`)
COLD_FILES = ("node.conf", ".pw")


def make_job(tmp_path, image: str = "reg/node:2", hook: str | None = None, role: str = ROLE) -> Job:
    roles, templates = tmp_path / "roles" / "pool", tmp_path / "templates" / "pool"
    roles.mkdir(parents=True, exist_ok=True)
    templates.mkdir(parents=True, exist_ok=True)
    (roles / "role.yaml").write_text(role)
    if hook:
        (roles / "role.py").write_text(hook)
    bodies = {"conf.j2": "port=8080\n", **{f"{n}.j2": f"{{{{ secrets.{n} | line }}}}\n" for n in ("pw", "kes", "vrf")}}
    for name, body in bodies.items():
        (templates / name).write_text(body)
    role = load_role("pool", [tmp_path / "roles"])
    service = Service("pool", "pool", image, "docker", {}, {}, (A, B))
    secrets = {"kes": Secret(KES, "kes"), "vrf": Secret(VRF, "vrf"), "pw": Secret(PW, "pw")}
    return Job(service, role, "main", render(role, "main", service, secrets), Redactor(list(secrets.values())), secrets)


class Engine:
    """Each node's container engine, played: ``boxes`` {node: {container name: {"running", "labels"}}}. ``fails``
    [(node, pattern, answer)]: a line on that node matching the pattern answers (exit, stdout, stderr) or raises;
    ``ignores_stop``: nodes whose `docker stop` answers 0 and stops nothing; ``dies_hot``: nodes whose container
    started with the hot label exits at once; ``digests``: {node: the registry digest of the image it holds}, as
    `docker image inspect` answers (HELD_DIGEST by default); ``boots``: {node: how many health probes a container
    `docker run` creates there answers nothing before it serves, as a real process starting}. Every line is kept
    (``sent``: node, line, stdin)."""

    def __init__(self, boxes, fails=(), ignores_stop=(), dies_hot=(), digests=None, boots=None) -> None:
        self.boxes = {node: dict(box) for node, box in boxes.items()}
        self.fails, self.ignores_stop, self.dies_hot = list(fails), set(ignores_stop), set(dies_hot)
        self.digests, self.boots = dict(digests or {}), dict(boots or {})
        self.sent: list[tuple[str, str, bytes | None]] = []
        self.stop_at: tuple[str, str, threading.Event] | None = None  # (node, pattern, a run's stop flag): set
        # when such a line is sent, as a SIGTERM arriving while it runs

    def __call__(self, link, command, stdin=None, timeout=600) -> CommandResult:  # noqa: ARG002 (the edge's shape)
        node = link.rsplit(" ", 1)[-1]
        self.sent.append((node, command, stdin))
        if self.stop_at and self.stop_at[0] == node and re.search(self.stop_at[1], command):
            self.stop_at[2].set()
        for where, pattern, answer in self.fails:
            if where == node and re.search(pattern, command):
                if isinstance(answer, Exception):
                    raise answer
                return CommandResult(*answer)
        box = self.boxes.setdefault(node, {})
        out = CommandResult(0, "", "")
        for part in command.split("; "):
            argv = [w for w in shlex.split(part) if ">" not in w]
            if argv[:1] == ["docker"]:
                out = self.docker(node, box, argv[1:])
        return out

    def docker(self, node, box, argv) -> CommandResult:
        verb, name = argv[0], argv[-1]
        if argv[:2] == ["image", "inspect"]:
            return CommandResult(0, f'sha256:img ["reg/node@{self.digests.get(node, HELD_DIGEST)}"]', "")
        if verb == "container":
            if name not in box:
                return CommandResult(1, "", f"Error: No such container: {name}")
            c = box[name]
            doc = {"Name": name, "Image": "sha256:img", "State": {"Running": c["running"], "Status": "running" if
                   c["running"] else "exited"}, "Config": {"Labels": c["labels"]}}  # fmt: skip
            return CommandResult(0, json.dumps([doc]), "")
        if verb == "run":
            name = argv[argv.index("--name") + 1]
            labels = dict(argv[i + 1].split("=", 1) for i, w in enumerate(argv) if w == "--label")
            hot = labels.get("io.nodeops.hot") == "true"
            box[name] = {"running": not (hot and node in self.dies_hot), "labels": labels,
                         "booting": self.boots.get(node, 0)}  # fmt: skip
        elif verb == "rename":
            box[argv[2]] = box.pop(argv[1])
        elif verb == "rm":
            box.pop(name, None)
        elif verb in ("stop", "start") and name in box and not (verb == "stop" and node in self.ignores_stop):
            box[name]["running"] = verb == "start"
        return CommandResult(0, "", "")


def container(job: Job, hot: bool = False, running: bool = True, config: str | None = None) -> dict:
    labels = {"io.nodeops.config": config or job.rendered.config_hash, **({"io.nodeops.hot": "true"} if hot else {})}
    return {"running": running, "labels": labels}


class Keys(ServiceDeploy):
    """A ServiceDeploy over ``engine`` (no host touched): inspect is the observer's command and parser through the
    one edge call; a node serves while its container runs, and its reply says it uses keys (for the role's keys_in_use
    hook) while its container runs with the hot label (``idle``: {node: how many of its replies say not, first}) or
    it is one of ``forging`` (nodes whose reply says they still use their keys without it); the inputs each
    container ran on are this run's, and whether it ran is read from the engine (Restore.keep_restorable,
    restore_job: test_executor_restore.py's)."""

    def __init__(self, job: Job, engine: Engine, forging=(), unseen=(), idle=None) -> None:  # noqa: D107 (no host)
        self.job, self.service, self.edge = job, job.service, engine
        self.runtime, self.name, self.digest = "docker", NAME, "sha256:d"
        self.conns = {n.name: f"link to {n.name}" for n in job.service.nodes}
        self.fleet = types.SimpleNamespace(settings=types.SimpleNamespace(command_timeout=30),
                                           inventory=types.SimpleNamespace(environment="prod"))  # fmt: skip
        self.ran_on, self.was_running, self.moved, self.ports, self.answers = {}, {}, set(), {}, {}
        self.outages, self.forward, self.stuck, self.stop_seen, self.recorded = [], [], False, None, None
        self.pulled, self.inexact_ok, self.stop = True, False, StopRequests(lambda _line: None)
        self.forging, self.unseen, self.said, self.idle = set(forging), set(unseen), [], dict(idle or {})

    def say(self, node, message, **_data):
        self.said.append((node, message))

    def inspect(self, node, name=None):
        if node in self.unseen:
            raise OperationFailed(f"pool {node}: cannot connect: Timeout")
        res = self.x(node, sh(inspect("docker", name or NAME)), check=False)
        return parse_inspect(res.stdout) if res.exit_code == 0 else None

    def health(self, node):
        c = self.edge.boxes.get(node.name, {}).get(NAME)
        if c is not None and c["running"] and c.get("booting"):
            c["booting"] -= 1
            c = None  # starting: it answers nothing yet
        if c is None or not c["running"]:
            self.answers.pop(node.name, None)
            return False, ()
        forges = node.name in self.forging or c["labels"].get("io.nodeops.hot") == "true"
        if forges and self.idle.get(node.name):
            self.idle[node.name] -= 1
            forges = False
        self.answers[node.name] = json.dumps({"forging": forges}).encode()
        return True, ()

    def keep_restorable(self, nodes):
        for node in nodes:
            self.ran_on.setdefault(node, self.job)
            if (c := self.edge.boxes.get(node, {}).get(NAME)) is not None:
                self.was_running.setdefault(node, c["running"])

    def standing(self):
        return "now: as the engine holds it"

    def now(self):
        """What runs now, the real now_of over an observer of the engine (its containers and health replies)."""
        look = types.SimpleNamespace(service=self.service, role=self.job.role, conns=self.conns, container=self.inspect,
                                     health=self.health)  # fmt: skip
        return now_of(look)


def short(node: str, command: str) -> str:
    """One line sent, as the tables name it: ``a: inspect`` (``inspect-previous``), ``a: set-aside``, ``a: stop``
    (``stop-previous``), ``a: rm``, ``a: put-back``, ``a: start``, ``a: prepare``, ``a: write F``, ``a: run``
    (``run+hot``: with the hot label), ``a: shred F,G``, ``a: image`` (the digest of the image it holds)."""
    if command.startswith("docker image inspect"):
        return f"{node}: image"
    if m := re.match(r"docker container inspect (\S+)$", command):
        return f"{node}: inspect" + ("-previous" if m[1] == PREVIOUS else "")
    if command.startswith(f"docker rm --force {PREVIOUS} >/dev/null"):
        return f"{node}: set-aside"
    if m := re.match(r"docker stop --time \d+ (\S+)$", command):
        return f"{node}: stop" + ("-previous" if m[1] == PREVIOUS else "")
    if m := re.match(r"docker rm --force (\S+)$", command):
        return f"{node}: rm" + ("-previous" if m[1] == PREVIOUS else "")
    if command == f"docker rename {PREVIOUS} {NAME}":
        return f"{node}: put-back"
    if command == f"docker start {NAME}":
        return f"{node}: start"
    if "install -d" in command:
        return f"{node}: prepare"
    if m := re.search(r"/run/nodeops/pool/(\S+) && cat >", command):
        return f"{node}: write {m[1]}"
    if command.startswith("docker run"):
        return f"{node}: run" + ("+hot" if "io.nodeops.hot=true" in command else "")
    if command.startswith("for f in"):
        return f"{node}: shred " + ",".join(re.findall(r"/run/nodeops/pool/([^' ;]+)", command))
    return f"{node}: {command}"


def sent(engine: Engine) -> list[str]:
    return [short(node, command) for node, command, _ in engine.sent]


def check_secrets(engine: Engine, holders: set[str]) -> None:
    """The invariants of every row: hot bytes only to ``holders`` and only on stdin; the hot label only on their
    `docker run`; no secret value in any line sent."""
    for node, command, stdin in engine.sent:
        assert all(value not in command for value in (KES, VRF, PW)), command
        if stdin and (KES.encode() in stdin or VRF.encode() in stdin):
            assert node in holders, f"hot bytes sent to {node}"
        if "io.nodeops.hot=true" in command:
            assert node in holders and command.startswith("docker run"), command


def upload(node: str, hot: bool) -> list[str]:
    return [f"{node}: prepare", *(f"{node}: write {n}" for n in (*COLD_FILES, *(HOT_FILES if hot else ())))]


def shred(node: str, hot: bool) -> str:
    return f"{node}: shred " + ",".join((*COLD_FILES, *(HOT_FILES if hot else ())))


def wanted(job: Job) -> Desired:
    """What a deploy of ``job`` wants: the engine's one image, the job's config."""
    return Desired(job.service.image, "sha256:img", job.rendered.config_hash)


def seen(run: Keys) -> dict[str, NodeView]:
    return {n.name: NodeView(n, run.inspect(n.name), *run.health(n)) for n in run.service.nodes}


# ---------------------------------------------------------------- deploy: plan_keys carried out by the runner
FRESH = [
    "b: inspect",  # before the hot start: no other holder, observed afresh (the runner)
    "a: inspect",  # replace: a's container (none)
    "b: inspect",  # the upload of the hot files observes b again, just before they go
    *upload("a", True), "a: run+hot", shred("a", True),  # a serves: every file it read shredded, the keys too
    "b: inspect", *upload("b", False), "b: run", shred("b", False),  # b: no hot file, no label, nothing to shred
]  # fmt: skip
UPGRADE = [
    "b: inspect", "b: set-aside", "b: stop-previous", *upload("b", False), "b: run", shred("b", False),
    "b: inspect", "a: inspect", "a: set-aside", "a: stop-previous", "b: inspect", *upload("a", True), "a: run+hot",
    shred("a", True),
]  # fmt: skip
STANDBY_ONLY = ["b: inspect", "b: set-aside", "b: stop-previous", *upload("b", False), "b: run", shred("b", False)]


@pytest.mark.parametrize(
    ("a", "b", "steps", "lines"),
    [
        (None, None, ["replace a +keys", "await-serving a", "replace b", "await-serving b"], FRESH),
        ({"hot": True, "config": "old"}, {"config": "old"},
         ["replace b", "await-serving b", "replace a +keys", "await-serving a"], UPGRADE),
        ({"hot": True}, {"config": "old"}, ["replace b", "await-serving b"], STANDBY_ONLY),
    ],
    ids=["fresh", "upgrade", "standby-only-change"],
)  # fmt: skip
def test_a_keys_deploy_gives_the_keys_and_the_label_only_to_the_holder(tmp_path, a, b, steps, lines):
    job = make_job(tmp_path)
    boxes = {n: {NAME: container(job, **spec)} for n, spec in (("a", a), ("b", b)) if spec is not None}
    engine = Engine(boxes)
    run = Keys(job, engine)
    plan = MODELS["keys"].plan_change(job.service, seen(run), wanted(job))
    assert [s.action + " " + s.node + (" +keys" if s.hot else "") for s in plan.steps] == steps
    engine.sent.clear()
    ServiceRunner(run).apply(plan)
    assert sent(engine) == lines
    check_secrets(engine, {"a"})
    assert run.verify() == {"active": "a"}  # the end state: one holder (the label), every container running


FRESH_STANDBY_FIRST = [
    "b: inspect", *upload("b", False), "b: run", shred("b", False),  # the standby first: no hot file, no label
    "b: inspect",  # before the hot start: b runs, holding nothing, observed afresh
    "a: inspect", "b: inspect", *upload("a", True), "a: run+hot", shred("a", True),
]  # fmt: skip


def test_a_keys_kinds_fresh_start_brings_the_standby_up_before_the_keys_go_out(tmp_path):
    """Issue 16: a keys kind of a role with kinds (a pool's producers) starts its standby first, then the holder
    with the keys (KeysModel's ``fresh``); a role's one ``activation: keys`` keeps FRESH (the active first)."""
    job = make_job(tmp_path)
    engine = Engine({})
    run = Keys(job, engine)
    plan = KIND_MODELS["keys"].plan_change(job.service, seen(run), wanted(job))
    assert [s.action + " " + s.node + (" +keys" if s.hot else "") for s in plan.steps] == [
        "replace b", "await-serving b", "replace a +keys", "await-serving a"]  # fmt: skip
    engine.sent.clear()
    ServiceRunner(run).apply(plan)
    assert sent(engine) == FRESH_STANDBY_FIRST
    check_secrets(engine, {"a"})
    assert run.verify() == {"active": "a"}


def test_a_standby_that_fails_a_fresh_start_stops_the_run_before_any_hot_file_is_written(tmp_path):
    """Why standby first: b's container exits at once; the run ends there, no hot file sent to any node, no node
    started with the label, the holder-to-be untouched (no forging holder left without a spare)."""
    job = make_job(tmp_path)
    engine = Engine({}, fails=[("b", r"^docker run", (125, "", "Error: b cannot start"))])
    run = Keys(job, engine)
    plan = KIND_MODELS["keys"].plan_change(job.service, seen(run), wanted(job))
    engine.sent.clear()
    with pytest.raises(ChangeFailed):
        ServiceRunner(run).apply(plan)
    check_secrets(engine, set())
    assert not [line for line in sent(engine) if line.startswith("a:") and "inspect" not in line]


HOT_ARGS = ("--shelley-kes-key", "/data/kes.skey", "--shelley-vrf-key", "/data/vrf.skey")
WITH_HOT_ARGS = ROLE.replace('command: [node, --config, "{mount}/node.conf"]\n', 'command: [node, --config, '
                             '"{mount}/node.conf"]\n    hot_command: [--shelley-kes-key, "{mount}/kes.skey", '
                             '--shelley-vrf-key, "{mount}/vrf.skey"]\n')  # fmt: skip


def test_only_the_holder_is_started_with_the_profiles_hot_command(tmp_path):
    """Issue 16: a block producer's key flags name files only the holder is given; the standby, started without the
    files, must start without the flags (a node given a flag naming a file it lacks does not start)."""
    assert WITH_HOT_ARGS != ROLE
    job = make_job(tmp_path, role=WITH_HOT_ARGS)
    engine = Engine({})
    run = Keys(job, engine)
    ServiceRunner(run).apply(MODELS["keys"].plan_change(job.service, seen(run), wanted(job)))
    runs = {node: shlex.split(command) for node, command, _ in engine.sent if command.startswith("docker run")}
    assert runs["a"][-8:] == ["reg/node:2", "node", "--config", "/data/node.conf", *HOT_ARGS]
    assert runs["b"][-4:] == ["reg/node:2", "node", "--config", "/data/node.conf"]
    assert job.rendered.hot_command == HOT_ARGS
    check_secrets(engine, {"a"})


KEYS_ROLE_HASH = "42e8f76ca1ae66028eb7f627ae75a1ae1479de6c4c1dae833fe6d52a45821c94"  # ROLE's, computed on main


def test_a_hot_command_is_part_of_the_config_and_a_role_without_one_keeps_its_hash(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    without, hot = make_job(tmp_path / "x"), make_job(tmp_path / "y", role=WITH_HOT_ARGS)
    assert without.rendered.hot_command == () and hot.rendered.config_hash != without.rendered.config_hash
    assert without.rendered.config_hash == KEYS_ROLE_HASH  # as before hot_command existed: no container redeployed


def test_a_second_holder_seen_before_a_hot_start_is_refused_nothing_started(tmp_path):
    """The plan saw no container (a fresh start); by the hot start b runs one with the hot label (started by hand,
    another run): refused, exit 4, nothing sent to a but the look."""
    job = make_job(tmp_path)
    engine = Engine({})
    run = Keys(job, engine)
    plan = MODELS["keys"].plan_change(job.service, seen(run), wanted(job))
    engine.boxes["b"] = {NAME: container(job, hot=True)}
    engine.sent.clear()
    with pytest.raises(ChangeFailed) as err:
        ServiceRunner(run).apply(plan)
    assert err.value.exit_code == EXIT_UNSAFE
    assert str(err.value).startswith(
        "pool a: not started with the hot keys: b holds them now (its container runs "
        "with io.nodeops.hot=true), never two holders; nothing was started with them"
    )
    assert str(err.value).endswith("now: a is down, b serves with the hot keys")
    assert sent(engine) == ["b: inspect", "a: inspect", "b: inspect"]  # the look before, and what serves now


def test_a_node_that_cannot_be_seen_before_a_hot_start_is_refused(tmp_path):
    job = make_job(tmp_path)
    run = Keys(job, Engine({}))
    plan = MODELS["keys"].plan_change(job.service, seen(run), wanted(job))
    run.unseen.add("b")
    with pytest.raises(ChangeFailed) as err:
        ServiceRunner(run).apply(plan)
    assert err.value.exit_code == EXIT_UNSAFE
    assert "pool a: not started with the hot keys: b cannot be seen (pool b: cannot connect: Timeout)" in str(err.value)
    assert not [c for _, c, _ in run.edge.sent if c.startswith("docker run")]


def test_the_in_place_holder_that_fails_gets_its_previous_container_back_with_its_keys(tmp_path):
    """An upgrade whose new holder container exits: its previous container, which held the keys, is put back with
    its hot files (the change last gave them to it), started and awaited serving; the standby keeps none."""
    job = make_job(tmp_path)
    engine = Engine({"a": {NAME: container(job, hot=True, config="old")}, "b": {NAME: container(job)}})
    run = Keys(job, engine)
    plan = MODELS["keys"].plan_change(job.service, seen(run), wanted(job))
    assert [s.node for s in plan.steps] == ["a", "a"]  # b is up to date: the holder in place only
    engine.sent.clear()
    engine.dies_hot = {"a"}
    with pytest.raises(ChangeFailed) as err:
        ServiceRunner(run).apply(plan)
    assert err.value.exit_code == 1
    assert str(err.value) == ("pool a: not serving /health after 0s: container exited (exit 0); no log output; a's "
                              "previous container was started again on its own inputs, and it serves; now: a serves "
                              "with the hot keys, b serves")  # fmt: skip
    lines = sent(engine)
    assert lines[lines.index("a: run+hot") + 1:] == [
        "a: inspect", "a: docker logs --tail 20 nodeops-pool 2>&1",  # the wait sees it exit
        "a: rm", "a: inspect-previous", "a: put-back", "b: inspect", *upload("a", True), "a: start",
        shred("a", True),  # serves again with its keys; every file shredded
        *NOW_A,
    ]  # fmt: skip
    assert engine.boxes["a"][NAME]["labels"]["io.nodeops.config"] == "old"  # its own container, hot label and all
    check_secrets(engine, {"a"})


def shreds_said(run: Keys) -> dict[str, int]:
    """How many "shredded ..." step lines the run said for each node (what the console prints)."""
    said: dict[str, int] = {}
    for node, message in run.said:
        if message.startswith("shredded "):
            said[node] = said.get(node, 0) + 1
    return said


def test_an_undo_says_each_shred_once(tmp_path):
    """Issue 15: on an undo the console printed "shredded ..." twice for the node put back: once when it served again
    (Restore.settle), once more when what serves now was told (fence.failure shreds what a node given files by the
    change has read), though nothing was written to it in between. Each shred is said, and sent, once."""
    job = make_job(tmp_path)
    engine = Engine({"a": {NAME: container(job, hot=True, config="old")}, "b": {NAME: container(job)}},
                    dies_hot={"a"})  # fmt: skip
    run = Keys(job, engine)
    plan = MODELS["keys"].plan_change(job.service, seen(run), wanted(job))
    with pytest.raises(ChangeFailed):
        ServiceRunner(run).apply(plan)
    assert shreds_said(run) == {"a": 1}
    assert sent(engine).count(shred("a", True)) == 1


@pytest.mark.parametrize(
    ("ops", "lines"),
    [
        # written, then shredded twice: the second shred has nothing left to shred, so nothing is sent or said
        (["upload a", "shred a all", "shred a all"], [shred("a", False)]),
        # the start files once it waits, then every file: the second shreds only what the first left
        (["upload a", "shred a .pw", "shred a all"], ["a: shred .pw", "a: shred node.conf"]),
        # written again between the two: each shred has files to shred
        (["upload a", "shred a all", "upload a", "shred a all"], [shred("a", False), shred("a", False)]),
        # another node's shred is its own
        (["upload a", "upload b", "shred a all", "shred b all"], [shred("a", False), shred("b", False)]),
        # what an earlier run left (no upload by this one: the hot files too) is shredded, once
        (["shred a all", "shred a all"], [shred("a", True)]),
        # a shred that failed shreds nothing: the next one sends it again
        (["upload a", "shred a all (times out)", "shred a all"], [shred("a", False), shred("a", False)]),
    ],
    ids=["twice", "start-then-all", "written-again", "per-node", "left-by-another-run", "failed-then-again"],
)  # fmt: skip
def test_a_file_is_shredded_once_per_write(tmp_path, ops, lines):
    """ServiceChange.shred: a file shredded since the change last wrote its node's files is not shredded, nor said,
    again; anything else asked is (a failed shred, another node, a file this change never wrote)."""
    job = make_job(tmp_path)
    engine = Engine({})
    run = Keys(job, engine)
    for op in ops:
        verb, node, *what = op.split()
        if verb == "upload":
            run.upload(node, job, hot=False)
            continue
        names = job.all_files if what[0] == "all" else (what[0],)
        if what[1:]:
            engine.fails = [(node, r"^for f in", OperationFailed(f"pool {node}: command timed out after 15s"))]
            with pytest.raises(OperationFailed):
                run.shred(node, names)
            engine.fails = []
            continue
        run.shred(node, names)
    assert [line for line in sent(engine) if ": shred " in line] == lines
    assert sum(shreds_said(run).values()) == len(lines) - sum("times out" in op for op in ops)  # said when done


# ---------------------------------------------------------------- promote-standby: fence first, then the keys
def promoted(tmp_path, hook=None, **engine_kw) -> tuple[Job, Engine]:
    """The pair a promotion starts from: a holds the keys, b runs without them."""
    job = make_job(tmp_path, hook=hook)
    return job, Engine({"a": {NAME: container(job, hot=True)}, "b": {NAME: container(job)}}, **engine_kw)


HOT_START_B = [
    "b: image",  # the digest of the image b holds, for its new container's label
    "a: inspect",  # before the hot start: a observed afresh, holding nothing
    "b: inspect", "b: set-aside", "b: stop-previous", "a: inspect", *upload("b", True), "b: run+hot",
    shred("b", True),  # b serves with the keys: every file shredded
]  # fmt: skip
RESTART_FENCE = [
    "a: image", "a: inspect", "a: set-aside", "a: stop-previous", *upload("a", False), "a: run",  # fence: no keys
    "a: inspect", "a: inspect-previous",  # await-fenced: no container of a runs with the hot label
    *HOT_START_B,
    shred("a", False),  # a serves as the standby
    "a: rm-previous", "b: rm-previous",  # the previous containers dropped
]  # fmt: skip
STOP_FENCE = ["a: stop", "a: inspect", "a: inspect-previous", *HOT_START_B, "a: rm-previous", "b: rm-previous"]


def assessed(run: Keys, job: Job) -> promote_keys.KeysHandover:
    look = types.SimpleNamespace(service=job.service, job=job, observer=types.SimpleNamespace(views=lambda: seen(run)))
    return promote_keys.assess_keys(look, force=False)


@pytest.mark.parametrize(
    ("keep_old_stopped", "steps", "lines", "a_runs"),
    [
        (False, ["replace a", "await-fenced a", "replace b +keys", "await-serving b", "await-serving a"],
         RESTART_FENCE, True),
        (True, ["stop a", "await-fenced a", "replace b +keys", "await-serving b"], STOP_FENCE, False),
    ],
    ids=["restart-fence", "stop-fence-keep-old-stopped"],
)  # fmt: skip
def test_a_planned_promotion_fences_first_then_moves_the_keys(tmp_path, keep_old_stopped, steps, lines, a_runs):
    job, engine = promoted(tmp_path)
    run = Keys(job, engine)
    handover = assessed(run, job)
    plan = MODELS["keys"].plan_promotion(
        job.service, handover.seen, "b", fence="stop" if keep_old_stopped else "restart"
    )
    assert [s.action + " " + s.node + (" +keys" if s.hot else "") for s in plan.steps] == steps
    engine.sent.clear()
    result = handover.promote(run, keep_old_stopped)
    assert sent(engine) == lines
    assert result["active"] == "b" and result["outage_seconds"] is None and result["keys_gap_seconds"] >= 0
    assert run.now()["active"] == "b"  # the audit end entry's record: the new holder, though both nodes serve
    assert engine.boxes["b"][NAME]["labels"].get("io.nodeops.hot") == "true"
    a = engine.boxes["a"][NAME]
    assert a["running"] is a_runs and (a["labels"].get("io.nodeops.hot") != "true" or not a_runs)  # holds nothing
    check_secrets(engine, {"b"})
    gaps = [m for node, m in run.said if node == "b" and "no node held them" in m]
    assert len(gaps) == 1 and re.fullmatch(r"serves with the hot keys; no node held them for \d+\.\ds", gaps[0])
    assert result["keys_held_before"] is True
    assert [m for m in (m for _, m in run.said) if m.startswith("plan:")][0].startswith(
        "plan: planned promotion of b: fence a first, then the keys;")  # fmt: skip


@pytest.mark.parametrize("keep_old_stopped", [False, True], ids=["restart-fence", "stop-fence"])
def test_each_start_of_a_promotion_records_the_digest_of_the_image_its_node_holds(tmp_path, keep_old_stopped):
    """A promotion pulls nothing (the run's ``digest`` stays None, as ServiceChange starts it): each new container
    is labelled with the registry digest of the image its node holds and starts (each node on its own inputs), never
    ``digest=none``, so status, rollback and diff see the image that runs."""
    job, engine = promoted(tmp_path, digests={"a": "sha256:" + "a" * 64, "b": "sha256:" + "b" * 64})
    run = Keys(job, engine)
    run.digest = None
    assessed(run, job).promote(run, keep_old_stopped)
    started = [(node, c) for node, c, _ in engine.sent if c.startswith("docker run")]
    assert [node for node, _ in started] == (["b"] if keep_old_stopped else ["a", "b"])
    for node, line in started:
        assert f"io.nodeops.digest=sha256:{node * 64}" in line, line
        assert engine.boxes[node][NAME]["labels"]["io.nodeops.digest"] == f"sha256:{node * 64}"


def test_the_question_names_the_holder_and_the_fence(tmp_path):
    job, engine = promoted(tmp_path)
    handover = assessed(Keys(job, engine), job)
    assert handover.question(False) == ("pool: move the hot keys from a (holder, ?) to b (?), a fenced first (it is "
                                        "restarted without them, as the standby)")  # fmt: skip
    assert handover.question(True).endswith("a fenced first (it stays stopped)")


GIVE_BACK = ["b: inspect", *upload("a", True), "a: start", shred("a", True)]  # b observed before the keys go back
PUT_BACK = ["a: rm", "a: put-back"]  # a restart fence set the holder's container aside: the fenced one goes
NOW_A = ["a: inspect", "b: inspect"]  # what serves now (a's files shredded once it served: no second shred)


@pytest.mark.parametrize(
    ("keep_old_stopped", "engine_kw", "forging", "tail", "message"),
    [
        # the fence fails: a's holder container set aside but not stopped; nothing started with the keys, a gets its
        # keys back (its container put back, its hot files again)
        (False, {"fails": [("a", r"^docker stop", (1, "", "Error: timeout"))]}, (),
         ["a: inspect", "a: set-aside", "a: stop-previous", *PUT_BACK, *GIVE_BACK, *NOW_A],
         "pool a: `docker stop` failed: Error: timeout; nothing was started with the keys; a was given its keys "
         "back and serves with them"),
        # stopped, but its container still runs with the hot label: never seen fenced; a gets its keys back
        (True, {"ignores_stop": {"a"}}, (), ["a: inspect", *GIVE_BACK, *NOW_A],
         "pool a: not seen fenced after 0.3s: container nodeops-pool runs with the hot keys; nothing was started "
         "with the keys; a was given its keys back and serves with them"),
    ],
    ids=["fence-fails", "never-fenced-label"],
)  # fmt: skip
def test_a_holder_not_seen_fenced_gets_its_keys_back_and_nothing_starts_with_them(
    tmp_path, monkeypatch, keep_old_stopped, engine_kw, forging, tail, message
):
    monkeypatch.setattr(keys_module, "FENCE_TIMEOUT", 0.3)
    job, engine = promoted(tmp_path, hook=IN_USE, **engine_kw)
    run = Keys(job, engine, forging=forging)
    handover = promote_keys.KeysHandover("pool", seen(run), "a", "b")
    engine.sent.clear()
    with pytest.raises(ChangeFailed) as err:
        handover.promote(run, keep_old_stopped)
    assert err.value.exit_code == 1
    assert str(err.value).startswith(message)
    assert str(err.value).endswith("now: a serves with the hot keys, b serves")
    lines = sent(engine)
    assert lines[-len(tail) :] == tail
    assert [line for line in lines if line.startswith("b:")] == ["b: inspect", "b: inspect"]  # b only looked at
    check_secrets(engine, {"a"})
    assert engine.boxes["a"][NAME]["labels"].get("io.nodeops.hot") == "true"  # a holds them again


def test_a_keys_in_use_hook_that_raises_mid_promotion_is_one_line_naming_it_and_the_keys_go_back(tmp_path):
    """A role whose hook raises while the old holder is awaited fenced (a reviewer's role: ``body["forging"]`` on a
    reply without it raised KeyError out of the run with a traceback): the fence fails as any step does, in one
    line naming the role and the hook; nothing starts with the keys and a gets them back."""
    job, engine = promoted(tmp_path, hook="import json\n\ndef keys_in_use(body):\n    return json.loads(body)['x']\n")
    run = Keys(job, engine, forging={"a"})
    handover = promote_keys.KeysHandover("pool", seen(run), "a", "b")
    engine.sent.clear()
    with pytest.raises(ChangeFailed) as err:
        handover.promote(run, False)
    assert err.value.exit_code == 1 and "\n" not in str(err.value)
    assert str(err.value).startswith(
        f"role pool: its hook keys_in_use raised KeyError "
        f"({tmp_path / 'roles' / 'pool' / 'role.py'}:4): fix the role's module; nothing "
        "was started with the keys; a was given its keys back and serves with them"
    )
    assert str(err.value).endswith("now: a serves with the hot keys, b serves")
    assert [line for line in sent(engine) if line.startswith("b:")] == ["b: inspect", "b: inspect"]  # b only looked at
    check_secrets(engine, {"a"})


@pytest.mark.parametrize("forging", [{"a"}, set()], ids=["still-uses-its-keys", "says-it-stopped"])
def test_after_a_restart_fence_the_keys_in_use_hook_is_asked_once_the_old_holder_answers(tmp_path, forging):
    """The old holder restarted without its hot files answers nothing while it starts, so a look at once sees it
    fenced by its label alone. A role that defines ``keys_in_use`` is asked once, when the restarted node answers
    again and before any start with the keys: it says the node still uses them, the fence failed: exit 4, the old
    holder back as it was (its container, its keys), nothing started with them; it says not, the keys move, and the
    new holder is asked too once it serves (it says it uses them: the promotion is done)."""
    job, engine = promoted(tmp_path, hook=IN_USE, boots={"a": 3})
    asked = job.role.hooks.keys_in_use.__wrapped__.__globals__["ASKED"]  # the hook as the role wrote it
    run = Keys(job, engine, forging=forging)
    handover = promote_keys.KeysHandover("pool", seen(run), "a", "b")
    asked.clear()
    engine.sent.clear()
    if not forging:
        assert handover.promote(run, False)["active"] == "b"
        assert asked == [b'{"forging": false}', b'{"forging": true}']  # a once, on its first answer; then b
        lines = sent(engine)
        assert lines.index("a: run") < lines.index("a: inspect-previous") < lines.index("b: run+hot")
        return
    with pytest.raises(ChangeFailed) as err:
        handover.promote(run, False)
    assert err.value.exit_code == EXIT_UNSAFE
    assert str(err.value) == (
        "pool a: the fence failed: restarted without its hot keys, it answers that it still uses them (role pool's "
        "keys_in_use); nothing was started with the keys; a was given its keys back and serves with them; now: a "
        "serves with the hot keys, b serves"
    )
    assert asked == [b'{"forging": true}']
    lines = sent(engine)
    assert lines[-len(PUT_BACK + GIVE_BACK + NOW_A) :] == [*PUT_BACK, *GIVE_BACK, *NOW_A]
    assert [line for line in lines if line.startswith("b:")] == ["b: inspect", "b: inspect"]  # b only looked at
    check_secrets(engine, {"a"})
    assert engine.boxes["a"][NAME]["labels"].get("io.nodeops.hot") == "true"  # a holds them again, as it did


@pytest.mark.parametrize(
    ("says", "told"),
    [
        (
            "None",
            "fenced: holds no keys (seen after 0.0s); it answers again, but role pool's keys_in_use does not say "
            "whether it uses them, so the fence is not confirmed: it was stopped, as --keep-old-stopped does",
        ),
        ("False", "fenced: holds no keys (seen after 0.0s); it answers again and says it no longer uses them"),
        ("(False if len(ASKED) > 2 else None)",
         "fenced: holds no keys (seen after 0.0s); it answers again and says it no longer uses them"),
    ],
    ids=["does-not-say", "says-it-stopped", "says-it-stopped-after-two-replies"],
)  # fmt: skip
def test_after_a_restart_fence_only_what_the_keys_in_use_hook_said_is_told(tmp_path, monkeypatch, says, told):
    """A role's keys_in_use that returns None ("does not say", docs/roles.md) after the fence, for SAY_TIMEOUT: the
    fence is not confirmed (issue 16: "its metrics must show forging disabled, or it is stopped"), so the old holder
    is stopped, as --keep-old-stopped does, and the line says so, not that it said it stopped using its keys; only a
    hook that returns False is told as saying so, the old holder then serving on as the standby. A node that answers
    before it says (the lab's Cardano node, its metrics without the gauge just after its start: it was stopped) is
    asked again until it says."""
    monkeypatch.setattr(keys_module, "SAY_TIMEOUT", 2.0)
    hook = ("import json\n\nASKED = []\n\ndef keys_in_use(body):\n    ASKED.append(body)\n"
            f"    return json.loads(body)['forging'] or {says}\n")  # fmt: skip
    job, engine = promoted(tmp_path, hook=hook)  # a, fenced: {says}; b, the new holder: True
    run = Keys(job, engine)
    handover = promote_keys.KeysHandover("pool", seen(run), "a", "b")
    assert handover.promote(run, False)["active"] == "b"
    fenced = [m.replace("0.1s", "0.0s") for node, m in run.said if node == "a" and m.startswith("fenced:")]
    assert fenced == [told], run.said
    stopped = says == "None"
    assert engine.boxes["a"][NAME]["running"] is not stopped  # stopped, else serving as the standby
    assert ("a", "await-serving a") not in run.said if stopped else ("a", "await-serving a") in run.said
    assert engine.boxes["b"][NAME]["labels"].get("io.nodeops.hot") == "true"
    check_secrets(engine, {"b"})


@pytest.mark.parametrize(
    ("hook", "idle", "told"),
    [
        (IN_USE, {}, "serves with the hot keys and says it uses them"),
        (IN_USE, {"b": 3}, "serves with the hot keys and says it uses them"),  # not at once: awaited
        ("def keys_in_use(body):\n    return None\n", {"b": 10**6}, "serves with the hot keys"),  # cannot say
        (None, {"b": 10**6}, "serves with the hot keys"),  # no hook: the start decides, as before
    ],
    ids=["forges", "forges-after-a-while", "hook-cannot-say", "no-hook"],
)  # fmt: skip
def test_the_new_holder_is_asked_until_it_says_it_uses_the_keys(tmp_path, monkeypatch, hook, idle, told):
    """Issue 16: "push the hot credentials to the standby and restart it as producer, verify it forges". Once the
    new holder serves, a role that defines ``keys_in_use`` is asked about its replies until it says it uses them
    (a bounded wait); a hook that cannot say (None), or no hook, leaves the start to decide, as before."""
    monkeypatch.setattr(keys_module, "FORGE_TIMEOUT", 5.0)
    job, engine = promoted(tmp_path, hook=hook)
    run = Keys(job, engine, idle=idle)
    assert promote_keys.KeysHandover("pool", seen(run), "a", "b").promote(run, True)["active"] == "b"
    said = [m.split(";")[0] for node, m in run.said if node == "b" and m.startswith("serves with the hot keys")]
    assert said == [told], run.said
    check_secrets(engine, {"b"})


def test_a_new_holder_that_answers_but_does_not_forge_fails_and_the_keys_go_back(tmp_path, monkeypatch):
    """The new holder serves but its replies say it does not use its keys (a node that refuses its certificate)
    for the whole bound: it failed as a new holder that does not start fails: stopped and seen fenced first, then
    the old holder gets the keys back and the new one its previous container (exit 1)."""
    monkeypatch.setattr(keys_module, "FORGE_TIMEOUT", 0.3)
    job, engine = promoted(tmp_path, hook=IN_USE)
    run = Keys(job, engine, idle={"b": 10**6})
    with pytest.raises(ChangeFailed) as err:
        promote_keys.KeysHandover("pool", seen(run), "a", "b").promote(run, False)
    assert err.value.exit_code == 1
    assert re.fullmatch(
        r"pool b: started with the hot keys, it says it does not use them after 0s \(role pool's keys_in_use\): it "
        r"does not forge; b was stopped and seen fenced; a was given its keys back and serves with them \(no node "
        r"held them for \d+\.\ds\); b's previous container was started again without the keys and serves; now: a "
        r"serves with the hot keys, b serves",
        str(err.value),
    )
    assert engine.boxes["a"][NAME]["labels"].get("io.nodeops.hot") == "true"
    assert "io.nodeops.hot" not in engine.boxes["b"][NAME]["labels"]
    check_secrets(engine, {"a", "b"})


def test_a_promotion_with_no_holder_says_so_and_reports_no_gap_that_began_now(tmp_path):
    """No node held the keys when the promotion began (the holder's container stopped, or a previous cut left none):
    the gap began before this run, so no figure that suggests it began now: keys_gap_seconds null,
    keys_held_before false, and the lines say so; the plan line names what the plan does (nothing to fence)."""
    job = make_job(tmp_path)
    engine = Engine({"a": {NAME: container(job)}, "b": {NAME: container(job)}})
    run = Keys(job, engine)
    result = promote_keys.KeysHandover("pool", seen(run), None, "b").promote(run, False)
    assert result["active"] == "b" and result["keys_gap_seconds"] is None and result["keys_held_before"] is False
    assert outage_line(result) == "no node held the hot keys when the promotion began"
    plan = [m for node, m in run.said if m.startswith("plan:")]
    assert plan == ["plan: planned promotion of b: no node holds the keys, nothing to fence; replace b (promoted, "
                    "with the hot keys); await-serving b"], plan  # fmt: skip
    told = [m for node, m in run.said if node == "b" and m.startswith("serves with the hot keys")]
    assert told == ["serves with the hot keys; no node held them when the promotion began"], run.said


FENCE_UNDONE = [*PUT_BACK, *GIVE_BACK]  # the fence undone: a's holder container back, with its keys
COMPLETE = "the promotion went on to its end: it is complete, b holds the hot keys and serves"


@pytest.mark.parametrize(
    ("keep_old_stopped", "stop_at", "lines", "message"),
    [
        # before the fence: nothing done
        (False, None, [], "pool: stopped before the fence as asked, nothing changed; now: as the engine holds it"),
        # during the restart fence (a restarted without its keys): the fence undone, the keys never moved
        (False, ("a", r"^docker run"), [*RESTART_FENCE[:RESTART_FENCE.index("a: run") + 1], *FENCE_UNDONE],
         r"pool: stopped before `await-fenced a` as asked, after the fence and before the keys moved, so the fence "
         r"was undone; a was given its keys back and serves with them \(no node held them for \d+\.\ds\); now: as "
         "the engine holds it"),
        # during the stop fence: a started again with its keys
        (True, ("a", r"^docker stop"), ["a: stop", *GIVE_BACK],
         r"pool: stopped before `await-fenced a` as asked, after the fence and before the keys moved, so the fence "
         r"was undone; a was given its keys back and serves with them \(no node held them for \d+\.\ds\); now: as "
         "the engine holds it"),
        # once the new holder starts with the keys: the promotion finishes, is seen complete, then stops
        (False, ("b", r"io\.nodeops\.hot=true"), [*RESTART_FENCE[:-2], "a: inspect", "b: inspect"],
         r"pool: the stop came during `replace b \(promoted, with the hot keys\)`, once the keys were moving \(past "
         rf"the last safe point\), so {COMPLETE} \(no node held them for \d+\.\ds\); now: as the engine holds it"),
    ],
    ids=["before-the-fence", "during-the-restart-fence", "during-the-stop-fence", "during-the-move"],
)  # fmt: skip
def test_a_stop_during_a_promotion_ends_at_its_safe_points_and_says_what_it_did(
    tmp_path, keep_old_stopped, stop_at, lines, message
):
    """SIGTERM/SIGINT (the run's stop flag) during a keys promotion: before the fence nothing is done; after the
    fence and before the keys move the fence is undone (the old holder back with its keys); once the new holder
    starts with them the promotion finishes and is seen complete. Each ends Interrupted (exit 130), saying so."""
    job, engine = promoted(tmp_path)
    run = Keys(job, engine)
    handover = assessed(run, job)
    engine.sent.clear()
    if stop_at is None:
        run.stop.requested.set()
    else:
        engine.stop_at = (*stop_at, run.stop.requested)
    with pytest.raises(Interrupted) as err:
        handover.promote(run, keep_old_stopped)
    assert err.value.exit_code == EXIT_INTERRUPTED
    assert re.fullmatch(message, str(err.value)), str(err.value)
    tail = ["a: rm-previous", "b: rm-previous"] if stop_at else []  # the pair is whole: what was set aside goes
    assert sent(engine) == [*lines, *tail]
    moved = stop_at is not None and stop_at[0] == "b"
    check_secrets(engine, {"b"} if moved else {"a"})
    holder = engine.boxes["b" if moved else "a"][NAME]
    assert holder["running"] and holder["labels"].get("io.nodeops.hot") == "true"
    assert run.now()["active"] == ("b" if moved else "a")


def test_a_stop_after_the_fence_whose_undo_fails_says_no_node_holds_the_keys(tmp_path):
    """The fence undone on a stop, but the old holder does not start again with its keys: not "stopped" (exit 130)
    but the failure, saying what runs now (no holder) and the command that sees why."""
    job, engine = promoted(tmp_path, fails=[("a", r"^docker start", (1, "", "Error: cannot start"))])
    run = Keys(job, engine)
    handover = assessed(run, job)
    engine.stop_at = ("a", r"^docker stop", run.stop.requested)
    with pytest.raises(ChangeFailed) as err:
        handover.promote(run, True)
    assert err.value.exit_code == 1
    undone = "after the fence and before the keys moved, so the fence was undone; giving a its keys back failed: "
    assert str(err.value).startswith(f"pool: stopped before `await-fenced a` as asked, {undone}")
    assert str(err.value).endswith(f"now: a is down, b serves; NO NODE HOLDS THE KEYS: see {program()} status --env "
                                   "prod")  # fmt: skip
    check_secrets(engine, {"a"})


def test_a_restarted_old_holder_that_never_answers_cannot_be_asked_so_the_keys_go_back(tmp_path, monkeypatch):
    """The role defines ``keys_in_use`` but the old holder restarted by the fence never answers: the hook cannot be
    asked, so the fence is not taken as done: nothing starts with the keys, the old holder gets them back (exit 1)."""
    monkeypatch.setattr(keys_module, "ANSWER_TIMEOUT", 0.3)
    job, engine = promoted(tmp_path, hook=IN_USE, boots={"a": 10**6})
    run = Keys(job, engine)
    handover = promote_keys.KeysHandover("pool", seen(run), "a", "b")  # a's own container, put back, answers
    with pytest.raises(ChangeFailed) as err:
        handover.promote(run, False)
    assert err.value.exit_code == 1
    assert str(err.value).startswith("pool a: not serving /health after 0s: container running")
    assert (
        "(restarted without its hot keys, it was awaited answering again, to ask it whether it still uses them: "
        "role pool's keys_in_use); nothing was started with the keys; a was given its keys back"
    ) in str(err.value)
    assert not [line for line in sent(engine) if line == "b: run+hot"]
    check_secrets(engine, {"a"})


def test_a_new_holder_that_fails_is_fenced_first_then_the_keys_go_back(tmp_path):
    job, engine = promoted(tmp_path, dies_hot={"b"})
    run = Keys(job, engine)
    handover = promote_keys.KeysHandover("pool", seen(run), "a", "b")
    engine.sent.clear()
    with pytest.raises(ChangeFailed) as err:
        handover.promote(run, False)
    lines = sent(engine)
    assert lines[lines.index("b: run+hot") + 1:] == [
        "b: inspect", "b: docker logs --tail 20 nodeops-pool 2>&1",  # the wait sees it exit
        "b: stop", "b: inspect", "b: inspect-previous",  # b stopped and seen fenced first
        *PUT_BACK, *GIVE_BACK,  # only then a gets the keys back
        "b: rm", "b: put-back", *upload("b", False), "b: start", shred("b", False),  # b its previous container
        *NOW_A,  # what serves now: each node's files were shredded once it served again, none twice
    ]  # fmt: skip
    assert err.value.exit_code == 1
    assert re.fullmatch(
        r"pool b: not serving /health after 0s: container exited \(exit 0\); no log output; b was stopped and seen "
        r"fenced; a was given its keys back and serves with them \(no node held them for \d+\.\ds\); b's previous "
        r"container was started again without the keys and serves; now: a serves with the hot keys, b serves",
        str(err.value),
    )
    check_secrets(engine, {"a", "b"})  # b had them, and is fenced: only a holds them after
    assert engine.boxes["a"][NAME]["labels"].get("io.nodeops.hot") == "true"
    assert "io.nodeops.hot" not in engine.boxes["b"][NAME]["labels"]


def test_a_new_holder_cut_off_is_not_seen_fenced_so_the_keys_are_not_given_back(tmp_path):
    cut = OperationFailed("pool b: connection lost: EOF")
    job, engine = promoted(tmp_path)
    run = Keys(job, engine)
    handover = promote_keys.KeysHandover("pool", seen(run), "a", "b")
    engine.fails = [("b", r"io\.nodeops\.hot=true", cut), ("b", rf"^docker stop --time \d+ {NAME}$", cut)]
    with pytest.raises(ChangeFailed) as err:
        handover.promote(run, False)
    assert err.value.exit_code == EXIT_UNSAFE
    assert str(err.value) == (
        "pool b: connection lost: EOF; b could not be seen fenced (pool b: connection lost: EOF), so a was not given "
        f"the keys back (never two holders): stop nodeops-pool on b, then {program()} promote-standby again; now: a "
        f"serves, b is down; NO NODE HOLDS THE KEYS: see {program()} status --env prod"
    )
    assert sent(engine)[sent(engine).index("b: run+hot") + 1:] == ["b: stop", "a: inspect", shred("a", False),
                                                                    "b: inspect"]  # fmt: skip


def test_an_old_holder_cut_off_during_its_fence_is_said_and_nothing_starts_with_the_keys(tmp_path):
    cut = OperationFailed("pool a: connection lost: EOF")
    job, engine = promoted(tmp_path)
    run = Keys(job, engine)
    handover = promote_keys.KeysHandover("pool", seen(run), "a", "b")
    engine.sent.clear()
    engine.fails = [("a", ".", cut)]
    with pytest.raises(ChangeFailed) as err:
        handover.promote(run, True)
    assert err.value.exit_code == 1
    assert str(err.value) == ("pool a: connection lost: EOF; nothing was started with the keys; giving a its keys back "
                              "failed: pool a: connection lost: EOF; now: a cannot be seen, b serves; NO NODE HOLDS "
                              f"THE KEYS: see {program()} status --env prod")  # fmt: skip
    assert sent(engine) == ["a: stop", "b: inspect", "a: prepare", "a: inspect", "b: inspect"]  # then nothing on b


# ---------------------------------------------------------------- --force: the engine cannot fence what it cannot reach
@pytest.mark.parametrize(
    ("unseen", "chain_fence", "error", "message"),
    [
        ({"a"}, None, Unsafe, "pool: a cannot be reached, so it cannot be fenced: it may still hold the hot keys and "
         "use them, and starting them elsewhere would make two holders; role pool has no chain-level fence "
         "(CHAIN_FENCE); nothing was started. Make sure its node has stopped (stop its container, or power its host "
         "off), make it reachable again, then run " + program() + " promote-standby without --force"),
        (set(), None, InvalidInput, "pool: every node can be seen: --force is for a holder that cannot be reached"),
    ],
    ids=["no-chain-fence", "all-seen"],
)  # fmt: skip
def test_force_under_keys_is_refused_in_one_line(tmp_path, unseen, chain_fence, error, message):
    job = make_job(tmp_path)
    job = Job(job.service, types.SimpleNamespace(name="pool", hooks=types.SimpleNamespace(chain_fence=chain_fence)),
              job.profile, job.rendered, job.redact, job.secrets)  # fmt: skip
    views = {"a": NodeView(A, None, False, unreachable="a: Timeout") if "a" in unseen else NodeView(A, None, True),
             "b": NodeView(B, None, True)}  # fmt: skip
    run = types.SimpleNamespace(service=job.service, job=job, observer=types.SimpleNamespace(views=lambda: views))
    with pytest.raises(error) as err:
        promote_keys.assess_keys(run, force=True)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == (EXIT_UNSAFE if error is Unsafe else 2)


def test_force_with_the_standby_unreachable_names_it_as_the_standby(tmp_path):
    """--force with the standby cut off and the holder seen: the refusal names the node for what it is, the standby
    to be promoted, and the remedy (make it reachable), not a holder that may still use the keys."""
    job = make_job(tmp_path)
    holder = Container("nodeops-pool", True, "running", "sha256:i", {"io.nodeops.hot": "true"})
    views = {"a": NodeView(A, None, False, unreachable="a: Timeout"), "b": NodeView(B, holder, True)}
    run = types.SimpleNamespace(service=job.service, job=job, observer=types.SimpleNamespace(views=lambda: views))
    with pytest.raises(Unsafe) as err:
        promote_keys.assess_keys(run, force=True)
    assert str(err.value) == (
        "pool: a cannot be reached: it is the standby to be promoted (b holds the hot keys), and the keys never go to "
        "a node that cannot be seen; make it reachable again, then promote (--force is for a holder that cannot be "
        "reached, not a standby)"
    )
