"""The role interface: what a role's Python module may provide, for what ``role.yaml`` cannot say as data.

A role is data first (``roles/<role>/role.yaml``, nodeops.role_file). Where data is not enough, the role ships a
small module beside it, ``roles/<role>/role.py``, defining any of these names (each optional; the engine's default
applies to the ones it leaves out, and a role with no module gets every default):

``log_level(line: str) -> str | None``
    The level one line of the node's log was written at, lower case (``"error"``), or None for a line that
    carries none (a traceback, a plain message). Called by ``fab check`` on each line of the container's recent
    log (nodeops.facts.logs); the lines whose level is in ``ERROR_LEVELS`` count as errors. Default:
    ``default_log_level`` (a JSON line's ``"level"``, logfmt's ``level=``).

``lease_client(health_body: bytes) -> str | None``
    The lease client id of the node that sent a reply to the role's health path (the id the role's ``lease:``
    table records as the holder), or None when the reply does not name it. Called by ``fab check`` (is the load
    balancer's answer the active's? is the lease holder the node that answers?) and by deploy (which node holds
    the lease). Default: None for every reply (nothing is compared).

``failing_checks(health_body: bytes) -> Iterable[str]``
    The names of the checks a reply to the role's health path says fail, from its body; none when the body names
    none (or cannot be read: the hook never raises). Called on every reply that is not 200 (a node that answers
    at all is the active, unhealthy), by ``fab status``, ``fab check``, ``fab verify`` and deploy
    (nodeops.facts.health.failing_checks, which sorts them and says ``HTTP <status>`` when none is named).
    Default: ``no_failing_checks`` (none named).

``keys_in_use(health_body: bytes) -> bool | None``
    Activation ``keys``: whether a reply to the role's health path says the node still uses its hot keys (True:
    it does, e.g. a block producer whose forging metric is still on; False: it has stopped; None: the reply does not
    say). Called by ``fab promote-standby`` after a restart fence (nodeops.run.keys.confirm_fenced): once no
    container of the service runs on the old holder with the ``io.nodeops.hot`` label, the restarted node is awaited
    answering its health path again and this hook is asked once about that reply, before anything starts with the
    keys; True: the fence failed (undone, exit 4). Never raises. Default: ``keys_unsaid`` (None: the label decides,
    and nothing is awaited).

``node_facts(replies, variables) -> Mapping[str, Mapping[str, Fact]]`` / ``check_facts(facts, variables)``
    Named facts (str, int, float, bool, None) per node from the nodes' health replies (node -> body), shown by ``fab
    status``; ``fab check``'s findings from them, each (node or "", check, ok, detail) (nodeops.facts.role_facts).
    ``variables``: the service's over the role's defaults, with ``PROFILE``; check_facts's also ``PROGRAM`` and
    ``SERVICE_OPTIONS`` (``--env E --service S``), to name a command in full. Default: none (``no_node_facts``).
``outage(seconds: float, profile: str) -> str | None``
    A promotion's outage in the chain's own unit, as a short phrase (``"14 slots"``), for ``seconds`` measured on a
    service of the role's ``profile`` (its ``PROFILE``); None when it cannot say. Called by ``fab promote-standby``
    under activation keys once the promotion is done, with the gap it measured (the time no node held the keys):
    printed beside the seconds and given as ``outage_chain_units`` in the JSON result. A hook that
    raises is said on a step line and the result has no phrase (the promotion is done). Default: ``no_outage_unit``
    (None: the seconds alone, as before).

``variable_problems(variables) -> Iterable[tuple[str, str]]``
    What is wrong with the values of the role's variables (the service's over the role's defaults), each (the
    variable, or a path inside it: ``PUBLIC_PEERS[0].port``; the problem with its fix), none when nothing is. Called
    when the inventory is loaded, before any secret or host (nodeops.roles.check_variables): the first is exit 2
    at ``services.<svc>.variables.<path>``. Default: ``no_variable_problems`` (a value is checked where it is used).
``CHAIN_FENCE: ChainFence``
    Activation ``keys``: a fence the chain itself enforces, for ``fab promote-standby --force`` when the holder
    cannot be reached (the engine cannot stop it, so without this the promotion is refused, exit 4). Carried out as
    the role's one issued rotation (``ISSUERS``) for the reachable standby (nodeops.promote_forced): its ``fence``
    (the shape of an Issuer's ``issue``, plus whether the standby runs the pending version) makes the new hot
    values, under which the lost holder's keys no longer count on the chain (Cardano: a new operational
    certificate, issue counter one past every one the lost producer may hold, for a new KES key). Default: None.

``ROTATIONS: Mapping[str, ApiPassword]``
    Rotation kinds of the role's own, by the name ``role.yaml`` gives as ``rotation.<name>.kind``; such a
    rotation takes the keys ``secret`` (its value is rotated) and ``user`` (whose password it is). The engine's
    own kinds (``postgres-password``, ``refused``) need no module. Called by ``fab rotate-secrets`` on the
    active node (nodeops.rotate.ApiPassword), through the ``NodeApi`` it is given. Default: no kind of its own.

``ISSUERS: Mapping[str, Issuer]``
    Rotation kinds whose new value the role issues (nodeops.role_protocols: ``query``, ``issue``, ``in_use``,
    ``taken``), by the name ``role.yaml`` gives as ``rotation.<name>.kind``; such a rotation takes ``secret`` and
    ``reads`` (the secrets only it reads). Called by ``fab rotate-secrets`` (nodeops.rotate.issued) for a service
    whose holder of the hot files is restarted onto the new value; an issuer's optional ``standing`` by
    ``fab status`` and ``fab check`` (nodeops.facts.issued). Default: none.

``TEMPLATE_FUNCTIONS: Mapping[str, Callable[..., str]]``
    Functions the role's templates call by name (``{{ node_config(role.profile, node.kind) }}``), for a file the
    role's own code builds (a document too large or too exact for Jinja: a node's configuration JSON, a genesis file
    and its hash). Given plain values only (a Secret, or ``secrets``, is refused at render time, exit 2, naming the
    function); return the text to write. Called by nodeops.render while it renders, before any host; a ValueError,
    KeyError or TypeError it raises is exit 2 with its message (derived from public values only), anything else is
    worded as any template failure (its type and the template's line). A name is an identifier other than
    what templates see already (``TEMPLATE_RESERVED``). Default: none.

``INTERFACE`` is this list as a table, the one the engine checks a module against. The module is read once per
run, when the role is loaded (nodeops.roles.load_role), before any host: a module whose code raises anything while
it is imported (sys.exit and KeyboardInterrupt included), or defines one of these names with the wrong shape
(``hooks_from``: ``inspect.signature`` against the engine's arguments, no coroutine function, no class for a function
or an instance), is a RoleError (exit 2) naming the file, the name or line, and the fix. A hook that raises during an
operation raises ``RoleHookFailed`` (exit 1) naming the role, the hook, the exception's type and the module's line,
in one line (without the exception's message when the hook was given an argument). docs/roles.md
describes the interface for a role's author.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, SimpleNamespace, TracebackType

from nodeops.errors import NodeopsError, OperationFailed
from nodeops.role_protocols import ApiPassword, ChainFence, Issuer

MODULE_FILE = "role.py"

_LOGFMT_LEVEL = re.compile(r"(?:^|\s)level=\"?(\w+)")


def default_log_level(line: str) -> str | None:
    """The level of a log line in one of the formats every role may write (lower case): a JSON line's
    ``"level"``, or logfmt's ``level=``; None for other lines (a traceback, a plain message). Pure."""
    text = line.strip()
    if text.startswith("{"):
        with contextlib.suppress(ValueError):
            doc = json.loads(text)
            level = doc.get("level") if isinstance(doc, dict) else None
            return level.lower() if isinstance(level, str) else None
    match = _LOGFMT_LEVEL.search(text)
    return match[1].lower() if match else None


