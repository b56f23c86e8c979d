"""Node actions (nodeops.run.node.NodeActions) as tables: (action, the edge's answers) -> the lines sent, in order,
what was said, and the error. The edge is a fake of the one call every command goes through (tests/unit/fake_edge):
it records lines and answers from a table; the lab tests prove the same lines on real hosts."""

from __future__ import annotations

import re

import pytest

from nodeops.errors import OperationFailed
from nodeops.run.node import SHRED_TIMEOUT, NodeActions, NoSuchImage
from nodeops.run.report import Redactor
from nodeops.secrets import MASK, Secret
from tests.unit.fake_edge import FakeEdge

IMAGE = "reg.example:5000/chainlink:2.10.0"
HELD = f'sha256:0123456789abcdef0123 ["{IMAGE.split(":2")[0]}@sha256:cd"]'
SENTINEL = "s3ntinel-Pa55word-0123456789"
PULL = f"docker pull --quiet {IMAGE}"
IMAGE_ID = f"docker image inspect --format '{{{{.Id}}}} {{{{json .RepoDigests}}}}' {IMAGE}"
PREPARE = (
    "mkdir -p -m 0755 /run/nodeops && if [ -d /run/nodeops/cl1 ]; then find /run/nodeops/cl1 -type f -exec "
    "shred -u -- {} +; fi && rm -rf -- /run/nodeops/cl1 && install -d -m 0500 -o 14933 -g 14933 /run/nodeops/cl1"
)


def write(name: str) -> str:
    return f"install -m 0400 -o 14933 -g 14933 /dev/null /run/nodeops/cl1/{name} && cat > /run/nodeops/cl1/{name}"


def actions(edge: FakeEdge, secret_files: str = "shred") -> tuple[NodeActions, list[tuple[str, dict]]]:
    said: list[tuple[str, dict]] = []
    node = NodeActions("cl1", "cl1-a", "link to cl1-a", runtime="docker", redact=Redactor([Secret(SENTINEL)]),
                       timeout=30, say=lambda message, **data: said.append((message, data)),
                       secret_files=secret_files, execute=edge)  # fmt: skip
    return node, said


@pytest.mark.parametrize(
    ("rules", "sent", "said", "error"),
    [
        ([(r"^docker image", (0, HELD, ""))], [PULL, IMAGE_ID], [f"pulled {IMAGE} (sha256:cd)"], None),
        # the registry is down: the node's own copy, said so (a tag: the one pulled last)
        ([(r"^docker pull", (1, "", "dial tcp: connection refused")), (r"^docker image", (0, HELD, ""))],
         [PULL, IMAGE_ID], [f"could not pull {IMAGE} (dial tcp: connection refused); using the image this "
                            "node holds, sha256:0123456789ab (the tag as last pulled here: a move of the tag in the "
                            "registry is not seen)"], None),
        # down, and no copy here: the pull's reason, never the inspect's
        ([(r"^docker pull", (1, "", "dial tcp: connection refused")), (r"^docker image", (1, "", "No such image"))],
         [PULL, IMAGE_ID], [], "cl1 cl1-a: `docker pull` failed: dial tcp: connection refused"),
        # the registry says there is no such image: refused even when the node holds an old copy of the tag
        ([(r"^docker pull", (1, "", "manifest unknown")), (r"^docker image", (0, HELD, ""))],
         [PULL, IMAGE_ID], [], NoSuchImage),
        # pulled, but the inspect after it fails: that is the failure (checked)
        ([(r"^docker image", (1, "", "boom"))], [PULL, IMAGE_ID], [], "cl1 cl1-a: `docker image` failed: boom"),
        # a host cut off mid-pull: the edge's own error, nothing sent after it
        ([(r"^docker pull", OperationFailed("cl1-a: connection lost: EOF"))], [PULL], [], "connection lost"),
    ],
    ids=["pulled", "registry-down-held", "registry-down-not-held", "no-such-image", "inspect-fails", "cut-off"],
)  # fmt: skip
def test_pull(rules, sent, said, error):
    edge = FakeEdge(rules)
    node, told = actions(edge)
    if error is None:
        node.pull(IMAGE)
    else:
        with pytest.raises(error if isinstance(error, type) else OperationFailed,
                           match=None if isinstance(error, type) else error):  # fmt: skip
            node.pull(IMAGE)
    assert edge.commands == sent
    assert [message for message, _ in told] == said
    assert all(s.link == "link to cl1-a" and s.timeout == 30 for s in edge.sent)


FILES = {".api": b"a@b.c\n" + SENTINEL.encode(), "config.toml": b"[Log]\n"}


@pytest.mark.parametrize(
    ("rules", "sent", "error"),
    [
        ([], [PREPARE, write(".api"), write("config.toml")], None),
        # the folder cannot be made: no file is written
        ([(r"^mkdir", (1, "", "mkdir: No space left on device"))], [PREPARE], "`mkdir -p` failed: mkdir: No space"),
        # the first file fails: the second is never sent
        ([(r"/\.api", (1, "", f"cat: write error {SENTINEL}"))], [PREPARE, write(".api")],
         rf"`install -m` failed: cat: write error {re.escape(MASK)}$"),
    ],
    ids=["uploaded", "folder-fails", "file-fails-masked"],
)  # fmt: skip
def test_upload_creates_each_file_0400_before_its_content_which_goes_on_stdin(rules, sent, error):
    edge = FakeEdge(rules)
    node, _ = actions(edge)
    if error is None:
        node.upload(FILES, 14933)
    else:
        with pytest.raises(OperationFailed, match=error) as err:
            node.upload(FILES, 14933)
        assert SENTINEL not in str(err.value)
    assert edge.commands == sent
    assert [s.stdin for s in edge.sent[1:]] == [FILES[n] for n in FILES][: len(sent) - 1]
    assert not any(SENTINEL in line for line in edge.commands)  # a value travels on stdin, never in a line


