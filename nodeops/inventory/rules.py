"""The inventory's rules across keys (a pinned key for every host, one name per bastion, one active node per service,
secret references to defined backends, no two services serving one port of one host, ...), checked on the model in
file order: the first broken one is an InventoryError (exit 2) naming the file, the path and the fix."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import NoReturn

from nodeops.errors import InventoryError
from nodeops.inventory.model import BackupPolicy, Inventory, SecretBackend, Service
from nodeops.inventory.values import _shown


def check(inv: Inventory) -> None:
    """Rules that span several fields, checked in file order."""

    def fail(where: str, problem: str) -> NoReturn:
        raise InventoryError(str(inv.source), where, problem)

    bastions: dict[tuple[str, int], str] = {}  # a bastion's address: where the first name for it is
    for b in inv.bastions.values():
        if bool(b.host_keys) == bool(b.known_hosts):
            fail(b.where, "pin the bastion's host key: set exactly one of host_key or known_hosts")
        if first := bastions.get(address := (_canonical_host(b.host), b.port)):
            fail(b.where, f"the same host and port as {first} ({b.host}:{b.port}): one bastion under two names "
                 f"would be logged in to twice; use one name for one bastion (remove {b.where}, name "
                 f"{first.rpartition('.')[2]} in its services' bastion:)")  # fmt: skip
        bastions[address] = b.where
    if inv.backup is not None:
        _check_backup(inv.backup, inv.secret_backends, fail)
    if inv.webhook is not None and inv.webhook.backend not in inv.secret_backends:
        defined = ", ".join(inv.secret_backends) or "none"
        fail("notify.webhook.backend", f"unknown secret backend {_shown(inv.webhook.backend)} (defined: {defined})")
    names: dict[str, str] = {}
    addresses: dict[tuple[str, int], list[tuple[str, Service]]] = {}  # a host: its nodes, where and whose
    for service in inv.services.values():
        at = f"services.{service.name}"
        _check_bastion(inv, service, at, fail)
        for key, ref in service.secrets.items():
            if ref.backend not in inv.secret_backends:
                defined = ", ".join(inv.secret_backends) or "none"
                problem = f"unknown secret backend {_shown(ref.backend)} (defined: {defined})"
                fail(f"{at}.secrets.{key}.backend", problem)
        if service.secret_files == "shred" and service.restart != "no":
            fail(
                f"{at}.restart",
                f"restart {service.restart!r} would restart a node whose secret files were shredded "
                "(it could not start); use restart: no (nodeops redeploys, the standby covers) "
                "or secret_files: keep",
            )
        active, kinds = None, any(n.kind is not None for n in service.nodes)  # kinds: the role's rules per kind
        for i, node in enumerate(service.nodes):
            here = f"{at}.nodes[{i}]"
            if node.name in names:
                fail(f"{here}.name", f"duplicate node name {_shown(node.name)} (also at {names[node.name]})")
            names[node.name] = here
            address = (_canonical_host(node.host), node.port)
            for where, other in addresses.get(address, []):
                if other.name == service.name:
                    fail(f"{here}.host", f"duplicate address {_shown(f'{node.host}:{node.port}')} (also at {where})")
                if (port := _serving_port(other)) == _serving_port(service):
                    fix = f"set a different port on one of them (services.{service.name}.port)"
                    fail(f"{here}.host", f"services {other.name} and {service.name} share host {node.host} and "
                         f"both serve on {port}: {fix}")  # fmt: skip
            addresses.setdefault(address, []).append((here, service))
            if not node.host_keys and inv.ssh.known_hosts is None:
                fail(here, "no pinned host key: set host_key or ssh.known_hosts")
            if kinds:
                continue  # who is preferred, per kind: nodeops.role_file.kinds.check_kinds, with the role
            if node.preferred is None:
                fail(f"{here}.preferred", "missing required key 'preferred': set active or standby")
            if node.preferred == "active":
                if active:
                    fail(f"{here}.preferred", f"a second active node (also at {active}): mark exactly one active")
                active = here
        if active is None and not kinds:
            fail(f"{at}.nodes", "no node has 'preferred: active': mark exactly one active")


def _check_bastion(inv: Inventory, service: Service, at: str, fail: Callable[[str, str], NoReturn]) -> None:
    """``service`` is reached through one of the file's bastions: named when there are several, known."""
    names = ", ".join(inv.bastions)
    if service.bastion is None:
        first = next(iter(inv.bastions))
        fail(at, f"no bastion: the file has several ({names}); name the one it is reached through (bastion: {first})")
    if service.bastion not in inv.bastions:
        if [b.where for b in inv.bastions.values()] == ["bastion"]:
            fail(f"{at}.bastion", f"names bastion {_shown(service.bastion)}, but the file has one bastion "
                 "(bastion:): remove this key, or declare the bastions by name under bastions:")  # fmt: skip
        fail(f"{at}.bastion", f"unknown bastion {_shown(service.bastion)} (bastions: {names})")


def _check_backup(b: BackupPolicy, backends: Mapping[str, SecretBackend], fail: Callable[[str, str], NoReturn]) -> None:
    aws = backends.get(b.aws)
    if aws is None or aws.kind != "aws-secretsmanager":
        kinds = ", ".join(n for n, be in backends.items() if be.kind == "aws-secretsmanager") or "none"
        fail("backup.aws", f"{_shown(b.aws)} is not a secret backend of kind aws-secretsmanager (those: {kinds}); "
             "S3 is reached with its region, endpoint and credentials")  # fmt: skip
    if b.identity is not None and b.identity.backend not in backends:
        fail("backup.identity.backend", f"unknown secret backend {_shown(b.identity.backend)}")
    if b.identity is not None and b.identity_file is not None:
        fail("backup", "set at most one of identity (a secret reference) and identity_file")


def _serving_port(service: Service) -> int | str:
    """The port ``service``'s nodes serve and publish on, as far as the inventory alone can tell: its own ``port``,
    else a label that equals only another service's of the same role without one (roles.role_for compares the
    roles' ports)."""
    return service.port or f"the {service.role} role's port"


def shares_host(a: Service, b: Service) -> bool:
    """Whether two services have nodes on one host (the same address and SSH port)."""
    hosts = [{(_canonical_host(n.host), n.port) for n in s.nodes} for s in (a, b)]
    return bool(hosts[0] & hosts[1])


def _canonical_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()