def no_lease_client(health_body: bytes) -> str | None:  # noqa: ARG001 (the hook's shape: no reply names one)
    """The default ``lease_client``: no health reply names its node's lease client."""
    return None


def no_failing_checks(health_body: bytes) -> Iterable[str]:  # noqa: ARG001 (the hook's shape: no body names one)
    """The default ``failing_checks``: no health reply names a check, so an unhealthy one reads ``HTTP <status>``."""
    return ()


def keys_unsaid(health_body: bytes) -> bool | None:  # noqa: ARG001 (the hook's shape: no reply says it)
    """The default ``keys_in_use``: no health reply says whether its node uses its hot keys (None)."""
    return None


def no_node_facts(replies: Mapping[str, bytes], variables: Mapping[str, object]) -> Mapping[str, Mapping]:  # noqa: ARG001
    """The default ``node_facts``: no reply says a fact (and ``no_check_facts``, no finding)."""
    return {}


def no_check_facts(facts: Mapping[str, Mapping], variables: Mapping[str, object]) -> Iterable[tuple]:  # noqa: ARG001
    return ()


def no_variable_problems(variables: Mapping[str, object]) -> Iterable[tuple[str, str]]:  # noqa: ARG001
    """The default ``variable_problems``: none (a value is checked where it is used)."""
    return ()


