"""A role's ``init`` (review rev16c F2): its containers run under the engine's init process (`docker run --init`),
which passes a stop's SIGTERM on to the node; without it the node is PID 1, the kernel drops a signal PID 1 has no
handler for, and a stop right after a start waited out the Cardano role's 60 s ``stop_timeout``. The planned
`docker run` of each role, and the role file's key; a role that does not set it runs exactly as before."""

from __future__ import annotations

import pytest

from nodeops.commands import node as cmd
from nodeops.errors import EXIT_INVALID
from nodeops.job import run_spec
from nodeops.roles import RoleError, load_role
from tests.unit.test_commands import spec
from tests.unit.test_executor_keys import ROLE, make_job
from tests.unit.test_roles import GOOD, make_role

BEFORE = ("docker run --detach --name nodeops-cl1 --user 14933:14933 --publish 6688:6688 --restart no "
          "--stop-timeout 10 {init}--log-driver json-file --log-opt max-size=10m "
          "--label io.nodeops.config=abc --label io.nodeops.version=2.10.0 --volume /run/nodeops/cl1:/chainlink:ro "
          "reg:5000/smartcontract/chainlink:2.10.0 node -config /chainlink/config.toml")  # fmt: skip


@pytest.mark.parametrize(
    ("over", "init"),
    [
        ({}, ""),  # the default: the argv of before, word for word
        ({"init": False}, ""),
        ({"init": True}, "--init "),  # before the image: an option of `docker run`, never the node's
        ({"init": True, "runtime": "podman"}, "--init "),  # podman's own CLI takes it too (catatonit)
    ],
    ids=["default", "false", "true", "podman"],
)  # fmt: skip
def test_the_run_has_init_only_when_asked(over, init):
    argv = cmd.run(spec(**over))
    assert argv == tuple(BEFORE.format(init=init).replace("docker", over.get("runtime", "docker"), 1).split())


@pytest.mark.parametrize(
    ("role", "init"),
    [("chainlink", False), ("cardano", True)],
)  # fmt: skip
def test_the_built_in_roles(role, init):
    """Chainlink's containers are started as before (its argv, labels and config hash untouched); the Cardano node's
    under an init process: a Ctrl-C during a promotion's fence stops the fenced node right after its start."""
    assert load_role(role).init is init


def test_the_planned_run_of_a_chainlink_job_is_that_of_before(job):
    argv = cmd.run(run_spec(job))
    at = argv.index("--stop-timeout")
    assert "--init" not in argv and argv[at : at + 3] == ("--stop-timeout", "10", "--log-driver")


@pytest.mark.parametrize(("keys", "init"), [("", False), ("init: false\n", False), ("init: true\n", True)])
def test_the_planned_run_of_a_job_follows_its_roles_init(tmp_path, keys, init):
    """The whole way from role.yaml to argv, with and without the hot keys; the config hash does not move with it
    (a pool deployed before keeps its containers: the next change of them starts them under init)."""
    job = make_job(tmp_path / "a", role=ROLE.replace("stop_timeout: 5\n", f"stop_timeout: 5\n{keys}"))
    plain = make_job(tmp_path / "b")
    for hot in (False, True):
        argv = cmd.run(run_spec(job, "sha256:d", hot=hot))
        assert ("--init" in argv) is init
        if init:
            assert argv[argv.index("--init") - 2 : argv.index("--init")] == ("--stop-timeout", "5")
        assert [w for w in argv if w != "--init"] == list(cmd.run(run_spec(plain, "sha256:d", hot=hot)))


@pytest.mark.parametrize("value", ["1", "'true'", "[true]"])
def test_a_bad_init_is_refused_naming_the_file_and_key(tmp_path, value):
    root = make_role(tmp_path, GOOD.replace("stop_timeout: 5\n", f"stop_timeout: 5\ninit: {value}\n", 1))
    with pytest.raises(RoleError) as err:
        load_role("thing", [root])
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert (err.value.file, err.value.where) == (str(root / "thing" / "role.yaml"), "init")
