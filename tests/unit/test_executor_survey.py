"""A change's first look at its pair (nodeops.run.survey.Survey.observe) as tables: (what each node's edge answers)
-> the lines sent, in order, what the change wants (plan.Desired) or the refusal, before anything changed.

The change is a fake of what the survey asks of it (the Surveyed protocol); its node actions are the real NodeActions
over a fake of the one edge call (tests/unit/fake_edge.py). The lab proves the same look on real hosts."""

from __future__ import annotations

import types

import pytest

from nodeops import program
from nodeops.activation import MODELS
from nodeops.errors import EXIT_UNSAFE, OperationFailed, Unsafe
from nodeops.inventory import Node
from nodeops.plan import Desired
from nodeops.run.node import NodeActions, reason
from nodeops.run.report import Redactor
from nodeops.run.survey import Survey
from tests.unit.fake_edge import FakeEdge

IMAGE = "reg.example:5000/chainlink:2.10.0"
A, B = Node("a", "10.0.0.1", 22, "active", (), "cl"), Node("b", "10.0.0.2", 22, "standby", (), "cl")
HELD = 'sha256:{} ["reg.example:5000/chainlink@sha256:cd"]'
MANIFEST = '{"Descriptor": {"digest": "sha256:ef"}}'


class FakeChange:
    """What the survey asks of a change; ``edges``: {node: its FakeEdge} (one list of lines sent, shared);
    ``lost``: {node: the error connecting to it raises} (a node unreachable); ``activation``: its model's name."""

    def __init__(self, edges, lost=None, activation="lease"):
        self.edges, self.lost = edges, dict(lost or {})
        self.service = types.SimpleNamespace(name="cl", image=IMAGE, nodes=(A, B))
        self.job = types.SimpleNamespace(rendered=types.SimpleNamespace(config_hash="c0ffee"), redact=Redactor([]),
                                         role=types.SimpleNamespace(activation=activation))  # fmt: skip
        self.job.config_hashes = dict  # one config hash for every node (Job.config_hashes)
        self.job.holder_hashes = dict  # no other for the holder of hot files (Job.holder_hashes)
        self.fleet = types.SimpleNamespace(inventory=types.SimpleNamespace(source="/inv/t.yaml", environment="prod"))
        self.runtime, self.digest, self.pulled = "docker", None, False
        self.model = MODELS[activation]
        self.said: list[str] = []
        self.tried: list[str] = []  # the nodes connected to, in order

    def connect(self, node):
        self.tried.append(node.name)
        if node.name in self.lost:
            raise self.lost[node.name]

    def on(self, node):
        return NodeActions("cl", node, f"link to {node}", runtime="docker", redact=self.job.redact, timeout=30,
                           say=lambda message, **_d: self.said.append(message), execute=self.edges[node])  # fmt: skip

    def x(self, node, command, stdin=None, check=True, timeout=None):
        return self.on(node).x(command, stdin, check, timeout)

    def why(self, res):
        return reason(res, self.job.redact)

    def say(self, _node, message, **_data):
        self.said.append(message)

    def states(self):
        return "STATES"  # what the Observer sees: its own tables (tests/unit/test_status.py)


def short(command: str) -> str:
    """A line sent, as the tables name it: "tmpfs" (deploy: created, then its type), "look tmpfs" (dry run: read
    only), "pull", "image id", "info", "manifest"."""
    if command.startswith("mkdir -p -m 0755 /run/nodeops && stat"):
        return "tmpfs"
    if command.startswith("if [ -d /run/nodeops ]; then stat"):
        return "look tmpfs"
    words = command.split()
    return {"pull": "pull", "image": "image id", "info": "info", "manifest": "manifest"}.get(words[1], command)


TMPFS, EXT4 = (r"stat --file-system", (0, "tmpfs\n", "")), (r"stat --file-system", (0, "ext2/ext3\n", ""))