def no_outage_unit(seconds: float, profile: str) -> str | None:  # noqa: ARG001 (the hook's shape)
    """The default ``outage``: no unit of the chain's own; the seconds alone are reported."""
    return None


@dataclass(frozen=True)
class RoleHooks:
    """A role's hooks, its module's where it defines them, else the engine's defaults (see the module's doc).
    ``source``: the module they came from; None: the role ships none."""

    log_level: Callable[[str], str | None] = default_log_level
    lease_client: Callable[[bytes], str | None] = no_lease_client
    failing_checks: Callable[[bytes], Iterable[str]] = no_failing_checks
    rotations: Mapping[str, ApiPassword] = field(default_factory=lambda: MappingProxyType({}))
    keys_in_use: Callable[[bytes], bool | None] = keys_unsaid
    node_facts: Callable[..., Mapping[str, Mapping]] = no_node_facts
    check_facts: Callable[..., Iterable[tuple]] = no_check_facts
    outage: Callable[[float, str], str | None] = no_outage_unit
    variable_problems: Callable[..., Iterable[tuple[str, str]]] = no_variable_problems
    chain_fence: ChainFence | None = None
    issuers: Mapping[str, Issuer] = field(default_factory=lambda: MappingProxyType({}))
    template_functions: Mapping[str, Callable[..., str]] = field(default_factory=lambda: MappingProxyType({}))
    source: str | None = None

    @property
    def says_keys_in_use(self) -> bool:
        """Whether the role's module defines ``keys_in_use`` (the default, ``keys_unsaid``, says nothing)."""
        return self.keys_in_use is not keys_unsaid


DEFAULT_HOOKS = RoleHooks()


@dataclass(frozen=True)
class Hook:
    """One name of the role interface, as docs/roles.md's table documents it: a function the engine calls with
    ``parameters`` (by position: the names are the documented ones, a role's may differ), or an object of protocol
    ``kind`` (ApiPassword, ChainFence) with ``change: str`` and ``methods`` (name -> the parameters after ``self``);
    ``mapping``: a mapping of kind names to such objects (``ROTATIONS``)."""

    name: str
    attribute: str  # RoleHooks'
    parameters: tuple[str, ...] = ()
    returns: str = ""  # a function's result, as messages name it; "Iterable..." may be a generator's
    kind: str = ""
    methods: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    mapping: bool = False
    functions: bool = False  # a mapping of names to functions of any parameters (TEMPLATE_FUNCTIONS)
    optional: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))  # methods an
    # object may lack (an Issuer's standing): checked and guarded as ``methods`` when it has them


INTERFACE = (
    Hook("log_level", "log_level", ("line",), "str | None"),
    Hook("lease_client", "lease_client", ("health_body",), "str | None"),
    Hook("failing_checks", "failing_checks", ("health_body",), "Iterable[str]"),
    Hook("keys_in_use", "keys_in_use", ("health_body",), "bool | None"),
    Hook("node_facts", "node_facts", ("replies", "variables"), "Mapping[str, Mapping[str, Fact]]"),
    Hook("check_facts", "check_facts", ("facts", "variables"), "Iterable[tuple[str, str, bool, str]]"),
    Hook("outage", "outage", ("seconds", "profile"), "str | None"),
    Hook("variable_problems", "variable_problems", ("variables",), "Iterable[tuple[str, str]]"),
    Hook("CHAIN_FENCE", "chain_fence", kind="ChainFence",
         methods=MappingProxyType({"fence": ("variables", "secrets", "chain", "pending", "held")})),
    Hook("ROTATIONS", "rotations", kind="ApiPassword", mapping=True,
         methods=MappingProxyType({"login": ("api", "user", "password"), "logout": ("api", "session"),
                                   "set_password": ("api", "session", "old", "new")})),
    Hook("ISSUERS", "issuers", kind="Issuer", mapping=True,
         methods=MappingProxyType({"query": ("variables",),
                                   "issue": ("variables", "secrets", "chain", "pending", "held"),
                                   "in_use": ("health_body", "issued"), "taken": ("chain", "issued")}),
         optional=MappingProxyType({"standing": ("variables", "secrets", "chain")})),
    Hook("TEMPLATE_FUNCTIONS", "template_functions", mapping=True, functions=True),
)  # fmt: skip
"""The role interface, the one table of it: what a role's module may define (docs/roles.md documents each row)."""


