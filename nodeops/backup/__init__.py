"""fab backup and fab restore (see dump)."""

from nodeops.backup.dump import *  # noqa: F403 (moved as is; split in the next commit)
