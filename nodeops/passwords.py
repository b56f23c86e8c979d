"""Generated passwords: the rules they meet and a generator (the lab seeds with it, fab rotate-secrets rotates).

Two sets of rules. The node's are its role's data (role.yaml ``passwords:``, nodeops.role_file.PasswordRules: a
length, classes of characters, runs, not containing its user). The engine's own are those of plain handling in
TOML, .env lines and URLs: letters, digits and ``symbols`` only (no quote, backslash or whitespace), no symbol
first or last (it could read as a flag). ``symbols`` picks the symbol set: the lab's includes ``%`` and ``@`` so
that its secrets exercise the renderer's escaping; ``UNRESERVED`` (RFC 3986's unreserved symbols) gives a password
that no URL, TOML or shell quoting ever changes.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Protocol

from nodeops.errors import OperationFailed
from nodeops.role_file import PasswordRules

PASSWORD_LENGTH = 32  # within the role's min_length..max_length
SYMBOLS = "-_.~!*%@"  # no quote, backslash or whitespace: TOML literal strings and .env lines stay plain
UNRESERVED = "-_.~"  # never percent-encoded in a URL, never escaped in a TOML basic string
_CLASSES = {"upper": string.ascii_uppercase, "lower": string.ascii_lowercase, "digit": string.digits}
_TIMES = {2: "twice", 3: "three times"}


class Rng(Protocol):
    def choice(self, seq: Sequence[str]) -> str: ...
    def shuffle(self, x: list[str]) -> None: ...


def password_problems(password: str, *users: str, rules: PasswordRules, symbols: str = SYMBOLS) -> list[str]:
    """Why ``password`` does not fit every place it goes (empty if it does): the node's ``rules`` (its role's
    ``passwords:``; ``users``: whom it belongs to, for ``refuse_user``) and the engine's alphabet of ``symbols``.
    Pure."""
    problems, size = [], len(password.encode())
    if size < rules.min_length or (rules.max_length is not None and size > rules.max_length):
        problems.append(f"length {len(password)} not in {rules.min_length}..{rules.max_length or ''}")
    if any(c not in string.ascii_letters + string.digits + symbols for c in password):
        problems.append(f"a character outside the alphabet (letters, digits, {symbols})")
    for name in rules.classes:
        if not any(c in _CLASSES.get(name, symbols) for c in password):
            problems.append(f"no {name} character")
    if password[:1] in symbols or password[-1:] in symbols:
        problems.append("starts or ends with a symbol")
    if rules.max_run is not None and re.search(rf"(.)\1{{{rules.max_run}}}", password):
        times = rules.max_run + 1
        problems.append(f"a character {_TIMES.get(times, f'{times} times')} in a row")
    if rules.refuse_user:
        problems += [f"contains {s!r}" for s in users if s and s.lower() in password.lower()]
    return problems


def generate_password(rng: Rng, *users: str, rules: PasswordRules, symbols: str = SYMBOLS) -> str:
    """A random password of PASSWORD_LENGTH characters (or the nearest length ``rules`` allow) that passes
    ``password_problems`` (``rng``: secrets.SystemRandom() outside tests; ``users``: whom it belongs to).
    OperationFailed if none is found in 1000 tries."""
    length = max(rules.min_length, min(PASSWORD_LENGTH, rules.max_length or PASSWORD_LENGTH))
    alphabet = string.ascii_letters + string.digits + symbols
    for _ in range(1000):
        chars = [rng.choice(c) for c in (string.ascii_uppercase, string.ascii_lowercase, string.digits, symbols)]
        chars += [rng.choice(alphabet) for _ in range(length - len(chars))]
        rng.shuffle(chars)
        password = "".join(chars)
        if not password_problems(password, *users, rules=rules, symbols=symbols):
            return password
    raise OperationFailed("could not generate a password that meets the rules")  # pragma: no cover