class RoleHookFailed(OperationFailed):
    """A role's hook raised during an operation (exit 1): ``role <role>: its hook <name> raised <Type>
    (<module file>:<line>): fix the role's module``, one line; ``<Type>: <message>`` only for a hook given no
    argument (nothing in the line derives from what a hook was given)."""


def hooks_from(namespace: Mapping[str, object], source: str) -> RoleHooks | tuple[str, str]:
    """The hooks a role module's ``namespace`` (its globals) defines, over the defaults, each checked against its row
    of ``INTERFACE`` (``inspect.signature``: it takes the engine's arguments by position; no coroutine function, no
    class where a function or an instance is expected) and guarded (whatever it raises but a NodeopsError becomes a
    ``RoleHookFailed`` naming the role and the hook); or (name, problem with its fix) for the first one of the wrong
    shape. Pure."""
    role = Path(source).parent.name
    found: dict[str, object] = {}
    for hook in INTERFACE:
        if hook.name not in namespace:
            continue
        value = namespace[hook.name]
        if hook.functions:
            checked = _template_functions(value, hook.name)
            if isinstance(checked, tuple):
                return checked
            found[hook.attribute] = checked
        elif not hook.kind:
            problem = _function_problem(value, hook.name, hook.parameters, hook.returns)
            if problem:
                return hook.name, problem
            found[hook.attribute] = _guarded(value, role, hook.name, source)  # type: ignore[arg-type]
        elif not hook.mapping:
            checked = _object(value, hook, hook.name, role, source)
            if isinstance(checked, tuple):
                return checked
            found[hook.attribute] = checked
        elif not isinstance(value, Mapping):
            return hook.name, f"expected a mapping of kind name -> {hook.kind}, got {type(value).__name__}"
        else:
            objects = {}
            for kind, item in value.items():
                checked = _object(item, hook, f"{hook.name}[{kind!r}]", role, source)
                if isinstance(checked, tuple):
                    return checked
                if not isinstance(kind, str):
                    return f"{hook.name}[{kind!r}]", f"expected a kind name (a string), got {type(kind).__name__}"
                objects[kind] = checked
            found[hook.attribute] = MappingProxyType(objects)
    return RoleHooks(**found, source=source)  # type: ignore[arg-type]


TEMPLATE_RESERVED = frozenset({"vars", "secrets", "service", "role", "node", "nodes", "fail"})
"""What templates see already (nodeops.render): no template function takes one of these names."""


def _template_functions(value: object, name: str) -> Mapping[str, Callable[..., str]] | tuple[str, str]:
    """``value`` checked as ``TEMPLATE_FUNCTIONS``: a mapping of identifiers (none of TEMPLATE_RESERVED) to plain
    functions (no class, no coroutine function); or (where, problem with its fix)."""
    if not isinstance(value, Mapping):
        return name, f"expected a mapping of name -> function, got {type(value).__name__}"
    for key, function in value.items():
        if not isinstance(key, str) or not key.isidentifier() or key in TEMPLATE_RESERVED:
            return f"{name}[{key!r}]", ("expected a name templates can call: an identifier other than "
                                        f"{', '.join(sorted(TEMPLATE_RESERVED))}")  # fmt: skip
        if inspect.isclass(function) or not callable(function) or inspect.iscoroutinefunction(function):
            return f"{name}[{key!r}]", str(_function_problem(function, key, ("...",)))  # its parameters are its own
    return MappingProxyType(dict(value))


