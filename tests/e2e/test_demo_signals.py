"""``tidal demo`` stopped by SIGTERM stops the ``tidal serve`` it started (issue #10, point 0): a real demo in
a subprocess, stopped once its server answers; the server's pid must be gone within seconds."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

STARTUP_S = 180  # training the first champion and starting the server, on a loaded 2-core machine
STOP_S = 15      # the demo's stop: SIGTERM to the server, which shuts down gracefully


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _wait_for_url(proc: subprocess.Popen[str], deadline: float) -> tuple[str, str]:
    seen = ""
    selector = selectors.DefaultSelector()
    assert proc.stdout is not None
    selector.register(proc.stdout, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if not selector.select(timeout=1):
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        found = re.search(r"the server answers on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return found.group(1), seen
    raise AssertionError(f"the demo's server did not answer in time:\n{seen}")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the demo's child through /proc")
def test_sigterm_stops_the_demo_and_its_server(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    demo = subprocess.Popen([sys.executable, "-m", "tidal", "demo", "demo"], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server: list[int] = []
    try:
        url, _ = _wait_for_url(demo, time.monotonic() + STARTUP_S)
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        server = _children(demo.pid)
        assert len(server) == 1 and _alive(server[0])
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=STOP_S)
        deadline = time.monotonic() + 5
        while _alive(server[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(server[0]), "the demo's server outlived it"
        assert demo.returncode == 128 + signal.SIGTERM, rest[-2000:]
        assert "stopped by SIGTERM" in rest
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/readyz", timeout=2)
    finally:  # whatever happened, leave nothing running
        for pid in [*server, demo.pid]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        demo.wait(timeout=10)
