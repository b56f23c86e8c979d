"""The inventory model: valid files load into frozen objects, every mistake is one located line."""

from __future__ import annotations

import base64
import copy
import dataclasses
import operator
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodeops.errors import InvalidInput, InventoryError
from nodeops.inventory import HostKey, Inventory, SecretRef, inventory_path, load_inventory, parse_inventory

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path("/srv/nodeops/inventory/test.yaml")
DELETE = object()


def key(seed: int, keytype: str = "ssh-ed25519", label: str | None = None) -> str:
    """A syntactically valid public key line (``label`` overrides the type written in front)."""
    blob = struct.pack(">I", len(keytype)) + keytype.encode() + struct.pack(">I", 32) + bytes([seed]) * 32
    return f"{label or keytype} {base64.b64encode(blob).decode()} host{seed}"


BASE: dict[str, Any] = {
    "environment": "test",
    "bastion": {"host": "203.0.113.10", "user": "ec2-user", "host_key": key(1)},
    "ssh": {"user": "ec2-user"},
    "secret_backends": {
        "aws": {"kind": "aws-secretsmanager", "region": "us-east-1"},
        "ci": {"kind": "env"},
    },
    "services": {
        "chainlink": {
            "role": "chainlink",
            "image": "smartcontract/chainlink:2.10.0",
            "variables": {"ETH_CHAIN_ID": 1},
            "secrets": {"db": {"backend": "aws", "name": "chainlink/DBSecret", "key": "password"}},
            "nodes": [
                {"name": "cl-a", "host": "10.0.1.10", "preferred": "active", "host_key": key(2)},
                {"name": "cl-b", "host": "10.0.2.10", "preferred": "standby", "host_key": key(3)},
            ],
        }
    },
}


SOLO = {"name": "solo", "host": "10.0.1.5", "preferred": "active", "host_key": key(5)}


def edited(*changes: tuple[str, Any]) -> str:
    """BASE as YAML after setting (or deleting) dotted paths, in order; a set key goes last."""
    return changed(BASE, *changes)


def changed(base: dict[str, Any], *changes: tuple[str, Any]) -> str:
    """A copy of ``base`` as YAML after setting (or deleting, DELETE) dotted paths, in order; a set key goes last."""
    doc = copy.deepcopy(base)
    for path, value in changes:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target = doc
        for part in parents:
            target = target[part]
        if value is DELETE:
            del target[last]
        elif isinstance(target, list) and last == len(target):
            target.append(value)
        else:
            target[last] = value
    return yaml.safe_dump(doc, sort_keys=False)


def parse(text: str) -> Inventory:
    return parse_inventory(text, SOURCE)


# ---------------------------------------------------------------- valid files


def test_minimal_inventory_loads_with_defaults():
    inv = parse(edited())
    assert inv.source == SOURCE and inv.environment == "test"
    (bastion,) = inv.bastions.values()  # the one bastion: named "bastion", every service's
    assert (bastion.name, bastion.port, bastion.identity_file, bastion.known_hosts) == ("bastion", 22, None, None)
    assert bastion.host_keys == (HostKey("ssh-ed25519", key(1).split()[1]),)
    assert [inv.bastion_of(s) for s in inv.services] == [bastion] * len(inv.services)
    assert inv.ssh == dataclasses.replace(
        inv.ssh,
        identity_file=None,
        known_hosts=None,
        max_parallel=16,
        connect_timeout=10.0,
        command_timeout=600.0,
        connect_retries=3,
    )
    assert inv.secret_backends["aws"].region == "us-east-1" and inv.secret_backends["aws"].prefix is None
    assert inv.secret_backends["ci"].prefix == "" and inv.secret_backends["ci"].region is None
    service = inv.services["chainlink"]
    assert (service.name, service.runtime, dict(service.variables)) == ("chainlink", "docker", {"ETH_CHAIN_ID": 1})
    assert service.secrets["db"].backend == "aws" and service.secrets["db"].key == "password"
    assert [(n.name, n.port, n.service) for n in inv.nodes] == [("cl-a", 22, "chainlink"), ("cl-b", 22, "chainlink")]
    assert service.active_preferred.name == "cl-a" and service.standby_preferred.name == "cl-b"
    assert inv.node("cl-b").host == "10.0.2.10"
    assert inv.node("cl-a").host_keys[0].line == " ".join(key(2).split()[:2])


def test_example_inventory_loads():
    inv = load_inventory(ROOT / "inventory" / "prod.example.yaml")
    assert inv.environment == "prod"
    assert inv.ssh.known_hosts == ROOT / "inventory" / "known_hosts.prod"
    assert [(n.name, n.preferred) for n in inv.services["chainlink"].nodes] == [("cl-a", "active"), ("cl-b", "standby")]
    assert [(n.name, n.kind, n.preferred) for n in inv.services["pool"].nodes] == [
        ("relay-a", "relay", None), ("relay-b", "relay", None), ("bp-a", "producer", "active"),
        ("bp-b", "producer", "standby")]  # fmt: skip
    assert {ref.name for ref in inv.services["chainlink"].secrets.values()} == {
        "chainlink/DBSecret",
        "secrets/chainlink-wallet.b64",  # aws-kms: a ciphertext file of the repository
        "/chainlink/prod/api",  # aws-ssm
        "secrets/rpc.sops.yaml",  # sops: the RPC URLs, which embed an API key
        "nodeops/DBAdminSecret",  # for fab rotate-secrets only
    }
    assert {b.name: b.kind for b in inv.secret_backends.values()} == {
        "aws": "aws-secretsmanager", "ci": "env", "ssm": "aws-ssm", "kms": "aws-kms", "sops": "sops"
    }  # fmt: skip


