"""Render a role's files for one service, in memory: Jinja2 -> bytes, never a file on disk.

Templates see:

- ``vars``: the role's ``defaults`` overlaid by the service's ``variables``;
- ``secrets``: the service's resolved Secrets, by name;
- ``service``: the service name; ``role``: ``name``, ``user``, ``port``, ``mount``, ``activation`` and
  ``profile`` (the profile being rendered: a role whose profiles are networks names its network so);
- rendered per node (``render_nodes``, when a template reads them): ``node`` (``name``, ``kind``, ``host``,
  ``preferred``) and ``nodes`` (every node of the service, the same shape): a relay's peers, a producer's relays;
- the role's template functions (its module's ``TEMPLATE_FUNCTIONS``, nodeops.role_hooks), by name: given
  no Secret (refused, naming the function), they return the text to write (a document its role's code builds);
- whatever the caller adds in ``extra``.

Jinja runs sandboxed (no attribute of a Secret is reachable, so no
``secrets.db.reveal()``), with StrictUndefined, no autoescaping and the
trailing newline kept. A Secret reaches the output only through an escaping
filter, each exact for one format:

- ``toml``: a TOML basic string (``"..."`` with ``\\``, ``"`` and control
  characters escaped); booleans and numbers become TOML booleans and numbers,
  a list an inline array, a mapping an inline table (keys quoted unless bare).
  The other filters refuse a list or mapping: a template writes its items. So do Jinja's ``string``
  filter and a bare ``{{ value }}``, which would write Python's text of one (``[1337]``).
- ``urlpart``: percent-encoded for one URL component (``quote(safe="")``):
  userinfo, path, query value.
- ``dotenv``: a value for ``docker run --env-file``. Docker's CLI reads that
  file line by line (bufio: ``\\n`` ends a line, one trailing ``\\r`` is
  dropped), requires valid UTF-8, strips leading whitespace from the *line*,
  splits on the first ``=`` and passes the rest through unchanged: there is no
  quoting and no escaping (docker/cli ``opts/envfile.go``; quotes stay part of
  the value, docker/cli#4665, #3630). So the value is written raw, and a value
  that cannot be carried (a newline, a carriage return, NUL, a line over 64 KiB,
  text that is not UTF-8) is refused, naming the variable, never the value.
- ``line``: the value as one line of a plain file (``.api``, ``.password``),
  unchanged; a newline or carriage return in it is refused.
- ``text``: the value as it is, newlines included, for a file that is one value
  (a key file: cardano-cli's text envelope is JSON over several lines).
- ``raw``: a non-secret value as text; refuses a Secret.

A file the role marks ``secret: false`` (``config.toml``) takes no Secret at
all: every filter refuses one there, naming the secret and the file. Such a
file's bytes are in the configuration hash, a container label anyone who can
run ``docker inspect`` reads, so a secret in it could be confirmed by guessing
offline (and it is not shredded, nor uploaded as a secret). A value that is
secret goes to a ``secret: true`` file (``secrets.toml``, ``rpc.toml``, ``.env``).

A template may refuse its inputs with ``{{ fail("message") }}`` (one line, as
below): a role checks the shape of a list variable that way.

Turning a Secret into text any other way inside a template (``{{ secrets.db }}``,
``~``, ``|upper``, ``|join``, ``{{ secrets }}``) raises: see nodeops.secrets.
Every failure is one ``InvalidInput`` line naming the role, the template file
and line, and the problem; messages name variables, never secret values.

The package, one job a module: ``filters`` (the escaping filters), ``templates`` (a role's Jinja environment,
the digests of a file's templates), ``files`` (render, Rendered, the config hash).
"""

from nodeops.render.files import (
    RECORDED_MAX,
    Rendered,
    RenderedFile,
    public_names,
    render,
    render_nodes,
    with_texts,
)
from nodeops.render.filters import FilterError, toml_filter
from nodeops.render.templates import template_digests, template_environment

__all__ = [
    "RECORDED_MAX",
    "FilterError",
    "Rendered",
    "RenderedFile",
    "public_names",
    "render",
    "render_nodes",
    "template_digests",
    "template_environment",
    "toml_filter",
    "with_texts",
]
