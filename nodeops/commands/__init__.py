"""Pure command builders: each returns an argv tuple (or a shell line built
from argv with shlex at the boundary). Nothing here runs anything."""
