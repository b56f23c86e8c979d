"""A rotation kind whose new value the role issues (role.py ``ISSUERS``, nodeops.role_hooks): the protocol its
objects follow and what ``issue`` returns. The engine carries the rotation out (nodeops.rotate.issued): Secrets
Manager's stages, the holder of the hot files restarted onto the pending value, the test and the finish; the role
says what to ask the chain, how to make the new value and how to tell that it is in use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Issued:
    """What an Issuer made: ``values`` (the rotated secret document's new texts, by the role's secret names that
    reference its keys: ``kes_key``, ``op_cert``), ``updates`` (new texts of secrets the rotation read, by their
    names: written as their current version at finishSecret, before the rotated secret's AWSCURRENT moves: the issue
    counter), ``facts`` (public values only, for messages, ``in_use`` and ``taken``: a counter, a KES period) and
    ``reused`` (True: ``values`` are the pending version's, kept; nothing new to stage)."""

    values: Mapping[str, str]
    updates: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    facts: Mapping[str, int | str] = field(default_factory=lambda: MappingProxyType({}))
    reused: bool = False


@runtime_checkable
class Issuer(Protocol):
    """A rotation kind the role issues (``ISSUERS`` in nodeops.role_hooks' doc)."""

    change: str
    """How messages name what it does (``"a new KES key and operational certificate, issue counter + 1"``)."""

    def query(self, variables: Mapping[str, object]) -> Sequence[str]:
        """The read-only command (argv, no secret) the engine runs in the holder's container (``docker exec``) to
        read the chain's facts the issue depends on; ``variables``: the service's (public)."""
        ...

    def issue(
        self, variables: Mapping[str, object], secrets: Mapping[str, str], chain: str, pending: Mapping[str, str] | None
    ) -> Issued:
        """The new value: ``variables`` (the service's, public, with its ``PROFILE``), ``secrets`` (by the role's
        secret names: the rotated document's current values and the ``reads`` secrets, in memory only), ``chain``
        (the query's standard output), ``pending`` (the values of a pending version an interrupted run left, or
        None). A NodeopsError refuses (InvalidInput, exit 2: nothing
        was written; Unsafe, exit 4)."""
        ...

    def in_use(self, health_body: bytes, issued: Issued) -> bool:
        """Whether the holder's reply to the role's health path shows it using ``issued``. Never raises."""
        ...

    def taken(self, chain: str, issued: Issued) -> bool:
        """Whether the chain's facts (the query's output) show ``issued`` taken. Never raises."""
        ...
