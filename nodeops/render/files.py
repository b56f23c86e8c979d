"""A role's files for one service, rendered in memory, and the hash of its configuration: see nodeops.render."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import traceback
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

import jinja2
import jinja2.meta
from jinja2.sandbox import SecurityError

from nodeops.errors import InvalidInput, InventoryError
from nodeops.inventory import Service
from nodeops.render.filters import FilterError, _rendering
from nodeops.render.templates import _found, _Secrets, _Vars, template_digests, template_environment
from nodeops.roles import Role
from nodeops.secrets import Secret, SecretLeak, mask_secrets, strict_rendering

_RESERVED = frozenset({"vars", "secrets", "service", "role"})


@dataclass(frozen=True)
class RenderedFile:
    name: str
    data: bytes = field(repr=False)
    secret: bool
    hot: bool = False  # a hot key (role.yaml ``hot: true``, activation keys): only the active is given it
    data_file: bool = False  # a profile's ``data_files``: public bytes, hashed and never recorded (RECORDED_MAX)

    @property
    def sha256(self) -> str:
        """The sha256 (hex) of its bytes: how a data file is hashed, labelled and compared."""
        return hashlib.sha256(self.data).hexdigest()

    def __repr__(self) -> str:
        kind = "secret" if self.secret else "data file" if self.data_file else "plain"
        return f"RenderedFile({self.name!r}, {len(self.data)} bytes, {kind})"


@dataclass(frozen=True)
class Rendered:
    """What a node of a service gets: its files, its command line, and a hash of its configuration.

    ``config_hash`` is the sha256 (hex) of: the role's name, user, port and mount (and its ``ports`` and
    ``volumes``, when it declares any: a role without keeps the hash it had before the keys existed),
    the profile, the image, the non-secret variables the templates read (Role.read_variables: the role's defaults
    overlaid by the service's, without those ``unused_with`` says another makes unused: a change of one renders
    nothing new, so it is no change; a list or mapping as canonical JSON), the command (and the holder's
    ``hot_command``, when the profile has one: a profile without keeps the hash it had before the key existed),
    the env file's name, every file's name and secret flag, the *bytes of the
    non-secret files only*, into which render lets no Secret be written (see the
    package's docstring), for each secret file the sha256 of the bytes of every
    template it is rendered from (``template_digests``: its own and those it
    imports or includes; a template is the role's or the operator's, never a
    secret, so a changed secrets template is a change a plan sees), and the
    backend version id of every secret the files use (``secret_versions``).
    It becomes a container label, which anyone who can run ``docker inspect``
    on the host reads; a hash over secret bytes would let such a reader test guesses of a password offline (everything
    else in secrets.toml is known or guessable), while a version id says only
    *that* a value changed. So a secret changed in its backend changes the hash
    and is a change a plan sees; a backend that keeps no versions (``env``)
    gives None, and a change of its value is not seen. The variables are the
    inventory's plain values: a value that must stay secret (an RPC URL holding
    an API key) is a secret reference instead.

    ``secret_versions``: {secret name: version id or None} of the secrets the
    files used (revealed through a filter), with ``variables`` (the service's
    own, the role's defaults left out) what a container's labels record, so
    that the very same inputs can be rendered again (nodeops.job). The hot files
    (activation keys) go to the holder alone, so the versions of the secrets only
    they use (``hot_versions``) are its inputs alone: ``config_hash`` names those
    secrets without a version, and other nodes' labels name none (``config(hot)``,
    ``versions(hot)``); ``hot_hash``, the holder's, has them ("" when none has one).
    """

    role: str
    profile: str
    files: Mapping[str, RenderedFile]
    command: tuple[str, ...]
    env_file: str | None
    config_hash: str
    secret_versions: Mapping[str, str | None] = field(default_factory=dict)
    hot_command: tuple[str, ...] = ()  # the arguments the holder of the hot files gets after ``command``
    hot_secrets: frozenset[str] = frozenset()  # the secrets the hot files use (nodeops.job.with_held_hot_secrets)
    hot_versions: Mapping[str, str | None] = field(default_factory=dict)  # of the secrets only the hot files use
    hot_hash: str = ""  # the holder's config hash ("": config_hash)

    def config(self, hot: bool) -> str:
        """The config hash of a node started with the hot files (``hot``: the holder) or without them."""
        return (self.hot_hash or self.config_hash) if hot else self.config_hash

    def versions(self, hot: bool) -> dict[str, str | None]:
        """The secret versions (its ``secrets`` label) of a node started with the hot files (``hot``) or without."""
        return {n: v for n, v in self.secret_versions.items() if hot or n not in self.hot_versions}


def render(
    role: Role,
    profile_name: str,
    service: Service,
    secrets: Mapping[str, Secret],
    extra: Mapping[str, Any] = MappingProxyType({}),
    *,
    file: str | None = None,
) -> Rendered:
    """Render every file of ``role``'s profile for ``service`` (in memory) and compute the config hash.

    ``file``: the inventory ``service`` comes from; every error then is an ``InventoryError`` (exit 2)
    ``FILE: services.<svc>...: problem`` (without it, an ``InvalidInput`` without the file)."""
    profile = role.profile(profile_name)
    for name, value in secrets.items():
        if not isinstance(value, Secret):
            raise TypeError(f"secrets[{name!r}] must be a Secret, not {type(value).__name__}")

    def refuse(where: str, problem: str) -> NoReturn:
        raise InventoryError(file, where, problem) if file else InvalidInput(f"{where}: {problem}")

    missing = [s for s in role.secrets if s not in secrets]
    if missing:
        refuse(f"services.{service.name}.secrets",
               f"role {role.name!r} needs {', '.join(map(repr, missing))}; add a reference for each")  # fmt: skip
    clash = _RESERVED & set(extra)
    if clash:
        raise ValueError(f"extra may not redefine {', '.join(sorted(clash))}")
    variables = role.without_checks({**role.defaults, **service.variables})  # a check variable reaches no file
    context = {
        "vars": _Vars(
            variables, f"set it in services.{service.name}.variables or the role's defaults", role.check_variables
        ),
        "secrets": _Secrets(secrets, f"add it to services.{service.name}.secrets"),
        "service": service.name,
        "role": {
            "name": role.name,
            "user": role.user,
            "port": role.port,
            "mount": role.mount,
            "activation": role.activation,
            "profile": profile.name,
        },  # fmt: skip
        **{name: _given_no_secret(name, f) for name, f in role.hooks.template_functions.items()},
        **extra,
    }
    env = template_environment(_found(role))
    files: dict[str, RenderedFile] = {}
    used: dict[str, str | None] = {}
    hot, cold = set(), set()  # the names of the secrets the hot files use, of those the others use
    for spec in profile.files.values():
        problem, here = None, {}
        with strict_rendering(), _rendering(spec.name, spec.secret, here):
            try:
                text = env.get_template(spec.template).render(context)
                data = text.encode("utf-8")
            except Exception as err:  # noqa: BLE001 - every template failure becomes one line, below
                problem = _describe(err, role, spec.template, secrets, public_names(role, service))
        if problem is not None:  # raised outside the handler: the original (with its frames) is dropped
            if file:
                refuse(f"services.{service.name}", problem)
            raise InvalidInput(problem)
        used.update(here)
        (hot if spec.hot else cold).update(here)
        files[spec.name] = RenderedFile(spec.name, data, spec.secret, spec.hot)
    files.update(data_files(role, profile.name))
    if problem := over_recorded(files.values()):
        refuse(f"services.{service.name}", f"role {role.name}: profile {profile.name}: {problem}")
    rendered = Rendered(role.name, profile.name, MappingProxyType(files), profile.argv(role.mount), profile.env_file,
                        "", hot_command=profile.hot_argv(role.mount), hot_secrets=frozenset(hot))  # fmt: skip
    return with_hashes(rendered, role, service, files, used, hot - cold)


def with_hashes(rendered: Rendered, role: Role, service: Service, files: Mapping[str, RenderedFile],
                versions: Mapping[str, str | None], hot_only: Collection[str]) -> Rendered:  # fmt: skip
    """``rendered`` (of ``role`` for ``service``) with ``files``, the ``versions`` ({secret name: version id}) of the
    secrets its files use, those named in ``hot_only`` used by its hot files alone, and its config hashes over them:
    ``config_hash`` names those without their versions, ``hot_hash`` gives them (Rendered's docstring)."""
    versions = dict(sorted(versions.items()))
    cold = {n: None if n in hot_only else v for n, v in versions.items()}
    args = (role, rendered.profile, service.image, role.read_variables(service.variables), files, rendered.command,
            rendered.env_file)  # fmt: skip
    return dataclasses.replace(
        rendered, files=MappingProxyType(dict(files)), config_hash=_config_hash(*args, cold, rendered.hot_command),
        secret_versions=MappingProxyType(versions), hot_hash=_config_hash(*args, versions, rendered.hot_command)
        if versions != cold else "", hot_versions=MappingProxyType({n: versions[n] for n in sorted(hot_only)}),
    )  # fmt: skip


RECORDED_MAX = 64 * 1024
"""Bytes: the most the text of a service's non-secret files (as one compact JSON object, nodeops.job.compact) may
take, for it is recorded twice. In the container's ``files`` label: Docker sets no length on a label (moby/moby#36104,
its maintainer: "There is no maximum length"; containerd's own 4096-byte label limit is not Docker's), but a label is
a ``--label`` argument of the `docker run` line, which reaches the node as one SSH exec request that sshd runs as
``$SHELL -c '<line>'`` (openssh session.c, do_child): one argument of execve(2), which Linux refuses over
MAX_ARG_STRLEN, 32 pages (include/uapi/linux/binfmts.h; E2BIG: measured here, 131072 bytes with its NUL pass,
131073 do not). And in each audit line (records.Deployed.files), which the lock holder appends with the shell's
``read``/``printf``: no limit of its own, but every ``fab audit`` reads it back through the bastion. Half the
argument's limit leaves the rest of the line (the other labels, the variables, the command) its room. A file over
it is public data: the profile's ``data_files`` (hashed, never recorded)."""


def data_files(role: Role, profile: str) -> dict[str, RenderedFile]:
    """{name: RenderedFile} of ``profile``'s ``data_files``: each file's bytes as the role's folder ships them (the
    folder of ``role.source``), not a template. A file that cannot be read is an InvalidInput (exit 2) naming it."""
    folder, found = role.source.parent, {}
    for name, path in role.profile(profile).data_files.items():
        try:
            found[name] = RenderedFile(name, (folder / path).read_bytes(), False, data_file=True)
        except OSError as err:
            raise InvalidInput(f"role {role.name}: profiles.{profile}.data_files.{name}: cannot read "
                               f"{folder / path}: {err.strerror}") from None  # fmt: skip
    return found


def over_recorded(files: Iterable[RenderedFile]) -> str | None:
    """Why the text of ``files``' non-secret files (those recorded: no data file) is too large to record
    (RECORDED_MAX), naming the largest; None when it fits."""
    recorded = {f.name: f.data.decode("utf-8", "replace") for f in files if not f.secret and not f.data_file}
    size = len(json.dumps(recorded, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    if size <= RECORDED_MAX:
        return None
    largest = max(recorded, key=lambda name: len(recorded[name]))
    return (f"the text of its files takes {size} bytes recorded, over the {RECORDED_MAX} a container label and an "
            f"audit line carry; {largest} alone is {len(recorded[largest])} characters: if it is public data, "
            f"ship it in the role's folder and list it under the profile's data_files (uploaded and hashed, never "
            "recorded; docs/roles.md#data-files)")  # fmt: skip


def _given_no_secret(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The role's template function ``name``, refusing a Secret (or ``secrets``) among its arguments: its code could
    reveal one outside the escaping filters, into a file whose bytes are hashed and recorded. Given none, what its
    ValueError, KeyError or TypeError says derives from public values only: shown (``name: message``, exit 2)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(a, Secret | _Secrets) for a in (*args, *kwargs.values())):
            raise FilterError(f"{name}: a template function is given no secret; write a secret with a filter")
        try:
            return function(*args, **kwargs)
        except (ValueError, KeyError, TypeError) as err:
            raise FilterError(f"{name}: {type(err).__name__}: {err}") from None

    return call


NODE_NAMES = frozenset({"node", "nodes"})  # what a template reads to be rendered once per node


def node_context(service: Service, node: str) -> dict[str, Any]:
    """What a template rendered for ``node`` (a node's name in ``service``) sees: ``node``, its ``name``,
    ``kind`` (None for a role without kinds), ``host`` and ``preferred``; and ``nodes``, every node of the
    service in the inventory's order, each the same shape (a relay's peers, a producer's relays)."""
    shapes = [{"name": n.name, "kind": n.kind, "host": n.host, "preferred": n.preferred} for n in service.nodes]
    return {"node": next(s for s in shapes if s["name"] == node), "nodes": shapes}


def reads_node(role: Role, profile: str) -> bool:
    """Whether a template of ``profile``'s files (or one it imports or includes) reads ``node`` or ``nodes``: then
    each node gets its own rendering (render_nodes); otherwise the service renders once, for every node."""
    return any(_reads_node(_found(role), template) for spec in role.profile(profile).files.values()
               for template, _ in template_digests(role, spec.template))  # fmt: skip


@functools.lru_cache(maxsize=128)
def _reads_node(template_dirs: tuple[Path, ...], template: str) -> bool:
    env = template_environment(template_dirs)
    assert env.loader is not None
    source = env.loader.get_source(env, template)[0]
    return bool(NODE_NAMES & jinja2.meta.find_undeclared_variables(env.parse(source)))


def render_nodes(role: Role, profile: str, service: Service, secrets: Mapping[str, Secret], *,
                 file: str | None = None) -> dict[str, Rendered]:  # fmt: skip
    """{node name: its Rendered} when ``profile``'s templates read the node (reads_node), each rendered with
    node_context, so each node's config hash covers its own files only (two nodes given the same bytes share
    one); {} when they do not: every node gets the service's one rendering (render), as before the key existed.
    Errors as render's."""
    if not reads_node(role, profile):
        return {}
    return {n.name: render(role, profile, service, secrets, node_context(service, n.name), file=file)
            for n in service.nodes}  # fmt: skip


def with_texts(rendered: Rendered, role: Role, service: Service, texts: Mapping[str, str],
               secret_versions: Mapping[str, str | None] | None = None) -> Rendered:  # fmt: skip
    """``rendered`` (of ``role`` for ``service``) with each non-secret file named in ``texts`` (file name -> the
    UTF-8 text a node was started with, as a container's ``files`` label or an audit record keeps it,
    nodeops.job.recorded_texts) holding that text instead of today's rendering, and the config hashes computed
    again over it (and over ``secret_versions`` when given, else ``rendered``'s). A name that is no non-secret file
    of ``rendered`` is ignored; secret files are left as rendered. So the hash equals the one a container recorded
    exactly when the text, the variables, the image and the secret versions are those it ran on."""
    files = {name: RenderedFile(name, texts[name].encode("utf-8"), False) if not f.secret and name in texts else f
             for name, f in rendered.files.items()}  # fmt: skip
    versions = rendered.secret_versions if secret_versions is None else secret_versions
    return with_hashes(rendered, role, service, files, versions, rendered.hot_versions)


def _config_hash(
    role: Role,
    profile: str,
    image: str,
    variables: Mapping[str, Any],
    files: Mapping[str, RenderedFile],
    command: tuple[str, ...],
    env_file: str | None,
    secret_versions: Mapping[str, str | None],
    hot_command: tuple[str, ...] = (),
) -> str:
    h = hashlib.sha256()

    def put(tag: str, data: bytes | str) -> None:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        h.update(tag.encode() + b"\0" + len(raw).to_bytes(8, "big") + raw)

    put("nodeops-config", "1")
    for tag, value in (("role", role.name), ("user", str(role.user)), ("port", str(role.port)), ("mount", role.mount)):
        put(tag, value)
    for tag, named in (("ports", role.ports), ("volumes", role.volumes)):  # only when declared: a role without
        if named:  # keeps the hashes its containers carry
            put(tag, "\0".join(f"{name}={value}" for name, value in sorted(named.items())))
    put("profile", profile)
    put("image", image)
    for key in sorted(variables):
        value = variables[key]
        if isinstance(value, list | tuple | Mapping):  # canonical: keys sorted, a list and a tuple alike
            put("var", f"{key}=json:{json.dumps(value, sort_keys=True, separators=(',', ':'))}")
        else:
            put("var", f"{key}={type(value).__name__}:{value!r}")
    specs = role.profile(profile).files
    for name in sorted(files):
        f = files[name]
        put("file", name)
        if f.data_file:  # by its sha256: only a role with data files has this tag, the others keep their hashes
            put("data-file", f.sha256)
            continue
        put("secret" if f.secret else "data", b"" if f.secret else f.data)  # never the secret bytes
        if f.secret:  # the bytes of its templates instead: a changed template is a change (a non-secret file's
            for template, digest in template_digests(role, specs[name].template):  # output already says it)
                put("template", f"{template}={digest}")
    put("command", "\0".join(command))
    if hot_command:  # only when there is one: a role without keeps the hashes its containers carry
        put("hot-command", "\0".join(hot_command))
    put("env_file", env_file or "")
    for name, version in secret_versions.items():  # sorted by name: an id says a value changed, never what it is
        put("secret-version", f"{name}={version or ''}")
    return h.hexdigest()


_SAFE_MESSAGES = (
    jinja2.UndefinedError,
    jinja2.TemplateSyntaxError,
    jinja2.TemplateNotFound,
    SecurityError,
    FilterError,
    SecretLeak,
)


def public_names(role: Role, service: Service) -> tuple[str, ...]:
    """Names every output of nodeops shows (status, container names, the inventory itself): never masked."""
    return (service.name, role.name, *(n.name for n in service.nodes), *service.variables, *service.secrets)


def _describe(err: BaseException, role: Role, template: str, secrets: Mapping[str, Secret],
              public: tuple[str, ...] = ()) -> str:  # fmt: skip
    """One line: role, template file and line, problem; never a secret value.

    Only the problem (the part a template or a value can shape) is masked, with ``mask_secrets``: the
    role and template path are nodeops' own names. A value that is part of one of the ``public`` names is not
    masked (see ``mask_secrets``)."""
    path, line = _location(err, role)
    if isinstance(err, _SAFE_MESSAGES):
        if isinstance(err, jinja2.TemplateNotFound):
            problem = f"template {err.name!r} not found in {', '.join(str(d) for d in role.template_dirs)}"
        else:
            problem = getattr(err, "message", None) or str(err)
    elif isinstance(err, UnicodeEncodeError):
        problem = "the output is not valid Unicode text (a lone surrogate in a variable)"
    else:  # not ours: its message could quote a revealed value, so give its type only
        problem = f"{type(err).__name__} while rendering (check the expressions on this line)"
    problem = mask_secrets(" ".join(problem.split()), secrets.values(), public)  # last line of defence
    where = f"template {path or template}" + (f", line {line}" if line else "")
    return f"role {role.name}: {where}: {problem}"


def _location(err: BaseException, role: Role) -> tuple[str | None, int | None]:
    """The template file and line an error comes from (Jinja rewrites tracebacks to template lines)."""
    if isinstance(err, jinja2.TemplateSyntaxError):
        return err.filename or err.name, err.lineno
    dirs = [str(d) for d in role.template_dirs]
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(err.__traceback__):
        if any(frame.filename.startswith(d + "/") for d in dirs):
            found = (frame.filename, frame.lineno)
    return found