def test_example_inventorys_commented_webhook_loads_once_uncommented(tmp_path):
    text = (ROOT / "inventory" / "prod.example.yaml").read_text()
    assert "# notify:\n#   webhook: {backend: aws, name: nodeops/prod/webhook, key: url}\n" in text
    inv = parse_inventory(text.replace("# notify:\n#   webhook:", "notify:\n  webhook:"), ROOT / "inventory" / "x")
    assert inv.webhook == SecretRef("aws", "nodeops/prod/webhook", "url")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda inv: setattr(inv, "environment", "other"),
        lambda inv: setattr(inv.bastions["bastion"], "port", 2222),
        lambda inv: setattr(inv.nodes[0], "host", "10.9.9.9"),
        lambda inv: operator.setitem(inv.services, "x", None),
        lambda inv: operator.setitem(inv.services["chainlink"].variables, "ETH_CHAIN_ID", 5),
        lambda inv: operator.setitem(inv.secret_backends, "x", None),
    ],
    ids=["inventory", "bastion", "node", "services", "variables", "secret_backends"],
)
def test_model_is_frozen(mutate):
    with pytest.raises((dataclasses.FrozenInstanceError, TypeError)):
        mutate(parse(edited()))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("keys/id_ed25519", SOURCE.parent / "keys" / "id_ed25519"),
        ("../known_hosts", SOURCE.parent / ".." / "known_hosts"),
        ("/etc/ssh/known", Path("/etc/ssh/known")),
        ("~/.ssh/id", Path("~/.ssh/id").expanduser()),
    ],
)
def test_paths_are_relative_to_the_inventory_file(value, expected):
    inv = parse(edited(("ssh.identity_file", value), ("ssh.known_hosts", value)))
    assert inv.ssh.identity_file == expected and inv.ssh.known_hosts == expected


@pytest.mark.parametrize(
    "changes",
    [
        [("bastion.host_key", DELETE), ("bastion.known_hosts", "known_hosts.bastion")],
        [("bastion.host_key", [key(1), key(4, "ecdsa-sha2-nistp256")])],
        [("bastion.host", "bastion.prod.example.net"), ("bastion.port", 2222)],
        [("services.chainlink.nodes.0.host", "fd00::10")],
        [("services.chainlink.nodes.1.host", "10.0.1.10"), ("services.chainlink.nodes.1.port", 2222)],
        [("services.chainlink.nodes.1.host_key", DELETE), ("ssh.known_hosts", "known_hosts")],
        [("services.chainlink.nodes", [SOLO])],
        [("services.chainlink.image", "registry.local:5000/nodeops/chainlink:2.10.0@sha256:" + "a" * 64)],
        [("services.chainlink.runtime", "podman"), ("services.chainlink.variables", {"A": "x", "B": 1.5, "C": True})],
        [("secret_backends.aws.endpoint_url", "http://127.0.0.1:5000"), ("secret_backends.aws.profile", "prod")],
        [("secret_backends", DELETE), ("services.chainlink.secrets", DELETE)],
        [("notify", {"webhook": {"backend": "aws", "name": "nodeops/webhook", "key": "url"}})],
        [("services.chainlink.nodes.2", {**SOLO, "preferred": "standby"})],  # its role decides (test_roles)
    ],
    ids=[
        "bastion-known-hosts",
        "key-list",
        "hostname-port",
        "ipv6",
        "same-host-other-port",
        "node-known-hosts",
        "single-node",
        "registry-digest",
        "podman-variables",
        "aws-endpoint",
        "no-secrets",
        "webhook",
        "three-nodes",
    ],
)
def test_valid_variants_load(changes):
    inv = parse(edited(*changes))
    assert inv.nodes


def test_host_key_list_keeps_every_key():
    inv = parse(edited(("bastion.host_key", [key(1), key(4, "ecdsa-sha2-nistp256")])))
    assert [k.keytype for k in inv.bastions["bastion"].host_keys] == ["ssh-ed25519", "ecdsa-sha2-nistp256"]


def test_single_node_service_has_no_standby():
    service = parse(edited(("services.chainlink.nodes", [SOLO]))).services["chainlink"]
    assert service.active_preferred.name == "solo" and service.standby_preferred is None


