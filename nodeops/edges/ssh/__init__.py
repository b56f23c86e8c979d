"""The one place that touches hosts: SSH through the bastion, host keys pinned (see fleet)."""

from nodeops.edges.ssh.fleet import *  # noqa: F403 (moved as is; split in the next commit)
