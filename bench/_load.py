"""The load generator of bench/serve.py: wrk with a Lua script for POST bodies, or a Python fallback.

:func:`run_load` drives ``url`` with ``connections`` keep-alive connections for ``seconds`` and returns
requests/s, p50 and p99 latency (ms), and the count of failed requests (non-2xx answers, socket errors,
timeouts). wrk runs in its own process with one thread; its Lua ``done`` hook prints the summary as JSON.
Without wrk (and without root to ``apt-get install -y wrk``), ``python bench/_load.py URL BODY C SECONDS``
runs C threads of ``http.client`` loops in a separate process: slower than wrk (the GIL), so the figures
it gives are a lower bound for fast servers, and the output says which generator ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LUA = """\
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %f, '
    .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def ensure_wrk() -> str | None:
    """The wrk executable; installs it with apt-get when missing and running as root."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("   installing wrk (apt-get install -y wrk)", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, check=False)
    return shutil.which("wrk")


def run_load(url: str, body: bytes, *, connections: int, seconds: float, wrk: str | None) -> dict[str, Any]:
    """Load ``url`` with POST ``body``; see the module docstring."""
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        if wrk:
            script = Path(tmp) / "post.lua"
            script.write_text(LUA.format(body=body_path))
            proc = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                                   "-s", str(script), url], capture_output=True, text=True, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
            if line is None:
                raise RuntimeError(f"wrk failed: {proc.stdout}\n{proc.stderr}")
            raw = json.loads(line[len("WRKJSON "):])
            duration = raw["duration_us"] / 1e6
            failed = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
            return {"generator": "wrk", "requests": raw["requests"], "rps": raw["requests"] / duration,
                    "p50_ms": raw["p50_us"] / 1e3, "p99_ms": raw["p99_us"] / 1e3, "failed": failed}
        proc = subprocess.run([sys.executable, __file__, url, str(body_path), str(connections), str(seconds)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"the load generator failed: {proc.stderr}")
        return json.loads(proc.stdout)


def _python_load(url: str, body: bytes, connections: int, seconds: float) -> dict[str, Any]:
    import http.client

    parts = urlsplit(url)
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0] * connections
    stop = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while time.monotonic() < stop:
            start = time.perf_counter()
            try:
                conn.request("POST", parts.path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = 200 <= resp.status < 300
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            latencies[k].append(time.perf_counter() - start)
            failures[k] += not ok

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = sorted(x for lat in latencies for x in lat)
    pick = (lambda q: flat[min(len(flat) - 1, int(q * len(flat)))] * 1e3) if flat else (lambda q: float("nan"))
    return {"generator": "python", "requests": len(flat), "rps": len(flat) / elapsed, "p50_ms": pick(0.50),
            "p99_ms": pick(0.99), "failed": sum(failures)}


if __name__ == "__main__":
    target, body_file, conns, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(_python_load(target, Path(body_file).read_bytes(), conns, secs)))