@pytest.mark.parametrize(
    ("secret_files", "names", "rules", "sent", "said", "error"),
    [
        ("shred", [".api", ".password"], [],
         ["for f in /run/nodeops/cl1/.api /run/nodeops/cl1/.password; do if [ -e \"$f\" ]; then shred -u -- \"$f\"; "
          "fi; done"], ["shredded .api, .password"], None),
        ("keep", [".api"], [], [], [], None),  # kept files: nothing sent
        ("shred", [], [], [], [], None),  # nothing to shred: nothing sent
        ("shred", [".api"], [(r"shred", OperationFailed(f"cl1-a: command timed out after {SHRED_TIMEOUT:g}s"))],
         ["for f in /run/nodeops/cl1/.api; do if [ -e \"$f\" ]; then shred -u -- \"$f\"; fi; done"], [],
         "timed out after 15s"),
    ],
    ids=["shredded", "kept", "none", "cut-off"],
)  # fmt: skip
def test_shred_within_its_own_short_timeout(secret_files, names, rules, sent, said, error):
    edge = FakeEdge(rules)
    node, told = actions(edge, secret_files)
    if error is None:
        node.shred(names)
    else:
        with pytest.raises(OperationFailed, match=error):
            node.shred(names)
    assert edge.commands == sent
    assert [m for m, _ in told] == said
    assert all(s.timeout == SHRED_TIMEOUT for s in edge.sent)


@pytest.mark.parametrize(
    ("act", "rules", "sent", "error"),
    [
        (lambda n: n.start(), [], ["docker start nodeops-cl1"], None),
        (lambda n: n.start(), [(r"start", (1, "", "Error: no container with name"))], ["docker start nodeops-cl1"],
         "cl1 cl1-a: `docker start` failed: Error: no container with name"),
        (lambda n: n.stop(10), [], ["docker stop --time 10 nodeops-cl1"], None),
        (lambda n: n.stop(10, "nodeops-cl1-previous"), [], ["docker stop --time 10 nodeops-cl1-previous"], None),
        (lambda n: n.stop(10), [(r"stop", (125, "", ""))], ["docker stop --time 10 nodeops-cl1"],
         r"`docker stop` failed: exit 125"),  # no output: the exit status is the reason
        (lambda n: n.remove(check=False), [(r"rm", (1, "", "no such container"))], ["docker rm --force nodeops-cl1"],
         None),  # an absence is no error when asked so
        (lambda n: n.remove("nodeops-cl1-previous"), [], ["docker rm --force nodeops-cl1-previous"], None),
        (lambda n: n.set_aside(), [],
         ["docker rm --force nodeops-cl1-previous >/dev/null 2>&1; docker rename nodeops-cl1 nodeops-cl1-previous"],
         None),
        (lambda n: n.set_aside(), [(r"rename", (1, "", "name in use"))],
         ["docker rm --force nodeops-cl1-previous >/dev/null 2>&1; docker rename nodeops-cl1 nodeops-cl1-previous"],
         "`docker rm` failed: name in use"),
        (lambda n: n.put_back(), [], ["docker rename nodeops-cl1-previous nodeops-cl1"], None),
    ],
    ids=["start", "start-fails", "stop", "stop-previous", "stop-fails-silently", "remove-absent", "remove-previous",
         "set-aside", "set-aside-fails", "put-back"],
)  # fmt: skip
def test_container_actions(act, rules, sent, error):
    edge = FakeEdge(rules)
    node, _ = actions(edge)
    if error is None:
        act(node)
    else:
        with pytest.raises(OperationFailed, match=error):
            act(node)
    assert edge.commands == sent


@pytest.mark.parametrize(
    ("log", "line"),
    [
        (f"boot\nfatal: cannot open database with {SENTINEL}\n----\n",
         f"last log line: fatal: cannot open database with {MASK}"),
        ("", "no log output"),
    ],
    ids=["masked", "silent"],
)  # fmt: skip
def test_last_log_is_the_last_telling_line_masked(log, line):
    edge = FakeEdge([(r"^docker logs --tail 20 nodeops-cl1 2>&1$", (0, log, ""))])
    node, _ = actions(edge)
    assert node.last_log() == line
    assert edge.commands == ["docker logs --tail 20 nodeops-cl1 2>&1"]


def test_a_run_spec_is_one_docker_run_line_and_shell_words_stay_quoted():
    """A shell-injection case: a label value with a quote and a `;` reaches docker as one word."""
    from nodeops.commands.node import RunSpec

    spec = RunSpec(runtime="docker", service="cl1", image=IMAGE, command=("node", "start"), user=14933, port=6688,
                   mount="/chainlink", labels={"variables": "{\"X\":\"a'; rm -rf /\"}"}, restart="no",
                   log_driver="json-file", log_options={}, stop_timeout=10)  # fmt: skip
    edge = FakeEdge()
    node, _ = actions(edge)
    node.run(spec)
    (line,) = edge.commands
    assert line.startswith("docker run --detach --name nodeops-cl1 ")
    assert '--label \'io.nodeops.variables={"X":"a\'"\'"\'; rm -rf /"}\'' in line
