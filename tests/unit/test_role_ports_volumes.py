"""Issue 16: a role's further published ports and its writable volumes (role.yaml ``ports:`` and ``volumes:``), as
tables: what role.yaml refuses (exit 2, the file and the key), what a service and two services on one host refuse,
the config hash (a role without either keeps its hash: Chainlink's pinned) and the `docker run` of a job.
test_executor_volumes.py carries a volume across a replace and a put-back."""

from __future__ import annotations

import dataclasses

import pytest

from nodeops.commands.node import run as docker_run
from nodeops.commands.node import volume_name
from nodeops.errors import EXIT_INVALID, InventoryError
from nodeops.job import run_spec
from nodeops.render import render
from nodeops.roles import BUILTIN_ROLES, BUILTIN_TEMPLATES, RoleError, check_service, load_role, role_for
from tests.unit.test_executor_keys import ROLE, make_job
from tests.unit.test_render import secrets, service
from tests.unit.test_roles import GOOD, make_role

PUBLISHED = "mount: /data\nports: {node-to-node: 3001, metrics: 12798}\nvolumes: {db: /var/lib/node/db}\n"


@pytest.mark.parametrize(
    ("keys", "where", "problem"),
    [
        ("ports: {metrics: 0}", "ports.metrics", "expected an integer 1..65535, got 0"),
        ("ports: {metrics: 65536}", "ports.metrics", "expected an integer 1..65535, got 65536"),
        ("ports: {metrics: '12798'}", "ports.metrics", "expected an integer 1..65535"),
        ("ports: [3001]", "ports", "expected a mapping"),
        ("ports: {Metrics: 12798}", "ports.Metrics", "expected a port name matching [a-z0-9][a-z0-9_-]*"),
        ("ports: {metrics: 8080}", "ports.metrics",
         "port 8080 is the role's port (where the health path is asked) already: each port is published once"),
        ("ports: {a: 3001, b: 3001}", "ports.b", "port 3001 is ports.a already"),
        # a name given twice: the loader's own refusal, at its line (a mapping holds a name once)
        ("ports: {metrics: 12798, metrics: 12799}", "line 6, column 25",
         "invalid YAML: duplicate key 'metrics'"),
        ("volumes: {db: data/db}", "volumes.db", "expected an absolute path in the container"),
        ("volumes: {db: /x/../data/db}", "volumes.db", "expected an absolute path in the container"),
        ("volumes: {DB: /db}", "volumes.DB", "expected a volume name matching"),
        ("volumes: {db: /data}", "volumes.db", "'/data' overlaps the role's mount (the read-only tmpfs of its files)"),
        ("volumes: {db: /data/db}", "volumes.db", "overlaps the role's mount"),
        ("volumes: {db: //data/./db/}", "volumes.db", "overlaps the role's mount"),
        ("volumes: {db: /}", "volumes.db", "overlaps the role's mount"),  # the mount under a volume
        ("volumes: {db: /var/db, logs: /var/db}", "volumes.logs", "'/var/db' overlaps volumes.db, /var/db"),
        ("volumes: {db: /var/db, logs: /var/db/logs}", "volumes.logs", "overlaps volumes.db"),
        ("volumes: {logs: /var/db/logs, db: /var/db}", "volumes.db", "overlaps volumes.logs"),
    ],
)  # fmt: skip
def test_role_yaml_refuses_a_bad_port_or_volume_naming_the_file_and_key(tmp_path, keys, where, problem):
    root = make_role(tmp_path, GOOD.replace("mount: /data\n", f"mount: /data\n{keys}\n", 1))
    with pytest.raises(RoleError) as err:
        load_role("thing", [root])
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert (err.value.file, err.value.where) == (str(root / "thing" / "role.yaml"), where)
    assert problem in err.value.problem, err.value.problem


