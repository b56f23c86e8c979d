"""The rules of ``role.yaml`` that span keys (a lease's variables are the role's, a template exists, ...), checked
on the validated model once every key is valid; each problem is one RoleError naming the path inside the file."""

from __future__ import annotations

import posixpath
from typing import Any, NoReturn

import jinja2

from nodeops.inventory.values import _NAME, _NAME_PATTERN
from nodeops.role_file.model import Profile, Role
from nodeops.role_file.reads import template_sources, variables_read
from nodeops.role_file.sections import LeaseSpec
from nodeops.role_file.values import PROFILE_VARIABLE, RoleError


def default_activation(role: Role) -> str:
    """The role's activation model: ``activation`` as written, else ``keys`` when one of its files is ``hot``, else
    ``lease`` (a role.yaml written before the key: one node answers its health path, the others wait). Pure."""
    hot = any(f.hot for p in role.profiles.values() for f in p.files.values())
    return role.activation or ("keys" if hot else "lease")


def activations(role: Role) -> tuple[str, ...]:
    """The activation models the role's nodes are under: each kind's (``kinds:``, in order), else the role's one
    (``default_activation``). Pure."""
    return tuple(k.activation for k in role.kinds.values()) or (default_activation(role),)


# ---------------------------------------------------------------- rules across keys


def _check(role: Role, file: str) -> None:
    """The rules that span keys, in the order of the file's keys."""

    def fail(where: str, problem: str) -> NoReturn:
        raise RoleError(file, where, problem)

    defaults, secrets = role.defaults, role.secrets
    known, models = {*defaults, *role.variables}, activations(role)
    if role.kinds and role.activation is not None:
        fail("activation", "a role with kinds says each kind's activation (kinds.<kind>.activation): remove this one")
    if role.lease is not None:
        if "lease" not in models:
            fail("lease", f"a lease needs activation: lease (this role's is {' and '.join(models)}): remove it")
        _check_lease(role.lease, secrets, known, fail)
    for name, spec in role.rotation.items():
        at = f"rotation.{name}"
        for key in ("secret", "user"):
            value = getattr(spec, key)
            if value is not None and value not in secrets:
                fail(f"{at}.{key}", f"expected one of the role's secrets ({', '.join(secrets)}), got {value!r}")
        for key in ("admin_user", "admin_password"):
            value = getattr(spec, key)
            if value is not None and value in secrets:
                fail(f"{at}.{key}", f"expected a secret name outside the role's required secrets, got {value!r}")
        for i, value in enumerate(spec.reads):
            if value in secrets or value in spec.reads[:i]:
                fail(f"{at}.reads[{i}]", "expected a secret name outside the role's required secrets (deploy reads "
                     f"those), each once, got {value!r}")  # fmt: skip
        if spec.kind == "postgres-password" and role.lease is None:
            fail(at, "a postgres-password rotation needs the role's lease: section (it locates the database)")
    _check_published(role, fail)
    rules = role.passwords
    if rules.max_length is not None and rules.max_length < rules.min_length:
        fail("passwords.max_length", f"expected at least min_length ({rules.min_length}), got {rules.max_length}")
    if role.backup is not None and role.lease is None:
        fail("backup", "a backup needs the role's lease: section (it locates the database)")
    for i, var in enumerate(role.writable_paths):
        if var not in defaults:
            fail(f"writable_paths[{i}]", f"expected a variable of the role's defaults, got {var!r}")
        if problem := path_problem(defaults[var], role.mount):
            fail(f"defaults.{var}", problem)
    for var, secret in role.secret_variables.items():
        if var not in defaults:
            fail(f"secret_variables.{var}", "expected a variable of the role's defaults")
        if not isinstance(secret, str) or not _NAME.fullmatch(secret) or secret in secrets:
            problem = f"expected a secret name matching {_NAME_PATTERN} outside the role's required secrets"
            fail(f"secret_variables.{var}", f"{problem}, got {secret!r}")
    for profile in role.profiles.values():
        _check_profile(profile, role, fail)
    if role.default_profile not in role.profiles:
        fail("default_profile", f"expected one of {', '.join(role.profiles)}, got {role.default_profile!r}")
    for i, var in enumerate(role.variables):
        if var in defaults or var == PROFILE_VARIABLE or var in role.variables[:i]:
            fail(f"variables[{i}]", f"{var} is declared already (defaults, PROFILE or earlier in this list)")
    for var, names in role.unused_with.items():
        if var not in known:
            fail(f"unused_with.{var}", "expected a variable the role declares (defaults or variables)")
        for i, unused in enumerate(names):
            if unused not in defaults or unused == var:
                fail(f"unused_with.{var}[{i}]", f"expected a variable of the role's defaults other than {var}, got "
                     f"{unused!r}")  # fmt: skip
    _check_check_variables(role, fail)


