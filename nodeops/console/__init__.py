"""What a person at a terminal sees (see steps)."""

from nodeops.console.steps import *  # noqa: F403 (moved as is; split in the next commit)