@pytest.mark.parametrize(
    "keys",
    ["", "ports: {}\nvolumes: {}", "ports: null", "ports: {node-to-node: 3001, metrics: 12798}",
     "volumes: {db: /var/lib/node/db, logs: /var/log/node}", "volumes: {db: /database}", "volumes: {db: /dat}"],
)  # fmt: skip
def test_good_ports_and_volumes_load_in_the_files_order(tmp_path, keys):
    role = load_role("thing", [make_role(tmp_path, GOOD.replace("mount: /data\n", f"mount: /data\n{keys}\n", 1))])
    assert list(role.ports.items()) == ([("node-to-node", 3001), ("metrics", 12798)] if "3001" in keys else [])
    assert all(path.startswith("/") and path != "/data" for path in role.volumes.values())


def pool(tmp_path, keys: str = PUBLISHED):
    text = GOOD.replace("mount: /data\n", keys, 1)
    return load_role("thing", [make_role(tmp_path, text)])


def test_a_services_own_port_may_not_be_one_of_its_roles_ports(tmp_path):
    role = pool(tmp_path)
    check_service(role, service(), "/inv/prod.yaml")  # the role's port 8080: apart from 3001 and 12798
    with pytest.raises(InventoryError) as err:
        check_service(dataclasses.replace(role, port=3001), service(), "/inv/prod.yaml")  # services.cl1.port: 3001
    assert err.value.exit_code == EXIT_INVALID
    assert (err.value.where, err.value.problem) == (
        "services.cl1.port",
        "port 3001 is the role's ports.node-to-node, published already: choose another",
    )


def test_two_services_on_one_host_may_not_publish_one_port(tmp_path):
    """A role's ports are published as they are (no host port of a service's own): two services of such roles on
    one host are refused before any host, naming both and what to do; apart, or on other ports, they are fine."""
    from tests.unit.test_inventory import edited, key, parse  # noqa: PLC0415 - the inventory tables' builders

    def other_role(keys: str) -> list:
        folder = tmp_path / keys.replace(" ", "").replace(":", "-")
        if folder.exists():
            return [folder / "roles", BUILTIN_ROLES]
        (folder / "roles" / "other").mkdir(parents=True)
        text = (BUILTIN_ROLES / "chainlink" / "role.yaml").read_text()
        assert "\nport: 6688 " in text
        (folder / "roles" / "other" / "role.yaml").write_text(text.replace("\nport: 6688 ", f"\n{keys}\nport: 7000 "))
        (folder / "roles" / "other" / "role.py").symlink_to(BUILTIN_ROLES / "chainlink" / "role.py")
        (folder / "templates").mkdir()
        (folder / "templates" / "other").symlink_to(BUILTIN_TEMPLATES / "chainlink")
        return [folder / "roles", BUILTIN_ROLES]

    other = {"role": "other", "image": "smartcontract/chainlink:2.10.0",
             "nodes": [{"name": "o-a", "host": "10.0.1.10", "preferred": "active", "host_key": key(2)}]}  # fmt: skip
    inv = parse(edited(("services.other", other)))
    path = other_role("ports: {p2p: 3001}")
    assert role_for(inv, inv.services["other"], path).ports == {"p2p": 3001}  # 6688 | 7000, 3001: apart
    for keys, own, fix in [
        ("ports: {p2p: 6688}", {}, "set services.chainlink.port to another"),  # chainlink's health port
        ("ports: {p2p: 7001}", {"port": 6690}, None),  # its own port, none of chainlink's: fine (control)
        ("ports: {p2p: 6690}", {}, None),
        ("ports: {p2p: 3001}", {"port": 6688}, "serve"),  # the health ports: the check before, as it was
    ]:
        path, inv = other_role(keys), parse(edited(("services.other", {**other, **own})))
        if fix is None:
            assert role_for(inv, inv.services["other"], path).port in (6690, 7000)
            continue
        with pytest.raises(InventoryError) as err:
            role_for(inv, inv.services["other"], path)
        if fix == "serve":
            assert "both serve on port 6688: set a different port on one of them" in err.value.problem
            continue
        assert err.value.where == "services.other.nodes"
        assert err.value.problem.startswith("services chainlink and other share a host and both publish port ")
        assert err.value.problem.endswith(fix)
    # two services of a role with ports, on one host with their own health ports: the role's ports meet
    two = {**other, "port": 7001, "nodes": [{**other["nodes"][0], "name": "o2-a"}]}
    inv = parse(edited(("services.other", {**other, "port": 7000}), ("services.other2", two)))
    with pytest.raises(InventoryError, match="both publish port 3001 .*: put them on different hosts$"):
        role_for(inv, inv.services["other2"], other_role("ports: {p2p: 3001}"))
    apart = {**two, "nodes": [{**two["nodes"][0], "host": "10.0.9.9"}]}
    inv = parse(edited(("services.other", other), ("services.other2", apart)))
    assert role_for(inv, inv.services["other2"], path).port == 7001


