"""``role.yaml``: a role's definition, validated like the inventory (nodeops.inventory). The model and its
validation live in nodeops.role_file.model; this package re-exports what the rest of the engine uses."""

from nodeops.role_file.model import (
    ACTIVATIONS,
    PROFILE_VARIABLE,
    ROLE_ROTATION_KEYS,
    ROTATION_KINDS,
    BackupSpec,
    LeaseSpec,
    Profile,
    Role,
    RoleError,
    RoleFile,
    RotationSpec,
    _RoleSpec,
    default_activation,
    parse_role,
    path_problem,
)

__all__ = [
    "ACTIVATIONS",
    "PROFILE_VARIABLE",
    "ROLE_ROTATION_KEYS",
    "ROTATION_KINDS",
    "BackupSpec",
    "LeaseSpec",
    "Profile",
    "Role",
    "RoleError",
    "RoleFile",
    "RotationSpec",
    "_RoleSpec",
    "default_activation",
    "parse_role",
    "path_problem",
]
