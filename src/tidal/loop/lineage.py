"""Where a run came from: the git commit of the project (if any) and where its data was read."""

from __future__ import annotations

import glob
import re
import subprocess
from pathlib import Path
from typing import Any


def git_commit(root: Path) -> dict[str, object] | None:
    """The commit checked out in ``root`` and whether the tree has uncommitted changes, or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                               timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)} if head else None


def source_files(source: str, base: Path) -> list[Path] | None:
    """The local files behind ``source``, or None when it is not a local file or glob (SQL, remote)."""
    if "://" in source and not source.startswith("file://"):
        return None
    path = source.removeprefix("file://")
    full = path if Path(path).is_absolute() else str(base / path)
    if glob.has_magic(full):
        return sorted(Path(p) for p in glob.glob(full))
    if Path(full).is_dir():  # a folder of class folders of images: every file in it
        return sorted(p for p in Path(full).rglob("*") if p.is_file())
    return [Path(full)]


def _sqlite_path(source: str) -> str | None:
    """The database path of a ``sqlite:///PATH`` or ``sqlite+driver:///PATH`` URL, or None."""
    match = re.match(r"^sqlite(\+\w+)?:///([^?]*)", source, flags=re.IGNORECASE)
    if not match or match.group(2) in ("", ":memory:") or match.group(2).startswith("file:"):
        return None
    return match.group(2)


def source_location(source: str, root: Path) -> dict[str, Any] | None:
    """Where a local ``data.source`` (a file, a glob, a SQLite database) is read from, for the lineage:
    ``{"path": resolved path, "outside_project": bool}``, or None for a remote or server source.

    A relative path may lead out of the project folder (``../../shared/data.csv``) or a link inside it
    may point out: tidal reads it all the same, and this record says so. Links are resolved.
    """
    db = _sqlite_path(source)
    raw = db if db is not None else (source.removeprefix("file://") if source_files(source, root) is not None
                                     else None)
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = root / path
    top = root.resolve()
    files = [path] if db is not None or not glob.has_magic(str(path)) else source_files(str(path), root) or []
    resolved = [f.resolve() for f in files]
    outside = any(not f.is_relative_to(top) for f in resolved) or not path.parent.resolve().is_relative_to(top)
    shown = resolved[0] if len(resolved) == 1 else path.parent.resolve() / path.name
    return {"path": str(shown), "outside_project": outside}