@pytest.mark.parametrize(
    "text",
    [
        (ROOT / "inventory" / "prod.example.yaml").read_text(),
        "base: &b {port: 22, user: ops}\nbastion:\n  <<: *b\n  host: a\nlist: [1, {x: *b}, 'two']\nempty:\n",
        "a: 1\n# only a comment after\n",
        "",
    ],
    ids=["example", "anchors-and-merge", "comment", "empty"],
)
def test_libyamls_parser_gives_the_document_and_positions_pyyamls_does(text):
    """Inventories and role files are parsed by LibYAML (5x less CPU on a 512-node inventory): the same values, and
    the same line and column for every path, which each one-line error names."""
    from nodeops.inventory.load import _composed, _FastLoader, _Loader

    assert _FastLoader.__mro__[2] is getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    assert _composed(_FastLoader, text) == _composed(_Loader, text)


# ---------------------------------------------------------------- one located line per mistake

OTHER_SERVICE = {
    "role": "chainlink",
    "image": "smartcontract/chainlink:2.10.0",
    "nodes": [{"name": "cl-a", "host": "10.0.3.10", "preferred": "active", "host_key": key(6)}],
}

ERRORS = [
    # (id, YAML text, where, fragment of problem)
    (
        "bad-yaml",
        "environment: test\nbastion:\n  host: a\n   port: 22\n",
        "line 4, column 8",
        "invalid YAML: mapping values are not allowed here",
    ),
    (
        "duplicate-yaml-key",
        "environment: a\nssh: {}\nenvironment: b\n",
        "line 3, column 1",
        "invalid YAML: duplicate key 'environment' (first at line 1)",
    ),
    (
        "control-character",
        "environment: test\nssh: \x07\n",
        "line 2, column 6",
        "invalid YAML: character #x0007: special characters are not allowed",
    ),
    (
        "two-documents",
        "environment: a\n---\nenvironment: b\n",
        "line 2, column 1",
        "invalid YAML: expected a single document in the stream, but found another document",
    ),
    ("empty-file", "", "", "empty file"),
    ("only-comments", "# nothing\n", "", "empty file"),
    ("top-level-list", "- environment\n- bastion\n", "", "expected a mapping, got ['environment', 'bastion']"),
    (
        "unknown-top",
        edited(("colour", "blue")),
        "colour",
        "unknown key 'colour' (allowed: environment, bastion, bastions, ssh, secret_backends, defaults, services, "
        "check, backup, notify, x-...)",
    ),
    (
        "unknown-bastion",
        edited(("bastion.hots", "x")),
        "bastion.hots",
        "unknown key 'hots' (allowed: host, port, user, identity_file, host_key, known_hosts, state_dir, lock_timeout)",
    ),
    ("unknown-ssh", edited(("ssh.max_paralel", 3)), "ssh.max_paralel", "unknown key 'max_paralel' (allowed: user,"),
    (
        "unknown-backend",
        edited(("secret_backends.ci.region", "x")),
        "secret_backends.ci.region",
        "unknown key 'region' (allowed: kind, prefix)",
    ),
    (
        "unknown-service",
        edited(("services.chainlink.imgae", "x")),
        "services.chainlink.imgae",
        "unknown key 'imgae' (allowed: role, image, runtime, variables, secrets, restart, log_driver,",
    ),
    (
        "unknown-node",
        edited(("services.chainlink.nodes.0.hots", "x")),
        "services.chainlink.nodes[0].hots",
        "unknown key 'hots' (allowed: name, host, port, preferred, host_key, kind)",
    ),
    (
        "unknown-secret-ref",
        edited(("services.chainlink.secrets.db.version", 2)),
        "services.chainlink.secrets.db.version",
        "unknown key 'version' (allowed: backend, name, key)",
    ),
    ("missing-environment", edited(("environment", DELETE)), "environment", "missing required key 'environment'"),
    ("missing-bastion-host", edited(("bastion.host", DELETE)), "bastion.host", "missing required key 'host'"),
    ("missing-ssh-user", edited(("ssh.user", DELETE)), "ssh.user", "missing required key 'user'"),
    ("missing-services", edited(("services", DELETE)), "services", "missing required key 'services'"),
    (
        "missing-node-name",
        edited(("services.chainlink.nodes.0.name", DELETE)),
        "services.chainlink.nodes[0].name",
        "missing required key 'name'",
    ),
    (
        "missing-region",
        edited(("secret_backends.aws.region", DELETE)),
        "secret_backends.aws.region",
        "missing required key 'region'",
    ),
    (
        "missing-kind",
        edited(("secret_backends.aws.kind", DELETE)),
        "secret_backends.aws.kind",
        "missing required key 'kind'",
    ),
    (
        "bad-kind",
        edited(("secret_backends.aws.kind", "vault")),
        "secret_backends.aws.kind",
        "expected one of 'aws-secretsmanager', 'aws-ssm', 'aws-kms', 'sops', 'env', got 'vault'",
    ),
    ("port-not-int", edited(("bastion.port", "abc")), "bastion.port", "expected an integer 1..65535, got 'abc'"),
    (
        "port-bool",
        edited(("services.chainlink.nodes.1.port", True)),
        "services.chainlink.nodes[1].port",
        "expected an integer 1..65535, got True",
    ),
    (
        "port-range",
        edited(("services.chainlink.nodes.1.port", 70000)),
        "services.chainlink.nodes[1].port",
        "expected an integer 1..65535, got 70000",
    ),
    ("max-parallel-zero", edited(("ssh.max_parallel", 0)), "ssh.max_parallel", "expected an integer 1..512, got 0"),
    (
        "lock-timeout-range",
        edited(("bastion.lock_timeout", 2)),
        "bastion.lock_timeout",
        "expected an integer 4..3600, got 2",
    ),
    ("retries-range", edited(("ssh.connect_retries", 11)), "ssh.connect_retries", "expected an integer 0..10, got 11"),
    ("timeout-zero", edited(("ssh.connect_timeout", 0)), "ssh.connect_timeout", "expected a number of seconds > 0"),
    ("timeout-text", edited(("ssh.command_timeout", "10m")), "ssh.command_timeout", "got '10m'"),
    ("bastion-not-mapping", edited(("bastion", "jump.example")), "bastion", "expected a mapping, got 'jump.example'"),
    ("backend-not-mapping", edited(("secret_backends.aws", "x")), "secret_backends.aws", "expected a mapping, got 'x'"),
    (
        "nodes-not-list",
        edited(("services.chainlink.nodes", "cl-a")),
        "services.chainlink.nodes",
        "expected a list, got 'cl-a'",
    ),
    ("no-nodes", edited(("services.chainlink.nodes", [])), "services.chainlink.nodes", "expected 1 to 32 nodes"),
    (  # how many a service takes under its role's activation is the role's check (test_roles: 3 under lease)
        "thirty-three-nodes",
        edited(("services.chainlink.nodes", [{**SOLO, "name": f"n{i}", "host": f"10.0.3.{i}"} for i in range(33)])),
        "services.chainlink.nodes",
        "expected 1 to 32 nodes, got 33",
    ),
    ("no-services", edited(("services", {})), "services", "expected at least 1 service, got 0"),
    (
        "bad-runtime",
        edited(("services.chainlink.runtime", "lxc")),
        "services.chainlink.runtime",
        "expected 'docker' or 'podman', got 'lxc'",
    ),
    (
        "bad-preferred",
        edited(("services.chainlink.nodes.0.preferred", "leader")),
        "services.chainlink.nodes[0].preferred",
        "expected 'active' or 'standby', got 'leader'",
    ),
    ("bad-environment", edited(("environment", "Prod")), "environment", "expected a name matching [a-z0-9][a-z0-9_-]*"),
    (
        "bad-service-name",
        edited(("services.Chain Link", OTHER_SERVICE)),
        "services.Chain Link",
        "expected a name matching [a-z0-9][a-z0-9_-]*, got 'Chain Link'",
    ),
    (
        "bad-host",
        edited(("services.chainlink.nodes.0.host", "cl a")),
        "services.chainlink.nodes[0].host",
        "expected a hostname or IP address, got 'cl a'",
    ),
    ("bad-ip", edited(("bastion.host", "10.0.1.300")), "bastion.host", "expected a hostname or IP address"),
    (
        "bad-image",
        edited(("services.chainlink.image", "Chainlink:latest tag")),
        "services.chainlink.image",
        "expected an image reference",
    ),
    ("bad-user", edited(("ssh.user", "ec2 user")), "ssh.user", "expected a non-empty string without spaces"),
    (
        "bad-region",
        edited(("secret_backends.aws.region", "virginia")),
        "secret_backends.aws.region",
        "expected an AWS region",
    ),
    (
        "bad-endpoint",
        edited(("secret_backends.aws.endpoint_url", "ftp://x")),
        "secret_backends.aws.endpoint_url",
        "expected an http(s) URL",
    ),
    (
        "bad-variable-name",
        edited(("services.chainlink.variables.ETH-URL", "x")),
        "services.chainlink.variables.ETH-URL",
        "expected a variable name",
    ),
    (
        "bad-variable-value",
        edited(("services.chainlink.variables.ETH_CHAIN_ID", None)),
        "services.chainlink.variables.ETH_CHAIN_ID",
        "expected a string, number or boolean (or a list or mapping of them), got None",
    ),
    (
        "bad-variable-inside-a-list",
        edited(("services.chainlink.variables.EVM_CHAINS", [{"chain_id": 1, "nodes": [{"name": None}]}])),
        "services.chainlink.variables.EVM_CHAINS",
        "at [0].nodes[0].name: expected a string, number or boolean",
    ),
    (
        "variable-nested-too-deep",
        edited(("services.chainlink.variables.DEEP", [[[[[1]]]]])),
        "services.chainlink.variables.DEEP",
        "at [0][0][0][0]: lists and mappings nest at most 4 deep",
    ),
    (
        "bad-variable-mapping-key",
        edited(("services.chainlink.variables.M", {"a b": 1})),
        "services.chainlink.variables.M",
        "expected keys matching",
    ),
    (
        "bad-default-variable",
        edited(("defaults", {"variables": {"LOG_LEVEL": {"x": None}}})),
        "defaults.variables.LOG_LEVEL",
        "at .x: expected a string, number or boolean",
    ),
    (
        "nodes-in-defaults",
        edited(("defaults", {"nodes": []})),
        "defaults.nodes",
        "unknown key 'nodes' (allowed: role, image, runtime, variables, secrets, restart, log_driver, log_options, "
        "secret_files, port)",
    ),
    (
        "x-key-below-the-top",
        edited(("services.chainlink.x-common", {"a": 1})),
        "services.chainlink.x-common",
        "unknown key 'x-common'",
    ),
    (
        "no-image-anywhere",
        edited(("services.chainlink.image", DELETE)),
        "services.chainlink",
        "missing required key 'image' (set it here or in defaults)",
    ),
    (
        "two-services-one-host-one-port",
        edited(
            (
                "services.other",
                {
                    "role": "chainlink",
                    "image": "smartcontract/chainlink:2.10.0",
                    "nodes": [{"name": "o-a", "host": "10.0.1.10", "preferred": "active", "host_key": key(2)}],
                },
            )
        ),
        "services.other.nodes[0].host",
        "services chainlink and other share host 10.0.1.10 and both serve on the chainlink role's port: set a "
        "different port on one of them (services.other.port)",
    ),
    (
        "two-services-one-host-same-explicit-port",
        edited(
            ("services.chainlink.port", 6700),
            (
                "services.other",
                {
                    "role": "other",
                    "image": "smartcontract/chainlink:2.10.0",
                    "port": 6700,
                    "nodes": [{"name": "o-a", "host": "10.0.1.10", "preferred": "active", "host_key": key(2)}],
                },
            ),
        ),
        "services.other.nodes[0].host",
        "services chainlink and other share host 10.0.1.10 and both serve on 6700",
    ),
    ("bad-identity-path", edited(("ssh.identity_file", 5)), "ssh.identity_file", "expected a file path, got 5"),
    (
        "host-key-type",
        edited(("services.chainlink.nodes.0.host_key", "ssh-dss AAAAB3NzaC1kc3M=")),
        "services.chainlink.nodes[0].host_key",
        "with TYPE one of ssh-ed25519",
    ),
    ("host-key-one-word", edited(("bastion.host_key", "ssh-ed25519")), "bastion.host_key", "'TYPE BASE64 [comment]'"),
    (
        "host-key-base64",
        edited(("bastion.host_key", "ssh-ed25519 AAAA%%%")),
        "bastion.host_key",
        "expected the key data to be base64, got 'AAAA%%%'",
    ),
    (
        "host-key-blob-type",
        edited(("bastion.host_key", key(1, label="ssh-rsa"))),
        "bastion.host_key",
        "expected key data that encodes a ssh-rsa key",
    ),
    (
        "host-key-list-entry",
        edited(("bastion.host_key", [key(1), "nonsense"])),
        "bastion.host_key[1]",
        "'TYPE BASE64 [comment]'",
    ),
    (
        "host-key-empty-list",
        edited(("bastion.host_key", [])),
        "bastion.host_key",
        "expected a host key or a non-empty list of host keys, got []",
    ),
    ("bastion-unpinned", edited(("bastion.host_key", DELETE)), "bastion", "set exactly one of host_key or known_hosts"),
    (
        "bastion-pinned-twice",
        edited(("bastion.known_hosts", "known_hosts")),
        "bastion",
        "set exactly one of host_key or known_hosts",
    ),
    (
        "duplicate-node-name",
        edited(("services.other", OTHER_SERVICE)),
        "services.other.nodes[0].name",
        "duplicate node name 'cl-a' (also at services.chainlink.nodes[0])",
    ),
    (
        "duplicate-address",
        edited(("services.chainlink.nodes.1.host", "10.0.1.10")),
        "services.chainlink.nodes[1].host",
        "duplicate address '10.0.1.10:22' (also at services.chainlink.nodes[0])",
    ),
    (
        "duplicate-address-ipv6",
        edited(("services.chainlink.nodes.0.host", "fd00::1"), ("services.chainlink.nodes.1.host", "fd00:0::0:1")),
        "services.chainlink.nodes[1].host",
        "duplicate address",
    ),
    (
        "shred-with-restart",
        edited(("services.chainlink.restart", "unless-stopped")),
        "services.chainlink.restart",
        "restart 'unless-stopped' would restart a node whose secret files were shredded",
    ),
    ("bad-restart", edited(("services.chainlink.restart", "sometimes")), "services.chainlink.restart", "expected"),
    (
        "bad-secret-files",
        edited(("services.chainlink.secret_files", "burn")),
        "services.chainlink.secret_files",
        "expected 'shred' or 'keep'",
    ),
    (
        "bad-load-balancer",
        edited(("services.chainlink.load_balancer", "ftp://x")),
        "services.chainlink.load_balancer",
        "expected an http(s) URL",
    ),
    (
        "two-actives",
        edited(("services.chainlink.nodes.1.preferred", "active")),
        "services.chainlink.nodes[1].preferred",
        "a second active node (also at services.chainlink.nodes[0])",
    ),
    (
        "zero-actives",
        edited(("services.chainlink.nodes.0.preferred", "standby")),
        "services.chainlink.nodes",
        "no node has 'preferred: active'",
    ),
    (
        "unknown-secret-backend",
        edited(("services.chainlink.secrets.db.backend", "vault")),
        "services.chainlink.secrets.db.backend",
        "unknown secret backend 'vault' (defined: aws, ci)",
    ),
    (
        "no-secret-backends",
        edited(("secret_backends", DELETE)),
        "services.chainlink.secrets.db.backend",
        "(defined: none)",
    ),
    (
        "node-unpinned",
        edited(("services.chainlink.nodes.1.host_key", DELETE)),
        "services.chainlink.nodes[1]",
        "no pinned host key: set host_key or ssh.known_hosts",
    ),
    # several mistakes: the first in the file is reported, whatever the schema's field order
    (
        "first-in-file",
        edited(
            ("services.chainlink.image", DELETE),
            ("services.chainlink.image", "Bad Image"),
            ("services.chainlink.nodes.1.port", 0),
        ),
        "services.chainlink.nodes[1].port",
        "expected an integer 1..65535, got 0",
    ),
    ("newline-in-value", edited(("bastion.user", "ec2\nuser")), "bastion.user", r"got 'ec2\nuser'"),
    # notify.webhook: a secret reference, like any other (its URL carries a token)
    (
        "webhook-as-url",
        edited(("notify", {"webhook": "https://hooks.example.com/T0/B0/xyz"})),
        "notify.webhook",
        "expected a secret reference {backend, name, key}, not the URL itself (its value is not shown)",
    ),
    ("webhook-missing", edited(("notify", {})), "notify.webhook", "missing required key 'webhook'"),
    (
        "webhook-unknown-key",
        edited(("notify", {"webhook": {"backend": "aws", "name": "hook"}, "channel": "#ops"})),
        "notify.channel",
        "unknown key 'channel' (allowed: webhook)",
    ),
    (
        "webhook-unknown-backend",
        edited(("notify", {"webhook": {"backend": "vault", "name": "hook"}})),
        "notify.webhook.backend",
        "unknown secret backend 'vault' (defined: aws, ci)",
    ),
]


