"""Review rev16c F7 and F8: a pool's variable of a bad value is refused where the inventory is loaded
(roles.check_variables, through the role's ``variable_problems`` hook: roles/cardano/role.py), exit 2, one line
naming the inventory, ``services.<svc>.variables.<VAR>`` and the fix, before any secret is read or host contacted.
Before: ``SYSTEM_START: yesterday`` and a ``PUBLIC_PEERS`` port of ``x`` ended as a template's ``ValueError: Invalid
isoformat string`` at ``services.pool``, and a threshold of ``ten``, ``-1`` or ``2.5`` was accepted by deploy, then
failed ``fab check``'s ``kes`` in place of the holder's real KES result (exit 1, as a KES emergency)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest

from nodeops.errors import EXIT_INVALID, InventoryError
from nodeops.inventory import load_inventory
from nodeops.job import job_for
from nodeops.roles import check_variables, role_for

EXAMPLE = Path(__file__).parents[2] / "inventory" / "prod.example.yaml"
START = "2026-12-01T08:00:00Z"


def the_pool(**variables):
    """prod.example.yaml's pool with ``variables`` over its own: (inventory, service)."""
    inventory = load_inventory(EXAMPLE)
    service = inventory.services["pool"]
    return inventory, dataclasses.replace(service, variables=MappingProxyType({**service.variables, **variables}))


@pytest.mark.parametrize(("variables", "where", "problem"), [
    ({"SYSTEM_START": "yesterday"}, "SYSTEM_START", "'yesterday' is no time: set it to the lab chain's systemStart, "
     "with its zone (2026-12-01T08:00:00Z)"),
    ({"PROFILE": "lab", "SYSTEM_START": "2026-12-01T08:00:00"}, "SYSTEM_START", "with its zone"),
    ({"PUBLIC_PEERS": [{"address": "1.2.3.4", "port": "x"}]}, "PUBLIC_PEERS[0].port",
     "'x' is not a port (1..65535): give the peer's node-to-node port, as {address: relays.example.org, port: 3001}"),
    ({"PUBLIC_PEERS": [{"address": "a.example", "port": 3001}, {"address": "b.example", "port": 0}]},
     "PUBLIC_PEERS[1].port", "0 is not a port (1..65535)"),
    ({"PUBLIC_PEERS": [{"address": "", "port": 3001}]}, "PUBLIC_PEERS[0].address", "'' is no host name or address"),
    ({"PUBLIC_PEERS": [{"address": "1.2.3.4"}]}, "PUBLIC_PEERS[0]", "{'address': '1.2.3.4'} is not a mapping "
     "{address, port}"),
    ({"PUBLIC_PEERS": "relays.example.org:3001"}, "PUBLIC_PEERS", "'relays.example.org:3001' is not a list"),
    ({"KES_PERIODS_MIN": "ten"}, "KES_PERIODS_MIN", "'ten' is not a whole number: set it to 0 or more"),
    ({"KES_PERIODS_MIN": -1}, "KES_PERIODS_MIN", "-1 is not a whole number"),
    ({"KES_PERIODS_MIN": 2.5}, "KES_PERIODS_MIN", "2.5 is not a whole number"),
    ({"KES_PERIODS_MIN": True}, "KES_PERIODS_MIN", "True is not a whole number"),
    ({"SLOT_LAG_MAX": "ten"}, "SLOT_LAG_MAX", "'ten' is not a whole number"),
])  # fmt: skip
def test_a_bad_value_is_refused_at_load_naming_the_variable_and_the_fix(variables, where, problem):
    inventory, service = the_pool(**variables)
    with pytest.raises(InventoryError) as err:
        check_variables(inventory, service, role_for(inventory, service))
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert (err.value.file, err.value.where) == (str(inventory.source), f"services.pool.variables.{where}")
    assert problem in err.value.problem


@pytest.mark.parametrize("variables", [
    {},
    {"PROFILE": "lab", "SYSTEM_START": START, "CARDANO_SIM_CHAIN": "http://10.9.0.6:3100"},
    {"KES_PERIODS_MIN": 0, "SLOT_LAG_MAX": "30"},
    {"PUBLIC_PEERS": []},
    {"PUBLIC_PEERS": [{"address": "relays.example.org", "port": 3001}, {"address": "10.1.2.3", "port": 6000}]},
])  # fmt: skip
def test_good_values_pass(variables):
    inventory, service = the_pool(**variables)
    check_variables(inventory, service, role_for(inventory, service))


def test_the_refusal_comes_before_any_secret_is_read(monkeypatch):
    """job_for (every command's preflight): the example's secrets are on AWS, which this test cannot reach; the
    refusal comes first."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # were a secret read, it would fail otherwise
    inventory, service = the_pool(KES_PERIODS_MIN="ten")
    with pytest.raises(InventoryError, match=r"services\.pool\.variables\.KES_PERIODS_MIN: 'ten' is not"):
        job_for(inventory, service, from_inventory=True)
