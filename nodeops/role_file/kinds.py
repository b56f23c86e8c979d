"""``kinds:`` in role.yaml: the kinds of node one service of the role is made of (Cardano: a pool's relays and its
producers), each with its own activation model, in the order a deploy brings them up; and the rules a service's
nodes meet under such a role (``check_kinds``), checked with the role before any host is touched.

A role without ``kinds`` is what it was: one activation for every node of a service, no node names a kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, NoReturn

from pydantic import PlainValidator

from nodeops.errors import InventoryError
from nodeops.inventory.model import derived
from nodeops.inventory.schema import _SPECS, _spec
from nodeops.inventory.values import _integer
from nodeops.role_file.values import MAX_NODES, ONE_ACTIVE, _activation

if TYPE_CHECKING:
    from nodeops.inventory import Service
    from nodeops.role_file.model import Role


@dataclass(frozen=True)
class KindSpec:
    """``kinds.<name>``: one kind of node of the role's services (its name is what an inventory node's ``kind``
    says), and how many of it a service has."""

    name: str = derived()
    activation: Annotated[str, PlainValidator(_activation)]
    """Which node of this kind is active: ``lease``, ``keys`` or ``all`` (every node of the kind serves)."""
    min_nodes: Annotated[int, _integer(1, 32)] = 1
    """The fewest nodes of this kind a service has (Cardano: 2 relays, so that one serves while the other is
    replaced); the most is its activation's (2 under ``lease`` and ``keys``, 32 under ``all``)."""


_SPECS[KindSpec] = _spec(KindSpec, "_KindSpec")


def kind_activations(kinds: Mapping[str, KindSpec]) -> dict[str, str]:
    """Each kind's activation model's name, in the role's order (the order a deploy takes the kinds in). Pure."""
    return {name: spec.activation for name, spec in kinds.items()}


def check_kinds(role: Role, service: Service, file: str) -> None:
    """``service``'s nodes against ``role``'s kinds, or InventoryError (exit 2) naming ``file`` (the inventory), the
    path and the fix. A role without kinds: no node names a kind. A role with kinds: every node names one of them;
    each kind has ``min_nodes`` to its activation's most nodes (role_file.MAX_NODES); a kind with one active
    (role_file.ONE_ACTIVE: lease, keys) has each node say ``preferred`` and exactly one ``active``; a kind whose
    nodes all serve (all) has none say it."""
    at = f"services.{service.name}.nodes"

    def fail(where: str, problem: str) -> NoReturn:
        raise InventoryError(file, where, problem)

    named = ", ".join(role.kinds)
    for i, node in enumerate(service.nodes):
        if node.kind is None and role.kinds:
            fail(f"{at}[{i}]", f"missing required key 'kind': role {role.name}'s nodes each say their kind ({named})")
        if node.kind is not None and not role.kinds:
            fail(f"{at}[{i}].kind", f"role {role.name} has no node kinds: remove it")
        if node.kind is not None and node.kind not in role.kinds:
            fail(f"{at}[{i}].kind", f"unknown kind {node.kind!r}: role {role.name}'s kinds are {named}")
    for kind, spec in role.kinds.items():
        mine = [(i, n) for i, n in enumerate(service.nodes) if n.kind == kind]
        least, most = spec.min_nodes, MAX_NODES[spec.activation]
        if not least <= len(mine) <= most:
            fail(at, f"expected {least} to {most} nodes of kind {kind}, got {len(mine)}: role {role.name} says "
                 f"kinds.{kind}.min_nodes {least}, activation {spec.activation} takes up to {most}")  # fmt: skip
        if not ONE_ACTIVE[spec.activation]:
            for i, node in mine:
                if node.preferred is not None:
                    fail(f"{at}[{i}].preferred", f"every node of kind {kind} serves (activation {spec.activation}): "
                         "none is preferred; remove it")  # fmt: skip
            continue
        for i, node in mine:
            if node.preferred is None:
                fail(f"{at}[{i}]", f"missing required key 'preferred': set active on one node of kind {kind}, "
                     "standby on the other")  # fmt: skip
        active = [i for i, n in mine if n.preferred == "active"]
        if len(active) != 1:
            where = f"{at}[{active[1]}].preferred" if active else at
            fail(where, f"{len(active)} nodes of kind {kind} have 'preferred: active': mark exactly one active")