def _check_check_variables(role: Role, fail: Any) -> None:
    """``check_variables``: each a variable the role declares, once, that nothing but the role's hooks reads: no
    other key of role.yaml names it (each of those reaches the node or its database) and no template the role's
    profiles render reads it by name (nodeops.role_file.reads; a name computed at render finds no such variable)."""
    if not role.check_variables:
        return  # a role without any parses no template here
    declared = {*role.defaults, *role.variables}
    lease = role.lease
    others = {
        **{v: "unused_with" for key, names in role.unused_with.items() for v in (key, *names)},
        **{v: "writable_paths" for v in role.writable_paths},
        **{v: "secret_variables" for v in role.secret_variables},
        **({getattr(lease, k): "lease" for k in ("host", "port", "database", "sslmode")} if lease else {}),
    }
    reads = _template_reads(role, fail)
    for i, var in enumerate(role.check_variables):
        at = f"check_variables[{i}]"
        if var not in declared:
            fail(at, f"expected a variable the role declares (defaults or variables), got {var!r}")
        if var in role.check_variables[:i]:
            fail(at, f"{var} is listed already")
        if var in others:
            fail(
                at,
                f"{var} is named by {others[var]} too, which the node's setup reads: a check variable is read "
                "by the role's check and facts hooks alone; remove it from one of the two",
            )
        if var in reads:
            fail(at, f"{var} is read by template {reads[var]}: a check variable reaches the role's check and facts "
                 "hooks alone, never a file; remove it from this list or from the template")  # fmt: skip


def _template_reads(role: Role, fail: Any) -> dict[str, str]:
    """Variable -> the first template that reads it by name, as ``FILE (profiles.P.files.F)``, over every file of
    every profile and the templates each imports or includes; one that does not parse fails at its file."""
    folders, reads = tuple(d for d in role.template_dirs if d.is_dir()), {}
    for profile in role.profiles.values():
        for spec in profile.files.values():
            where = f"profiles.{profile.name}.files.{spec.name}"
            try:
                for _, file, source in template_sources(folders, spec.template):
                    for var in variables_read(source):
                        reads.setdefault(var, f"{file} ({where})")  # the file: an operator's or the role's
            except jinja2.TemplateSyntaxError as err:
                fail(f"{where}.template", f"template {err.name or spec.template} does not parse: line {err.lineno}: "
                     f"{err.message}")  # fmt: skip
    return reads


def _check_lease(lease: LeaseSpec, secrets: tuple[str, ...], variables: set[str], fail: Any) -> None:
    for key in ("host", "port", "database", "sslmode"):
        if (name := getattr(lease, key)) not in variables:
            fail(f"lease.{key}", f"expected a variable of the role's defaults or variables, got {name!r}")
    for key in ("user", "password"):
        if (name := getattr(lease, key)) not in secrets:
            fail(f"lease.{key}", f"expected one of the role's secrets ({', '.join(secrets)}), got {name!r}")