@pytest.mark.parametrize(("text", "where", "fragment"), [row[1:] for row in ERRORS], ids=[row[0] for row in ERRORS])
def test_error_is_one_located_line(text, where, fragment):
    with pytest.raises(InventoryError) as info:
        parse(text)
    err = info.value
    assert (err.where, err.file) == (where, str(SOURCE))
    assert fragment in err.problem
    assert str(err).startswith(f"{SOURCE}: ")
    assert "\n" not in str(err) and "https://" not in str(err)
    assert err.exit_code == 2


LONG = "s" * 300
TOO_LONG = "a name of at most 63 characters, got {}: it names files on the bastion and containers on the nodes; " \
           "shorten it"  # fmt: skip
PLACE = (
    "a directory path on the bastion of its own (letters, digits, . _ / -; no part starting with -; "
    "not / or . itself; at most 255 characters)"
)


@pytest.mark.parametrize(
    ("changes", "where", "problem"),
    [
        ([("environment", LONG)], "environment", TOO_LONG.format(300)),
        ([("environment", "e" * 64)], "environment", TOO_LONG.format(64)),
        ([(f"services.{LONG}", OTHER_SERVICE)], f"services.{LONG!r:.37}...", TOO_LONG.format(300)),
        ([("services.chainlink.nodes.1.name", "n" * 64)], "services.chainlink.nodes[1].name", TOO_LONG.format(64)),
        ([("services.chainlink.role", "r" * 64)], "services.chainlink.role", TOO_LONG.format(64)),
        ([("bastion.state_dir", "--help")], "bastion.state_dir", f"expected {PLACE}, got '--help'"),
        ([("bastion.state_dir", "/srv/-rf")], "bastion.state_dir", f"expected {PLACE}, got '/srv/-rf'"),
        ([("bastion.state_dir", "d" * 256)], "bastion.state_dir", f"expected {PLACE}, got '{'d' * 36}..."),
        ([("bastion.state_dir", "a b")], "bastion.state_dir", f"expected {PLACE}, got 'a b'"),
        ([("bastion.state_dir", "./")], "bastion.state_dir", f"expected {PLACE}, got './'"),
        ([("bastion.state_dir", "/")], "bastion.state_dir", f"expected {PLACE}, got '/'"),
        ([("bastion.state_dir", "/./")], "bastion.state_dir", f"expected {PLACE}, got '/./'"),
    ],
    ids=[
        "env-300",
        "env-64",
        "service-300",
        "node-64",
        "role-64",
        "state-dir-option",
        "state-dir-part-option",
        "state-dir-256",
        "state-dir-space",
        "state-dir-dot",
        "state-dir-root",
        "state-dir-root-dot",
    ],  # fmt: skip
)
def test_names_and_paths_have_limits(changes, where, problem):
    """Names become file names on the bastion and container names on the nodes; state_dir reaches mkdir and
    rm on the bastion: refused at validation (exit 2, no host touched), one line saying what fits."""
    with pytest.raises(InventoryError) as info:
        parse(edited(*changes))
    assert (info.value.where, info.value.problem) == (where, problem)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "changes",
    [
        [("environment", "e" * 63), ("services.chainlink.nodes.1.name", "n" * 63)],
        [(f"services.{'s' * 63}", {**OTHER_SERVICE, "nodes": [{**SOLO, "host": "10.0.9.9"}]})],
        [("bastion.state_dir", "d" * 255)],
        [("bastion.state_dir", "/var/lib/nodeops-shared/.state")],
        [("bastion.state_dir", "../shared/nodeops")],
    ],
    ids=["names-63", "service-63", "state-dir-255", "state-dir-absolute", "state-dir-relative"],
)
def test_names_and_paths_at_their_limits_load(changes):
    assert parse(edited(*changes)).nodes


