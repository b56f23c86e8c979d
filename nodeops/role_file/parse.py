"""Reading ``role.yaml``: its generated spec (nodeops.inventory.schema._spec over nodeops.role_file.model), the
same YAML loader and validator as the inventory, then the rules across keys (nodeops.role_file.rules)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from nodeops.inventory.load import _load_yaml, _make, validate
from nodeops.inventory.schema import _SPECS, _spec
from nodeops.role_file.model import Profile, Role, RoleFile
from nodeops.role_file.rules import _check, default_activation
from nodeops.role_file.sections import _PARSING
from nodeops.role_file.values import RoleError
from nodeops.role_hooks import DEFAULT_HOOKS, RoleHooks

_SPECS[RoleFile] = _spec(RoleFile, "_RoleFileSpec")
_SPECS[Profile] = _spec(Profile, "_ProfileSpec")
_RoleSpec = _spec(
    Role, "_RoleSpec",
    keys=("description", "user", "port", "health", "mount", "stop_timeout", "init", "standby_log", "activation",
          "kinds", "lease", "rotation", "passwords",
          "ports", "volumes",
          "backup", "defaults", "secrets", "writable_paths", "secret_variables", "profiles", "default_profile",
          "variables", "unused_with", "check_variables"),
)  # fmt: skip


def read_role_yaml(source: Path, what: str) -> tuple[Any, dict[tuple[Any, ...], tuple[int, int]]]:
    """A role's YAML file ``source`` (``what`` it is, for the message) read with the inventory's loader: the document
    and where each value starts; ``RoleError`` (exit 2) naming the file when it cannot be read or is not YAML."""
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RoleError(str(source), "", f"cannot read {what}: {err}") from None
    return _load_yaml(text, str(source), RoleError)


def parse_role(name: str, source: Path, template_dirs: tuple[Path, ...], hooks: RoleHooks = DEFAULT_HOOKS) -> Role:
    """Read and validate ``source`` (role ``name``'s role.yaml), its templates looked up in ``template_dirs``, its
    module's ``hooks`` (nodeops.role_hooks: the rotation kinds of its own): the Role, or ``RoleError`` (exit 2)
    naming the file, the path inside it and what it expected."""
    file = str(source)
    data, positions = read_role_yaml(source, "the role file")
    parsing = _PARSING.set(hooks)
    try:
        spec = validate(_RoleSpec, data, positions, file, RoleError)
    finally:
        _PARSING.reset(parsing)
    role = _make(spec, name=name, source=source, template_dirs=template_dirs, hooks=hooks)
    _check(role, file)
    return dataclasses.replace(role, activation=None if role.kinds else default_activation(role))
