"""The other tools, set up from a nodeops inventory: OpenSSH (plain `ssh -J`) and Ansible.

Both go through the inventory's bastion with OpenSSH's ProxyJump and verify
every host key against a known_hosts file made from the inventory's pins
(StrictHostKeyChecking yes; nothing is added or learnt). One ssh_config,
passed with ``-F``, carries it all: ssh hands ``-F`` on to the jump process,
so the bastion hop reads the same file (options given with ``-o`` would
reach only the destination, and the bastion's key would be checked against
~/.ssh/known_hosts).

The builders (known_hosts, ssh_config, the Ansible inventory and the
playbook's environment) are pure; ``playbook`` runs ansible-playbook.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import yaml

from nodeops.commands import node as cmd
from nodeops.edges.ssh import known_hosts_name
from nodeops.inventory import Inventory
from nodeops.job import Job, run_spec

BASTION = "nodeops-bastion"  # the bastion's name in the generated ssh_config and Ansible inventory
PLAYBOOK = Path(__file__).resolve().parent / "ansible" / "deploy.yml"
SECRET_ENV_PREFIX = "NODEOPS_BENCH_"


def known_hosts(inv: Inventory) -> str:
    """An OpenSSH known_hosts file with every key the inventory pins (bastion and nodes)."""
    hosts = [(b.host, b.port, b.host_keys) for b in inv.bastions.values()]
    hosts += [(n.host, n.port, n.host_keys) for n in inv.nodes]
    return "".join(f"{known_hosts_name(h, p)} {k.line}\n" for h, p, keys in hosts for k in keys)


def ssh_config(inv: Inventory, known_hosts_file: Path) -> str:
    """ssh_config for ``ssh -F``: the bastion under the name BASTION, the nodes by address; pinned keys only.

    A ``known_hosts`` file the inventory names (bastion or ssh) is read as well, as nodeops reads it."""
    (b,), s = inv.bastions.values(), inv.ssh  # the bench's lab has one bastion
    files = [known_hosts_file, *dict.fromkeys(p for p in (b.known_hosts, s.known_hosts) if p)]

    def identity(path: Path | None) -> list[str]:
        return [f"  IdentityFile {shlex.quote(str(path))}"] if path else []

    lines = [
        f"# Generated from {inv.source} by bench/compare.py: host keys as pinned there, nothing learnt.",
        f"Host {BASTION}",
        f"  HostName {b.host}",
        f"  Port {b.port}",
        f"  User {b.user}",
        *identity(b.identity_file),
        f"Host * !{BASTION}",
        f"  User {s.user}",
        *identity(s.identity_file),
        "Host *",
        "  IdentitiesOnly yes",
        "  UserKnownHostsFile " + " ".join(shlex.quote(str(f)) for f in files),
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  UpdateHostKeys no",
        "  CheckHostIP no",
        "  BatchMode yes",
        "  ForwardAgent no",
        f"  ConnectTimeout {int(s.connect_timeout)}",
    ]
    return "\n".join(lines) + "\n"


def ssh_jump_argv(config: Path, host: str, port: int, command: str) -> list[str]:
    """Plain OpenSSH through the bastion: ``ssh -F CONFIG -J BASTION -p PORT HOST COMMAND``."""
    return ["ssh", "-F", str(config), "-J", BASTION, "-p", str(port), host, command]


def ansible_inventory(inv: Inventory, config: Path, node_names: Sequence[str] | None = None,
                      service_vars: Mapping[str, Mapping[str, object]] | None = None,
                      python: str = "/usr/bin/python3") -> dict:  # fmt: skip
    """An Ansible YAML inventory: the nodes (``node_names``, default all) in groups ``nodes``, ``active`` and
    ``standby`` by their preferred role, each with its ``nodeops_service`` and that service's ``service_vars``;
    the bastion as BASTION (for tasks delegated to it). Connections: OpenSSH with ``-F config`` and
    ProxyJump through the bastion."""
    chosen = inv.select_nodes(list(node_names or ()))
    hosts = {
        n.name: {
            "ansible_host": n.host,
            "ansible_port": n.port,
            "nodeops_service": n.service,
            **(service_vars or {}).get(n.service, {}),
        }
        for n in chosen
    }
    by_role = {role: {n.name: None for n in chosen if n.preferred == role} for role in ("active", "standby")}
    common = f"-F {shlex.quote(str(config))}"
    return {
        "all": {
            "vars": {"ansible_connection": "ssh", "ansible_python_interpreter": python},
            "children": {
                "nodes": {
                    "hosts": hosts,
                    "vars": {"ansible_user": inv.ssh.user, "ansible_ssh_common_args": f"{common} -J {BASTION}"},
                },
                "active": {"hosts": by_role["active"]},
                "standby": {"hosts": by_role["standby"]},
                "bastion": {"hosts": {BASTION: {"ansible_host": BASTION, "ansible_ssh_common_args": common}}},
            },
        }
    }


def secret_variable(service: str, name: str) -> str:
    """The environment variable that carries one secret of one service to the playbook."""
    return f"{SECRET_ENV_PREFIX}{service}_{name}".upper().replace("-", "_").replace(".", "_")


def playbook_environment(jobs: Sequence[Job]) -> dict[str, str]:
    """Every secret the templates read, as environment variables (lookup('env')): never in argv or on disk."""
    return {secret_variable(j.service.name, name): s.reveal() for j in jobs for name, s in j.secrets.items()}


def service_vars(job: Job) -> dict[str, object]:
    """What the playbook needs of one service, none of it secret: the template variables, the files,
    and the very `docker run` argv nodeops uses."""
    found = {
        "image": job.service.image,
        "uid": job.role.user,
        "port": job.role.port,
        "health": job.role.health,
        "standby_log": job.role.standby_log,
        "files_dir": cmd.files_dir(job.service.name),
        "start_files": list(job.files_read("start")),
        "all_files": list(job.all_files),
        "docker_run": list(cmd.run(run_spec(job))),
        "vars": dict(job.variables),
        "secret_env": secret_variable(job.service.name, ""),
    }
    return {f"nodeops_{k}": v for k, v in found.items()}  # Ansible reserves names such as `port` and `vars`


@contextlib.contextmanager
def openssh_files(inv: Inventory) -> Iterator[Path]:
    """A private directory holding ``known_hosts`` and ``ssh_config`` for ``inv``; yields the config's path."""
    with tempfile.TemporaryDirectory(prefix="nodeops-bench-") as d:
        (Path(d) / "known_hosts").write_text(known_hosts(inv))
        config = Path(d) / "ssh_config"
        config.write_text(ssh_config(inv, Path(d) / "known_hosts"))
        yield config