def test_echoed_values_are_truncated():
    with pytest.raises(InventoryError) as info:
        parse(edited(("environment", "X" * 100)))
    assert info.value.problem == "expected a name matching [a-z0-9][a-z0-9_-]*, got '" + "X" * 36 + "..."


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "cannot read the file: No such file or directory"), (b"environment: \xff\n", "not UTF-8 text")],
    ids=["missing", "not-utf8"],
)
def test_load_inventory_file_errors(tmp_path, content, fragment):
    path = tmp_path / "prod.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert (info.value.file, info.value.where) == (str(path), "")
    assert fragment in info.value.problem


# ---------------------------------------------------------------- choosing the file, choosing nodes


@pytest.fixture
def root(tmp_path):
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "prod.yaml").write_text(edited())
    (tmp_path / "other.yaml").write_text(edited())
    return tmp_path


@pytest.mark.parametrize(
    ("env", "override", "expected"),
    [
        ("prod", None, "inventory/prod.yaml"),
        (None, "other.yaml", "other.yaml"),
        ("prod", "other.yaml", "other.yaml"),
    ],
)
def test_inventory_path(root, monkeypatch, env, override, expected):
    monkeypatch.chdir(root)
    assert inventory_path(root, env, override).resolve() == root / expected


@pytest.mark.parametrize(
    ("env", "override", "fragment"),
    [
        (None, None, "give --env NAME or --inventory PATH"),
        ("", "", "give --env NAME or --inventory PATH"),
        ("../../etc/passwd", None, "invalid environment name '../../etc/passwd'"),
        ("prod/../x", None, "invalid environment name"),
        ("Prod", None, "expected a name matching [a-z0-9][a-z0-9_-]*"),
        ("p" * 64, None, "a name of at most 63 characters, got 64"),
        ("staging", None, "inventory file not found: {root}/inventory/staging.yaml"),
        (None, "nowhere.yaml", "inventory file not found: nowhere.yaml"),
    ],
    ids=["neither", "empty", "traversal", "slash", "uppercase", "too-long", "missing-env-file", "missing-override"],
)
def test_inventory_path_errors(root, monkeypatch, env, override, fragment):
    monkeypatch.chdir(root)
    with pytest.raises(InvalidInput) as info:
        inventory_path(root, env, override)
    assert fragment.format(root=root) in str(info.value)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (None, ["cl-a", "cl-b"]),
        ([], ["cl-a", "cl-b"]),
        (["cl-b"], ["cl-b"]),
        (["cl-b", "cl-a", "cl-b"], ["cl-a", "cl-b"]),  # file order, once each
    ],
)
def test_select_nodes(names, expected):
    assert [n.name for n in parse(edited()).select_nodes(names)] == expected


