"""Text fitted to a width without cutting a word: wrapping, shortening, digests cut as docker shows them."""

from __future__ import annotations

import re
from collections.abc import Callable

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from nodeops.diff import BODY_INDENT

WIDTH = 80  # what a terminal of unknown size is taken to be (rich's own default)
DIGEST = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{52}\b")


def short_digests(text: str) -> str:
    """Every 64-hex digest (an image's sha256, a config hash) cut to its first 12 hex digits, as docker shows
    an image id: ``sha256:3f2a...(64)`` -> ``sha256:3f2a1c9e0b7d``. Nothing else changes."""
    return DIGEST.sub(r"\1", text)


def fit_words(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` characters, shortened at a word boundary with "…" (never in a
    word); a first word longer than ``width`` gives "…" alone."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    kept = line[: max(0, width - 1)]
    if line[len(kept)] != " ":  # the cut falls inside a word: drop that word
        kept = kept[: kept.rfind(" ")] if " " in kept else ""
    return kept.rstrip(" ;,:") + "…"


BREAK_AFTER = "/-,;&?"  # where a word longer than its line may be cut: after one of these (a path, a URL, a list)...
BREAK_BEFORE = "@"  # ...or before this (an image reference's digest: ``repo:2.10.0`` / ``@sha256:6bc87626beba``)
NO_LINE_START = ",.;:!?)]}"  # punctuation that belongs to the end of a line: a hard cut never leaves it first
_WORD = re.compile(r"\S+")


def _pieces(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """The word ``text[a:b]`` cut at every place it may be cut (BREAK_AFTER, BREAK_BEFORE), as (start, end)."""
    cuts = sorted({i + 1 for i in range(a, b - 1) if text[i] in BREAK_AFTER} |
                  {i for i in range(a + 1, b) if text[i] in BREAK_BEFORE})  # fmt: skip
    bounds = [a, *cuts, b]
    return list(zip(bounds, bounds[1:], strict=False))


def wrap_spans(text: str, width: int, indent: int = 0) -> list[tuple[int, int]]:
    """Where one line of ``text`` breaks to fit ``width`` columns, the lines after the first being shown after
    ``indent`` spaces: the (start, end) offsets of each line in ``text`` (the spaces at a break left out).

    Lines break between words; the first line keeps its leading spaces (a diff's own indentation) and every
    line its inner ones. A word longer than a whole line is cut only after a ``/``, ``-``, ``,``, ``;``, ``&``
    or ``?`` or before an ``@`` (BREAK_AFTER, BREAK_BEFORE: a path or URL, an image reference before its digest),
    its first piece on the line under way if it fits there; a piece with none of these places that is still
    longer than a line (a 60-character token) is the one thing cut elsewhere: at the line's end, moved back so that
    no line starts with punctuation (NO_LINE_START: ``, config``, ``)``)."""
    width = max(width, 1)
    rest = max(width - indent, 1)
    lines: list[tuple[int, int]] = []
    start: int | None = None  # the line under way: text[start:end]
    end = 0

    def room() -> int:
        return rest if lines else width

    def close() -> None:
        nonlocal start
        if start is not None:
            lines.append((start, end))
        start = None

    def fits(a: int, b: int) -> bool:
        """Whether text[a:b] joins the line under way (from its start; the first line's from column 0)."""
        begin = start if start is not None else (0 if not lines else a)
        return cell_len(text[begin:b]) <= room()

    def extend(a: int, b: int) -> None:
        nonlocal start, end
        start, end = (start if start is not None else (0 if not lines else a)), b

    def place(a: int, b: int) -> None:
        """Put text[a:b] (a word or a piece of one) on the line under way, else on the next ones."""
        nonlocal start, end
        if fits(a, b):
            extend(a, b)
            return
        close()
        while cell_len(text[a:b]) > room():  # no place to cut it left: at the line's end
            cut = a + 1
            while cut < b and cell_len(text[a : cut + 1]) <= room():
                cut += 1
            while cut - 1 > a and text[cut] in NO_LINE_START:  # no line starts with ", config" or ")"
                cut -= 1
            lines.append((a, cut))
            a = cut
        start, end = a, b

    for word in _WORD.finditer(text):
        a, b = word.span()
        if fits(a, b):
            extend(a, b)
        elif cell_len(text[a:b]) <= rest:  # whole on the next line
            close()
            start, end = a, b
        else:  # longer than a line: its pieces, from the line under way
            for p, q in _pieces(text, a, b):
                place(p, q)
    close()
    return lines or [(0, 0)]


class Wrapped:
    """``text`` (a rich Text: its styles are kept), each of its lines wrapped by wrap_spans to the width it is
    given; a line's continuation is indented by ``indent(line)`` (a diff line's: under its content)."""

    def __init__(self, text: Text, indent: Callable[[str], int] = lambda _line: 0) -> None:
        self.text = text
        self.indent = indent

    def lines(self, width: int) -> list[Text]:
        out, offset = [], 0
        for line in self.text.plain.split("\n"):
            indent = min(self.indent(line), width // 2)
            for i, (a, b) in enumerate(wrap_spans(line, width, indent)):
                piece = self.text[offset + a : offset + b]
                out.append(Text(" " * indent) + piece if i else piece)
            offset += len(line) + 1
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        joined = Text("\n").join(self.lines(options.max_width))
        joined.no_wrap, joined.overflow = True, "ignore"  # already fitted: rich must not wrap it again
        yield joined

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((cell_len(line) for line in self.text.plain.split("\n")), default=0)
        return Measurement(min(longest, 1), longest)


def diff_indent(line: str) -> int:
    """A step message's continuation indent: a diff line's (its BODY_INDENT spaces and one-character marker,
    so it wraps under its own content, never under the marker column); any other line's: 0 (under itself)."""
    return BODY_INDENT + 1 if line.startswith(" " * BODY_INDENT) else 0
