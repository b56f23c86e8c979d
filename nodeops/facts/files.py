"""File facts on a node: the service's RAM-backed files directory, what it holds, and the filesystem under a path."""

from __future__ import annotations

import shlex

from nodeops.commands.node import files_dir


def filesystem_type(path: str) -> tuple[str, ...]:
    """The type of the filesystem ``path`` is on, as one word (``tmpfs``, ``ext2/ext3``: stat(1)'s %T)."""
    return ("stat", "--file-system", "--format", "%T", path)


def list_files(service: str) -> str:
    """One ``name mode uid`` line per file in the service's files directory; nothing when it does not exist."""
    d = shlex.quote(files_dir(service))
    return f"if [ -d {d} ]; then find {d} -type f -printf '%f %m %U\\n'; fi"
