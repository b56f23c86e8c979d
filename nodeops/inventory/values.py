"""What one key of the inventory accepts: the field validators, the names they share, and the value types they
produce (``HostKey``). Each validator says what it accepts (``_accepts``): docs/inventory-reference.md reads it.

Validators raise ``PydanticCustomError`` whose message is the complete sentence the user sees (nodeops.inventory.load
puts the file and the path in front of it). The file holds only references to secrets, so messages may echo
offending values (``_shown``: truncated to 40 characters).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
from collections.abc import Callable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

from pydantic import BeforeValidator, PlainValidator, ValidationInfo
from pydantic_core import PydanticCustomError

_NAME_PATTERN = "[a-z0-9][a-z0-9_-]*"
_NAME = re.compile(_NAME_PATTERN)
# Names become file names on the bastion (<state_dir>/<env>/locks/<service>.json), container names on the
# nodes (nodeops-<service>-previous) and S3 keys: a DNS label's 63 characters keep every one of them far
# below the file systems' 255 bytes.
NAME_MAX = 63
STATE_DIR_MAX = 255  # one file name's worth; the bastion scripts append <env>/locks/<service>.json to it
_HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")

Scalar = str | int | float | bool
# A variable's value: a scalar, or a list or mapping of them nested at most VARIABLE_DEPTH deep (read-only by
# convention: templates run in an immutable sandbox).
Variable = Scalar | list[Any] | dict[str, Any]
VARIABLE_DEPTH = 4  # EVM_CHAINS: the list > a chain > its nodes > a node > its scalars


@dataclass(frozen=True)
class HostKey:
    """A pinned SSH host key."""

    keytype: str
    blob_b64: str

    @property
    def line(self) -> str:
        return f"{self.keytype} {self.blob_b64}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _label(key: Any) -> str:
    return key if isinstance(key, str) and key.isprintable() and len(key) <= 40 else _shown(key)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(expected: str, value: Any) -> NoReturn:
    raise PydanticCustomError("invalid", f"expected {expected}, got {_shown(value)}")


def _accepts(expected: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Records on a validator what it accepts (``f.accepts``): the type column of the inventory reference
    (docs/inventory-reference.md, written by tools/inventory_reference.py) is read from it."""

    def mark(check: Callable[..., Any]) -> Callable[..., Any]:
        check.accepts = expected  # type: ignore[attr-defined]
        return check

    return mark


def _matching(pattern: str, expected: str) -> PlainValidator:
    regex = re.compile(pattern)

    @_accepts(expected)
    def check(value: Any) -> str:
        if isinstance(value, str) and regex.fullmatch(value):
            return value
        _fail(expected, value)

    return PlainValidator(check)


