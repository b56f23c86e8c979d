"""A role's Jinja environment (sandboxed, StrictUndefined, the filters) and the digests of the templates a
file is rendered from: see nodeops.render.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from nodeops.render.filters import FILTERS, FilterError, _unwrap
from nodeops.role_file.reads import template_sources
from nodeops.roles import Role
from nodeops.secrets import Secret


def _one_value(value: Any) -> Any:
    """``finalize`` of every ``{{ ... }}``: a list or mapping printed as it is would be Python's text of it."""
    if isinstance(value, list | tuple | Mapping) and not isinstance(value, Secret | _Secrets):  # its text: SecretLeak
        _unwrap(value, "{{ }}")  # raises FilterError
    return value


class _Names(dict):
    """``vars`` / ``secrets`` in templates: a dict that names itself when a key is missing."""

    _label = "vars"

    def __init__(self, items: Mapping[str, Any], hint: str) -> None:
        super().__init__(items)
        self._hint = hint


class _Vars(_Names):
    _label = "vars"

    def __init__(self, items: Mapping[str, Any], hint: str, withheld: Collection[str] = ()) -> None:
        super().__init__(items, hint)
        self.withheld = frozenset(withheld)  # the role's check variables: never given to a template


class _Secrets(_Names):
    _label = "secrets"


class _Undefined(jinja2.StrictUndefined):
    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if isinstance(obj, _Vars) and self._undefined_name in obj.withheld:
            return (
                f"vars.{self._undefined_name} is one of the role's check_variables, which no template is given "
                "(only its check and facts hooks): read another variable, or remove it from check_variables"
            )
        if isinstance(obj, _Names) and isinstance(self._undefined_name, str):
            return f"{obj._label}.{self._undefined_name} is undefined ({obj._hint})"
        return super()._undefined_message


class _Environment(ImmutableSandboxedEnvironment):
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, Secret):
            return False  # no secrets.db.reveal(), no .name tricks: filters only
        return super().is_safe_attribute(obj, attr, value)


@functools.lru_cache(maxsize=32)
def template_environment(template_dirs: tuple[Path, ...]) -> jinja2.Environment:
    """The Jinja environment of a role: its template folders in order (operator's first, built-in last)."""
    env = _Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in template_dirs]),
        undefined=_Undefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,
        finalize=_one_value,
    )
    env.filters.update(FILTERS)
    env.globals["fail"] = _fail
    return env


def _found(role: Role) -> tuple[Path, ...]:
    """The role's template folders that exist: the key of its Jinja environment (one per set of folders found)."""
    return tuple(d for d in role.template_dirs if d.is_dir())


def template_digests(role: Role, template: str) -> tuple[tuple[str, str], ...]:
    """``((name, sha256 hex of its bytes), ...)``, sorted by name, of ``template`` (a path relative to the role's
    template folders, as role.yaml names it) and of every template it imports, includes or extends, transitively,
    each as the role's template folders resolve it (the operator's first). A reference whose name is computed (not
    a constant) stands for every template of the folders; one that is not found is left out (a branch not taken:
    once the file exists it is digested). Read once per process and set of folders, as the templates are
    (``template_environment``). Raises jinja2.TemplateNotFound when ``template`` itself is missing."""
    return _digests(_found(role), template)


@functools.lru_cache(maxsize=128)
def _digests(template_dirs: tuple[Path, ...], template: str) -> tuple[tuple[str, str], ...]:
    found = template_sources(template_dirs, template)  # cached: read once per process and set of folders
    return tuple(sorted((name, hashlib.sha256(source.encode("utf-8")).hexdigest()) for name, _, source in found))


def _fail(message: str) -> NoReturn:
    """``{{ fail("...") }}`` in a template: the role refuses its inputs with this message (a template's own check,
    e.g. of a list variable's shape; it names variables, never a secret's value)."""
    raise FilterError(str(message))
