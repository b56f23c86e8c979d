"""Issue 16: node kinds. A role declares the kinds of node a service is made of (role.yaml ``kinds:``, each with its
activation model), an inventory node says its ``kind``, the pair checked with the role before any host (exit 2, one
line naming the file, the path and the fix), and the engine plans one service as its kind groups in the role's order
(nodeops.activation.groups.Groups). Tables: inventory in, error or ordered steps out. A role without kinds is
unchanged (tests/unit/test_roles.py, test_activation.py and the Chainlink tests, untouched)."""

from __future__ import annotations

import dataclasses
import textwrap
from types import MappingProxyType

import pytest

from nodeops.activation import KIND_MODELS, MODELS, model_of
from nodeops.activation.groups import Groups, group
from nodeops.errors import EXIT_INVALID, EXIT_UNSAFE, InvalidInput, InventoryError, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Node, Service, load_inventory
from nodeops.plan import Desired
from nodeops.role_file import ONE_ACTIVE, RoleError
from nodeops.roles import check_service, load_role
from tests.unit.test_roles import GOOD, make_role

KINDS = "kinds:\n  relay: {activation: all, min_nodes: 2}\n  producer: {activation: keys}\n"
HOT = GOOD.replace("secret: true}", "secret: true, hot: true}")
POOL_ROLE = HOT.replace("mount: /data\n", f"mount: /data\n{KINDS}")


@pytest.fixture
def pool_role(tmp_path):
    return load_role("thing", [make_role(tmp_path, POOL_ROLE)])


def node(name: str, kind: str | None, preferred: str | None = None, i: int = 0) -> Node:
    return Node(name, f"10.0.0.{i or len(name)}", 22, preferred, (), "pool", kind)


R1, R2, R3 = node("r1", "relay", i=1), node("r2", "relay", i=2), node("r3", "relay", i=3)
P, S = node("p", "producer", "active", i=4), node("s", "producer", "standby", i=5)


def pool(*nodes: Node) -> Service:
    return Service("pool", "thing", "img:2", "docker", MappingProxyType({}), MappingProxyType({}), nodes)


POOL = pool(R1, R2, P, S)

# ---------------------------------------------------------------- role.yaml


def test_a_role_declares_its_kinds_in_order_each_with_its_model(pool_role):
    assert [(k.name, k.activation, k.min_nodes) for k in pool_role.kinds.values()] == [
        ("relay", "all", 2), ("producer", "keys", 1)]  # fmt: skip
    assert pool_role.activation is None  # no one model for every node
    model = model_of(pool_role)
    assert isinstance(model, Groups) and list(model.kinds.items()) == [("relay", KIND_MODELS["all"]),
                                                                       ("producer", KIND_MODELS["keys"])]  # fmt: skip
    assert KIND_MODELS["all"] is MODELS["all"] and KIND_MODELS["keys"].name == "keys"


def test_a_role_without_kinds_keeps_its_one_model():
    role = load_role("chainlink")
    assert role.kinds == {} and model_of(role) is MODELS["lease"]


@pytest.mark.parametrize(
    ("old", "new", "where", "problem"),
    [
        (KINDS, KINDS + "activation: keys\n", "activation", "a role with kinds says each kind's activation"),
        ("relay: {activation: all,", "relay: {activation: relays,", "kinds.relay.activation",
         "expected lease or keys or all, got 'relays'"),
        ("producer: {activation: keys}", "producer: {}", "kinds.producer.activation", "missing required key"),
        ("min_nodes: 2", "min_nodes: 0", "kinds.relay.min_nodes", "expected an integer 1..32, got 0"),
        ("min_nodes: 2", "min_nodes: 2, count: 3", "kinds.relay.count", "unknown key 'count' (allowed: activation, "
         "min_nodes)"),
        ("relay:", "Relay:", "kinds.Relay", "expected a kind name matching"),
        ("producer: {activation: keys}", "producer: {activation: all}", "profiles.main.files..pw.hot",
         "a hot file needs activation: keys (this role's is all and all)"),
    ],
)  # fmt: skip
def test_bad_kinds_are_exit_2_naming_the_role_file_and_path(tmp_path, old, new, where, problem):
    assert old in POOL_ROLE
    root = make_role(tmp_path, POOL_ROLE.replace(old, new, 1))
    with pytest.raises(RoleError) as err:
        load_role("thing", [root])
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert (err.value.file, err.value.where) == (str(root / "thing" / "role.yaml"), where)
    assert problem in err.value.problem


