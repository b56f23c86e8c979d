"""The lab's pool (lab.up --pool): its plan, the keys' secrets, the chain's command line, and the inventory's hand-over
point to the role's task."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from lab import image, pool
from lab.topology import boot_command, plan_lab, sshd_config
from nodeops.errors import InvalidInput
from nodeops.inventory import load_inventory
from nodeops.job import prepare
from nodeops.render import render_nodes
from nodeops.roles import check_service, profile_name, role_for, role_module
from nodeops.secrets import Secret

envelope = role_module("cardano", "envelope")
ocert = role_module("cardano", "ocert")
kes = role_module("cardano", "kes")


def test_the_pool_has_its_chain_host_and_four_named_nodes_behind_the_bastion():
    plan = plan_lab("lab", "10.213.0.0/16", 2, pool=True)
    assert [(h.name, h.kind, h.node_kind, h.preferred, h.service, h.private_ip, h.uplink) for h in plan.pool] == [
        ("pool-relay-a", "node", "relay", None, "pool", "10.213.127.251", None),
        ("pool-relay-b", "node", "relay", None, "pool", "10.213.127.252", None),
        ("pool-bp-a", "node", "producer", "active", "pool", "10.213.127.253", None),
        ("pool-bp-b", "node", "producer", "standby", "pool", "10.213.127.254", None),
    ]  # no uplink: private, reached through the bastion as every node
    assert (plan.chain.name, plan.chain.kind, plan.chain.private_ip, plan.chain.uplink) == (
        "chain", "chain", "10.213.0.6", None
    )  # fmt: skip
    assert plan.chain_address == "http://10.213.0.6:3100"
    assert plan.ssh_hosts == (plan.bastion, *plan.nodes, *plan.pool)  # the chain host is a managed service
    assert plan.engine_hosts == (*plan.nodes, *plan.pool)
    assert plan.hosts[-5:] == (plan.chain, *plan.pool)
    assert list(plan.services()) == ["cl1"]  # the Chainlink services alone: no database, secrets or listener for it
    assert len({h.switch_port for h in plan.hosts}) == len(plan.hosts)
    assert all(h.netns.startswith("nodeops-lab-") for h in plan.hosts)


@pytest.mark.parametrize("nodes", [2, 4, 64])
def test_the_pools_addresses_do_not_move_with_the_chainlink_nodes(nodes):
    """An up with another --nodes keeps the pool's namespaces: their addresses must be the same."""
    plan = plan_lab("lab", "10.213.0.0/16", nodes, pool=True)
    assert [h.private_ip for h in (plan.chain, *plan.pool)] == [
        "10.213.0.6", "10.213.127.251", "10.213.127.252", "10.213.127.253", "10.213.127.254"
    ]  # fmt: skip


@pytest.mark.parametrize("nodes", [2, 8])
def test_without_pool_the_plan_is_the_lab_of_before(nodes):
    plan = plan_lab("lab", "10.213.0.0/16", nodes)
    assert plan == plan_lab("lab", "10.213.0.0/16", nodes, pool=False)
    assert (plan.chain, plan.pool) == (None, ())
    assert plan.hosts == (plan.bastion, plan.db, plan.registry, plan.lb, plan.monitoring, *plan.nodes)
    assert plan.engine_hosts == plan.nodes
    assert all(h.node_kind is None for h in plan.hosts)
    with pytest.raises(ValueError, match="has no pool"):
        _ = plan.chain_address


@pytest.mark.parametrize(("pool_", "fits", "refused"), [(False, 501, 502), (True, 497, 498)])
def test_the_pool_takes_its_four_addresses_from_the_nodes_room(pool_, fits, refused):
    fits -= fits % 2  # nodes come in pairs
    assert len(plan_lab("lab", "10.213.0.0/22", fits, pool=pool_).nodes) == fits
    with pytest.raises(InvalidInput, match=f"holds at most {refused - 1} nodes"):
        plan_lab("lab", "10.213.0.0/22", refused + refused % 2, pool=pool_)


def test_a_pool_host_boots_and_is_configured_as_a_node_with_its_engine():
    plan = plan_lab("lab", "10.213.0.0/16", 2, pool=True)
    relay, node = plan.pool[0], plan.nodes[0]

    def script(host):
        argv = boot_command(host, "/usr/sbin/sshd", Path("/c"), Path("/h"))
        return argv[argv.index("-c") + 1]

    assert script(relay) == script(node)
    assert "/etc/containers" in script(relay)
    config = sshd_config(plan, relay, "/h", "/k")
    assert config == sshd_config(plan, replace(node, private_ip=relay.private_ip), "/h", "/k")
    assert "AllowTcpForwarding no" in config and "SetEnv DOCKER_HOST=" in config


