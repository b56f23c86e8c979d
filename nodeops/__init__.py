"""nodeops: operate active/standby blockchain node pairs behind an SSH bastion."""

import os
import sys

__version__ = "0.1.0"


def program(argv0: str | None = None) -> str:
    """The command a person ran, to name it in hints and records: ``nodeops`` (the installed console script,
    nodeops.tasks.program:main) or ``fab`` (the repository's Fabric program, and any other caller), read from
    ``argv0`` (default: ``sys.argv[0]``, e.g. ``/venv/bin/nodeops`` -> ``nodeops``)."""
    name = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    return "nodeops" if name.split(".")[0] == "nodeops" else "fab"
