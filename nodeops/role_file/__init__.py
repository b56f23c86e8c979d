"""``role.yaml``: a role's definition, validated like the inventory (nodeops.inventory); what the rest of the
engine uses of it, from the package's modules:

- ``values``: what one key accepts (the validators), the names and the error (``RoleError``, exit 2);
- ``kinds``: ``kinds:`` (the kinds of node a service is made of) and the rules a service's nodes meet under them;
- ``sections``: ``lease:``, ``backup:``, ``passwords:`` and ``rotation.<name>`` (its kinds);
- ``model``: the role, its profiles and their files;
- ``reads``: what a role's templates read (the templates a file is rendered from, the variables each names);
- ``rules``: the rules that span keys, checked on the validated model;
- ``parse``: ``parse_role``, reading one role.yaml through all of them.
"""

from nodeops.role_file.kinds import KindSpec, check_kinds, kind_activations
from nodeops.role_file.model import Profile, Role, RoleFile
from nodeops.role_file.parse import _RoleSpec, parse_role
from nodeops.role_file.rules import default_activation, path_problem
from nodeops.role_file.sections import (
    ROLE_ROTATION_KEYS,
    ROTATION_KINDS,
    BackupSpec,
    LeaseSpec,
    PasswordRules,
    RotationSpec,
)
from nodeops.role_file.values import ACTIVATIONS, MAX_NODES, ONE_ACTIVE, PROFILE_VARIABLE, RoleError

__all__ = [
    "ACTIVATIONS",
    "MAX_NODES",
    "ONE_ACTIVE",
    "PROFILE_VARIABLE",
    "ROLE_ROTATION_KEYS",
    "ROTATION_KINDS",
    "BackupSpec",
    "KindSpec",
    "LeaseSpec",
    "PasswordRules",
    "Profile",
    "Role",
    "RoleError",
    "RoleFile",
    "RotationSpec",
    "_RoleSpec",
    "check_kinds",
    "default_activation",
    "kind_activations",
    "parse_role",
    "path_problem",
]