def test_the_chain_runs_in_its_hosts_namespace_on_its_private_address_with_only_paths():
    plan = plan_lab("pool", "10.247.0.0/16", 2, pool=True)
    argv = pool.chain_argv(plan, "/py", Path("/s/g.json"), Path("/s/cold.vkey"))
    assert argv == (
        "nsenter", "--net=/run/netns/nodeops-pool-chain", "--", "/py", str(pool.CHAIN),
        "--genesis", "/s/g.json", "--pool", "/s/cold.vkey", "--host", "10.247.0.6", "--port", "3100",
    )  # fmt: skip
    assert pool.CHAIN.is_file()


def test_the_keys_are_cardano_cli_envelopes_of_one_pool():
    cold_seed, vrf_seed = bytes(range(32)), bytes(range(100, 132))
    docs = pool.key_documents(cold_seed, vrf_seed)
    assert {name: list(doc) for name, doc in docs.items()} == {
        "pool/ColdKey": ["cold.skey"], "pool/IssueCounter": ["cold.counter"], "pool/VrfKey": ["vrf.skey"]
    }  # fmt: skip
    cold = envelope.read_cold_signing_key(docs["pool/ColdKey"]["cold.skey"], "t")
    assert cold.seed == cold_seed
    assert json.loads(docs["pool/ColdKey"]["cold.skey"])["type"] == "StakePoolSigningKey_ed25519"
    counter = envelope.read_issue_counter(docs["pool/IssueCounter"]["cold.counter"], "t")
    assert (counter.next, counter.cold_vk) == (0, cold.verification_key)
    assert json.loads(docs["pool/IssueCounter"]["cold.counter"])["type"] == "NodeOperationalCertificateIssueCounter"
    vrf = envelope.read_vrf_signing_key(docs["pool/VrfKey"]["vrf.skey"], "t")
    assert vrf[:32] == vrf_seed and len(vrf) == 64
    assert json.dumps(docs).count(cold_seed.hex()) == 1  # the cold key is in its own secret only
    with pytest.raises(ValueError, match="32 bytes"):
        pool.key_documents(cold_seed, b"short")


def test_the_pool_id_is_blake2b_224_of_the_cold_verification_key():
    rotation = role_module("cardano", "rotation")
    vk = ocert.ColdKey(bytes(32)).verification_key
    assert rotation.pool_id(vk).hex() == hashlib.blake2b(vk, digest_size=28).hexdigest()


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAexdbHB36tcwydKJhbUhZib3vTlDloQOUKT1P7lVkKp"


def ref(name: str, key: str) -> dict[str, str]:
    return {"backend": "aws", "name": name, "key": key}


DESCRIPTION = {
    "service": "pool",
    "chain": "http://10.247.0.6:3100",
    "system_start": "2026-12-01T18:00:00Z",
    "images": ["10.247.0.3:5000/intersectmbo/cardano-node:10.4.1", "10.247.0.3:5000/intersectmbo/cardano-node:10.5.1"],
    "nodes": [
        {"name": "pool-relay-a", "host": "10.247.127.251", "kind": "relay", "host_key": KEY},
        {"name": "pool-relay-b", "host": "10.247.127.252", "kind": "relay", "host_key": KEY},
        {"name": "pool-bp-a", "host": "10.247.127.253", "kind": "producer", "preferred": "active",
         "host_key": KEY},
        {"name": "pool-bp-b", "host": "10.247.127.254", "kind": "producer", "preferred": "standby",
         "host_key": KEY},
    ],
    "secrets": {"cold_key": ref("pool/ColdKey", "cold.skey"), "counter": ref("pool/IssueCounter", "cold.counter"),
                "vrf_key": ref("pool/VrfKey", "vrf.skey"), "kes_key": ref("pool/HotKeys", "kes.skey"),
                "op_cert": ref("pool/HotKeys", "node.cert")},
}  # fmt: skip
POOL_SERVICE = {
    "role": "cardano", "image": DESCRIPTION["images"][0], "nodes": DESCRIPTION["nodes"],
    "variables": {"PROFILE": "lab", "SYSTEM_START": "2026-12-01T18:00:00Z", "CARDANO_SIM_CHAIN": "http://10.247.0.6:3100"},
    "secrets": {"kes_key": ref("pool/HotKeys", "kes.skey"), "op_cert": ref("pool/HotKeys", "node.cert"),
                "vrf_key": ref("pool/VrfKey", "vrf.skey"), "cold_key": ref("pool/ColdKey", "cold.skey"),
                "counter": ref("pool/IssueCounter", "cold.counter")},
}  # fmt: skip


