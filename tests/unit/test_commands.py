"""Node command builders: exact argv, quoting once, no secret ever in an argument."""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nodeops.commands import node as cmd
from nodeops.facts.files import filesystem_type
from nodeops.facts.image import (
    insecure_registry,
    manifest_inspect,
    parse_image_id,
    parse_manifest_digest,
    registry_config,
    registry_of,
)


def spec(**over) -> cmd.RunSpec:
    base = dict(runtime="docker", service="cl1", image="reg:5000/smartcontract/chainlink:2.10.0",
                command=("node", "-config", "/chainlink/config.toml"), user=14933, port=6688, mount="/chainlink",
                labels={"config": "abc", "version": "2.10.0"}, restart="no", log_driver="json-file",
                log_options={"max-size": "10m"}, stop_timeout=10)  # fmt: skip
    return cmd.RunSpec(**(base | over))


def test_docker_run():
    assert cmd.run(spec()) == tuple(
        "docker run --detach --name nodeops-cl1 --user 14933:14933 --publish 6688:6688 --restart no "
        "--stop-timeout 10 --log-driver json-file --log-opt max-size=10m "
        "--label io.nodeops.config=abc --label io.nodeops.version=2.10.0 "
        "--volume /run/nodeops/cl1:/chainlink:ro "
        "reg:5000/smartcontract/chainlink:2.10.0 node -config /chainlink/config.toml".split()
    )


@pytest.mark.parametrize(
    ("over", "published", "mounted"),
    [
        ({}, "--publish 6688:6688", "--volume /run/nodeops/cl1:/chainlink:ro"),  # a role without either: as before
        ({"ports": (3001, 12798)}, "--publish 6688:6688 --publish 3001:3001 --publish 12798:12798",
         "--volume /run/nodeops/cl1:/chainlink:ro"),
        ({"volumes": {"db": "/data/db"}}, "--publish 6688:6688",
         "--volume /run/nodeops/cl1:/chainlink:ro --volume nodeops-cl1.db:/data/db"),
        ({"ports": (3001,), "volumes": {"db": "/data/db", "ipc": "/ipc"}}, "--publish 6688:6688 --publish 3001:3001",
         "--volume /run/nodeops/cl1:/chainlink:ro --volume nodeops-cl1.db:/data/db --volume nodeops-cl1.ipc:/ipc"),
    ],
    ids=["none", "ports", "volume", "both"],
)  # fmt: skip
def test_docker_run_publishes_each_port_and_mounts_each_volume_by_name(over, published, mounted):
    """Issue 16: each further port on the same host port as in the container; each volume by its Docker volume name,
    read-write (created by this run when the host has none; no host path, no option that could drop it)."""
    assert cmd.run(spec(**over)) == tuple(
        f"docker run --detach --name nodeops-cl1 --user 14933:14933 {published} --restart no "
        "--stop-timeout 10 --log-driver json-file --log-opt max-size=10m "
        f"--label io.nodeops.config=abc --label io.nodeops.version=2.10.0 {mounted} "
        "reg:5000/smartcontract/chainlink:2.10.0 node -config /chainlink/config.toml".split()
    )


def test_docker_run_v1_env_file_and_awslogs():
    argv = cmd.run(spec(runtime="podman", env_file=".env", log_driver="awslogs",
                        log_options={"awslogs-group": "/chainlink/prod", "awslogs-region": "us-east-1"}))  # fmt: skip
    assert argv[0] == "podman"
    assert argv[argv.index("--env-file") + 1] == "/run/nodeops/cl1/.env"
    assert "awslogs-group=/chainlink/prod" in argv and "awslogs-region=us-east-1" in argv


def test_file_commands_carry_no_content_and_quote_names():
    write = cmd.write_file("cl1", ".api", 14933)
    assert write == ("install -m 0400 -o 14933 -g 14933 /dev/null /run/nodeops/cl1/.api "
                     "&& cat > /run/nodeops/cl1/.api")  # fmt: skip
    evil = cmd.write_file("cl1", "x; rm -rf /", 14933)
    assert shlex.split(evil)[8] == "/run/nodeops/cl1/x; rm -rf /"  # one word, never a second command
    assert cmd.shred("cl1", [".api", "secrets.toml"]) == (
        "for f in /run/nodeops/cl1/.api /run/nodeops/cl1/secrets.toml; "
        'do if [ -e "$f" ]; then shred -u -- "$f"; fi; done'
    )
    prepared = cmd.prepare_dir("cl1", 14933)
    assert "find /run/nodeops/cl1 -type f -exec shred -u -- {} +" in prepared  # leftovers shredded first
    assert prepared.endswith("install -d -m 0500 -o 14933 -g 14933 /run/nodeops/cl1")


def test_simple_commands():
    assert cmd.pull("docker", "img:1") == ("docker", "pull", "--quiet", "img:1")
    assert cmd.stop("podman", "nodeops-cl1", 10) == ("podman", "stop", "--time", "10", "nodeops-cl1")
    assert cmd.rename("docker", "a", "b") == ("docker", "rename", "a", "b")
    assert filesystem_type("/run/nodeops") == ("stat", "--file-system", "--format", "%T", "/run/nodeops")
    assert cmd.sh(("echo", "a b"), ("true",)) == "echo 'a b' && true"


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("smartcontract/chainlink:2.10.0", "2.10.0"),
        ("reg:5000/smartcontract/chainlink:2.11.0", "2.11.0"),
        ("reg:5000/smartcontract/chainlink", "latest"),
        ("smartcontract/chainlink:2.10.0@sha256:" + "a" * 64, "2.10.0"),
    ],
)
def test_image_tag(image, tag):
    assert cmd.image_tag(image) == tag