def _function_problem(value: object, name: str, parameters: tuple[str, ...], returns: str = "",
                      method: bool = False) -> str | None:  # fmt: skip
    """What keeps ``value`` from being called as ``name(*parameters)`` and returning ``returns``, with the fix; None
    when nothing does."""
    fix = f"define it as def {name}({', '.join(('self', *parameters) if method else parameters)})"
    if inspect.isclass(value):
        return f"expected a function, got the class {value.__name__}: {fix}"
    if not callable(value):
        return f"expected a function, got {type(value).__name__}: {fix}"
    call = value if inspect.isroutine(value) else getattr(value, "__call__", value)  # noqa: B004 (an object's method)
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return "is a coroutine function (async def), which the engine calls without awaiting: define it with plain def"
    if inspect.isgeneratorfunction(call) and returns and not returns.startswith("Iterable"):
        return f"is a generator function (it yields), but must return {returns}: return the value"
    try:
        signature = inspect.signature(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"its parameters cannot be read ({type(value).__name__}): {fix}"
    try:
        signature.bind(*parameters)
    except TypeError:
        count = f"{len(parameters)} argument{'' if len(parameters) == 1 else 's'}"
        shown = str(signature.replace(return_annotation=inspect.Signature.empty))
        return f"takes {_plain(shown)}, but the engine calls it with {count} ({', '.join(parameters)}): {fix}"
    return None


def _plain(shown: str) -> str:
    """A signature as messages show it: no annotations or defaults' values beyond the names (``(line, extra)``)."""
    return re.sub(r":[^,=)]*|=[^,)]*", "", shown)


def _object(value: object, hook: Hook, where: str, role: str, source: str) -> object | tuple[str, str]:
    """``value`` checked as an instance of protocol ``hook.kind`` and guarded, or (where, problem)."""
    shape = f"{'an' if hook.kind[0] in 'AEIOU' else 'a'} {hook.kind} (change: str, {', '.join(hook.methods)})"
    if inspect.isclass(value):
        return where, f"expected {shape}, got the class {value.__name__}: write {value.__name__}() (an instance)"
    if not isinstance(getattr(value, "change", None), str) or not all(hasattr(value, m) for m in hook.methods):
        return where, f"expected {shape}, got {type(value).__name__}"
    guarded = {"change": value.change}  # type: ignore[attr-defined]
    optional = {m: p for m, p in hook.optional.items() if hasattr(value, m)}
    for method, parameters in {**hook.methods, **optional}.items():
        problem = _function_problem(getattr(value, method), method, parameters, method=True)
        if problem:
            return f"{where}.{method}", problem
        guarded[method] = _guarded(getattr(value, method), role, f"{where}.{method}", source)
    return SimpleNamespace(**guarded)


def _guarded(hook: Callable[..., object], role: str, name: str, source: str) -> Callable[..., object]:
    """``hook``, raising ``RoleHookFailed`` for anything it raises but a NodeopsError (already worded by the engine's
    own calls, ``api.refused``) or a KeyboardInterrupt (Ctrl-C: nodeops.stopping's). Safe by construction: the line
    names the exception's type and the module's line that raised it; the exception's message only when the hook was
    given no argument (a message may quote any part of what it was given: a log line, a body, a password)."""

    def call(*args: object) -> object:
        try:
            return hook(*args)
        except NodeopsError:
            raise
        except (Exception, SystemExit) as err:  # noqa: BLE001 (whatever a role's code raises is the role's fault)
            said = "" if args else " ".join(str(err).split())[:200]
            why = f"{type(err).__name__}: {said}" if said else type(err).__name__
            raise RoleHookFailed(f"role {role}: its hook {name} raised {why} ({_raised_at(err, source)}): fix the "
                                 "role's module") from None  # fmt: skip

    call.__wrapped__ = hook  # type: ignore[attr-defined]
    return call


def _raised_at(err: BaseException, source: str) -> str:
    """``<source>:<line>``: the module's last line in ``err``'s traceback (the one that raised, or called what did);
    ``source`` alone when none is."""
    lines = [frame.tb_lineno for frame in _frames(err.__traceback__) if frame.tb_frame.f_code.co_filename == source]
    return f"{source}:{lines[-1]}" if lines else source


def _frames(frame: TracebackType | None) -> Iterable[TracebackType]:
    """The traceback's entries, outermost first."""
    while frame is not None:
        yield frame
        frame = frame.tb_next
