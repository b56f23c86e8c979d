"""What a role's templates read, parsed and never rendered (so every branch): the templates a file is rendered from
(its own and those it imports, includes or extends, transitively, as the role's template folders resolve them) and
the variables each reads by name (``vars.NAME``, ``vars["NAME"]``, ``vars.get("NAME")``, ``"NAME" in vars``).
role.yaml's rules check ``check_variables`` against them (nodeops.role_file.rules); nodeops.render.templates digests
the same templates."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2
import jinja2.meta
from jinja2 import nodes

VARS = "vars"  # what the templates call the variables (nodeops.render)


@functools.lru_cache(maxsize=32)
def _environment(template_dirs: tuple[Path, ...]) -> jinja2.Environment:
    """A plain environment over the role's template folders, in order: only parsed with, never rendered."""
    return jinja2.Environment(loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in template_dirs]))


@functools.lru_cache(maxsize=128)
def template_sources(template_dirs: tuple[Path, ...], template: str) -> tuple[tuple[str, str, str], ...]:
    """``((name, file, source), ...)`` of ``template`` (a path relative to ``template_dirs``, as role.yaml names it)
    and of every template it imports, includes or extends, transitively, each as the folders resolve it (the first
    that has it: ``file``). A reference whose name is computed (not a constant) stands for every template of the
    folders; one that is not found is left out (a branch not taken). Read once per process and set of folders.
    Raises jinja2.TemplateNotFound when ``template`` itself is missing, jinja2.TemplateSyntaxError for one that
    does not parse."""
    env = _environment(template_dirs)
    loader = env.loader
    assert loader is not None
    found: dict[str, tuple[str, str]] = {}
    todo = [template]
    while todo:  # bounded: each name is read once, and the folders hold finitely many
        name = todo.pop()
        if name in found:
            continue
        try:
            source, file, _ = loader.get_source(env, name)
        except jinja2.TemplateNotFound:
            if name == template:
                raise
            continue
        found[name] = (file or name, source)
        refs = list(jinja2.meta.find_referenced_templates(env.parse(source)))
        todo += loader.list_templates() if None in refs else [r for r in refs if r is not None]
    return tuple((name, file, source) for name, (file, source) in found.items())


def _is_vars(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == VARS


def _constant(node: nodes.Node) -> str | None:
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


def variables_read(source: str) -> frozenset[str]:
    """The variables the template text ``source`` reads by a constant name, in any branch: ``vars.NAME``,
    ``vars["NAME"]``, ``vars.get("NAME")`` and ``"NAME" in vars``. A name computed at render is not seen here (the
    renderer gives no check variable at all: nodeops.render). Raises jinja2.TemplateSyntaxError."""
    tree, names = jinja2.Environment().parse(source), set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if _is_vars(node.node):
            names.add(node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg))
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Getattr) and _is_vars(call.node.node) and call.node.attr == "get" and call.args:
            names.add(_constant(call.args[0]))
    for compare in tree.find_all(nodes.Compare):
        if any(op.op in ("in", "notin") and _is_vars(op.expr) for op in compare.ops):
            names.add(_constant(compare.expr))
    return frozenset(n for n in names if n is not None)
