"""A Parameter Store parameter under rotation (ParameterVersions, a nodeops.rotate.versions.Store).

Parameter Store makes every new version the latest at once, and readers read the latest: so the two stages of a
Secrets Manager rotation are two labels here (nodeops.secrets.ssm reads the version labelled ``nodeops-current``
when there is one, else the latest):

  createSecret  the current version labelled ``nodeops-current`` (readers stay on it), the new value written as a
                new version (same type and KMS key), that version labelled ``nodeops-pending``;
  finishSecret  ``nodeops-current`` removed (the pending version, the latest, is now what readers read), then
                ``nodeops-pending`` removed;
  discard       ``nodeops-pending`` removed, the current value written again as the latest version (for readers
                that know no label), the version the nodes run labelled ``nodeops-original`` and the copy
                ``nodeops-copy`` (nodeops.secrets.ssm reads the copy as that version: no deploy rolls the pair
                onto the same value), then ``nodeops-current`` removed.

Each step is one call; a crash between two leaves a state a rerun reads right (``parameter_stages``): a pending
label on a version that is not current is an interrupted rotation (completed by the next run), a pending label on
the latest version with no current label a finished one (the next run removes the label), a current label alone
a rotation that never wrote, or whose undo stopped half way (readers keep the labelled version; the next rotation
starts from it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nodeops.edges import aws
from nodeops.errors import OperationFailed, Unsafe
from nodeops.inventory import SecretRef
from nodeops.rotate.rules import Stages, value_of, with_value
from nodeops.rotate.versions import Store
from nodeops.secrets.ssm import (
    COPY_LABEL,
    CURRENT_LABEL,
    ORIGINAL_LABEL,
    PENDING_LABEL,
    described,
    history,
    original_of,
    split_name,
)


def parameter_stages(name: str, labels: Mapping[int, Sequence[str]]) -> Stages:
    """A parameter's versions ({version number: its labels}, from get_parameter_history) -> Stages (version numbers
    as text): current is the version labelled nodeops-current, else the latest; pending the one labelled
    nodeops-pending. Refused (Unsafe) when a pending version is neither current nor the latest with the current
    label on an older one (a version was written outside the rotation)."""
    if not labels:
        raise OperationFailed(f"parameter {name!r} has no versions")
    latest = max(labels)
    current = next((v for v, ls in labels.items() if CURRENT_LABEL in ls), None)
    pending = next((v for v, ls in labels.items() if PENDING_LABEL in ls), None)
    if pending is not None and current is None and pending != latest:
        raise Unsafe(f"parameter {name!r}: version {pending} is labelled {PENDING_LABEL} but version {latest} is the "
                     f"latest: written outside nodeops? remove the label (aws ssm unlabel-parameter-version) and "
                     "rotate again")  # fmt: skip
    if pending is not None and current is not None and pending != latest:
        raise Unsafe(f"parameter {name!r}: version {latest} was written after the pending version {pending}: "
                     f"written outside nodeops? fix its labels by hand first")  # fmt: skip
    cur = current if current is not None else latest
    if pending is not None and pending == cur and current is not None:
        raise Unsafe(f"parameter {name!r}: version {pending} is labelled both {CURRENT_LABEL} and {PENDING_LABEL}")
    return Stages(str(cur), None if pending is None else str(pending))


class ParameterVersions(Store):
    """One parameter's versions and labels in Parameter Store; ``ref.key``: the rotated field of a JSON value."""

    CURRENT, PENDING = "the current version", f"the label {PENDING_LABEL}"
    AFTER = f" (the latest; labels {CURRENT_LABEL} and {PENDING_LABEL} removed)"

    def __init__(self, client: Any, ref: SecretRef, where: str) -> None:
        self.client, self.where, self.key = client, where, ref.key
        self.name, _ = split_name(ref.name)

    def _call(self, operation: str, **kwargs) -> dict:
        failed = f"{self.where}: {operation} of parameter {self.name!r} failed"
        return aws.call(self.client, failed, operation, Name=self.name, **kwargs)

    def labels(self) -> dict[int, list[str]]:
        return {v: e["Labels"] for v, e in history(self.client, self.name, self.where).items()}

    def stages(self) -> Stages:
        return parameter_stages(self.name, self.labels())

    def text(self, version: str) -> str:
        failed = f"{self.where}: get_parameter of parameter {self.name!r} failed"
        found = aws.call(self.client, failed, "get_parameter", Name=f"{self.name}:{version}", WithDecryption=True)
        return found["Parameter"]["Value"]

    def value(self, version: str) -> str:
        return value_of(self.text(version), self.key, self.name)

    def _label(self, version: str, label: str, remove: bool = False) -> None:
        operation = "unlabel_parameter_version" if remove else "label_parameter_version"
        self._call(operation, ParameterVersion=int(version), Labels=[label])

    def _write(self, text: str) -> str:
        """A new version holding ``text``, of the parameter's type and KMS key; its number."""
        meta = described(self.client, self.name, self.where)
        kind = meta.get("Type", "SecureString")
        extra = {"KeyId": meta["KeyId"]} if kind == "SecureString" and meta.get("KeyId") else {}
        written = self._call("put_parameter", Value=text, Type=kind, Overwrite=True, **extra)
        return str(written["Version"])

    def create(self, value: str, stages: Stages) -> str:
        text = with_value(self.text(stages.current), self.key, value, self.name)
        self._label(stages.current, CURRENT_LABEL)  # readers stay on it while the new version is the latest
        version = self._write(text)
        self._label(version, PENDING_LABEL)
        return version

    def finish(self, stages: Stages) -> None:
        if stages.state == "interrupted":
            if max(self.labels()) != int(stages.pending):
                raise Unsafe(f"{self.where}: parameter {self.name!r} has a version newer than the pending "
                             f"{stages.pending}: written outside nodeops? fix its labels by hand first")  # fmt: skip
            self._label(stages.current, CURRENT_LABEL, remove=True)
        self._label(stages.pending, PENDING_LABEL, remove=True)

    def discard(self, stages: Stages) -> None:
        if stages.state != "interrupted":
            return
        original = original_of(self.labels(), int(stages.current))  # what the nodes run: a copy's original
        self._label(stages.pending, PENDING_LABEL, remove=True)
        copy = self._write(self.text(stages.current))  # the current value the latest again, for readers without a label
        self._label(str(original), ORIGINAL_LABEL)  # before the copy's label: a reader checks the copy's first
        self._label(copy, COPY_LABEL)
        self._label(stages.current, CURRENT_LABEL, remove=True)
