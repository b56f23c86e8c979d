"""The inventory: one YAML file per environment -> a validated, frozen model.

Every problem becomes one InventoryError located by its path inside the file
(``services.chainlink.nodes[1].host``). The file holds only references to
secrets, so errors may echo offending values (truncated to 40 characters).

The package, in the order a file goes through it:

- ``values``: what one key accepts (the field validators) and ``HostKey``;
- ``model``: the frozen dataclasses the engine uses, each field declared once (annotation = validator, default,
  description);
- ``schema``: the file's pydantic models, generated from the model (docs/inventory-reference.md is generated from
  them by tools/inventory_reference.py);
- ``load``: YAML -> schema -> model, each problem as one located line;
- ``rules``: the rules across keys.
"""

from nodeops.inventory.load import (
    check_environment,
    check_environment_name,
    inventory_path,
    load_inventory,
    parse_inventory,
)
from nodeops.inventory.model import (
    BackupPolicy,
    Bastion,
    CheckPolicy,
    Inventory,
    Node,
    SecretBackend,
    SecretRef,
    Service,
    SshSettings,
)
from nodeops.inventory.rules import shares_host
from nodeops.inventory.schema import _DefaultsSpec, _InventorySpec, _Spec
from nodeops.inventory.values import (
    NAME_MAX,
    STATE_DIR_MAX,
    VARIABLE_DEPTH,
    HostKey,
    Scalar,
    Variable,
    variable_problem,
)

__all__ = [
    "NAME_MAX",
    "STATE_DIR_MAX",
    "VARIABLE_DEPTH",
    "BackupPolicy",
    "Bastion",
    "CheckPolicy",
    "HostKey",
    "Inventory",
    "Node",
    "Scalar",
    "SecretBackend",
    "SecretRef",
    "Service",
    "SshSettings",
    "Variable",
    "_DefaultsSpec",
    "_InventorySpec",
    "_Spec",
    "check_environment",
    "check_environment_name",
    "inventory_path",
    "load_inventory",
    "parse_inventory",
    "shares_host",
    "variable_problem",
]
