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

``CHAIN_FENCE: ChainFence``
    Activation ``keys``: a fence the chain itself enforces, for ``fab promote-standby --force`` when the holder
    cannot be reached (the engine cannot stop it, so without this the promotion is refused, exit 4). Its ``fence``
    returns the hot files to start the new holder with, such that the lost holder's keys no longer count on the
    chain (issue 16, Cardano: a new operational certificate with the issue counter + 1, for a new KES key). No
    built-in role provides one yet, and the engine does not carry one out yet: a role that defines it is told so
    (the refusal names it). Default: None.

``ROTATIONS: Mapping[str, ApiPassword]``
    Rotation kinds of the role's own, by the name ``role.yaml`` gives as ``rotation.<name>.kind``; such a
    rotation takes the keys ``secret`` (its value is rotated) and ``user`` (whose password it is). The engine's
    own kinds (``postgres-password``, ``refused``) need no module. Called by ``fab rotate-secrets`` on the
    active node (nodeops.rotate.ApiPassword), through the ``NodeApi`` it is given. Default: no kind of its own.

The module is read once per run, when the role is loaded (nodeops.roles.load_role); a module that cannot be
imported, or defines one of these names with the wrong shape, is a RoleError (exit 2) naming the file and the
name. docs/roles.md describes the interface for a role's author.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from nodeops.edges.http import Reply
from nodeops.errors import NodeopsError

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


@runtime_checkable
class ChainFence(Protocol):
    """A chain-level fence of a role's own (activation keys), for a holder that cannot be reached: see ``CHAIN_FENCE``
    in the module's doc."""

    change: str
    """How messages name what it does (``"a new operational certificate, issue counter + 1"``)."""

    def fence(self, secrets: Mapping[str, object], hot_files: Mapping[str, bytes]) -> Mapping[str, bytes]:
        """The hot files (name -> bytes, the same names as ``hot_files``, today's) to start the new holder with,
        under which the lost holder's keys are no longer valid on the chain; ``secrets``: the service's resolved
        secrets (nodeops.secrets.Secret, in memory only). Raises a NodeopsError to refuse."""
        ...


class NodeApi(Protocol):
    """One node's HTTP API, as the engine hands it to a hook: requests travel through the bastion to the node's
    private port (nodeops.edges.ssh.Fleet.request); failures are worded and masked by the engine."""

    def call(self, method: str, path: str, doc: Mapping[str, object] | None = None,
             cookie: str | None = None) -> Reply:  # fmt: skip
        """``method path`` with ``doc`` as its JSON body and ``cookie`` as its Cookie header: the reply, whatever
        its status; OperationFailed when nothing answers."""
        ...

    def refused(self, what: str, reply: Reply, shown: int | None = None) -> NodeopsError:
        """The error for a reply that is not what ``what`` (``"POST /sessions"``) expects: ``<service> <node>:
        <what> answered <status>: <body>``, the body masked of every secret and clipped (to ``shown``
        characters when given). To be raised by the hook."""
        ...

    def failed(self, problem: str) -> NodeopsError:
        """The error ``<service> <node>: <problem>``, to be raised by the hook."""
        ...


@runtime_checkable
class ApiPassword(Protocol):
    """A rotation kind of the role's own: the password of the node's API user, changed through the node's API
    (in the database the pair shares, so any active node takes it; no restart). The engine does the rest of a
    rotation: which node is active, Secrets Manager's stages, the test of both values and the undo."""

    change: str
    """How messages name the change (``"PATCH /v2/user/password"``)."""

    def login(self, api: NodeApi, user: str, password: str) -> str | None:
        """A session (the Cookie header value to send back) for ``user`` with ``password``, or None when the node
        refuses that password; any other answer raises ``api.refused(...)``."""
        ...

    def logout(self, api: NodeApi, session: str) -> None:
        """End ``session``."""
        ...

    def set_password(self, api: NodeApi, session: str, old: str, new: str) -> None:
        """Change the logged-in user's password from ``old`` to ``new``; a refusal raises ``api.refused(...)``."""
        ...


@dataclass(frozen=True)
class RoleHooks:
    """A role's hooks, its module's where it defines them, else the engine's defaults (see the module's doc).
    ``source``: the module they came from; None: the role ships none."""

    log_level: Callable[[str], str | None] = default_log_level
    lease_client: Callable[[bytes], str | None] = no_lease_client
    failing_checks: Callable[[bytes], Iterable[str]] = no_failing_checks
    rotations: Mapping[str, ApiPassword] = field(default_factory=lambda: MappingProxyType({}))
    keys_in_use: Callable[[bytes], bool | None] = keys_unsaid
    chain_fence: ChainFence | None = None
    source: str | None = None

    @property
    def says_keys_in_use(self) -> bool:
        """Whether the role's module defines ``keys_in_use`` (the default, ``keys_unsaid``, says nothing)."""
        return self.keys_in_use is not keys_unsaid


DEFAULT_HOOKS = RoleHooks()


def hooks_from(namespace: Mapping[str, object], source: str) -> RoleHooks | tuple[str, str]:
    """The hooks a role module's ``namespace`` (its globals) defines, over the defaults; or (name, problem) for
    the first one of the wrong shape. Pure."""
    found: dict[str, object] = {}
    for name in ("log_level", "lease_client", "failing_checks", "keys_in_use"):
        if name in namespace:
            if not callable(namespace[name]):
                return name, f"expected a function, got {type(namespace[name]).__name__}"
            found[name] = namespace[name]
    if "ROTATIONS" in namespace:
        rotations = namespace["ROTATIONS"]
        if not isinstance(rotations, Mapping):
            return "ROTATIONS", f"expected a mapping of kind name -> ApiPassword, got {type(rotations).__name__}"
        for kind, hook in rotations.items():
            if not isinstance(kind, str) or not isinstance(hook, ApiPassword) or not isinstance(hook.change, str):
                return f"ROTATIONS[{kind!r}]", ("expected an ApiPassword (change: str, login, logout, "
                                                f"set_password), got {type(hook).__name__}")  # fmt: skip
        found["rotations"] = MappingProxyType(dict(rotations))
    if "CHAIN_FENCE" in namespace:
        fence = namespace["CHAIN_FENCE"]
        if not isinstance(fence, ChainFence) or not isinstance(fence.change, str):
            return "CHAIN_FENCE", f"expected a ChainFence (change: str, fence), got {type(fence).__name__}"
        found["chain_fence"] = fence
    return RoleHooks(**found, source=source)  # type: ignore[arg-type]