@pytest.mark.parametrize(
    ("role_file", "description", "expected"),
    [
        (False, DESCRIPTION, {}),  # no role yet: the inventory holds the Chainlink services alone
        (True, None, {}),  # a lab without --pool
        (True, DESCRIPTION, {"pool": POOL_SERVICE}),  # the hot secrets, and what KES rotation alone reads
    ],
)  # fmt: skip
def test_the_inventory_gets_the_pool_only_once_its_role_exists(tmp_path, role_file, description, expected):
    (tmp_path / "cardano").mkdir()
    if role_file:
        (tmp_path / "cardano" / "role.yaml").write_text("name: cardano\n")
    assert pool.inventory_services(description, tmp_path) == expected


def test_the_lab_inventorys_pool_is_a_service_of_the_cardano_role_that_renders(tmp_path):
    """The repository's roles/cardano/role.yaml takes the hand-over (docs/lab.md): the lab's inventory gets the pool
    in the role's shape, which loads, passes the role's checks and renders each node's files (no host)."""
    doc = {"environment": "lab", "secret_backends": {"aws": {"kind": "aws-secretsmanager", "region": "us-east-1"}},
           "ssh": {"user": "root"}, "bastion": {"host": "10.247.0.1", "user": "root", "host_key": KEY},
           "services": pool.inventory_services(DESCRIPTION)}  # fmt: skip
    assert doc["services"] == {"pool": POOL_SERVICE}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(doc))
    inventory = load_inventory(tmp_path / "lab.yaml")
    service = inventory.services["pool"]
    role = role_for(inventory, service)
    check_service(role, service, "lab.yaml")
    assert set(role.secrets) == set(pool.ROLE_SECRETS) == set(service.secrets) - set(pool.ROTATION_READS)
    assert role.admin_secrets == set(pool.ROTATION_READS)  # never resolved by a deploy (job.prepare)
    secrets = {name: Secret(f"{name}-text\n", name) for name in role.secrets}
    nodes = render_nodes(role, profile_name(role, service), service, secrets)
    assert list(nodes) == ["pool-relay-a", "pool-relay-b", "pool-bp-a", "pool-bp-b"]
    genesis = json.loads(nodes["pool-bp-a"].files["shelley-genesis.json"].data)
    assert genesis["systemStart"] == DESCRIPTION["system_start"]


def test_the_first_hot_credentials_are_a_certificate_of_the_pools_cold_key_and_the_counter_moves_on():
    docs = pool.key_documents(bytes(range(32)), bytes(range(100, 132)))
    texts = {what: docs[name][key] for what, (name, key) in pool.KEY_SECRETS.items()}
    document, counter = pool.issue_hot(texts["cold_key"], texts["counter"], texts["vrf_key"], 7)
    assert list(document) == ["kes.skey", "node.cert"]  # one secret: a KES key and its certificate go together
    cold = envelope.read_cold_signing_key(texts["cold_key"], "t")
    cert = envelope.read_certificate(document["node.cert"], "t")
    key = envelope.read_kes_signing_key(document["kes.skey"], "t")
    assert (cert.counter, cert.kes_period, cert.kes_vk) == (0, 7, key.verification_key)
    assert cert.verify(cold.verification_key)
    assert envelope.read_issue_counter(counter, "t").next == 1  # as cardano-cli's issue-op-cert leaves it
    assert cold.seed.hex() not in json.dumps(document)


@pytest.mark.parametrize("built", [image.CHAINLINK, image.CARDANO], ids=["chainlink", "cardano"])
def test_each_expose_change_names_one_port(built):
    """podman's `docker import --change` refuses "EXPOSE 3001 12798" ("EXPOSE port must be an integer"), which
    Dockerfile syntax allows: one port per change (found by lab.up --pool, the first import of the Cardano image)."""
    exposed = [change.split(" ", 1)[1] for change in built.changes if change.startswith("EXPOSE ")]
    assert exposed and all(port.isdigit() for port in exposed), exposed


