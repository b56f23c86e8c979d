"""The escaping filters, one exact for each format a file is written in, and what they note while a file
renders (the secrets written, whether a Secret may be): see nodeops.render.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

import jinja2
import jinja2.meta

from nodeops.errors import InvalidInput
from nodeops.secrets import Secret

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


def text_filter(value: Any) -> str:
    """The value as it is, newlines included: a file whose whole content is one value (a key file: cardano-cli's
    text envelope is JSON over several lines). A Secret only in a secret file, as every filter."""
    text, _ = _unwrap(value, "text")
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


FILTERS = {
    "string": string_filter,
    "toml": toml_filter,
    "urlpart": urlpart_filter,
    "dotenv": dotenv_filter,
    "line": line_filter,
    "text": text_filter,
    "raw": raw_filter,
}
