"""The objects a role's module may define (nodeops.role_hooks: ``CHAIN_FENCE``, ``ROTATIONS``, ``ISSUERS``), as
protocols the engine checks them against when the role loads, and what the engine hands them: a node's API
(``NodeApi``) and what an issuer returns (``Issued``).

A rotation kind whose new value the role issues (``ISSUERS``): the engine carries the rotation out
(nodeops.rotate.issued): Secrets Manager's stages, the holder of the hot files restarted onto the pending value,
the test and the finish; the role says what to ask the chain, how to make the new value and how to tell that it
is in use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from nodeops.edges.http import Reply
from nodeops.errors import NodeopsError


@dataclass(frozen=True)
class Issued:
    """What an Issuer made: ``values`` (the rotated secret document's new texts, by the role's secret names that
    reference its keys: ``kes_key``, ``op_cert``), ``updates`` (new texts of secrets the rotation read, by their
    names: written as their current version at finishSecret, before the rotated secret's AWSCURRENT moves: the issue
    counter), ``facts`` (public values only, for messages, ``in_use`` and ``taken``: a counter, a KES period),
    ``reused`` (True: ``values`` are the pending version's, kept; nothing new to stage) and ``said`` (one public line
    the run's result adds once the value is in force: how long it lasts, and what to run when that is short)."""

    values: Mapping[str, str]
    updates: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    facts: Mapping[str, int | str] = field(default_factory=lambda: MappingProxyType({}))
    reused: bool = False
    said: str = ""


@runtime_checkable
class Issuer(Protocol):
    """A rotation kind the role issues (``ISSUERS`` in nodeops.role_hooks' doc)."""

    change: str
    """How messages name what it does (``"a new KES key and operational certificate, issue counter + 1"``)."""

    def query(self, variables: Mapping[str, object]) -> Sequence[str]:
        """The read-only command (argv, no secret) the engine runs in the holder's container (``docker exec``) to
        read the chain's facts the issue depends on; ``variables``: the service's (public)."""
        ...

    def issue(self, variables: Mapping[str, object], secrets: Mapping[str, str], chain: str,
              pending: Mapping[str, str] | None, held: bool) -> Issued:  # fmt: skip
        """The new value: ``variables`` (the service's, public, with its ``PROFILE``, its check variables and
        ``PROGRAM``/``SERVICE_OPTIONS`` to name a command in ``said``), ``secrets`` (by the role's secret names: the
        rotated document's current values and the ``reads`` secrets, in memory only), ``chain`` (the query's
        standard output), ``pending`` (the values of a pending version an interrupted run left, or None), ``held``
        (whether the holder's container runs that pending version: a value no node runs yet may be made anew). A
        NodeopsError refuses (InvalidInput, exit 2: nothing was written; Unsafe, exit 4)."""
        ...

    def in_use(self, health_body: bytes, issued: Issued) -> bool:
        """Whether the holder's reply to the role's health path shows it using ``issued``. Never raises."""
        ...

    def taken(self, chain: str, issued: Issued) -> bool:
        """Whether the chain's facts (the query's output) show ``issued`` taken. Never raises."""
        ...

    # Optional (nodeops.facts.issued; no protocol member, so an issuer without it still is one):
    #   def standing(self, variables, secrets, chain) -> tuple[Mapping[str, Fact], bool, str]
    # The value in force as the store holds it against the chain: ``secrets``, the rotated document's current
    # values (by the role's names, as the service resolved them; never a ``reads`` secret), ``chain`` the query's
    # output from the holder's container. Returns (public facts for fab status: name -> str, int, float, bool or
    # None; whether fab check passes; its detail, one line). A NodeopsError (a query's output misread) or anything
    # else it raises is that rotation's error, one line.


@runtime_checkable
class ChainFence(Protocol):
    """A chain-level fence of a role's own (activation keys), for a holder that cannot be reached (``CHAIN_FENCE`` in
    nodeops.role_hooks' doc): carried out as the role's one issued rotation (``ISSUERS``: its secret, ``reads``,
    ``query``, ``in_use``, ``taken``) for the reachable standby, its value made by ``fence``
    (nodeops.promote_forced)."""

    change: str
    """How messages name what it does (``"a new operational certificate, issue counter one past the lost
    producer's"``)."""

    def fence(self, variables: Mapping[str, object], secrets: Mapping[str, str], chain: str,
              pending: Mapping[str, str] | None, held: bool) -> Issued:  # fmt: skip
        """The new hot values for the standby, under which every value the lost holder may hold (the current one, a
        pending one) no longer counts on the chain: as ``Issuer.issue`` (``chain``: the query's output, run in the
        standby's container; ``pending``: an interrupted run's pending version), ``held``: whether the standby's
        container runs that pending version (an interrupted forced promotion's own, to be kept). A NodeopsError
        refuses (InvalidInput, exit 2, or Unsafe, exit 4: nothing was written)."""
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
