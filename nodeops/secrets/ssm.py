"""The ``aws-ssm`` secret backend: AWS Systems Manager Parameter Store, through the AWS edge (nodeops.edges.aws).

A reference's ``name`` is a parameter's name (``/cl1/db-password``), or a name and a version (``/cl1/db-password:3``,
Parameter Store's own selector: a name cannot hold a ``:``) to pin that version. ``SecureString`` parameters are
read decrypted (``WithDecryption``), ``String`` ones as they are; a ``StringList`` is refused (its commas would be
read as part of the value). With ``key`` the value is a JSON object and the value read is that key's string.

The current version: the one labelled ``nodeops-current`` while a rotation is under way (``rotate-secrets`` labels
it before it writes the new version, which Parameter Store makes the latest at once, and removes the label when it
finishes: nodeops.rotate.ssm), else the latest. The version (its number, as text) travels with the value. An
undone rotation writes the current value again as the latest version (for readers that know no label), labelled
``nodeops-copy``, and labels the version it copies ``nodeops-original``: a read of that copy says the original's
version, the one the nodes run, so that the undo leaves nothing for a deploy to roll (the values are the same).

Exit codes of a failed read: 2 for what the inventory or the account must fix (no such parameter or version, a key
missing, access refused, no credentials), 5 when the backend could not be read (unreachable, or it answered an
error such as throttling or 5xx): nothing was done, run again (nodeops.secrets.aws.refused_read).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from nodeops.edges import aws
from nodeops.errors import OperationFailed
from nodeops.inventory import SecretRef
from nodeops.secrets import Fail
from nodeops.secrets.aws import MISSING_FIX, AwsBackend, refused_read

__all__ = ["COPY_LABEL", "CURRENT_LABEL", "ORIGINAL_LABEL", "PENDING_LABEL", "ParameterStore", "described",
           "history", "original_of", "split_name"]  # fmt: skip

CURRENT_LABEL, PENDING_LABEL = "nodeops-current", "nodeops-pending"  # a rotation's labels (nodeops.rotate.ssm)
COPY_LABEL, ORIGINAL_LABEL = "nodeops-copy", "nodeops-original"  # an undo's copy of a version, and that version
_MISSING = ("ParameterNotFound", "ParameterVersionNotFound", "ParameterVersionLabelNotFound")


def described(client: object, name: str, where: str) -> dict:
    """Parameter ``name``'s description (describe_parameters: its type, KMS key id and last change, never its
    value). Errors: OperationFailed (the call failed, or there is no such parameter)."""
    found = aws.call(client, f"{where}: describing parameter {name!r} failed", "describe_parameters",
                     ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])  # fmt: skip
    for p in found.get("Parameters", []):
        return p
    raise OperationFailed(f"{where}: no parameter {name!r}")


def history(client: object, name: str, where: str) -> dict[int, dict]:
    """Parameter ``name``'s versions: {version number: its ``Labels`` and ``LastModifiedDate``} (every page of
    get_parameter_history, never a value). Errors: OperationFailed (a call failed, or the history does not end)."""
    out: dict[int, dict] = {}
    args: dict = {"Name": name, "WithDecryption": False, "MaxResults": 50}
    for _ in range(100):  # Parameter Store keeps at most 100 versions: two pages
        page = aws.call(client, f"{where}: get_parameter_history of parameter {name!r} failed",
                        "get_parameter_history", **args)  # fmt: skip
        out |= {p["Version"]: {"Labels": list(p.get("Labels", ())), "LastModifiedDate": p.get("LastModifiedDate")}
                for p in page.get("Parameters", [])}  # fmt: skip
        if not page.get("NextToken"):
            return out
        args["NextToken"] = page["NextToken"]
    raise OperationFailed(f"{where}: the history of parameter {name!r} does not end")


def original_of(labels: Mapping[int, Sequence[str]], version: int) -> int:
    """The version that ``version`` holds the value of ({version number: its labels}): the one labelled
    nodeops-original when ``version`` is an undo's copy (labelled nodeops-copy), else ``version`` itself."""
    if COPY_LABEL not in labels.get(version, ()):
        return version
    return next((v for v, ls in labels.items() if ORIGINAL_LABEL in ls), version)