def test_every_activation_says_whether_it_has_one_active_as_its_model_does():
    assert ONE_ACTIVE == {name: m.has_standby for name, m in MODELS.items()}


# ---------------------------------------------------------------- the inventory's nodes against the role


@pytest.mark.parametrize(
    ("nodes", "where", "problem"),
    [
        ((R1, R2, dataclasses.replace(P, kind="leader"), S), "services.pool.nodes[2].kind",
         "unknown kind 'leader': role thing's kinds are relay, producer"),
        ((R1, R2, dataclasses.replace(P, kind=None), S), "services.pool.nodes[2]",
         "missing required key 'kind': role thing's nodes each say their kind (relay, producer)"),
        ((R1, R2), "services.pool.nodes", "expected 1 to 2 nodes of kind producer, got 0"),
        ((R1, P, S), "services.pool.nodes", "expected 2 to 32 nodes of kind relay, got 1: role thing says "
         "kinds.relay.min_nodes 2"),
        ((R1, R2, P, S, dataclasses.replace(S, name="s2", host="10.0.0.9")), "services.pool.nodes",
         "expected 1 to 2 nodes of kind producer, got 3"),
        ((R1, R2, P, dataclasses.replace(S, preferred="active")), "services.pool.nodes[3].preferred",
         "2 nodes of kind producer have 'preferred: active': mark exactly one active"),
        ((R1, R2, dataclasses.replace(P, preferred="standby"), S), "services.pool.nodes",
         "0 nodes of kind producer have 'preferred: active'"),
        ((R1, R2, P, dataclasses.replace(S, preferred=None)), "services.pool.nodes[3]",
         "missing required key 'preferred': set active on one node of kind producer"),
        ((dataclasses.replace(R1, preferred="active"), R2, P, S), "services.pool.nodes[0].preferred",
         "every node of kind relay serves (activation all): none is preferred; remove it"),
    ],
    ids=["unknown-kind", "no-kind", "no-producer", "one-relay", "three-producers", "two-preferred", "none-preferred",
         "producer-without-preferred", "preferred-relay"],
)  # fmt: skip
def test_a_pool_the_role_cannot_run_is_refused_naming_the_node(pool_role, nodes, where, problem):
    with pytest.raises(InventoryError) as err:
        check_service(pool_role, pool(*nodes), "/inv/lab.yaml")
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert (err.value.file, err.value.where) == ("/inv/lab.yaml", where)
    assert problem in err.value.problem


def test_a_kind_on_a_role_without_kinds_is_refused():
    role = load_role("chainlink")
    a = Node("a", "10.0.0.1", 22, "active", (), "cl1", "relay")
    svc = Service("cl1", "chainlink", "img:2", "docker", MappingProxyType({}), MappingProxyType({}), (a,))
    with pytest.raises(InventoryError) as err:
        check_service(role, svc, "/inv/prod.yaml")
    assert (err.value.where, err.value.problem) == ("services.cl1.nodes[0].kind",
                                                     "role chainlink has no node kinds: remove it")  # fmt: skip


def test_a_good_pool_passes(pool_role):
    check_service(pool_role, POOL, "/inv/lab.yaml")
    check_service(pool_role, pool(R1, R2, R3, P), "/inv/lab.yaml")  # no standby producer: allowed, as under keys


INVENTORY = textwrap.dedent("""\
    environment: lab
    bastion: {host: 10.0.0.254, user: ops, host_key: KEY}
    ssh: {user: ops}
    services:
      pool:
        role: thing
        image: img:2
        nodes:
          - {name: r1, host: 10.0.1.1, kind: relay, host_key: KEY}
          - {name: r2, host: 10.0.1.2, kind: relay, host_key: KEY}
          - {name: p, host: 10.0.1.3, kind: producer, preferred: active, host_key: KEY}
          - {name: s, host: 10.0.1.4, kind: producer, preferred: standby, host_key: KEY}
    """).replace("KEY", '"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0qsfWCRNLqGdUzjCNyTK1ByCvStq+8q8Ymz6Ts/PTn"')