def _check_profile(profile: Profile, role: Role, fail: Any) -> None:
    at, models = f"profiles.{profile.name}", activations(role)
    activation = " and ".join(models)
    if "keys" in models and not any(f.hot for f in profile.files.values()):
        fail(f"{at}.files", "activation keys needs at least one file marked hot: true (the keys the active holds)")
    for f in profile.files.values():
        if f.hot and "keys" not in models:
            fail(f"{at}.files.{f.name}.hot", f"a hot file needs activation: keys (this role's is {activation})")
        if f.hot and not f.secret:
            fail(f"{at}.files.{f.name}.secret", "a hot file holds keys: set secret: true")
        if f.read == "lease" and "lease" not in models:
            fail(f"{at}.files.{f.name}.read", f"read: lease needs activation: lease (this role's is {activation})")
        if not any((d / f.template).is_file() for d in role.template_dirs):
            searched = ", ".join(str(d) for d in role.template_dirs)
            fail(f"{at}.files.{f.name}.template", f"template {f.template!r} not found in {searched}")
    if profile.hot_command and "keys" not in models:
        fail(f"{at}.hot_command", f"arguments for the holder of the hot files need activation: keys (this role's is "
             f"{activation})")  # fmt: skip
    for key, args in (("command", profile.command), ("hot_command", profile.hot_command)):
        for i, arg in enumerate(args):
            try:
                arg.format(mount=role.mount)
            except (KeyError, IndexError, ValueError) as err:
                fail(f"{at}.{key}[{i}]", f"only the placeholder {{mount}} is known ({type(err).__name__}: {err})")
    folder = role.source.parent.resolve()
    for name, path in profile.data_files.items():
        found = (folder / path).resolve()
        if name in profile.files:
            fail(f"{at}.data_files.{name}", "a file of this profile's files has this name already: rename one")
        elif not found.is_relative_to(folder) or not found.is_file():
            fail(f"{at}.data_files.{name}", f"expected a file inside {folder}, got {path!r}")
    if profile.env_file is not None and profile.env_file not in profile.files:
        fail(f"{at}.env_file", f"expected one of this profile's files ({', '.join(profile.files)}), got "
             f"{profile.env_file!r}")  # fmt: skip


def _check_published(role: Role, fail: Any) -> None:
    """``ports``: none the role's ``port`` or another's (each is published on the host with its own number).
    ``volumes``: none at or under ``mount`` (read-only tmpfs, its files' only place: a secret file must never land on
    the node's persistent disk), nor ``mount`` under one, nor one at or under another."""
    ports: dict[int, str] = {role.port: "the role's port (where the health path is asked)"}
    for name, port in role.ports.items():
        if port in ports:
            fail(f"ports.{name}", f"port {port} is {ports[port]} already: each port is published once, choose "
                 "another")  # fmt: skip
        ports[port] = f"ports.{name}"
    paths: dict[str, str] = {role.mount: "the role's mount (the read-only tmpfs of its files)"}
    for name, path in role.volumes.items():
        for other, what in paths.items():
            if _at_or_under(path, other) or _at_or_under(other, path):
                fail(f"volumes.{name}", f"{path!r} overlaps {what}, {other}: a volume is a folder of its own, "
                     "apart from the mount and the other volumes; choose another path")  # fmt: skip
        paths[path] = f"volumes.{name}"


def _at_or_under(path: str, root: str) -> bool:
    """Whether container path ``path`` is ``root`` or inside it ("//x/./y/.." is "/x"). Pure."""
    path, root = (posixpath.normpath("/" + p.lstrip("/")) for p in (path, root))
    return path == root or path.startswith(root.rstrip("/") + "/")


def path_problem(value: Any, mount: str) -> str | None:
    """Why ``value`` cannot be a path the node writes to, given the read-only ``mount``; None if it can."""
    if not isinstance(value, str) or not value:
        return f"expected a path, got {value!r}"
    if value == "~" or value.startswith("~/"):
        return None
    if not value.startswith("/"):
        return f"expected an absolute path (or ~/...), got {value!r}: a relative one depends on the image's workdir"
    if _at_or_under(value, mount):
        return (f"{value!r} is at or under the role's mount {mount}, which the node sees read-only and cannot make "
                f"its own; set a writable path outside {mount}")  # fmt: skip
    return None
