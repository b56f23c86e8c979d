"""A key of a SOPS file under rotation (SopsStore, a nodeops.rotate.versions.Store), written back through ``sops set``
(nodeops.secrets.sops: the value on stdin, a copy of the encrypted file renamed over it).

A file has one value per key, so the pending value lives in the same file, beside the current one, under the
top-level mapping ``nodeops_pending`` (keyed by the reference's dotted key path), encrypted like every value:

  createSecret  ``nodeops_pending.<key>`` set to the new value (readers still read ``<key>``);
  promote       once every system took the new value, before the pair is rolled: ``<key>`` set to the pending value
                (the entry stays), so that the version the rolled nodes record (the file's: values_version) is the
                one the file holds once the rotation finished, and a deploy after it says "no change";
  finishSecret  ``nodeops_pending.<key>`` removed (and ``nodeops_pending`` when it is empty), which moves no version;
  discard       ``<key>`` back on the value it had if this run promoted it, then ``nodeops_pending.<key>`` removed.

Each write is one atomic rename, so a crash leaves the file before or after a step: a pending entry is an interrupted
rotation, whether or not ``<key>`` holds its value yet (the roll may not have ended): the next run completes it (sets
and tests the pending value again, rolls, finishes). Stage ids: ``current`` and ``pending``. Commit the file after a
rotation.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

from nodeops.errors import OperationFailed
from nodeops.inventory import SecretBackend, SecretRef
from nodeops.rotate.rules import Stages
from nodeops.rotate.versions import Store
from nodeops.secrets.sops import PENDING_KEY, SopsFile, key_path

CURRENT_ID, PENDING_ID = "current", "pending"


def file_stages(doc: dict, key: str) -> Stages:
    """Stages of ``key`` in the decrypted document ``doc``: interrupted while it has a pending entry, even one the
    key already holds (promoted, the roll perhaps not ended), else fresh."""
    return Stages(CURRENT_ID) if (doc.get(PENDING_KEY) or {}).get(key) is None else Stages(CURRENT_ID, PENDING_ID)


class SopsStore(Store):
    """``ref.key`` of the SOPS file ``ref.name``, with its pending value under ``nodeops_pending``."""

    CURRENT, PENDING = "the file's value", f"its {PENDING_KEY} entry"
    AFTER = f" ({PENDING_KEY} entry removed; commit the file)"
    # a file keeps no versions: its stage ids (current, pending) are no version numbers, so messages name values
    CREATED = "a new value of {s.key} of SOPS file {s.name} staged in {s.PENDING}"
    LEFT = "the pending value of {s.key} an interrupted run left in {s.PENDING} {what}"
    LEFT_DONE = "is the file's value already: only the entry is left"
    FINISHED = "{s.CURRENT} of {s.key} is the new value{s.AFTER}"

    def __init__(self, backend: SecretBackend, file: str, ref: SecretRef) -> None:
        self.sops = SopsFile(backend, os.environ, file)
        self.file, self.name, self.key = file, ref.name, ref.key or ""
        self.parts = key_path(ref.key)  # checked by the read before any rotation
        self.before: str | None = None  # the key's value before this run promoted the pending one (discard)

    def fail(self, problem: str, error: Any = None) -> NoReturn:  # noqa: ARG002 - every problem here is exit 1
        raise OperationFailed(f"{self.file}: {problem}")

    def _value(self, doc: dict) -> str:
        node: Any = doc
        for part in self.parts:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, str):
            self.fail(f"SOPS file {self.name!r} has no string at {self.key!r}")
        return node

    def stages(self) -> Stages:
        doc = self.sops.document(self.name, self.fail)
        self._value(doc)
        return file_stages(doc, self.key)

    def value(self, version: str) -> str:
        doc = self.sops.document(self.name, self.fail)
        return doc[PENDING_KEY][self.key] if version == PENDING_ID else self._value(doc)

    def create(self, value: str, stages: Stages) -> str:  # noqa: ARG002 - the current value stays where it is
        self.sops.set(self.name, [PENDING_KEY, self.key], value, self.fail)
        return PENDING_ID

    def promote(self, stages: Stages) -> None:
        """The key set to the pending value, unless it holds it already (a rerun); the value it had is kept for
        discard."""
        value, pending = self.value(CURRENT_ID), self.value(stages.pending or PENDING_ID)
        if value != pending:
            self.sops.set(self.name, self.parts, pending, self.fail)
            self.before = value

    def finish(self, stages: Stages) -> None:
        self.promote(stages)  # done before the roll; here only when nothing rolled it
        self._unstage()

    def discard(self, stages: Stages) -> None:
        if stages.pending is None:
            return
        if self.before is not None:  # this run promoted the pending value: the key gets its own back
            self.sops.set(self.name, self.parts, self.before, self.fail)
            self.before = None
        self._unstage()

    def _unstage(self) -> None:
        """``nodeops_pending.<key>`` removed, and ``nodeops_pending`` when that leaves it empty."""
        self.sops.set(self.name, [PENDING_KEY, self.key], None, self.fail)
        if not self.sops.document(self.name, self.fail).get(PENDING_KEY):
            self.sops.set(self.name, [PENDING_KEY], None, self.fail)

    def recorded(self, version: str) -> str:  # noqa: ARG002 - one version for the file's values, both stages'
        """The file's version now (values_version): the one a node started on the pending value records once it was
        promoted, since the key then holds it."""
        return self.sops.version(self.name, self.fail)
