"""Generated passwords: the rules they meet and a generator (the lab seeds with it, fab rotate-secrets rotates).

The rules are those of every place a password goes: the Chainlink node's
(16-50 characters, no surrounding whitespace, not the API email), its older
stricter ones (upper, lower, digit, symbol, no character three times in a
row), and plain handling in TOML, .env lines and URLs (no quote, backslash or
whitespace; no leading symbol that reads as a flag). ``symbols`` picks the
symbol set: the lab's includes ``%`` and ``@`` so that its secrets exercise
the renderer's escaping; ``UNRESERVED`` (RFC 3986's unreserved symbols) gives
a password that no URL, TOML or shell quoting ever changes.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Protocol

from nodeops.errors import OperationFailed

PASSWORD_LENGTH = 32
SYMBOLS = "-_.~!*%@"  # no quote, backslash or whitespace: TOML literal strings and .env lines stay plain
UNRESERVED = "-_.~"  # never percent-encoded in a URL, never escaped in a TOML basic string
MIN_PASSWORD, MAX_PASSWORD = 16, 50  # the node's rules (API password <= 50)


class Rng(Protocol):
    def choice(self, seq: Sequence[str]) -> str: ...
    def shuffle(self, x: list[str]) -> None: ...


def password_problems(password: str, *disallowed: str, symbols: str = SYMBOLS) -> list[str]:
    """Why ``password`` does not fit every place it goes (empty if it does)."""
    problems = []
    if not MIN_PASSWORD <= len(password.encode()) <= MAX_PASSWORD:
        problems.append(f"length {len(password)} not in {MIN_PASSWORD}..{MAX_PASSWORD}")
    if any(c not in string.ascii_letters + string.digits + symbols for c in password):
        problems.append(f"a character outside the alphabet (letters, digits, {symbols})")
    for name, chars in (("upper", string.ascii_uppercase), ("lower", string.ascii_lowercase),
                        ("digit", string.digits), ("symbol", symbols)):  # fmt: skip
        if not any(c in chars for c in password):
            problems.append(f"no {name} character")
    if password[:1] in symbols or password[-1:] in symbols:
        problems.append("starts or ends with a symbol")
    if re.search(r"(.)\1\1", password):
        problems.append("a character three times in a row")
    problems += [f"contains {s!r}" for s in disallowed if s and s.lower() in password.lower()]
    return problems


def generate_password(rng: Rng, *disallowed: str, length: int = PASSWORD_LENGTH, symbols: str = SYMBOLS) -> str:
    """A random password that passes ``password_problems`` (``rng``: secrets.SystemRandom() outside tests)."""
    alphabet = string.ascii_letters + string.digits + symbols
    for _ in range(1000):
        chars = [rng.choice(c) for c in (string.ascii_uppercase, string.ascii_lowercase, string.digits, symbols)]
        chars += [rng.choice(alphabet) for _ in range(length - len(chars))]
        rng.shuffle(chars)
        password = "".join(chars)
        if not password_problems(password, *disallowed, symbols=symbols):
            return password
    raise OperationFailed("could not generate a password that meets the rules")  # pragma: no cover