def ansible_environment(workdir: Path, forks: int) -> dict[str, str]:
    """Ansible's settings for a run: ``forks``, host keys checked, pipelining, connection multiplexing with
    its sockets in ``workdir`` (a fresh one per run: no warm connection carried over), and the controller's
    temporary files (the template module renders there before copying) in ``workdir`` too: give one on
    tmpfs, as nodeops keeps secrets in memory."""
    return {
        **os.environ,
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(workdir / "cp"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
        "ANSIBLE_REMOTE_TMP": "/run/nodeops/.ansible-tmp",  # the node's tmpfs, not the login user's home
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_STDOUT_CALLBACK": "default",
    }


def close_masters(workdir: Path, config: Path) -> None:
    """End the ControlPersist masters Ansible left in ``workdir`` (the next run starts cold)."""
    for sock in (workdir / "cp").glob("*"):
        subprocess.run(["ssh", "-F", str(config), "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                       capture_output=True, timeout=10)  # fmt: skip


def tool(name: str) -> str:
    """An Ansible command installed next to this Python (the venv's)."""
    return str(Path(sys.executable).with_name(name))


@contextlib.contextmanager
def ansible_workdir(inv: Inventory, config: Path, nodes: Sequence[str], forks: int,
                    jobs: Sequence[Job] = ()) -> Iterator[tuple[Path, dict[str, str]]]:  # fmt: skip
    """A fresh directory on tmpfs with the Ansible inventory of ``nodes`` (``hosts.yaml``), and the environment
    to run Ansible in (the jobs' secrets included); the masters it leaves are closed at the end."""
    with tempfile.TemporaryDirectory(prefix="nodeops-ansible-", dir="/dev/shm") as d:
        work = Path(d)
        (work / "tmp").mkdir()
        (work / "cp").mkdir()
        per_service = {j.service.name: service_vars(j) for j in jobs}
        (work / "hosts.yaml").write_text(yaml.safe_dump(ansible_inventory(inv, config, nodes, per_service)))
        try:
            yield work / "hosts.yaml", {**ansible_environment(work, forks), **playbook_environment(jobs)}
        finally:
            close_masters(work, config)


def timed(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started, res


def deploy(inv: Inventory, config: Path, jobs: Sequence[Job], forks: int,
           timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:  # fmt: skip
    """bench/ansible/deploy.yml on the jobs' pairs: (seconds, the finished ansible-playbook)."""
    nodes = [n.name for j in jobs for n in j.service.nodes]
    with ansible_workdir(inv, config, nodes, forks, jobs) as (hosts, env):
        return timed([tool("ansible-playbook"), "-i", str(hosts), str(PLAYBOOK)], env, timeout)


def adhoc(inv: Inventory, config: Path, nodes: Sequence[str], forks: int, module: str, args: str,
          timeout: float = 600) -> tuple[float, int]:  # fmt: skip
    """``ansible nodes -m MODULE -a ARGS`` (one line per host): (seconds, hosts that did not succeed)."""
    with ansible_workdir(inv, config, nodes, forks) as (hosts, env):
        seconds, res = timed([tool("ansible"), "nodes", "-i", str(hosts), "-o", "-m", module, "-a", args], env, timeout)
    ok = sum(1 for line in res.stdout.splitlines() if " | CHANGED" in line or " | SUCCESS" in line)
    return seconds, len(nodes) - ok
