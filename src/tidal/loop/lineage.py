"""Where a run came from: the git commit of the project (if any) and the environment."""

from __future__ import annotations

import subprocess
from pathlib import Path


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
