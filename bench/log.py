"""The prediction log under load (issue #16, point 6): `tidal serve --workers 2` with its log in SQLite and in
PostgreSQL, side by side in one run — requests and rows per second, p50 and p99, for 1-row and 1,000-row
requests — then a SIGKILL of one worker under load, counting the acknowledged predictions the log lost.

Every prediction is committed to the log before its answer is sent (group commit), so these figures are the
throughput of durable predictions. The model is the same HistGradientBoosting on breast_cancer as
bench/serve.py's; only the log changes (``TIDAL_PREDICTIONS_URL``: the SQLite file beside the store, or a
fresh schema on the PostgreSQL server of ``TIDAL_BENCH_POSTGRES_URL`` / ``TIDAL_TEST_POSTGRES_URL``; without
either, the PostgreSQL column says so). The ratio column is PostgreSQL / SQLite.

    python bench/log.py [--seconds 10] [--quick]

Writes bench/results/log.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import ensure_wrk, run_load

RESULTS = Path(__file__).resolve().parent / "results" / "log.json"
SPEC = """\
name: cancer
data: {source: data/breast_cancer.csv, target: target}
prepare: {impute: {numeric: none, categorical: most_frequent}, scale: none, encode: onehot}
model: {estimator: sklearn.ensemble.HistGradientBoostingClassifier, params: {max_iter: 50}, seed: 0}
validate: {split: {method: random, test_size: 0.2}, metrics: [accuracy], gates: []}
deploy: {max_request_bytes: 16777216, max_rows: 10000}
"""
#: (label, rows per request, connections)
CELLS = [("1 row", 1, 8), ("1000 rows", 1000, 2)]
KILL_REQUESTS, KILL_AFTER = 600, 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_base() -> str | None:
    return os.environ.get("TIDAL_BENCH_POSTGRES_URL") or os.environ.get("TIDAL_TEST_POSTGRES_URL")


def fresh_schema(base: str) -> tuple[str, str]:
    """A new schema on ``base``'s server and the log URL that writes into it."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    schema = f"tidal_bench_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base)
    options = " ".join(filter(None, [url.query.get("options", ""), f"-csearch_path={schema}"]))
    return schema, url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def drop_schema(base: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def train(root: Path) -> list[dict[str, float]]:
    """The breast_cancer project, trained; its rows as the server takes them."""
    from sklearn.datasets import load_breast_cancer

    from tidal import Workspace

    df = load_breast_cancer(as_frame=True).frame
    (root / "data").mkdir(parents=True)
    df.to_csv(root / "data" / "breast_cancer.csv", index=False)
    (root / "tidal.yaml").write_text(SPEC)
    with Workspace.open(root) as ws:
        mv = ws.run().model
        assert mv is not None
        columns = mv.signature.names
    return [{c: float(v) for c, v in rec.items()} for rec in df[columns].to_dict("records")]


class Server:
    """`tidal serve --workers 2` on a free port, with the log at ``log_url`` (None: the SQLite default)."""

    def __init__(self, root: Path, log_url: str | None, out: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if log_url:
            env["TIDAL_PREDICTIONS_URL"] = log_url
        self.log = open(out, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "tidal", "serve", "--host", "127.0.0.1", "--port",
                                      str(self.port), "--workers", "2"], cwd=root, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {out.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server was not ready in 120 s")

    def workers(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if int(stat[stat.rfind(")") + 2:].split()[1]) == self.proc.pid and b"spawn_main" in cmdline:
                    found.append(int(entry.name))
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


async def kill_under_load(server: Server, rows: list[dict[str, float]]) -> tuple[list[str], int]:
    """KILL_REQUESTS 1-row requests, 16 at a time; SIGKILL one worker after KILL_AFTER answers. The ids of the
    answered predictions, and the requests that failed."""
    import httpx

    answered: list[str] = []
    failed = 0
    gate = asyncio.Semaphore(16)
    victim = server.workers()[0]

    async def one(http: httpx.AsyncClient, i: int) -> None:
        nonlocal failed
        async with gate:
            try:
                resp = await http.post("/predict", json={"instances": [rows[i % len(rows)]]})
            except httpx.HTTPError:
                failed += 1
                return
        if resp.status_code != 200:
            failed += 1
            return
        answered.append(resp.json()["prediction_ids"][0])
        if len(answered) == KILL_AFTER:
            os.kill(victim, signal.SIGKILL)

    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        await asyncio.gather(*(one(http, i) for i in range(KILL_REQUESTS)))
    return answered, failed


def lost(root: Path, log_url: str | None, ids: list[str]) -> int:
    """How many of ``ids`` (answered 200) the log does not hold, read back from the database itself."""
    from tidal import Workspace
    from tidal.core.errors import PredictionNotFound
    from tidal.storage import open_prediction_log

    with Workspace.open(root) as ws:
        log = open_prediction_log(log_url) if log_url else ws.predictions
        missing = 0
        for pid in ids:
            try:
                log.get(pid)
            except PredictionNotFound:
                missing += 1
        if log_url:
            log.close()
    return missing


def bytes_per_prediction(root: Path, log_url: str | None, schema: str | None) -> dict[str, float]:
    """The log's size on disk over the predictions it holds (indexes included): what a day of traffic costs."""
    from tidal import Workspace
    from tidal.storage import open_prediction_log

    with Workspace.open(root) as ws:
        log = open_prediction_log(log_url) if log_url else ws.predictions
        rows = log.count(model="cancer")
        if log_url:
            log.close()
    if log_url and schema:
        import sqlalchemy as sa

        engine = sa.create_engine(log_url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            size = conn.execute(sa.text(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind IN ('r', 't', 'm')"),
                {"s": schema}).scalar_one()
    else:
        # the database file alone: its write-ahead log is transient (checkpointed into it, then reused)
        size = (root / ".tidal" / "predictions.db").stat().st_size
    size = int(size)  # PostgreSQL answers a Decimal
    return {"predictions": rows, "bytes": size, "bytes_per_prediction": round(size / max(rows, 1), 1)}


def measure(backend: str, root: Path, log_url: str | None, rows: list[dict[str, float]], args: argparse.Namespace,
            wrk: str | None, schema: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "cells": {}}
    server = Server(root, log_url, root / f"server-{backend}.log")
    try:
        for label, n, connections in CELLS:
            body = json.dumps({"instances": rows[:n] if n <= len(rows) else (rows * (n // len(rows) + 1))[:n]})
            run_load(f"{server.url}/predict", body.encode(), connections=connections, seconds=1, wrk=wrk)  # warm
            got = run_load(f"{server.url}/predict", body.encode(), connections=connections, seconds=args.seconds,
                           wrk=wrk)
            got["rows_per_s"] = got["rps"] * n
            out["cells"][label] = got
            print(f"   {backend:<10} {label:<10} {got['rps']:>9.1f} req/s {got['rows_per_s']:>11.0f} rows/s  "
                  f"p50 {got['p50_ms']:.1f} ms  p99 {got['p99_ms']:.1f} ms  failed {got['failed']}", flush=True)
        ids, failed = asyncio.run(kill_under_load(server, rows))
    finally:
        server.stop()
    out["kill"] = {"answered": len(ids), "failed": failed, "lost": lost(root, log_url, ids)}
    out["size"] = bytes_per_prediction(root, log_url, schema)
    print(f"   {backend:<10} {out['size']['predictions']:,} predictions in {out['size']['bytes'] / 1e6:.1f} MB: "
          f"{out['size']['bytes_per_prediction']:.0f} bytes each (indexes included)", flush=True)
    print(f"   {backend:<10} SIGKILL of a worker under load: {len(ids)} answered, {failed} failed, "
          f"{out['kill']['lost']} lost", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell (default 10)")
    parser.add_argument("--quick", action="store_true", help="2 s per cell: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 2.0
    wrk = ensure_wrk()
    results: dict[str, Any] = {"backends": {}}
    with tempfile.TemporaryDirectory(prefix="tidal-bench-log-") as tmp:
        base = Path(tmp)
        template = base / "template"
        template.mkdir()
        rows = train(template)
        backends: list[tuple[str, str | None, str | None]] = [("sqlite", None, None)]
        pg = postgres_base()
        if pg:
            schema, url = fresh_schema(pg)
            backends.append(("postgresql", url, schema))
        else:
            results["backends"]["postgresql"] = {"skipped": "set TIDAL_BENCH_POSTGRES_URL (or "
                                                            "TIDAL_TEST_POSTGRES_URL) to measure PostgreSQL"}
        try:
            for backend, url, schema in backends:
                root = base / backend
                subprocess.run(["cp", "-r", str(template), str(root)], check=True)
                results["backends"][backend] = measure(backend, root, url, rows, args, wrk, schema)
        finally:
            for _, _, schema in backends:
                if schema and pg:
                    drop_schema(pg, schema)
    sq, pgr = results["backends"].get("sqlite", {}), results["backends"].get("postgresql", {})
    results["ratios_postgresql_over_sqlite"] = {
        label: round(pgr["cells"][label]["rps"] / sq["cells"][label]["rps"], 2)
        for label, _, _ in CELLS if "cells" in pgr and "cells" in sq}
    results["environment"] = {"seconds_per_cell": args.seconds, "generator": "wrk -t1" if wrk else "python",
                              "cpus": os.cpu_count(), "python": platform.python_version(),
                              "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                              "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(b.get("kill", {}).get("lost", 0) == 0 for b in results["backends"].values()) else 1


def print_table(results: dict[str, Any]) -> None:
    print("\n| cell | SQLite req/s | p99 ms | PostgreSQL req/s | p99 ms | PostgreSQL / SQLite |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    sq, pg = results["backends"].get("sqlite", {}), results["backends"].get("postgresql", {})
    for label, _, _ in CELLS:
        a, b = sq.get("cells", {}).get(label), pg.get("cells", {}).get(label)
        ratio = results["ratios_postgresql_over_sqlite"].get(label)
        print(f"| {label} | {a['rps']:.1f} | {a['p99_ms']:.1f} | "
              + (f"{b['rps']:.1f} | {b['p99_ms']:.1f} | {ratio:.2f}x |" if b else "— | — | — |"))
    for name, b in results["backends"].items():
        if "kill" in b:
            print(f"{name}: a worker SIGKILLed under load: {b['kill']['answered']} answered, {b['kill']['lost']} lost")


if __name__ == "__main__":
    sys.exit(main())
