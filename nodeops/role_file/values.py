"""What one key of ``role.yaml`` accepts: the validators of its values (each names what it accepts, for the
path-qualified one-line error), the names a rule across keys checks later, the role file's error."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainValidator
from pydantic_core import PydanticCustomError

from nodeops.errors import InventoryError
from nodeops.inventory.values import _NAME, _NAME_PATTERN, _accepts, _fail, _matching, _shown, _up_to

PROFILE_VARIABLE = "PROFILE"
ACTIVATIONS = ("lease", "keys", "all")  # how a role's nodes say who is active: docs/roles.md#activation
# the most nodes a service of each activation takes (docs/inventory.md#nodes): an active and a standby under lease and
# keys; under all, every node serves and a change rolls one at a time, so the run is bounded by the count (32: what one
# multiplexed bastion transport was measured to reach at once, DESIGN.md)
MAX_NODES = {"lease": 2, "keys": 2, "all": 32}
# whether a service (or a kind of node: nodeops.role_file.kinds) of each activation has one active, the node marked
# ``preferred: active`` a fresh start begins with (the model's has_standby: tests/unit/test_activation_models.py)
ONE_ACTIVE = {"lease": True, "keys": True, "all": False}


class RoleError(InventoryError):
    """A problem in a role's files, located by the role file and the path inside it (exit 2)."""


def _a_list(what: str, *, none_is_empty: bool = True) -> BeforeValidator:
    """A list (``null``: an empty one, if ``none_is_empty``), else "expected a list of ``what``"."""

    def check(value: Any) -> Any:
        if value is None and none_is_empty:
            return []
        if not isinstance(value, list):
            raise PydanticCustomError("invalid", f"expected a list of {what}, got {_shown(value)}")
        return value

    return BeforeValidator(check)


def _none_is_empty(value: Any) -> Any:
    return {} if value is None else value


def _choice(*allowed: str) -> PlainValidator:
    @_accepts(" or ".join(allowed))
    def check(value: Any) -> str:
        if value in allowed:
            return value
        _fail(check.accepts, value)

    return PlainValidator(check)


@_accepts("true or false")
def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    _fail(_boolean.accepts, value)


@_accepts("an HTTP path starting with '/'")
def _http_path(value: Any) -> str:
    if isinstance(value, str) and value.startswith("/"):
        return value
    _fail(_http_path.accepts, value)


@_accepts("an absolute path in the container")
def _container_path(value: Any) -> str:
    if isinstance(value, str) and PurePosixPath(value).is_absolute() and ".." not in PurePosixPath(value).parts:
        return value
    _fail(_container_path.accepts, value)


def _relative(value: Any, accepts: str) -> str:
    """``value`` when it is a relative path that stays inside its folder (no ``..``), else the one-line error."""
    if isinstance(value, str):
        parts = PurePosixPath(value).parts
        if parts and not PurePosixPath(value).is_absolute() and ".." not in parts:
            return value
    _fail(accepts, value)


@_accepts("a path relative to templates/<role>/")
def _template(value: Any) -> str:
    return _relative(value, _template.accepts)


@_accepts("a path relative to the role's folder (roles/<role>/)")
def _role_path(value: Any) -> str:
    return _relative(value, _role_path.accepts)


@_accepts(f"a name matching {_NAME_PATTERN}, not 'all' (that is --secret all)")
def _rotation_name(value: Any) -> str:
    if isinstance(value, str) and value != "all" and _NAME.fullmatch(value):
        return value
    _fail(_rotation_name.accepts, value)


@_accepts("a plain file name [A-Za-z0-9._-]+")
def _file_name(value: Any) -> str:
    if isinstance(value, str) and value not in (".", "..") and _FILE_NAME.fullmatch(value):
        return value
    _fail(_file_name.accepts, value)


_FILE_NAME = re.compile(r"[A-Za-z0-9._-]+")


@_accepts(" or ".join(ACTIVATIONS))
def _activation(value: Any) -> str | None:
    if value is None or value in ACTIVATIONS:
        return value
    _fail(_activation.accepts, value)


@_accepts("a name, checked against the role's other keys")
def _any(value: Any) -> Any:
    """Any value: a rule across keys (``_check``) says what it must be, naming the choices."""
    return value


_Checked = Annotated[str, PlainValidator(_any)]
_StopSeconds = Annotated[float, _up_to(3600, "a number of seconds 0 < n <= 3600")]
_SecretName = Annotated[str, _matching(_NAME_PATTERN, f"a secret name matching {_NAME_PATTERN}")]
_VariableName = Annotated[str, _matching(r"[A-Za-z_][A-Za-z0-9_]*", "a variable name [A-Za-z_][A-Za-z0-9_]*")]
_Table = Annotated[str, _matching(r"[a-z_][a-z0-9_]{0,62}", "a table name [a-z_][a-z0-9_]*")]  # spliced into SQL
_Column = Annotated[str, _matching(r"[a-z_][a-z0-9_]{0,62}", "a column name [a-z_][a-z0-9_]*")]  # spliced into SQL
