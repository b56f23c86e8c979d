"""The one exception hierarchy of nodeops.

Every error a user can cause or meet is a NodeopsError whose ``exit_code``
is documented in the README and docs/cli.md. The task layer turns these into a single line
on stderr and that exit code (tasks/_cli.py); nothing else catches them.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran and failed (after any rollback)
EXIT_INVALID = 2  # invalid input or a refused request; nothing was changed
EXIT_LOCKED = 3  # another run holds the deploy lock
EXIT_UNSAFE = 4  # refused as unsafe: host key mismatch, unclear cluster state
EXIT_UNREACHABLE = 5  # a secret backend could not be reached, or answered an error, while reading secrets
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C or SIGTERM, at a safe point (128 + SIGINT, as shells report it)


class NodeopsError(Exception):
    """Base class; ``str(err)`` is the one line the user sees."""

    exit_code = EXIT_FAILED


class OperationFailed(NodeopsError):
    exit_code = EXIT_FAILED


class InvalidInput(NodeopsError):
    exit_code = EXIT_INVALID


class Declined(InvalidInput):
    """A person answered no (or nothing) to a confirmation: nothing was done. Exit 2, as any refused request, but
    shown as declined, not failed, on the terminal and in the audit log (its end's ``result``)."""


class InventoryError(InvalidInput):
    """An inventory problem, located by file and by the path inside it."""

    def __init__(self, file: str, where: str, problem: str) -> None:
        self.file = file
        self.where = where
        self.problem = problem
        location = f"{file}: {where}" if where else file
        super().__init__(f"{location}: {problem}")


class BackendUnreachable(NodeopsError):
    """A secret backend could not be reached (connection refused or timed out), or answered with an error (an HTTP
    404, throttling, a 5xx) other than "no such secret" or "access denied", while secrets were read, before
    anything changed; located like an InventoryError (the file, the reference's path)."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, file: str, where: str, problem: str) -> None:
        super().__init__(f"{file}: {where}: {problem}")


class LockHeld(NodeopsError):
    exit_code = EXIT_LOCKED


class Unsafe(NodeopsError):
    exit_code = EXIT_UNSAFE


class Interrupted(NodeopsError):
    """The run was asked to stop (Ctrl-C, SIGTERM) and stopped at a safe point; the message says what runs."""

    exit_code = EXIT_INTERRUPTED


class HostKeyRejected(Unsafe):
    """A host offered a key that is not the pinned one (or none is pinned)."""

    def __init__(self, label: str, address: str, offered: str, detail: str) -> None:
        self.label = label
        self.address = address
        self.offered = offered
        super().__init__(f"{label} ({address}): host key {offered} {detail}; refusing to connect")


def raise_failures(results: list[dict]) -> None:
    """Raise one error for every result carrying an ``error`` (a NodeopsError), after all were tried.

    Its exit code is the highest among them: refused as unsafe (4) outranks failed (1).
    """
    failed = [r["error"] for r in results if "error" in r]
    if failed:
        error = OperationFailed("; ".join(map(str, failed)))
        error.exit_code = max(e.exit_code for e in failed)
        raise error
