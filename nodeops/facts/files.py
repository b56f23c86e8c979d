"""File facts on a node: the service's RAM-backed files directory, what it holds, and the filesystem under a path."""

from __future__ import annotations

import shlex

from nodeops.commands.node import files_dir


def filesystem_type(path: str) -> tuple[str, ...]:
    return ("stat", "--file-system", "--format", "%T", path)


def list_files(service: str) -> str:
    d = shlex.quote(files_dir(service))
    return f"if [ -d {d} ]; then find {d} -type f -printf '%f %m %U\\n'; fi"
