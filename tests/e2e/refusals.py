"""What every refusal of bad input through the CLI looks like: its exit code, one ``error:`` line, no
traceback."""

from __future__ import annotations

import subprocess


def fails(proc: subprocess.CompletedProcess[str], *needles: str, code: int = 2) -> str:
    """The one error line of a refusal that exits ``code``, holding every needle."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out
    assert "Traceback" not in out, out
    line = proc.stderr.strip()
    assert line.startswith("error:") and len(line.splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line