def _integer(low: int, high: int) -> PlainValidator:
    @_accepts(f"an integer {low}..{high}")
    def check(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        _fail(check.accepts, value)

    return PlainValidator(check)


@_accepts("a number of seconds > 0")
def _seconds(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    _fail(_seconds.accepts, value)


def _count(low: int, high: int | None, what: str) -> Callable[[Sized], Sized]:
    wanted = f"at least {low}" if high is None else f"{low} to {high}"

    @_accepts(f"{wanted} {what}")
    def check(items: Sized) -> Sized:
        if low <= len(items) and (high is None or len(items) <= high):
            return items
        raise PydanticCustomError("invalid", f"expected {check.accepts}, got {len(items)}")

    return check


def _name_problem(value: Any) -> str | None:
    """Why ``value`` is not a name (environment, service, node, role, secret, backend), or None."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        return f"expected a name matching {_NAME_PATTERN}, got {_shown(value)}"
    if len(value) > NAME_MAX:
        return (f"a name of at most {NAME_MAX} characters, got {len(value)}: it names files on the bastion and "
                "containers on the nodes; shorten it")  # fmt: skip
    return None


@_accepts(f"a name {_NAME_PATTERN}, at most {NAME_MAX} characters")
def _name(value: Any) -> str:
    if problem := _name_problem(value):
        raise PydanticCustomError("invalid", problem)
    return value


_STATE_DIR = re.compile(r"[A-Za-z0-9._/-]+")


@_accepts(
    f"a directory on the bastion (letters, digits, . _ / -; no part starting with -; not / or . itself; "
    f"at most {STATE_DIR_MAX} characters), relative to the user's home or absolute"
)
def _state_dir(value: Any) -> str:
    """A directory on the bastion that no command can take for an option, short enough for the files under it."""
    if (
        isinstance(value, str)
        and _STATE_DIR.fullmatch(value)
        and len(value) <= STATE_DIR_MAX
        and not any(part.startswith("-") for part in value.split("/"))
        and value.strip("/.")
    ):
        return value
    _fail(f"a directory path on the bastion of its own (letters, digits, . _ / -; no part starting with -; "
          f"not / or . itself; at most {STATE_DIR_MAX} characters)", value)  # fmt: skip


_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@_accepts("a hostname or IP address")
def _host(value: Any) -> str:
    if isinstance(value, str):
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            labels = value.split(".")
            if (
                len(value) <= 253
                and all(_HOST_LABEL.fullmatch(label) for label in labels)
                and not labels[-1].isdigit()  # 10.0.1.300 is a bad address, not a hostname
            ):
                return value
    _fail(_host.accepts, value)


@_accepts("a file path (relative to the inventory file's folder; ~ expanded)")
def _path(value: Any, info: ValidationInfo) -> Path:
    """A path: ``~`` expanded, relative to the inventory file's folder."""
    if not isinstance(value, str) or not value:
        _fail("a file path", value)
    return info.context["base"] / Path(value).expanduser()


@_accepts("an http(s) URL")
def _url(value: Any) -> str:
    if isinstance(value, str) and not any(c.isspace() for c in value):
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc:
            return value
    _fail(_url.accepts, value)


def _up_to(high: float, expected: str) -> PlainValidator:
    """A number ``0 < n <= high`` (as a float), else "expected ``expected``"."""

    @_accepts(expected)
    def check(value: Any) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= high:
            return float(value)
        _fail(expected, value)

    return PlainValidator(check)


_VARIABLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def variable_problem(value: Any, depth: int = VARIABLE_DEPTH) -> str | None:
    """Why ``value`` cannot be a variable (``where: problem``, ``where`` inside the value, e.g. ``[0].nodes``), or
    None: a string, number or boolean, or a list or mapping (keys ``[A-Za-z_][A-Za-z0-9_-]*``) of them, nested at
    most ``depth`` deep. Shared by the inventory and role.yaml ``defaults``."""
    if isinstance(value, str | int | float | bool):
        return None
    if not isinstance(value, list | dict):
        return f": expected a string, number or boolean (or a list or mapping of them), got {_shown(value)}"
    if depth == 0:
        return f": lists and mappings nest at most {VARIABLE_DEPTH} deep"
    items = enumerate(value) if isinstance(value, list) else value.items()
    for k, item in items:
        if isinstance(value, dict) and not (isinstance(k, str) and _VARIABLE_KEY.fullmatch(k)):
            return f": expected keys matching {_VARIABLE_KEY.pattern}, got {_shown(k)}"
        if problem := variable_problem(item, depth - 1):
            return (f"[{k}]" if isinstance(k, int) else f".{k}") + problem
    return None


@_accepts(f"a string, number or boolean, or a list or mapping of them (nested at most {VARIABLE_DEPTH} deep)")
def _variable(value: Any) -> Variable:
    if problem := variable_problem(value):
        where, _, what = problem.partition(": ")
        raise PydanticCustomError("invalid", f"{'at ' + where + ': ' if where else ''}{what}")
    return value


@_accepts(f"a public key 'TYPE BASE64 [comment]' with TYPE one of {', '.join(_HOST_KEY_TYPES)}")
def _host_key(value: Any) -> HostKey:
    """An OpenSSH public key line, checked without paramiko (SSH wire format)."""
    parts = value.split() if isinstance(value, str) else []
    if len(parts) < 2 or parts[0] not in _HOST_KEY_TYPES:
        _fail(_host_key.accepts, value)
    keytype, blob_b64 = parts[:2]
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except binascii.Error:
        _fail("the key data to be base64", blob_b64)
    if not blob.startswith(struct.pack(">I", len(keytype)) + keytype.encode()):
        _fail(f"key data that encodes a {keytype} key", blob_b64)
    return HostKey(keytype, blob_b64)


def _key_list(value: Any) -> Any:
    """One key or a list of them (validated one by one, so errors carry the index)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        return value
    _fail("a host key or a non-empty list of host keys", value)


_Name = Annotated[str, PlainValidator(_name)]
_StateDir = Annotated[str, PlainValidator(_state_dir)]
_Word = Annotated[str, _matching(r"[!-~]+", "a non-empty string without spaces")]
_Image = Annotated[
    str,
    _matching(
        r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?/)?"  # registry
        r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"  # repository
        r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?",  # tag, digest
        "an image reference repo[:tag][@sha256:digest]",
    ),
]
_Host = Annotated[str, PlainValidator(_host)]
_Port = Annotated[int, _integer(1, 65535)]
_Seconds = Annotated[float, PlainValidator(_seconds)]
_Path = Annotated[Path, PlainValidator(_path)]
_HostKeys = Annotated[tuple[Annotated[HostKey, PlainValidator(_host_key)], ...], BeforeValidator(_key_list)]


def _not_inline(value: Any) -> Any:
    """A webhook written as its URL: refused without echoing it (the URL carries its token)."""
    if isinstance(value, str):
        raise PydanticCustomError(
            "invalid",
            "expected a secret reference {backend, name, key}, not the URL itself "
            "(its value is not shown): the URL carries a token; store it in a secret backend",
        )
    return value


def _references(value: Any) -> Any:
    """``secrets:`` written as something else than a mapping (a value pasted in): refused without echoing it."""
    if not isinstance(value, dict):
        raise PydanticCustomError("invalid", "expected a mapping of secret names to references {backend, name, key}, "
                                  "not a value (the value is not shown)")  # fmt: skip
    return value


def _not_a_value(data: Any) -> Any:
    """Anything but a mapping where a secret reference belongs is most likely the secret itself, pasted in: refused
    without echoing it."""
    if not isinstance(data, dict):
        raise PydanticCustomError(
            "invalid",
            "expected a secret reference {backend, name, key}, not a value (the value is not shown): store "
            "the secret in a secret backend and reference it here",
        )
    return data