@pytest.mark.parametrize("select", [lambda inv: inv.select_nodes(["cl-a", "cl-x"]), lambda inv: inv.node("cl-x")])
def test_unknown_node_name(select):
    with pytest.raises(InvalidInput, match=r"^unknown node 'cl-x' \(known: cl-a, cl-b\)$"):
        select(parse(edited()))


# ---------------------------------------------------------------- defaults, x- anchors, list variables, ports

SHARED = """
x-pair: &pair
  - {name: NAME-a, host: HOST, preferred: active, host_key: KEY}
defaults:
  role: chainlink
  image: smartcontract/chainlink:2.10.0
  restart: "no"
  variables: {LOG_LEVEL: warn, DATABASE_HOST: db.internal, EVM_CHAINS: [{chain_id: 1, nodes: [{name: a}]}]}
  secrets: {db: {backend: ci, name: shared/db}, keystore: {backend: ci, name: shared/ks}}
  log_options: {max-size: 10m}
services:
  cl1:
    nodes: [{name: cl1-a, host: 10.0.1.10, preferred: active, host_key: KEY}]
  cl2:
    image: smartcontract/chainlink:2.11.0
    port: 6689
    variables: {LOG_LEVEL: debug, EVM_CHAINS: [{chain_id: 137, nodes: [{name: p, ws_url_secret: rpc}]}]}
    secrets: {db: {backend: ci, name: cl2/db}}
    nodes: [{name: cl2-a, host: 10.0.1.10, preferred: active, host_key: KEY}]
"""


