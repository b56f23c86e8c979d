"""Loading an inventory: YAML text -> the file's schema (nodeops.inventory.schema) -> the model
(nodeops.inventory.model) -> the rules across keys (nodeops.inventory.rules).

Every problem becomes one InventoryError (exit 2) located by its path inside the file
(``services.chainlink.nodes[1].host``): the first one in the file, worded for a human.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from nodeops.errors import InvalidInput, InventoryError
from nodeops.inventory.model import Bastion, CheckPolicy, Inventory, Service
from nodeops.inventory.rules import check
from nodeops.inventory.schema import _CheckSpec, _DefaultsSpec, _InventorySpec, _ServiceSpec, _Spec
from nodeops.inventory.values import _label, _name_problem, _one_line, _shown


def check_environment_name(env: str) -> None:
    """An environment name names a file (inventory/NAME.yaml): InvalidInput unless it is a name (_name_problem)."""
    if problem := _name_problem(env):
        raise InvalidInput(f"invalid environment name {_shown(env)}: {problem}")


def check_environment(inventory: Inventory, env: str) -> None:
    """``--env NAME`` loaded ``inventory/NAME.yaml``: its ``environment:`` must be NAME, or InventoryError (exit 2).
    The deploy lock and the audit log are kept per environment (``<state_dir>/<environment>/``): a file copied from
    another environment's and not edited would share that one's lock and audit log."""
    if inventory.environment != env:
        was = inventory.environment
        raise InventoryError(str(inventory.source), "environment", f"is {was!r} but the file is loaded as --env "
                             f"{env}: set environment: {env} (the deploy lock and the audit log are kept per "
                             f"environment; a copied file must not share {was!r}'s)")  # fmt: skip


def inventory_path(root: Path, env: str | None, override: str | None) -> Path:
    """The inventory file chosen by --inventory PATH, else by --env NAME."""
    if env:
        check_environment_name(env)
    if override:
        path = Path(override).expanduser()
    elif env:
        path = root / "inventory" / f"{env}.yaml"
    else:
        raise InvalidInput("give --env NAME or --inventory PATH")
    if not path.is_file():
        raise InvalidInput(f"inventory file not found: {path}")
    return path


def load_inventory(path: Path) -> Inventory:
    """Read and validate an inventory file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InventoryError(str(path), "", f"not UTF-8 text (bad byte at offset {err.start})") from None
    except OSError as err:
        raise InventoryError(str(path), "", f"cannot read the file: {err.strerror or err}") from None
    return parse_inventory(text, path)


def parse_inventory(text: str, source: Path) -> Inventory:
    """Validate an inventory's text; relative paths in it are relative to ``source``'s folder."""
    file = str(source)
    data, positions = _load_yaml(text, file)
    if data is None:
        raise InventoryError(file, "", "empty file: expected a mapping with environment, bastion, ssh and services")
    spec = validate(_InventorySpec, data, positions, file, context={"base": source.parent})
    inventory = _build(spec, source)
    check(inventory)
    return inventory


class _Unique:
    """Refuses duplicate keys in a mapping (a loader's construct_mapping)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)  # type: ignore[attr-defined]
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        problem=f"duplicate key {_shown(key)} (first at line {seen[key].line + 1})",
                        problem_mark=key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


class _Loader(_Unique, yaml.SafeLoader):
    """PyYAML's own safe loader, all Python: what says a file's YAML mistake."""


class _FastLoader(_Unique, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same loader on LibYAML's scanner and parser (PyYAML's wheels are built with it): a 512-node inventory
    loads in 0.27 s of CPU instead of 1.31 s, where PyYAML's Python scanner and parser took 90% of loading it.
    Construction stays PyYAML's, so the duplicate-key check and the values are the same."""


