"""What a change does, node by node, shown before it runs (and all a dry run does): the diff of each node's old side
(what its container records, its files rendered again in memory: nodeops.job.restore_job) against the change's new
side (nodeops.diff), as event lines; no secret value is in any line.

``change`` is the change about to run (nodeops.deploy.ServiceDeploy in a run), through the ``Previewed`` protocol.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from nodeops.diff import BODY_INDENT, Side, service_diff, summary, without_hot
from nodeops.errors import Unsafe
from nodeops.facts.view import NodeView
from nodeops.job import DATA_LABEL, TEXTS_LABEL, restore_job


class Previewed(Protocol):
    """What the preview asks of a change: its service (``service``: nodeops.inventory.Service), inputs (``job``:
    nodeops.job.Job), fleet (its inventory), the image's registry digest (``digest``, None when not known), the
    reporter (``report``: its ``json`` says whether a person reads the lines) and ``say``."""

    service: Any
    job: Any
    fleet: Any
    digest: str | None
    report: Any

    def say(self, node: str, message: str, **data) -> None: ...


class Preview:
    """The diff ``change`` shows before it runs (see the module's docstring)."""

    def __init__(self, change: Previewed) -> None:
        self.change = change

    def show(self, states: Mapping[str, NodeView], recorded: str | None, holders: Collection[str] = ()) -> None:
        """What the change does, node by node, as event lines (nodeops.diff): the old side of a node is what its
        container records, its files rendered again in memory (restore_job; the role's hot files only for a container
        started with them, NodeView.hot); ``holders``: the nodes that hold the hot keys after the change (activation
        keys), the only ones whose new side has the hot files. No secret value is in any line."""
        run = self.change
        olds, unrestorable, notes, masks = {}, {}, [], [run.job.redact]
        for name, state in states.items():
            c = state.container
            if c is None:
                olds[name] = Side()
                continue
            recorded_vars = c.label("variables")
            variables = run.job.role.read_variables(json.loads(recorded_vars)) if recorded_vars else None
            files = None
            try:
                job = restore_job(run.fleet.inventory, run.job, name, c)
                files, masks = job.rendered.files, [*masks, job.redact]
                if job.rendered.config(c.started_hot) != c.label("config"):
                    why = ("the role's templates or defaults changed since {} started, and it records no text of "
                           "its files (an older nodeops)" if c.label(TEXTS_LABEL) is None else "the role's defaults, "
                           "files, command, ports, volumes or secret files' templates changed since {} "
                           "started")  # fmt: skip
                    notes.append(f"{name}: {why.format(c.name)}: its files are compared as today's templates render "
                                 "its inputs")  # fmt: skip
            except Unsafe as exc:
                unrestorable[name] = str(exc)
            digest = c.label("digest")
            files = None if files is None else {n: f for n, f in files.items() if not f.data_file}
            old = Side(c.reference or None, None if digest in (None, "none") else digest, variables, files,
                       json.loads(c.label("secrets") or "{}"), json.loads(c.label(DATA_LABEL) or "{}"))  # fmt: skip
            olds[name] = old if c.hot else without_hot(old)
        new = run.job.side(run.digest)
        own = {name: run.job.at(name).side(run.digest) for name in run.job.nodes}  # per node: each its own files
        diff = service_diff(run.service.name, olds, new, recorded, unrestorable, notes, holders, own)
        for line in summary(diff):
            body = () if run.report.json else line.body  # a person reads the diff; JSON has it as unified_diff
            text = "\n".join([line.message, *(" " * BODY_INDENT + b for b in body)])
            data = json.dumps(dict(line.data), default=str)
            for mask in masks:  # belt and braces: by construction no line holds a secret
                text, data = mask(text), mask(data)
            run.say(line.node, text, **json.loads(data))
