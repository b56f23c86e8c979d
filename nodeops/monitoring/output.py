"""Writing ``fab monitoring.render``'s files under ``--out DIR``, overwriting only what it wrote itself.

``DIR/.nodeops-monitoring-<env>.json`` (the environment's manifest) lists every file its last render wrote, with
its sha256. A render writes a file where nothing is, or over a file the manifest lists whose content is still what
was written (so an edit by hand is never lost silently); a file the manifest lists that this render no longer makes
(a service or role removed) is removed, under the same condition. Several environments render into one folder side
by side: a file another environment's manifest lists with the content this render makes (a role's rules) is shared,
not in the way. Anything else in the way (a file not written by a render, or changed since) refuses the whole
render before anything is written: ``InvalidInput`` (exit 2) naming the file. Nothing is touched outside ``DIR``: a
manifest entry that leaves it (``..``, an absolute path, a symlinked folder) refuses the render (exit 2), and so
does a rendered file whose folder is a symlink. Each file is written to a temporary name beside it, then renamed
(Prometheus and Grafana never read half a file); the manifest last (after a failure too, listing what was written:
exit 1). Nothing here is secret: the files hold addresses, labels and queries, never a secret value.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from nodeops.errors import InvalidInput, OperationFailed

LEGACY_MANIFEST = ".nodeops-monitoring.json"  # before names were per environment (docs/monitoring.md: Upgrading)


def manifest_name(env: str) -> str:
    """The file name of environment ``env``'s manifest, in ``--out``."""
    return f".nodeops-monitoring-{env}.json"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(path: Path) -> dict[str, str]:
    """The files a render listed in the manifest ``path`` (relative path -> sha256); {} when there is none.
    InvalidInput (exit 2) for a manifest nodeops did not write, or one with an entry outside its folder."""
    out = path.parent
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())):
            raise ValueError("files: expected a mapping of paths to digests")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InvalidInput(
            f"{path}: not a manifest nodeops wrote ({err}): remove it, or choose another --out"
        ) from None
    for rel in sorted(files):
        if not _inside(out, rel):
            raise InvalidInput(
                f"{path}: entry {rel!r} is outside {out} (.., an absolute path or a symlinked folder): "
                "nodeops never writes one; remove the entry or the manifest; nothing was touched"
            )
    return files


def _inside(out: Path, rel: str) -> bool:
    """Whether ``out/rel`` is a path inside ``out`` with no symlink on the way to it: relative, no ``.``, ``..`` or
    empty part, and no folder between ``out`` and the file a symlink (the file itself may be one: it is then never
    overwritten or removed, see _current)."""
    parts = rel.split("/")
    if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        return False
    return not any((out.joinpath(*parts[:n])).is_symlink() for n in range(1, len(parts)))


def plan_writes(out: Path, files: Mapping[str, bytes], manifest: Mapping[str, str],
                current: Mapping[str, bytes | None], others: Mapping[str, str] | None = None,
                ) -> tuple[list[str], list[str], list[str]]:  # fmt: skip
    """Pure: (to write, to remove, refused) given the render's ``files``, its environment's last ``manifest``, the
    ``current`` content of every path of either (None: no file there) and ``others``, what the other environments'
    manifests in the same folder list (path -> sha256). A file another environment wrote with the very content this
    render makes (a role's rules, the same for all) is shared: neither rewritten nor refused, and never removed
    while another environment lists it. Refused: ``<path>: why`` for each path in the way."""
    others = others or {}
    refused, write, remove = [], [], []
    for rel in sorted(set(files) | set(manifest)):
        now = current.get(rel)
        ours = rel in manifest and now is not None and _digest(now) == manifest[rel]
        shared = rel in others and now is not None and _digest(now) == others[rel] and files.get(rel) == now
        if now is not None and not ours and not shared:
            why = ("changed since nodeops wrote it" if rel in manifest else
                   "written by another environment's render, with other content" if rel in others else
                   "not written by fab monitoring.render")  # fmt: skip
            refused.append(f"{out / rel}: {why}")
        elif rel in files:
            if now != files[rel]:
                write.append(rel)
        elif now is not None and rel not in others:
            remove.append(rel)
    return write, remove, refused


def _current(out: Path, rel: str) -> bytes | None:
    path = out / rel
    if path.is_symlink() or (path.exists() and not path.is_file()):
        return b"\0not a regular file"  # never ours: refused
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise InvalidInput(
            f"{path}: cannot read it ({err.strerror}): fix its permissions or choose another --out"
        ) from None


def write_tree(out: Path, files: Mapping[str, bytes], env: str) -> tuple[list[str], list[str]]:
    """Write environment ``env``'s ``files`` (relative path -> bytes) under ``out`` as the module says; (written,
    removed) paths. Raises InvalidInput (exit 2) before writing anything when ``out`` is not a folder, holds a
    manifest from before per-environment names, or a file is in the way."""
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {out}: not a folder: give a folder (it is created if missing)")
    if (out / LEGACY_MANIFEST).exists():
        raise InvalidInput(f"{out / LEGACY_MANIFEST}: written by an older nodeops, before file names were per "
                           "environment: delete the files it lists and it (docs/monitoring.md, Upgrading), or "
                           "choose another --out")  # fmt: skip
    mine = out / manifest_name(env)
    manifest = read_manifest(mine)
    others: dict[str, str] = {}
    for path in sorted(out.glob(manifest_name("*"))) if out.is_dir() else ():
        if path != mine:
            others.update(read_manifest(path))
    through = sorted(rel for rel in files if not _inside(out, rel))
    if through:
        raise InvalidInput(
            f"{out / through[0]}: a folder on its way is a symlink (a render writes only inside {out}): "
            "replace the symlink by a folder or choose another --out; nothing was written"
        )
    current = {rel: _current(out, rel) for rel in set(files) | set(manifest)}
    write, remove, refused = plan_writes(out, files, manifest, current, others)
    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise InvalidInput(f"{refused[0]}{more}: move it away or choose another --out; nothing was written")
    done = {rel: digest for rel, digest in manifest.items() if rel in files or rel in remove}
    try:
        for rel in write:
            _atomic(out / rel, files[rel])
            done[rel] = _digest(files[rel])
        for rel in remove:
            (out / rel).unlink()
            del done[rel]
        done.update({rel: _digest(files[rel]) for rel in files})
    except OSError as err:
        raise OperationFailed(f"{err.filename}: cannot write it ({err.strerror}); the files written so far are "
                              f"listed in {mine}: fix it and render again") from None  # fmt: skip
    finally:  # what is on disk now is ours, even after a failure: the next render may overwrite it
        if out.is_dir():
            _atomic(mine, (json.dumps({"files": dict(sorted(done.items()))}, indent=2) + "\n").encode())
    return write, remove


def _atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # read by the Prometheus and Grafana services, whatever their user
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
