"""The host resources fact: disk, memory and load of a node host, read with one cheap command.

The command prints its parts split by SECTION lines; parse_resources reads them back in the same order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nodeops.commands.node import sh

ENGINE_ROOT = {"docker": "{{.DockerRootDir}}", "podman": "{{.Store.GraphRoot}}"}  # `info --format` of each engine


SECTION = "--"  # a line between the parts of host_resources' output


def host_resources(runtime: str) -> str:
    """One cheap command for a host's resources: "engine PATH" (the engine's storage; empty when it did not
    answer), `df -P -k` of /, /run and that path, /proc/meminfo, /proc/loadavg and nproc, parts split by SECTION."""
    root = sh((runtime, "info", "--format", ENGINE_ROOT[runtime]))
    return (f'root=$({root} 2>/dev/null); echo "engine $root"; df -P -k / /run ${{root:+"$root"}}; '
            f"echo {SECTION}; cat /proc/meminfo; echo {SECTION}; cat /proc/loadavg; nproc")  # fmt: skip


# -- pure: parsing what a node printed ------------------------------------------------------------
def parse_df(text: str) -> list[tuple[str, float]]:
    """(mount point, used ratio) per row of `df -P -k`, in order; used / (used + available), as df's Capacity."""
    rows = []
    for line in text.splitlines():
        words = line.split(None, 5)
        if len(words) == 6 and words[2].isdigit() and words[3].isdigit():
            used, available = int(words[2]), int(words[3])
            rows.append((words[5], used / (used + available) if used + available else 0.0))
    return rows


def parse_meminfo(text: str) -> float | None:
    """Used memory ratio, 1 - MemAvailable / MemTotal; None when either line is missing."""
    fields = dict(re.findall(r"^(\w+):\s+(\d+)", text, re.MULTILINE))
    total, available = int(fields.get("MemTotal", 0)), fields.get("MemAvailable")
    return None if not total or available is None else 1 - int(available) / total


def parse_load(loadavg: str, nproc: str) -> tuple[float, int] | None:
    """(5-minute load average, CPUs) from /proc/loadavg and nproc; None when unreadable."""
    try:
        load, cpus = float(loadavg.split()[1]), int(nproc.strip())
    except (IndexError, ValueError):
        return None
    return (load, cpus) if cpus > 0 else None


@dataclass(frozen=True)
class Resources:
    disks: tuple[tuple[str, str, str, float], ...]  # (what: /, /run or "engine storage"; path; mount point; used)
    memory: float | None  # used ratio
    load: tuple[float, int] | None  # (5-minute load average, CPUs)


def parse_resources(output: str) -> Resources:
    """cmd.host_resources' output: "engine PATH", df, SECTION, /proc/meminfo, SECTION, /proc/loadavg, nproc."""
    parts = output.split(f"\n{SECTION}\n")
    if len(parts) != 3:
        return Resources((), None, None)
    first, _, df = parts[0].partition("\n")
    engine = first.removeprefix("engine").strip()
    measured = [("/", "/"), ("/run", "/run")] + ([("engine storage", engine)] if engine else [])
    disks = tuple((*m, point, ratio) for m, (point, ratio) in zip(measured, parse_df(df), strict=False))
    loadavg, _, nproc = parts[2].partition("\n")
    return Resources(disks, parse_meminfo(parts[1]), parse_load(loadavg, nproc))
