"""Render a role's files for one service, in memory: Jinja2 -> bytes, never a file on disk.

Templates see:

- ``vars``: the role's ``defaults`` overlaid by the service's ``variables``;
- ``secrets``: the service's resolved Secrets, by name;
- ``service``: the service name; ``role``: ``name``, ``user``, ``port``, ``mount``;
- whatever the caller adds in ``extra`` (the deploy passes ``node``: name, preferred).

Jinja runs sandboxed (no attribute of a Secret is reachable, so no
``secrets.db.reveal()``), with StrictUndefined, no autoescaping and the
trailing newline kept. A Secret reaches the output only through an escaping
filter, each exact for one format:

- ``toml``: a TOML basic string (``"..."`` with ``\\``, ``"`` and control
  characters escaped); booleans and numbers become TOML booleans and numbers,
  a list an inline array, a mapping an inline table (keys quoted unless bare).
  The other filters refuse a list or mapping: a template writes its items. So do Jinja's ``string``
  filter and a bare ``{{ value }}``, which would write Python's text of one (``[1337]``).
- ``urlpart``: percent-encoded for one URL component (``quote(safe="")``):
  userinfo, path, query value.
- ``dotenv``: a value for ``docker run --env-file``. Docker's CLI reads that
  file line by line (bufio: ``\\n`` ends a line, one trailing ``\\r`` is
  dropped), requires valid UTF-8, strips leading whitespace from the *line*,
  splits on the first ``=`` and passes the rest through unchanged: there is no
  quoting and no escaping (docker/cli ``opts/envfile.go``; quotes stay part of
  the value, docker/cli#4665, #3630). So the value is written raw, and a value
  that cannot be carried (a newline, a carriage return, NUL, a line over 64 KiB,
  text that is not UTF-8) is refused, naming the variable, never the value.
- ``line``: the value as one line of a plain file (``.api``, ``.password``),
  unchanged; a newline or carriage return in it is refused.
- ``raw``: a non-secret value as text; refuses a Secret.

A file the role marks ``secret: false`` (``config.toml``) takes no Secret at
all: every filter refuses one there, naming the secret and the file. Such a
file's bytes are in the configuration hash, a container label anyone who can
run ``docker inspect`` reads, so a secret in it could be confirmed by guessing
offline (and it is not shredded, nor uploaded as a secret). A value that is
secret goes to a ``secret: true`` file (``secrets.toml``, ``rpc.toml``, ``.env``).

A template may refuse its inputs with ``{{ fail("message") }}`` (one line, as
below): a role checks the shape of a list variable that way.

Turning a Secret into text any other way inside a template (``{{ secrets.db }}``,
``~``, ``|upper``, ``|join``, ``{{ secrets }}``) raises: see nodeops.secrets.
Every failure is one ``InvalidInput`` line naming the role, the template file
and line, and the problem; messages name variables, never secret values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import re
import traceback
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import quote

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from nodeops.errors import InvalidInput, InventoryError
from nodeops.inventory import Service
from nodeops.roles import Role
from nodeops.secrets import Secret, SecretLeak, mask_secrets, strict_rendering

__all__ = ["FilterError", "Rendered", "RenderedFile", "render", "template_environment", "with_texts"]

_RESERVED = frozenset({"vars", "secrets", "service", "role"})
_USED: ContextVar[dict[str, str | None] | None] = ContextVar("nodeops_secrets_used", default=None)
_ENV_FILE_LINE_MAX = 64 * 1024 - 1  # bufio.MaxScanTokenSize: docker refuses a longer line


class FilterError(InvalidInput):
    """A value that an escaping filter cannot write exactly (the message names it, not its value)."""


_PLAIN_FILE: ContextVar[str | None] = ContextVar("nodeops_plain_file", default=None)


@contextlib.contextmanager
def _rendering(name: str, secret: bool, used: dict[str, str | None]) -> Iterator[None]:
    """While file ``name`` renders (this thread/context only): if it is not secret, every filter refuses a Secret;
    every Secret a filter writes is noted in ``used`` (name -> version id)."""
    tokens = _PLAIN_FILE.set(None if secret else name), _USED.set(used)
    try:
        yield
    finally:
        _PLAIN_FILE.reset(tokens[0])
        _USED.reset(tokens[1])


@dataclass(frozen=True)
class RenderedFile:
    name: str
    data: bytes = field(repr=False)
    secret: bool

    def __repr__(self) -> str:
        kind = "secret" if self.secret else "plain"
        return f"RenderedFile({self.name!r}, {len(self.data)} bytes, {kind})"


@dataclass(frozen=True)
class Rendered:
    """What a node of a service gets: its files, its command line, and a hash of its configuration.

    ``config_hash`` is the sha256 (hex) of: the role's name, user, port and mount,
    the profile, the image, the non-secret variables the templates read (Role.read_variables: the role's defaults
    overlaid by the service's, without those ``unused_with`` says another makes unused: a change of one renders
    nothing new, so it is no change; a list or mapping as canonical JSON), the command,
    the env file's name, every file's name and secret flag, the *bytes of the
    non-secret files only*, into which render lets no Secret be written (see the
    module's docstring), for each secret file the sha256 of the bytes of every
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
    that the very same inputs can be rendered again (nodeops.deploy).
    """

    role: str
    profile: str
    files: Mapping[str, RenderedFile]
    command: tuple[str, ...]
    env_file: str | None
    config_hash: str
    secret_versions: Mapping[str, str | None] = field(default_factory=dict)


# ---------------------------------------------------------------- filters


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise FilterError(f"cannot write a {type(value).__name__} as text")


def _unwrap(value: Any, filt: str) -> tuple[str, str]:
    """(text, label) of a filter's input; the label names it for messages without its value."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, Secret):
        label = f"secret {value.name!r}" if value.name else "a secret"
        plain = _PLAIN_FILE.get()
        if plain is not None:
            raise FilterError(
                f"{filt}: {label} is written into {plain}, a file with secret: false, whose bytes are in the "
                "configuration hash (a container label); write it in a file with secret: true instead"
            )
        text = value.reveal()
        used = _USED.get()
        if used is not None:
            used[value.name] = value.version
    elif isinstance(value, list | tuple | Mapping):
        kind = "mapping" if isinstance(value, Mapping) else "list"
        raise FilterError(f"{filt}: a {kind} cannot be written as one value; write its items one by one "
                          "(a loop), or the whole of it with toml")  # fmt: skip
    else:
        text = _scalar_text(value)
        label = f"value {text[:40]!r}" + ("..." if len(text) > 40 else "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FilterError(f"{filt}: {label} is not valid Unicode text (a lone surrogate)") from None
    return text, label


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


_TOML_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_filter(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_filter(item) for item in value) + "]"
    if isinstance(value, Mapping) and not isinstance(value, Secret):
        keys = (k if _TOML_BARE_KEY.fullmatch(str(k)) else toml_filter(str(k)) for k in value)
        return "{" + ", ".join(f"{k} = {toml_filter(v)}" for k, v in zip(keys, value.values(), strict=True)) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
            if not math.isfinite(value)
            else repr(value)
        )
    text, _ = _unwrap(value, "toml")
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def urlpart_filter(value: Any) -> str:
    text, _ = _unwrap(value, "urlpart")
    return quote(text, safe="")


def dotenv_filter(value: Any) -> str:
    text, label = _unwrap(value, "dotenv")
    for ch, what in (("\n", "a newline"), ("\r", "a carriage return"), ("\0", "a NUL character")):
        if ch in text:
            raise FilterError(f"dotenv: {label} contains {what}, which docker's --env-file format cannot carry")
    if len(text.encode("utf-8")) > _ENV_FILE_LINE_MAX:
        raise FilterError(f"dotenv: {label} is longer than docker's --env-file line limit (64 KiB)")
    return text


def line_filter(value: Any) -> str:
    text, label = _unwrap(value, "line")
    for ch, what in (("\n", "a newline"), ("\r", "a carriage return")):
        if ch in text:
            raise FilterError(f"line: {label} contains {what}; it must fit on one line of the file")
    return text


def raw_filter(value: Any) -> str:
    if isinstance(value, Secret):
        raise FilterError(
            f"raw: {value.name and repr(value.name) or 'a secret'} is a secret; "
            "write it with toml, urlpart, dotenv or line"
        )
    text, _ = _unwrap(value, "raw")
    return text


def string_filter(value: Any) -> str:
    """Jinja's ``string``, refusing a list or mapping: Python's text of one (``[1337]``) is no value of any format
    (``ETH_CHAIN_ID: [1337]`` would become ``ChainID = "[1337]"``). A Secret still raises SecretLeak."""
    if isinstance(value, list | tuple | Mapping) and not isinstance(value, Secret):
        _unwrap(value, "string")  # raises FilterError
    return jinja2.filters.FILTERS["string"](value)


def _one_value(value: Any) -> Any:
    """``finalize`` of every ``{{ ... }}``: a list or mapping printed as it is would be Python's text of it."""
    if isinstance(value, list | tuple | Mapping) and not isinstance(value, Secret | _Secrets):  # its text: SecretLeak
        _unwrap(value, "{{ }}")  # raises FilterError
    return value


FILTERS = {
    "string": string_filter,
    "toml": toml_filter,
    "urlpart": urlpart_filter,
    "dotenv": dotenv_filter,
    "line": line_filter,
    "raw": raw_filter,
}


# ---------------------------------------------------------------- environment


class _Names(dict):
    """``vars`` / ``secrets`` in templates: a dict that names itself when a key is missing."""

    _label = "vars"

    def __init__(self, items: Mapping[str, Any], hint: str) -> None:
        super().__init__(items)
        self._hint = hint


class _Vars(_Names):
    _label = "vars"


class _Secrets(_Names):
    _label = "secrets"


class _Undefined(jinja2.StrictUndefined):
    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
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
    env = template_environment(template_dirs)
    loader = env.loader
    assert loader is not None
    digests: dict[str, str] = {}
    todo = [template]
    while todo:  # bounded: each name is read once, and the folders hold finitely many
        name = todo.pop()
        if name in digests:
            continue
        try:
            source = loader.get_source(env, name)[0]
        except jinja2.TemplateNotFound:
            if name == template:
                raise
            continue
        digests[name] = hashlib.sha256(source.encode("utf-8")).hexdigest()
        refs = list(jinja2.meta.find_referenced_templates(env.parse(source)))
        todo += loader.list_templates() if None in refs else [r for r in refs if r is not None]
    return tuple(sorted(digests.items()))


def _fail(message: str) -> NoReturn:
    """``{{ fail("...") }}`` in a template: the role refuses its inputs with this message (a template's own check,
    e.g. of a list variable's shape; it names variables, never a secret's value)."""
    raise FilterError(str(message))


# ---------------------------------------------------------------- render


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
    variables = {**role.defaults, **service.variables}
    context = {
        "vars": _Vars(variables, f"set it in services.{service.name}.variables or the role's defaults"),
        "secrets": _Secrets(secrets, f"add it to services.{service.name}.secrets"),
        "service": service.name,
        "role": {"name": role.name, "user": role.user, "port": role.port, "mount": role.mount},
        **extra,
    }
    env = template_environment(_found(role))
    files: dict[str, RenderedFile] = {}
    used: dict[str, str | None] = {}
    for spec in profile.files.values():
        problem = None
        with strict_rendering(), _rendering(spec.name, spec.secret, used):
            try:
                text = env.get_template(spec.template).render(context)
                data = text.encode("utf-8")
            except Exception as err:  # noqa: BLE001 - every template failure becomes one line, below
                problem = _describe(err, role, spec.template, secrets, _public_names(role, service))
        if problem is not None:  # raised outside the handler: the original (with its frames) is dropped
            if file:
                refuse(f"services.{service.name}", problem)
            raise InvalidInput(problem)
        files[spec.name] = RenderedFile(spec.name, data, spec.secret)
    command = profile.argv(role.mount)
    versions = dict(sorted(used.items()))
    return Rendered(
        role=role.name,
        profile=profile.name,
        files=MappingProxyType(files),
        command=command,
        env_file=profile.env_file,
        config_hash=_config_hash(
            role,
            profile.name,
            service.image,
            role.read_variables(service.variables),
            files,
            command,
            profile.env_file,
            versions,
        ),
        secret_versions=MappingProxyType(versions),
    )


def with_texts(rendered: Rendered, role: Role, service: Service, texts: Mapping[str, str],
               secret_versions: Mapping[str, str | None] | None = None) -> Rendered:  # fmt: skip
    """``rendered`` (of ``role`` for ``service``) with each non-secret file named in ``texts`` (file name -> the
    UTF-8 text a node was started with, as a container's ``files`` label or an audit record keeps it,
    nodeops.deploy.recorded_texts) holding that text instead of today's rendering, and the config hash computed
    again over it (and over ``secret_versions`` when given, else ``rendered``'s). A name that is no non-secret file
    of ``rendered`` is ignored; secret files are left as rendered. So the hash equals the one a container recorded
    exactly when the text, the variables, the image and the secret versions are those it ran on."""
    files = {name: RenderedFile(name, texts[name].encode("utf-8"), False) if not f.secret and name in texts else f
             for name, f in rendered.files.items()}  # fmt: skip
    versions = rendered.secret_versions if secret_versions is None else dict(sorted(secret_versions.items()))
    variables = role.read_variables(service.variables)
    config_hash = _config_hash(role, rendered.profile, service.image, variables, files, rendered.command,
                               rendered.env_file, versions)  # fmt: skip
    return dataclasses.replace(rendered, files=MappingProxyType(files), config_hash=config_hash)


def _config_hash(
    role: Role,
    profile: str,
    image: str,
    variables: Mapping[str, Any],
    files: Mapping[str, RenderedFile],
    command: tuple[str, ...],
    env_file: str | None,
    secret_versions: Mapping[str, str | None],
) -> str:
    h = hashlib.sha256()

    def put(tag: str, data: bytes | str) -> None:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        h.update(tag.encode() + b"\0" + len(raw).to_bytes(8, "big") + raw)

    put("nodeops-config", "1")
    for tag, value in (("role", role.name), ("user", str(role.user)), ("port", str(role.port)), ("mount", role.mount)):
        put(tag, value)
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
        put("secret" if f.secret else "data", b"" if f.secret else f.data)  # never the secret bytes
        if f.secret:  # the bytes of its templates instead: a changed template is a change (a non-secret file's
            for template, digest in template_digests(role, specs[name].template):  # output already says it)
                put("template", f"{template}={digest}")
    put("command", "\0".join(command))
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


def _public_names(role: Role, service: Service) -> tuple[str, ...]:
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