class Recorded:
    """The lab's pool steps, played: each call recorded in order (``calls``), the chain starting anew when
    ``fresh``; the lab's state in memory."""

    def __init__(self, monkeypatch, tmp_path, fresh: bool) -> None:
        self.calls: list[str] = []
        self.state = {"secrets_port": 1}
        self.dir = tmp_path

        def record(name, value=None):
            def call(*_args, **kw):
                self.calls.append(name if name != "hot" else f"hot fresh={kw['fresh']}")
                return value

            return call

        monkeypatch.setattr(pool, "secrets_client", record("client"))
        monkeypatch.setattr(pool, "ensure_keys", record("keys", b"vk"))
        monkeypatch.setattr(pool, "ensure_chain", record("chain", object() if fresh else None))
        monkeypatch.setattr(pool.Daemons, "wait", record("chain ready"))
        monkeypatch.setattr(pool.image, "publish", record("publish", ["reg/cardano:1"]))
        monkeypatch.setattr(pool.image, "fill_shared_store", record("store"))
        monkeypatch.setattr(pool, "describe", record("describe", {"service": "pool"}))
        monkeypatch.setattr(pool, "ensure_hot", record("hot"))

    def host_dir(self, host):
        return self.dir / host.name

    def save(self) -> None:
        self.calls.append("save")


def test_the_first_hot_credentials_are_issued_last_after_the_image_and_the_chain(monkeypatch, tmp_path):
    """The lab's first certificate lasts 60 s from the KES period it is issued in: issued while lab.up still
    published the Cardano image, a busy machine's deploy right after lab.up missed its window. pool.ensure
    publishes the image before the chain starts and issues nothing; first_hot, which Lab.up calls last, issues
    them when the chain started anew, also on a rerun after a lab.up stopped in between (the chain then kept)."""
    plan = plan_lab("t", "10.9.0.0/16", 2, pool=True)
    lab = Recorded(monkeypatch, tmp_path, fresh=True)
    pool.ensure(lab, None, plan, tmp_path, (), ())
    assert lab.calls == ["client", "keys", "publish", "store", "chain", "chain ready", "describe", "save"]
    lab.calls.clear()
    pool.first_hot(lab, plan)
    assert [c for c in lab.calls if c.startswith("hot")] == ["hot fresh=True"]
    again = Recorded(monkeypatch, tmp_path, fresh=False)  # a rerun: the chain runs, kept
    again.state = lab.state
    pool.ensure(again, None, plan, tmp_path, (), ())
    pool.first_hot(again, plan)
    assert [c for c in again.calls if c.startswith("hot")] == ["hot fresh=False"]  # issued only if none is stored


def test_a_rerun_after_a_stop_before_the_first_hot_credentials_issues_them_anew(monkeypatch, tmp_path):
    """lab.up stopped after the chain started anew and before first_hot: the rerun keeps the running chain, and
    its first hot credentials are still due (a bundle stored for an earlier chain is no longer its)."""
    plan = plan_lab("t", "10.9.0.0/16", 2, pool=True)
    lab = Recorded(monkeypatch, tmp_path, fresh=True)
    pool.ensure(lab, None, plan, tmp_path, (), ())
    again = Recorded(monkeypatch, tmp_path, fresh=False)
    again.state = lab.state
    pool.ensure(again, None, plan, tmp_path, (), ())
    pool.first_hot(again, plan)
    assert [c for c in again.calls if c.startswith("hot")] == ["hot fresh=True"]


def test_a_deploy_of_the_lab_pool_never_reads_the_cold_key_or_the_counter(tmp_path, monkeypatch):
    """The lab's pool service lists the cold key and the issue counter (KES rotation reads them), yet the preflight
    of deploy, status and check resolves the hot secrets alone: with the two unreadable (no such environment
    variable) it succeeds, and only a rotation's preflight (admin) reads them, failing here."""
    refs = {what: {"backend": "ci", "name": what} for what in (*pool.ROLE_SECRETS, *pool.ROTATION_READS)}
    service = {**pool.inventory_services(DESCRIPTION)["pool"], "secrets": refs}
    doc = {
        "environment": "lab",
        "secret_backends": {"ci": {"kind": "env", "prefix": "T_"}},
        "ssh": {"user": "root"},
        "bastion": {"host": "10.247.0.1", "user": "root", "host_key": KEY},
        "services": {"pool": service},
    }
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(doc))
    inventory = load_inventory(tmp_path / "lab.yaml")
    monkeypatch.setenv("T_KES_KEY", envelope.kes_signing_key_file(kes.SignKey.generate()))
    cold = ocert.ColdKey(bytes(range(32)))
    cert = ocert.issue(cold, bytes(32), 0, 0)
    monkeypatch.setenv("T_OP_CERT", envelope.certificate_file(cert))
    monkeypatch.setenv("T_VRF_KEY", pool.key_documents(bytes(32), bytes(32))["pool/VrfKey"]["vrf.skey"])
    [job] = prepare(inventory, ["pool"])
    assert set(job.secrets) == set(pool.ROLE_SECRETS)
    with pytest.raises(InvalidInput, match="T_COLD_KEY"):
        prepare(inventory, ["pool"], admin=True)
