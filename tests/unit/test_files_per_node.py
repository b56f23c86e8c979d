"""Issue 16: files per node. A role whose templates read ``node`` or ``nodes`` is rendered once per node
(render.render_nodes, Job.at): each node gets its own files, and its own config hash over them, so two nodes given
the same bytes share a hash and a node is compared, planned and started with its own files. A role whose templates
read neither renders once, every node the same bytes and hash as before (the Chainlink hashes:
test_data_files.test_chainlink_renders_hashes_and_labels_as_before). Tables over a 4-node pool with kinds, and a
deploy carried out on the keys tables' played container engine (no host touched)."""

from __future__ import annotations

import shlex

import pytest

from nodeops.diff import Side, service_diff
from nodeops.facts.container import Container
from nodeops.inventory import Service
from nodeops.job import Job
from nodeops.plan import Desired
from nodeops.render import RenderedFile, render, render_nodes
from nodeops.roles import load_role
from nodeops.run.report import Redactor
from nodeops.secrets import Secret
from tests.unit.test_executor_groups import POOL, R1, R2, A, B
from tests.unit.test_executor_keys import KES, NAME, PW, VRF, Engine, Keys, check_secrets, container, seen
from tests.unit.test_node_kinds import POOL as KINDS_POOL
from tests.unit.test_node_kinds import POOL_ROLE
from tests.unit.test_roles import make_role

TOPOLOGY = (  # a relay's peers: every other node; a producer's: the relays only
    "kind={{ node.kind }}\n"
    "{% for n in nodes if n.name != node.name and (node.kind == 'relay' or n.kind == 'relay') %}"
    "peer={{ n.name }}@{{ n.host }}\n{% endfor %}"
)


def kinds_role(tmp_path, app: str = TOPOLOGY, extra: dict[str, str] | None = None):
    templates = {"app.j2": app, "pw.j2": "{{ secrets.pw | line }}\n", **(extra or {})}
    return load_role("thing", [make_role(tmp_path, POOL_ROLE, templates=templates)])


SECRETS = {"pw": Secret("hunter2", "pw")}
SECRET_NAMES = ("pw", "kes", "vrf")


def test_a_pool_of_four_renders_each_node_its_own_file(tmp_path):
    nodes = render_nodes(kinds_role(tmp_path), "main", KINDS_POOL, SECRETS)
    assert {n: r.files["app.conf"].data.decode() for n, r in nodes.items()} == {
        "r1": "kind=relay\npeer=r2@10.0.0.2\npeer=p@10.0.0.4\npeer=s@10.0.0.5\n",
        "r2": "kind=relay\npeer=r1@10.0.0.1\npeer=p@10.0.0.4\npeer=s@10.0.0.5\n",
        "p": "kind=producer\npeer=r1@10.0.0.1\npeer=r2@10.0.0.2\n",
        "s": "kind=producer\npeer=r1@10.0.0.1\npeer=r2@10.0.0.2\n",
    }
    assert all(r.files[".pw"].data == b"hunter2\n" for r in nodes.values())  # a file that does not read the node


def test_the_config_hash_differs_only_where_the_nodes_files_differ(tmp_path):
    hashes = {n: r.config_hash for n, r in render_nodes(kinds_role(tmp_path), "main", KINDS_POOL, SECRETS).items()}
    assert hashes["p"] == hashes["s"]  # the same bytes: one hash (a promotion compares the two)
    assert len({hashes["r1"], hashes["r2"], hashes["p"]}) == 3


@pytest.mark.parametrize(("app", "extra", "per_node"), [
    ("a={{ vars.A | raw }}\n", {}, False),  # reads neither: rendered once
    ("{% include 'peers.j2' %}", {"peers.j2": "{{ node.name }}\n"}, True),  # through an include
    ("{% from 'm.j2' import f %}{{ f(nodes | length) }}\n", {"m.j2": "{% macro f(n) %}{{ n }}{% endmacro %}"}, True),
    ("{% set node = 'x' %}{{ node }}\n", {}, False),  # its own variable of that name: not the node
])  # fmt: skip
def test_a_role_renders_per_node_only_when_a_template_reads_the_node(tmp_path, app, extra, per_node):
    role = kinds_role(tmp_path, app, extra)
    nodes = render_nodes(role, "main", KINDS_POOL, SECRETS)
    assert bool(nodes) is per_node
    if not per_node:  # the service's one rendering, for every node, as before
        once = render(role, "main", KINDS_POOL, SECRETS)
        job = Job(KINDS_POOL, role, "main", once, Redactor([]), SECRETS)
        assert job.at("r1") is job and job.config_hashes() == {}


def test_a_job_at_a_node_is_that_nodes_rendering(tmp_path):
    role = kinds_role(tmp_path)
    nodes = render_nodes(role, "main", KINDS_POOL, SECRETS)
    job = Job(KINDS_POOL, role, "main", nodes["r1"], Redactor([]), SECRETS, nodes)
    assert job.at("p").rendered is nodes["p"] and job.at("p").at("r2").rendered is nodes["r2"]
    assert job.config_hashes() == {n: r.config_hash for n, r in nodes.items()}


