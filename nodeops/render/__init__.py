"""Render a role's files (see files)."""

from nodeops.render.files import *  # noqa: F403 (moved as is; split in the next commit)
from nodeops.render.files import toml_filter  # noqa: F401