# ---------------------------------------------------------------- the config hash and the argv

CHAINLINK_HASHES = {  # the built-in role's, computed on main before ports and volumes existed
    "v1": "75251b699cee99d1f04c03adbc15fddee18b8082254a5df55f00746becf533a9",
    "v2": "820478d918f12ff899101c058b844d2f1597c0de019a0bf7c3632bca73c05446",
}


@pytest.mark.parametrize("profile", ["v1", "v2"])
def test_a_role_without_ports_or_volumes_keeps_its_config_hash(profile):
    """No Chainlink container is replaced by the upgrade that adds the keys: its hash is what it was."""
    assert render(load_role("chainlink"), profile, service(), secrets()).config_hash == CHAINLINK_HASHES[profile]


@pytest.mark.parametrize(
    "keys",
    [
        "mount: /data\nports: {node-to-node: 3001}\n",
        "mount: /data\nports: {node-to-node: 3002, metrics: 12798}\n",
        "mount: /data\nports: {n2n: 3001, metrics: 12798}\n",  # a name: what monitoring and docs will refer to
        "mount: /data\nvolumes: {db: /var/lib/node/db}\n",
        "mount: /data\nvolumes: {db: /var/lib/node/chain}\n",
        "mount: /data\nports: {node-to-node: 3001, metrics: 12798}\nvolumes: {chain: /var/lib/node/db}\n",
    ],
)  # fmt: skip
def test_ports_and_volumes_are_part_of_the_config(tmp_path, keys):
    """A port or a volume added, removed or changed is a change (the container is replaced onto it); the order the
    file gives them in is not."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    base = render(pool(tmp_path / "a"), "main", service(), {"pw": secrets()["db"]}).config_hash
    other = render(pool(tmp_path / "b", keys), "main", service(), {"pw": secrets()["db"]}).config_hash
    assert other != base
    reordered = "mount: /data\nvolumes: {db: /var/lib/node/db}\nports: {metrics: 12798, node-to-node: 3001}\n"
    same = render(pool(tmp_path / "c", reordered), "main", service(), {"pw": secrets()["db"]}).config_hash
    assert same == base


@pytest.mark.parametrize(
    ("keys", "published", "mounted"),
    [
        ("mount: /data\n", ["8080:8080"], ["/run/nodeops/pool:/data:ro"]),
        ("mount: /data\nports: {node-to-node: 3001, metrics: 12798}\n", ["8080:8080", "3001:3001", "12798:12798"],
         ["/run/nodeops/pool:/data:ro"]),
        ("mount: /data\nvolumes: {db: /var/lib/node/db, ipc: /ipc}\n", ["8080:8080"],
         ["/run/nodeops/pool:/data:ro", "nodeops-pool.db:/var/lib/node/db", "nodeops-pool.ipc:/ipc"]),
    ],
)  # fmt: skip
def test_the_run_of_a_job_publishes_its_ports_and_mounts_its_volumes(tmp_path, keys, published, mounted):
    """The whole way from role.yaml: each port on the host as in the container, each volume read-write by its name
    (never a host path: docker creates it on the first run and keeps it), the files' tmpfs read-only as before."""
    job = make_job(tmp_path, role=ROLE.replace("mount: /data\n", keys))
    argv = docker_run(run_spec(job))
    assert [argv[i + 1] for i, w in enumerate(argv) if w == "--publish"] == published
    assert [argv[i + 1] for i, w in enumerate(argv) if w == "--volume"] == mounted


def test_a_volume_name_is_one_services_own():
    """Service ``a`` with volume ``b-c`` and service ``a-b`` with volume ``c`` on one host: two volumes."""
    assert volume_name("a", "b-c") != volume_name("a-b", "c")
    assert volume_name("pool", "db") == "nodeops-pool.db"