@pytest.mark.parametrize(
    ("dry_run", "rules", "lost", "sent", "outcome"),
    [
        # a deploy: each node's files directory made and checked RAM-backed, then the image pulled and read back
        (False, [TMPFS, (r"^docker image", (0, HELD.format("11"), ""))], None,
         ["tmpfs", "pull", "image id", "tmpfs", "pull", "image id"],
         (Desired(IMAGE, "sha256:11", "c0ffee"), "sha256:cd")),
        # a node whose /run is on disk: refused (exit 4) before the image is pulled there
        (False, [EXT4], None, ["tmpfs"], Unsafe("cl a: /run/nodeops is on ext2/ext3, not RAM (tmpfs)")),
        # the tag resolves to two images on the two nodes: refused before anything changed
        (False, [TMPFS, (r"^docker image", (0, HELD.format("11"), ""))], None,
         ["tmpfs", "pull", "image id", "tmpfs", "pull", "image id"], "differs"),
        # a node unreachable: the run stops before any line is sent
        (False, [], {"b": OperationFailed("cl b: cannot connect")}, [], OperationFailed("cl b: cannot connect")),
        # a dry run: the directory looked at (never made), nothing pulled, the registry's digest read: the nodes
        # hold another image than the registry's, so the plan sees a change
        (True, [TMPFS, (r"^docker manifest", (0, MANIFEST, "")), (r"^docker image", (0, HELD.format("11"), ""))],
         None, ["look tmpfs", "look tmpfs", "info", "manifest", "image id", "image id"],
         (Desired(IMAGE, "unpulled:sha256:ef", "c0ffee"), "sha256:ef")),
        # ... the nodes hold the registry's image: the id they hold, so the plan sees none
        (True, [TMPFS, (r"^docker manifest", (0, MANIFEST.replace("ef", "cd"), "")),
                (r"^docker image", (0, HELD.format("11"), ""))],
         None, ["look tmpfs", "look tmpfs", "info", "manifest", "image id", "image id"],
         (Desired(IMAGE, "sha256:11", "c0ffee"), "sha256:cd")),
    ],
    ids=["deploy", "not-tmpfs", "images-differ", "unreachable", "dry-run-differs", "dry-run-held"],
)  # fmt: skip
def test_observe_checks_the_files_directory_and_pulls_before_anything_changes(dry_run, rules, lost, sent, outcome):
    sent_lines: list = []
    edges = {n: FakeEdge(rules=list(rules), sent=sent_lines) for n in ("a", "b")}
    if outcome == "differs":  # b holds another image for the same tag
        edges["b"].rules.insert(0, (r"^docker image", (0, HELD.format("22"), "")))
    edge = edges["a"]  # its ``commands``: every line sent, to either node, in order
    run = FakeChange(edges, lost)
    if isinstance(outcome, Exception) or outcome == "differs":
        error = OperationFailed if outcome == "differs" else type(outcome)
        with pytest.raises(error) as err:
            Survey(run).observe(dry_run)
        assert [short(c) for c in edge.commands] == sent
        if outcome == "differs":
            assert "resolves to different images on the nodes" in str(err.value)
        else:
            assert str(outcome) in str(err.value)
            assert not isinstance(outcome, Unsafe) or err.value.exit_code == EXIT_UNSAFE
        assert not run.pulled
        return
    desired, digest = outcome
    assert Survey(run).observe(dry_run) == ("STATES", desired)
    assert [short(c) for c in edge.commands] == sent
    assert run.pulled is not dry_run and run.digest == digest


CUT = "b (10.0.0.2:22): cannot connect after 1 attempt(s): Timeout opening channel"


@pytest.mark.parametrize(
    ("activation", "why"),
    [
        ("keys", "under activation keys a node that cannot be seen might hold the hot keys"),
        ("all", "under activation all a node that cannot be seen might be the last one serving"),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["deploy", "dry-run"])
def test_a_node_unreachable_under_keys_or_all_is_unsafe_in_one_line_before_anything(activation, why, dry_run):
    """Under keys or all a node that cannot be reached is refused as unsafe (exit 4), not a failed run (exit 1): one
    line naming it, why, and what to do; every node tried (each one lost is named), nothing sent to any."""
    sent_lines: list = []
    edges = {n: FakeEdge(rules=[TMPFS], sent=sent_lines) for n in ("a", "b")}
    run = FakeChange(edges, {"b": OperationFailed(CUT)}, activation)
    with pytest.raises(Unsafe) as err:
        Survey(run).observe(dry_run)
    assert err.value.exit_code == EXIT_UNSAFE
    assert str(err.value) == (f"cl: b cannot be reached ({CUT}): {why}, so nothing was planned and nothing "
                              f"changed; make it reachable again, then run it again (see {program()} status --env "
                              "prod)")  # fmt: skip
    assert run.tried == ["a", "b"] and sent_lines == [] and not run.pulled


def test_every_lost_node_is_named_under_keys():
    run = FakeChange({}, {n: OperationFailed(f"{n} cut") for n in ("a", "b")}, "keys")
    with pytest.raises(Unsafe, match=r"^cl: a, b cannot be reached \(a cut; b cut\): under activation keys"):
        Survey(run).observe()