def test_defaults_are_shared_and_a_service_overrides_key_by_key():
    head = yaml.safe_dump({k: BASE[k] for k in ("environment", "bastion", "ssh", "secret_backends")})
    inv = parse(head + SHARED.replace("KEY", key(2)))
    cl1, cl2 = inv.services["cl1"], inv.services["cl2"]
    assert (cl1.role, cl1.image, cl1.port) == ("chainlink", "smartcontract/chainlink:2.10.0", None)
    assert cl1.runtime == "docker"  # neither sets it: the fallback
    assert (cl2.image, cl2.port) == ("smartcontract/chainlink:2.11.0", 6689)  # replaced
    assert dict(cl1.variables) == {"LOG_LEVEL": "warn", "DATABASE_HOST": "db.internal",
                                   "EVM_CHAINS": [{"chain_id": 1, "nodes": [{"name": "a"}]}]}  # fmt: skip
    chains = [{"chain_id": 137, "nodes": [{"name": "p", "ws_url_secret": "rpc"}]}]  # a list replaces, whole
    assert dict(cl2.variables) == {"LOG_LEVEL": "debug", "DATABASE_HOST": "db.internal", "EVM_CHAINS": chains}
    assert (cl2.secrets["db"].name, cl2.secrets["keystore"].name) == ("cl2/db", "shared/ks")  # merged per secret
    assert cl1.secrets["db"].name == "shared/db" and dict(cl2.log_options) == {"max-size": "10m"}
    assert [n.name for n in inv.nodes] == ["cl1-a", "cl2-a"]  # one host, two ports: allowed