def test_the_inventory_reads_kinds_and_leaves_who_is_preferred_to_the_role(tmp_path):
    (tmp_path / "lab.yaml").write_text(INVENTORY)
    inv = load_inventory(tmp_path / "lab.yaml")
    assert [(n.name, n.kind, n.preferred) for n in inv.services["pool"].nodes] == [
        ("r1", "relay", None),
        ("r2", "relay", None),
        ("p", "producer", "active"),
        ("s", "producer", "standby"),
    ]


def test_without_kinds_a_node_still_says_preferred(tmp_path):
    (tmp_path / "lab.yaml").write_text(INVENTORY.replace("kind: relay, ", "").replace("kind: producer, ", ""))
    with pytest.raises(InventoryError) as err:
        load_inventory(tmp_path / "lab.yaml")
    assert (err.value.where, err.value.problem) == (
        "services.pool.nodes[0].preferred",
        "missing required key 'preferred': set active or standby",
    )


# ---------------------------------------------------------------- planning: inventory in, ordered steps out

WANT = Desired("img:2", "sha256:new", "h2")


def c(current: bool = True, hot: bool = False) -> Container:
    image, config = ("sha256:new", "h2") if current else ("sha256:old", "h1")
    labels = {"io.nodeops.config": config, **({"io.nodeops.hot": "true"} if hot else {})}
    return Container("nodeops-pool", True, "running", image, labels)


def seen(service: Service = POOL, lost: str = "", **containers) -> dict:
    """Views by node name: ``containers`` (absent: none runs; a running one serves), ``lost``: unreachable."""
    return {n.name: NodeView(n, None, False, unreachable="timeout") if n.name in lost.split() else
            NodeView(n, containers.get(n.name), n.name in containers) for n in service.nodes}  # fmt: skip


def steps(plan) -> list[str]:
    return [f"{s.action} {s.node}" + (" +keys" if s.hot else "") for s in plan.steps]


ROLL_RELAYS = ["replace r1", "await-serving r1", "replace r2", "await-serving r2"]


@pytest.mark.parametrize(
    ("service", "facts", "expected"),
    [
        # from nothing: the relays first, then the standby producer, then the producer with the keys (issue 16)
        (POOL, seen(), [*ROLL_RELAYS, "replace s", "await-serving s", "replace p +keys", "await-serving p"]),
        # an upgrade: relays one at a time, then the standby producer, then the producer in place with its keys
        (POOL, seen(r1=c(False), r2=c(False), p=c(False, hot=True), s=c(False)),
         [*ROLL_RELAYS, "replace s", "await-serving s", "replace p +keys", "await-serving p"]),
        # only the producers are stale: the relays are left alone
        (POOL, seen(r1=c(), r2=c(), p=c(False, hot=True), s=c(False)),
         ["replace s", "await-serving s", "replace p +keys", "await-serving p"]),
        # only one relay is stale
        (POOL, seen(r1=c(), r2=c(False), p=c(hot=True), s=c()), ["replace r2", "await-serving r2"]),
        (POOL, seen(r1=c(), r2=c(), p=c(hot=True), s=c()), []),
        # three relays, inventory order within the kind, whatever the order of the file's nodes
        (pool(P, R1, S, R2, R3), seen(pool(P, R1, S, R2, R3), r1=c(False), r2=c(False), r3=c(False),
                                      p=c(hot=True), s=c()),
         [*ROLL_RELAYS, "replace r3", "await-serving r3"]),
    ],
    ids=["fresh", "upgrade", "producers-only", "one-relay", "up-to-date", "three-relays"],
)  # fmt: skip
def test_a_pool_is_planned_kind_by_kind_in_the_roles_order(pool_role, service, facts, expected):
    plan = model_of(pool_role).plan_change(service, facts, WANT)
    assert steps(plan) == expected
    assert plan.service == "pool"


