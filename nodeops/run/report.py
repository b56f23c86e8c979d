"""What a run shows: its progress (Reporter: a line a person follows, or one JSON event per step) and the mask
every line passes through first (Redactor: each form of each secret of the run)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable

from nodeops.secrets import MASK, Secret, secret_forms


class Redactor:
    """Masks every form a secret value can take in text shown to a person or a log.

    The forms, the length rule and the ``public`` names left as they are: ``nodeops.secrets.secret_forms``'s.
    """

    def __init__(self, secrets: Iterable[Secret], public: Iterable[str] = ()) -> None:
        self.public = tuple(public)
        self.forms = secret_forms(secrets, self.public)

    def with_secrets(self, more: Iterable[Secret]) -> Redactor:
        """A redactor that masks what this one masks and ``more`` (its public names excepted)."""
        wider = Redactor(more, self.public)
        wider.forms = sorted({*self.forms, *wider.forms}, key=len, reverse=True)
        return wider

    def __call__(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, MASK)
        return text

    def clip(self, text: str, limit: int = 300, tail: bool = False) -> str:
        """``text`` as one line of at most ``limit`` characters (its end with ``tail``), masked *before* it is
        cut: a secret cut in two, or spread over lines, would escape the mask."""
        line = " ".join(self(text).split())
        return line[-limit:] if tail else line[:limit]

    def leaks(self, text: str) -> bool:
        return any(form in text for form in self.forms)


class Reporter:
    """Progress a person can follow, or one JSON object per event when asked (CI)."""

    def __init__(self, json_lines: bool, write: Callable[[str], None] = print,
                 show: Callable[[dict], None] | None = None) -> None:  # fmt: skip
        """``json_lines``: each event as one JSON object (docs/events.schema.json) through ``write``; otherwise
        each event goes to ``show`` (a terminal's view: nodeops.console.Screen), else a plain line to ``write``."""
        self.json = json_lines
        self.write = write
        self.show = show
        self.started = time.monotonic()
        self.lock = threading.RLock()  # re-entered when a signal handler reports while the main thread writes
        self.sinks: list[Callable[[dict], None]] = []  # also given every event (the audit log)

    @classmethod
    def silent(cls) -> Reporter:
        """For a ServiceDeploy used only to look (status, verify, check): its progress is nobody's business."""
        return cls(True, lambda _line: None)

    def __call__(self, service: str, node: str, message: str, **data) -> None:
        elapsed = time.monotonic() - self.started
        event = {"event": "step", "t": round(elapsed, 2), "service": service, "node": node, "message": message, **data}
        with self.lock:
            if self.json:
                self.write(json.dumps(event))
            elif self.show is not None:
                self.show(event)
            else:
                self.write(f"{elapsed:7.1f}s  {service:<12} {node or '-':<12} {message}")
            for sink in self.sinks:
                sink(event)