def split_name(name: str) -> tuple[str, str | None]:
    """``/cl1/db:3`` -> (``/cl1/db``, ``3``); a name without a selector -> (name, None)."""
    base, colon, selector = name.rpartition(":")
    return (base, selector) if colon and base else (name, None)


class ParameterStore(AwsBackend):
    """Parameter Store: the labelled current version, else the latest; or a version asked for or pinned."""

    SERVICE = "ssm"
    WHAT = "parameter"

    def _get(self, ref: SecretRef, fail: Fail, version: str | None) -> tuple[str, str]:
        name, pinned = split_name(ref.name)
        if pinned is not None and not pinned.isdigit():
            fail(f"parameter {ref.name!r}: {pinned!r} after the ':' is not a version number (write name:3)")
        asked = version or pinned
        if asked is None:  # a rotation under way labels the current version; without one, the latest is current
            found = self._parameter(f"{name}:{CURRENT_LABEL}", fail, missing_ok=True)
            found = found or self._parameter(name, fail)
            version = self._original(name, found, fail)
        else:
            found = self._parameter(f"{name}:{asked}", fail, pinned=name)
            version = found["Version"]
        kind = found.get("Type")
        if kind not in ("SecureString", "String"):
            fail(f"parameter {name!r} is a {kind}, not a SecureString or String")
        return found["Value"], str(version)

    def _original(self, name: str, found: dict, fail: Fail) -> int:
        """``found``'s version number; when an undo wrote it (it is labelled nodeops-copy) the number of the version
        it copies (labelled nodeops-original, the same value: the one the nodes run)."""
        copy = self._parameter(f"{name}:{COPY_LABEL}", fail, missing_ok=True)
        if copy is None or copy["Version"] != found["Version"]:
            return found["Version"]
        original = self._parameter(f"{name}:{ORIGINAL_LABEL}", fail, missing_ok=True)
        same = original is not None and original["Value"] == found["Value"]
        return original["Version"] if same else found["Version"]

    def _parameter(self, selector: str, fail: Fail, missing_ok: bool = False, pinned: str = "") -> dict | None:
        """get_parameter of ``selector`` (name, name:version or name:label), decrypted; None when it is missing and
        ``missing_ok``. ``pinned``: the parameter's name when ``selector`` asks for a version of it."""
        try:
            return aws.attempt(self._client(), "get_parameter", Name=selector, WithDecryption=True)["Parameter"]
        except aws.Failure as failure:
            error = failure  # classified below, outside the handler: no AWS error chained to what is raised
        if missing_ok and error.code in _MISSING:
            return None
        where = self._where()
        said = dict.fromkeys(_MISSING, f"no parameter {selector!r} in {where}: {MISSING_FIX}")
        if pinned:  # name:version: the parameter may be there without that version
            version = selector.rpartition(":")[2]
            said["ParameterNotFound"] = f"no parameter {pinned!r} in {where}: {MISSING_FIX}"
            said["ParameterVersionNotFound"] = (f"parameter {pinned!r} has no version {version} in {where}: "
                                                f"{MISSING_FIX}")  # fmt: skip
        refused_read(self.backend, self.file, error, fail, f"parameter {selector!r}", said)

    def current_since(self, ref: SecretRef) -> datetime.datetime:
        """When the parameter's latest version was written, or the version it copies when an undone rotation wrote
        it (get_parameter_history: no value is read). Errors: OperationFailed."""
        name, where = split_name(ref.name)[0], self._where()
        versions = history(self._client(), name, where)
        if not versions:
            raise OperationFailed(f"{where}: parameter {name!r} has no versions")
        labels = {v: e["Labels"] for v, e in versions.items()}
        return versions[original_of(labels, max(versions))]["LastModifiedDate"]
