"""Shared fixtures: real example projects in temporary folders."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ELEC2 = REPO / "examples" / "elec2"


@pytest.fixture
def elec2_project(tmp_path: Path) -> Path:
    """A fresh copy of the Elec2 example (45,312 real rows)."""
    dest = tmp_path / "elec2"
    shutil.copytree(ELEC2, dest)
    return dest


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    """The Elec2 example cut to its first 3,000 rows, as plain CSV, with a fast model: for error paths."""
    dest = tmp_path / "small"
    shutil.copytree(ELEC2, dest)
    lines = gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes()).decode().splitlines()
    (dest / "data" / "elec2.csv.gz").unlink()
    (dest / "data" / "elec2.csv").write_text("\n".join(lines[:3001]) + "\n")
    spec = (dest / "tidal.yaml").read_text()
    spec = spec.replace("data/elec2.csv.gz", "data/elec2.csv").replace("max_iter: 200", "max_iter: 30")
    (dest / "tidal.yaml").write_text(spec)
    return dest


def _cli(cwd: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, check: bool | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
        proc = subprocess.run([sys.executable, "-m", "tidal", *args], cwd=cwd, capture_output=True, text=True,
                              env=env, timeout=600)
        if check and proc.returncode != 0:
            raise AssertionError(f"tidal {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m tidal ARGS`` as a subprocess in ``tmp_path``."""
    return _cli(tmp_path)