def test_parse_image_id_picks_the_digest_of_this_repository():
    out = 'sha256:123 ["other/repo@sha256:999","reg:5000/smartcontract/chainlink@sha256:abc"]\n'
    assert parse_image_id(out, "reg:5000/smartcontract/chainlink:2.10.0") == ("sha256:123", "sha256:abc")
    assert parse_image_id("sha256:123 []", "local/image:1") == ("sha256:123", None)


# -- the dry run's registry digest, read without pulling ---------------------------------------------------------
# podman's, as a lab node answers; then dockerd's (its default CIDR, 127.0.0.0/8, and one set by an operator)
LAB_INFO = ('{"IndexConfigs":{"10.243.0.3:5000":{"Mirrors":[],"Name":"10.243.0.3:5000","Official":false,'
            '"Secure":false}},"InsecureRegistryCIDRs":[],"Mirrors":null}')  # fmt: skip
DOCKERD_INFO = ('{"IndexConfigs":{"docker.io":{"Name":"docker.io","Secure":true,"Official":true}},'
                '"InsecureRegistryCIDRs":["127.0.0.0/8","10.9.0.0/16"]}')  # fmt: skip


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("smartcontract/chainlink:2.10.0", "docker.io"),
        ("chainlink", "docker.io"),
        ("10.243.0.3:5000/smartcontract/chainlink:2.10.0", "10.243.0.3:5000"),
        ("public.ecr.aws/chainlink/chainlink:2.10.0@sha256:ab", "public.ecr.aws"),
        ("localhost/chainlink:1", "localhost"),
    ],
)
def test_registry_of(image, registry):
    assert registry_of(image) == registry


@pytest.mark.parametrize(
    ("image", "info", "insecure"),
    [
        ("10.243.0.3:5000/smartcontract/chainlink:2.10.0", LAB_INFO, True),
        ("10.243.0.4:5000/smartcontract/chainlink:2.10.0", LAB_INFO, False),
        ("smartcontract/chainlink:2.10.0", DOCKERD_INFO, False),
        ("10.9.1.2:5000/chainlink:2.10.0", DOCKERD_INFO, True),
        ("127.0.0.1:5000/chainlink:2.10.0", DOCKERD_INFO, True),
        ("registry.example:5000/chainlink:2.10.0", DOCKERD_INFO, False),
        ("10.9.1.2:5000/chainlink:2.10.0", "Error: cannot connect", False),
        ("10.9.1.2:5000/chainlink:2.10.0", "", False),
    ],
    ids=["lab", "other-host", "hub", "cidr", "loopback", "name", "not-json", "empty"],
)
def test_insecure_registry_follows_the_engine(image, info, insecure):
    assert insecure_registry(image, info) is insecure


def test_manifest_inspect_pulls_nothing_and_is_insecure_only_when_the_engine_is():
    image = "reg:5000/smartcontract/chainlink:2.11.0"
    assert manifest_inspect("docker", image, False) == ("docker", "manifest", "inspect", "--verbose", image)
    assert manifest_inspect("docker", image, True)[-2:] == ("--insecure", image)
    assert manifest_inspect("podman", image, False) is None
    assert registry_config("docker") == ("docker", "info", "--format", "{{json .RegistryConfig}}")


DIGEST = "sha256:2f28f8bad9f7b16e3736ac21e0930a280c646eb527746335c44d6a1c0adca2ee"


@pytest.mark.parametrize(
    ("output", "digest"),
    [
        ('{"Ref": "r:5000/c:2.11.0", "Descriptor": {"mediaType": "application/vnd.oci.image.manifest.v1+json", '
         f'"digest": "{DIGEST}", "size": 349}}, "OCIManifest": {{}}}}', DIGEST),
        (f'[{{"Ref": "c:2.11.0", "Descriptor": {{"digest": "{DIGEST}", "platform": {{"os": "linux"}}}}}}]', None),
        ("no such manifest: r:5000/c:2.11.0", None),
        ('{"Descriptor": {"digest": "md5:0"}}', None),
        ("", None),
    ],
    ids=["manifest", "multi-platform-list", "error", "not-sha256", "empty"],
)  # fmt: skip
def test_parse_manifest_digest(output, digest):
    assert parse_manifest_digest(output) == digest


# -- until_closed: a node command that ends with its SSH session (whose end closes the command's stdin) -----------
def run_until_closed(argv: list[str]) -> subprocess.Popen:
    """The line until_closed builds, in a real sh, its stdin a pipe left open as an SSH session's is."""
    return subprocess.Popen(["sh", "-c", cmd.until_closed(argv)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_until_closed_gives_the_commands_output_and_exit_status_while_the_session_lasts():
    proc = run_until_closed(["sh", "-c", "echo out; echo err >&2; exit 3"])
    try:
        assert proc.wait(timeout=10) == 3  # stdin still open: the command ended by itself
        assert (proc.stdout.read(), proc.stderr.read()) == ("out\n", "err\n")
    finally:
        proc.stdin.close()  # the watcher's reader ends too
        proc.kill()


def test_until_closed_ends_the_command_when_the_session_closes():
    proc = run_until_closed(["sh", "-c", "echo $$; exec sleep 60"])  # `docker logs --follow`, never ending
    try:
        pid = int(proc.stdout.readline())
        assert Path(f"/proc/{pid}").exists()
        proc.stdin.close()  # what sshd does when the session closes
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
        for _ in range(100):  # bounded: 5 s
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), "the command outlived its session"
    finally:
        proc.kill()


def test_until_closed_quotes_every_word_once(tmp_path):
    marker = tmp_path / "ran"
    proc = run_until_closed(["echo", f"$(touch {marker})", "a  b", "';"])
    try:
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == f"$(touch {marker}) a  b ';\n" and not marker.exists()
    finally:
        proc.stdin.close()
        proc.kill()
