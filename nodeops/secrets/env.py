"""The ``env`` secret backend (for CI): each reference is one environment variable of the operator's process.

The variable's name: ``env_variable_name``. An environment keeps no versions and no dates.
"""

from __future__ import annotations

import re

from nodeops.inventory import SecretRef
from nodeops.secrets import Backend, Fail

__all__ = ["EnvBackend", "env_variable_name"]


def env_variable_name(prefix: str, name: str, key: str | None) -> str:
    """The environment variable the ``env`` backend reads for a reference.

    ``prefix`` + NAME, where NAME is the secret name upper-cased with every
    character outside [A-Z0-9] replaced by ``_``; with a ``key``, ``_`` + the
    key transformed the same way is appended. Prefix ``NODEOPS_``, name
    ``chainlink/DBSecret``, key ``password`` -> ``NODEOPS_CHAINLINK_DBSECRET_PASSWORD``.
    """

    def norm(text: str) -> str:
        return re.sub(r"[^A-Z0-9]", "_", text.upper())

    return prefix + norm(name) + (f"_{norm(key)}" if key else "")


class EnvBackend(Backend):
    """Reads ``environ`` (the operator's environment, or what ``resolve`` was given) with the backend's prefix."""

    def _variable(self, ref: SecretRef) -> str:
        return env_variable_name(self.backend.prefix or "", ref.name, ref.key)

    def describe(self, ref: SecretRef) -> str:
        return f"environment variable {self._variable(ref)}"

    def read(self, ref: SecretRef, fail: Fail, version: str | None = None) -> tuple[str, None]:
        """(value, None): an environment keeps no versions, so ``version`` cannot be honoured and is refused."""
        var, name = self._variable(ref), self.backend.name
        if version is not None:
            fail(f"version {version} was asked for, but secret backend {name!r} (kind env) keeps no versions")
        if var not in self.environ:
            fail(f"environment variable {var} is not set (secret backend {name!r}, kind env)")
        return self.environ[var], None