def test_x_keys_hold_anchors_a_service_merges():
    doc = copy.deepcopy(BASE)
    doc["services"]["chainlink"].pop("image")
    text = "x-common: &common\n  image: smartcontract/chainlink:2.12.0\n  runtime: podman\n" + yaml.safe_dump(doc)
    text = text.replace("  chainlink:\n", "  chainlink:\n    <<: *common\n")
    service = parse(text).services["chainlink"]
    assert (service.image, service.runtime) == ("smartcontract/chainlink:2.12.0", "podman")


PASTED = "hunter2-SentinelInline"


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ([("services.chainlink.secrets.db", PASTED)], "services.chainlink.secrets.db"),
        ([("services.chainlink.secrets.db", 123456789)], "services.chainlink.secrets.db"),
        ([("services.chainlink.secrets.db", [PASTED])], "services.chainlink.secrets.db"),
        ([("services.chainlink.secrets", PASTED)], "services.chainlink.secrets"),
        ([("defaults", {"secrets": {"db": PASTED}})], "defaults.secrets.db"),
        (
            [("backup", {"bucket": "bkt", "aws": "aws", "recipients": "age1" + "q" * 58, "identity": PASTED})],
            "backup.identity",
        ),
    ],
    ids=["string", "number", "list", "whole-mapping", "defaults", "backup-identity"],
)
def test_a_secret_pasted_where_a_reference_belongs_is_refused_without_echoing_it(changes, where):
    """review14 #11: `db: 'hunter2-...'` under secrets: was echoed (`expected a mapping, got 'hunter2-...'`)."""
    with pytest.raises(InventoryError) as info:
        parse(edited(*changes))
    assert info.value.where == where
    assert "(the value is not shown)" in info.value.problem
    assert "hunter2" not in str(info.value) and "123456789" not in str(info.value)


@pytest.mark.parametrize(
    ("file", "environment", "error"),
    [
        ("prod", "prod", None),
        ("staging", "prod", "is 'prod' but the file is loaded as --env staging: set environment: staging"),
        ("bad", "prodx", "is 'prodx' but the file is loaded as --env bad: set environment: bad"),
    ],
    ids=["matches", "copied-from-prod", "typo"],
)
def test_env_loads_only_a_file_of_that_environment(tmp_path, monkeypatch, file, environment, error):
    """review14 #10: `--env bad` loading inventory/bad.yaml with `environment: prodx` was accepted: the lock and the
    audit log are per environment, so a copied file would share another environment's."""
    from tasks._cli import load

    (tmp_path / "nodeops.yaml").write_text("# a project\n")
    (tmp_path / "inventory").mkdir()
    path = tmp_path / "inventory" / f"{file}.yaml"
    path.write_text(edited(("environment", environment)))
    monkeypatch.chdir(tmp_path)
    if error is None:
        assert load(file, None).environment == environment
        return
    with pytest.raises(InventoryError) as info:
        load(file, None)
    assert (info.value.file, info.value.where) == (str(path), "environment")
    assert error in info.value.problem and info.value.exit_code == 2
    assert load(None, str(path)).environment == environment  # --inventory PATH: the file names its environment


def test_each_key_is_declared_once_on_the_model():
    """Issue 15: the file's models are generated from the engine's dataclasses (nodeops.inventory.model), so a key's
    validator, default and description are written once: each key of each mapping of the file is a field of its
    model class, with that field's description."""
    from nodeops.inventory import schema

    specs = [s for s in vars(schema).values() if isinstance(s, type) and issubclass(s, schema._Spec)]
    assert len(specs) > 10
    for spec in specs:
        if spec is schema._Spec:
            continue
        engine = spec.ENGINE
        assert dataclasses.is_dataclass(engine), spec
        fields = {f.name: f for f in dataclasses.fields(engine)}
        docs = schema._field_docs(engine)
        for key, info in spec.model_fields.items():
            if key not in spec.FIELDS:  # a key only the file has (defaults, check, notify, bastion)
                assert spec is schema._InventorySpec and key in ("defaults", "check", "notify", "bastion")
                continue
            f = fields[spec.FIELDS[key]]
            assert info.description == docs[f.name], (spec, key)