def test_a_keys_kind_starts_its_standby_first_and_a_keys_role_without_kinds_its_active(pool_role):
    """Issue 16: a fresh pool's producers are the standby, then the holder (KeysModel's ``fresh``: the keys go out
    last, beside a running spare); a role's one ``activation: keys`` keeps the preferred active first."""
    pair = pool(P, S)
    kind, plain = model_of(pool_role).kinds["producer"], MODELS["keys"]
    assert steps(kind.plan_change(pair, seen(pair), WANT)) == [
        "replace s", "await-serving s", "replace p +keys", "await-serving p"]  # fmt: skip
    assert kind.plan_change(pair, seen(pair), WANT).reason == "no container runs: fresh start, standby first"
    assert steps(plain.plan_change(pair, seen(pair), WANT)) == [
        "replace p +keys", "await-serving p", "replace s", "await-serving s"]  # fmt: skip
    assert plain.plan_change(pair, seen(pair), WANT).reason == "no container runs: fresh start, preferred active first"
    single = pool(P)
    assert steps(kind.plan_change(single, seen(single), WANT)) == ["replace p +keys", "await-serving p"]


def test_the_plans_reason_names_each_kinds(pool_role):
    plan = model_of(pool_role).plan_change(POOL, seen(r1=c(), r2=c(), p=c(False, hot=True), s=c(False)), WANT)
    assert plan.reason == "relay: up to date; producer: standby first, the keys stay on the active"


def test_a_rotation_replaces_every_node_kind_by_kind(pool_role):
    plan = model_of(pool_role).plan_change(POOL, seen(r1=c(), r2=c(), p=c(hot=True), s=c()), WANT, force=True)
    assert steps(plan) == [*ROLL_RELAYS, "replace s", "await-serving s", "replace p +keys", "await-serving p"]


@pytest.mark.parametrize(
    ("facts", "problem"),
    [
        (seen(r1=c(), r2=c(), p=c(hot=True), s=c(hot=True)), "2 nodes hold the hot keys (p, s)"),
        (seen(r1=c(), r2=c(), p=c(), s=c(False)), "containers run on p, s but none holds the hot keys"),
        (seen(r1=c(False), r2=c(), p=c(hot=True), s=c(), lost="r2"), "r2 cannot be reached"),
    ],
    ids=["two-holders", "no-holder", "relay-lost"],
)
def test_a_group_that_refuses_refuses_the_whole_plan(pool_role, facts, problem):
    with pytest.raises(Unsafe) as err:
        model_of(pool_role).plan_change(POOL, facts, WANT)
    assert err.value.exit_code == EXIT_UNSAFE and problem in str(err.value)


def test_a_relay_group_is_never_all_down(pool_role):
    """Only r1 serves (r2 runs stale but answers nothing: no view of r2 serving); the relays' plan replaces the
    silent r2 first; the producers serving are no relay's cover."""
    facts = {**seen(r1=c(False), p=c(hot=True), s=c()), "r2": NodeView(R2, c(False), False)}
    plan = model_of(pool_role).plan_change(POOL, facts, WANT)
    assert steps(plan) == ["replace r2", "await-serving r2", "replace r1", "await-serving r1"]
    assert "r2 serve" in plan.steps[2].detail


def test_a_promotion_is_planned_in_the_group_with_a_standby(pool_role):
    facts = seen(r1=c(), r2=c(), p=c(hot=True), s=c())
    plan = model_of(pool_role).plan_promotion(POOL, facts)
    assert steps(plan) == ["replace p", "await-fenced p", "replace s +keys", "await-serving s", "await-serving p"]
    with pytest.raises(Unsafe, match="r1 is of kind relay"):
        model_of(pool_role).plan_promotion(POOL, facts, to="r1")
    with pytest.raises(InvalidInput, match="no node 'x'"):
        model_of(pool_role).plan_promotion(POOL, facts, to="x")


@pytest.mark.parametrize(
    ("facts", "roles", "state"),
    [
        (seen(r1=c(), r2=c(), p=c(hot=True), s=c()), ["serving", "serving", "active", "standby"], "healthy"),
        (seen(r1=c(), p=c(hot=True), s=c()), ["serving", "down", "active", "standby"], "degraded"),
        (seen(r1=c(), r2=c(), s=c()), ["serving", "serving", "down", "standby"], "down"),
    ],
)  # fmt: skip
def test_each_node_is_read_under_its_kinds_model(pool_role, facts, roles, state):
    model = model_of(pool_role)
    assert [model.role_of(v) for v in facts.values()] == roles
    assert model.state_of(list(facts.values()), None) == state


def test_a_group_is_the_service_narrowed_to_one_kind():
    assert [n.name for n in group(pool(P, R1, S, R2), "relay").nodes] == ["r1", "r2"]