@pytest.mark.parametrize(("node", "label", "matches"), [
    ("r1", "h-r1", True), ("r2", "h-r1", False), ("r2", "h-r2", True), ("p", "one", True), (None, "one", True),
])  # fmt: skip
def test_desired_matches_each_node_against_its_own_hash(node, label, matches):
    desired = Desired("img", "sha256:img", "one", {"r1": "h-r1", "r2": "h-r2"})
    c = Container("c", True, "running", "sha256:img", {"io.nodeops.config": label})
    assert desired.matches(c, node) is matches


# ---------------------------------------------------------------- carried out, on the played engine

PEERS = "{% for n in nodes if n.name != node.name %}{{ n.name }} {% endfor %}\n"  # conf.j2: each node's own


def per_node_job(tmp_path) -> Job:
    """The groups tables' pool (relays r1, r2 under all; producers a, b under keys), its node.conf each node's."""
    (tmp_path / "roles" / "pool").mkdir(parents=True)
    (tmp_path / "roles" / "pool" / "role.yaml").write_text(POOL)
    (tmp_path / "templates" / "pool").mkdir(parents=True)
    for name, body in {
        "conf.j2": PEERS,
        **{f"{n}.j2": f"{{{{ secrets.{n} | line }}}}\n" for n in SECRET_NAMES},
    }.items():
        (tmp_path / "templates" / "pool" / name).write_text(body)
    role = load_role("pool", [tmp_path / "roles"])
    service = Service("pool", "pool", "reg/node:2", "docker", {}, {}, (R1, R2, A, B))
    secrets = {"kes": Secret(KES, "kes"), "vrf": Secret(VRF, "vrf"), "pw": Secret(PW, "pw")}
    nodes = render_nodes(role, "main", service, secrets)
    return Job(service, role, "main", nodes["r1"], Redactor(list(secrets.values())), secrets, nodes)


def written(engine: Engine, name: str) -> dict[str, bytes]:
    return {node: stdin for node, command, stdin in engine.sent if command.endswith(f"/{name}") and stdin}


def fresh_deploy(job: Job) -> tuple[Engine, Desired]:
    """``job`` deployed from nothing, each node on its own hash, on the played engine: (the engine, what was wanted)."""
    engine = Engine({})
    run = Keys(job, engine)
    want = Desired(job.service.image, "sha256:img", job.rendered.config_hash, job.config_hashes())
    run.execute(run.model.plan_change(job.service, seen(run), want))
    return engine, want


def test_a_deploy_gives_each_node_its_own_files_and_hash_and_then_is_up_to_date(tmp_path):
    job = per_node_job(tmp_path)
    engine, want = fresh_deploy(job)
    assert {n: d.decode() for n, d in written(engine, "node.conf").items()} == {
        "r1": "r2 a b \n", "r2": "r1 a b \n", "a": "r1 r2 b \n", "b": "r1 r2 a \n"}  # fmt: skip
    labels = {node: dict(w.split("=", 1) for w in shlex.split(c)[1:] if w.startswith("io.nodeops.config="))
              for node, c, _ in engine.sent if c.startswith("docker run")}  # fmt: skip
    assert {n: v["io.nodeops.config"] for n, v in labels.items()} == job.config_hashes()
    check_secrets(engine, {"a"})
    again = Keys(job, engine)
    assert again.model.plan_change(job.service, seen(again), want).steps == ()  # each node runs its own: no change


def test_one_nodes_changed_file_replaces_that_node_alone(tmp_path):
    job = per_node_job(tmp_path)
    hashes = job.config_hashes()
    boxes = {n: {NAME: container(job, hot=n == "a", config=hashes[n] if n != "r2" else "old")} for n in hashes}
    run = Keys(job, Engine(boxes))
    want = Desired(job.service.image, "sha256:img", job.rendered.config_hash, hashes)
    assert [f"{s.action} {s.node}" for s in run.model.plan_change(job.service, seen(run), want).steps
            if s.action == "replace"] == ["replace r2"]  # fmt: skip


def test_a_diff_compares_each_node_with_its_own_files():
    def side(text: str) -> Side:
        return Side("reg/node:2", "sha256:1", {}, {"t.json": RenderedFile("t.json", text.encode(), False)})

    olds = {"r1": side("peers r2\n"), "r2": side("peers r1\n")}
    diff = service_diff("pool", olds, side("peers r2\n"), own={"r1": side("peers r2\n"), "r2": side("peers r1 r3\n")})
    assert [(g.nodes, [(c.kind, c.name) for c in g.changes]) for g in diff.groups] == [
        (("r1",), []), (("r2",), [("file", "t.json")])]  # fmt: skip