def _load_yaml(
    text: str, file: str, error: type[InventoryError] = InventoryError
) -> tuple[Any, dict[tuple[Any, ...], tuple[int, int]]]:
    """The document and where each of its values starts, by path of keys and indexes; ``error`` when it is not
    YAML (the file's kind of InventoryError: nodeops.role_file.RoleError for a role.yaml). A file LibYAML refuses
    is read again by PyYAML's Python parser, whose message and position are the ones said (LibYAML words some
    mistakes otherwise)."""
    try:
        return _composed(_FastLoader, text)
    except yaml.YAMLError:
        pass
    try:
        return _composed(_Loader, text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = ", ".join(filter(None, (err.context, err.problem))) or str(err)
        raise error(file, where, f"invalid YAML: {_one_line(problem)}") from None
    except yaml.reader.ReaderError as err:  # a control character, refused before parsing
        before = text[: err.position]
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        where = f"line {line}, column {column}"
        raise error(file, where, f"invalid YAML: character #x{err.character:04x}: {err.reason}") from None


def _composed(kind: type[_Loader] | type[_FastLoader], text: str) -> tuple[Any, dict[tuple[Any, ...], tuple[int, int]]]:
    loader = kind(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        return loader.construct_document(root), _positions(loader, root)
    finally:
        loader.dispose()


def _positions(loader: _Loader | _FastLoader, root: yaml.Node) -> dict[tuple[Any, ...], tuple[int, int]]:
    """(line, column) of every value, by its path; a missing key sorts at its mapping's start."""
    found: dict[tuple[Any, ...], tuple[int, int]] = {}
    seen: set[int] = set()  # a node reached again through an alias is not walked again
    todo: list[tuple[tuple[Any, ...], yaml.Node]] = [((), root)]
    while todo:
        path, node = todo.pop()
        found[path] = (node.start_mark.line, node.start_mark.column)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            todo += [(path + (loader.construct_object(k),), v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            todo += [(path + (i,), v) for i, v in enumerate(node.value)]
    return found


# ---------------------------------------------------------------- pydantic errors -> one line

_EXPECTED = {
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
    "string_type": "a string",
}


def validate(
    spec: type[_Spec],
    data: Any,
    positions: dict[tuple[Any, ...], tuple[int, int]],
    file: str,
    error: type[InventoryError] = InventoryError,
    context: dict[str, Any] | None = None,
) -> Any:
    """``data`` (a YAML document, ``positions`` from ``_load_yaml``) validated by ``spec``, or the ``error`` that comes
    first in the file (the inventory's and role.yaml's one way of saying what is wrong, and where)."""
    try:
        return spec.model_validate(data, context=context)
    except ValidationError as err:
        raise _first_error(err, data, positions, file, error) from None


def _first_error(
    exc: ValidationError,
    data: Any,
    positions: dict[tuple[Any, ...], tuple[int, int]],
    file: str,
    error: type[InventoryError] = InventoryError,
) -> InventoryError:
    """The error that comes first in the file, located and worded for a human."""
    found = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if err["type"] == "unknown_key":
            loc += (err["ctx"]["key"],)
        elif err["type"].startswith("union_tag_"):  # the one tagged union: secret backends by kind
            loc += ("kind",)
        where, walked = _where(loc, data)
        while walked and walked not in positions:
            walked = walked[:-1]
        found.append((positions.get(walked, (0, 0)), where, _problem(err, loc)))
    _, where, problem = min(found, key=lambda f: f[0])
    return error(file, where, problem)


def _where(loc: tuple[Any, ...], data: Any) -> tuple[str, tuple[Any, ...]]:
    """Map pydantic's loc onto the document: the dotted path, and the keys walked.

    Parts that are not in the document are dropped: union tags, '[key]', and
    the index pydantic gives a host_key written as a single string. A last
    part missing from a mapping is a missing key and is kept.
    """
    where, walked, node = "", (), data
    for i, part in enumerate(loc):
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            where += f"[{part}]"
        elif isinstance(node, dict) and (part in node or (i == len(loc) - 1 and part != "[key]")):
            where += f".{_label(part)}"
        else:
            continue
        walked += (part,)
        node = node.get(part) if isinstance(node, dict) else node[part]
    return where.lstrip("."), walked


def _problem(err: ErrorDetails, loc: tuple[Any, ...]) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind in ("missing", "union_tag_not_found"):
        return f"missing required key {_shown(loc[-1])}"
    if kind == "literal_error":
        return f"expected {ctx['expected']}, got {_shown(err['input'])}"
    if kind == "union_tag_invalid":
        return f"expected one of {ctx['expected_tags']}, got {_shown(ctx['tag'])}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_shown(err['input'])}"
    return _one_line(err["msg"])  # our own validators' messages are complete sentences


# ---------------------------------------------------------------- the schema's values -> the model


def _make(spec: _Spec, **derived: Any) -> Any:
    """The model object a validated mapping becomes (its nested mappings too), given its ``derived`` fields."""
    return spec.ENGINE(**{name: _value(getattr(spec, key)) for key, name in spec.FIELDS.items()}, **derived)


def _value(value: Any, key: Any = None) -> Any:
    """A validated value as the model holds it: mappings read-only, an entry of a mapping given its key as its
    ``name`` when its class has a derived ``name`` (a secret backend, a role's profile)."""
    if isinstance(value, _Spec):
        return _make(value, name=key) if value.NAMED else _make(value)
    if isinstance(value, tuple):
        return tuple(_value(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _value(v, k) for k, v in value.items()})
    return value


def _shared(defaults: _DefaultsSpec, s: _ServiceSpec, name: str, file: str) -> dict[str, Any]:
    """A service's keys of ``_DefaultsSpec`` over ``defaults`` (mappings merged per entry, the rest replaced)."""
    out: dict[str, Any] = {}
    for key in _DefaultsSpec.model_fields:
        mine, shared = getattr(s, key), getattr(defaults, key)
        if key in _DefaultsSpec.MERGED:
            out[key] = _value({**shared, **mine})
        else:
            out[key] = next((v for v in (mine, shared, _DefaultsSpec.FALLBACKS.get(key)) if v is not None), None)
    for key in _DefaultsSpec.REQUIRED:
        if out[key] is None:
            raise InventoryError(file, f"services.{name}", f"missing required key {key!r} (set it here or in defaults)")
    return out


def _check_policy(top: _CheckSpec, mine: _CheckSpec) -> CheckPolicy:
    """A service's ``check:`` key by key over the top level's, over the defaults."""
    return CheckPolicy(**{**top.model_dump(exclude_none=True), **mine.model_dump(exclude_none=True)})


def _bastions(spec: _InventorySpec, file: str) -> dict[str, Bastion]:
    """The file's bastions by name: ``bastions:``, or the one ``bastion:`` (named ``bastion``); InventoryError
    unless exactly one of the two keys is set."""
    if spec.bastion is not None and spec.bastions:
        raise InventoryError(
            file,
            "bastions",
            "both bastion and bastions are set: keep bastion (one for "
            "every service) or bastions (several by name, each service naming its own), not both",
        )
    if spec.bastion is not None:
        return {"bastion": _make(spec.bastion)}
    if not spec.bastions:
        raise InventoryError(file, "bastion", "missing required key 'bastion' (or bastions: several by name)")
    return {name: _make(b, name=name, where=f"bastions.{_label(name)}") for name, b in spec.bastions.items()}


def _build(spec: _InventorySpec, source: Path) -> Inventory:
    bastions = _bastions(spec, str(source))
    only = next(iter(bastions)) if len(bastions) == 1 else None  # a service may leave its bastion out
    services = {}
    for name, s in spec.services.items():
        services[name] = Service(
            **_shared(spec.defaults, s, name, str(source)),
            name=name,
            nodes=tuple(_make(n, service=name) for n in s.nodes),
            bastion=s.bastion or only,
            load_balancer=s.load_balancer,
            inherited=frozenset(spec.defaults.variables).difference(s.variables),
            check=_check_policy(spec.check, s.check),
        )
    return Inventory(
        source=source,
        environment=spec.environment,
        bastions=MappingProxyType(bastions),
        ssh=_make(spec.ssh),
        secret_backends=_value(spec.secret_backends),
        services=MappingProxyType(services),
        backup=_value(spec.backup),
        webhook=_value(spec.notify.webhook) if spec.notify else None,
    )
