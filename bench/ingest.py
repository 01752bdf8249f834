"""Ingestion: rows per second collected from each source into a stored snapshot, tidal against the pandas
script a user would otherwise write, in one run.

Every case reads the same rows (a sensor-readings table: int ids, tz-naive timestamps, floats with gaps, a
nullable int, a bool, low- and high-cardinality text) from one source, and stores them. The two sides:

- ``tidal``: the collect step as ``tidal run`` does it — ``tidal.data.steps.collect`` (the source registry
  reads ``data.source`` as tidal.yaml gives it, then the canonical Parquet snapshot, its sha256 and its
  statistics profile: :func:`tidal.data.snapshot.make_snapshot`), then the bytes put into the workspace's
  artifact store (content addressed, written atomically) and the ``SnapshotInfo`` into its metadata store
  (SQLite), as ``TrainingPipeline._collect`` saves them. For incremental SQL, the collection of ``tidal loop``'s
  schedule, ``tidal.loop.incremental.IncrementalCollect.collect`` then ``commit`` (the rows past the watermark
  read, their batch snapshot stored, the batch and the watermark recorded in the metadata store with an event;
  the training table is not made by a collection: a run merges the batches when it trains).
  A stream: :meth:`tidal.loop.stream.StreamCollect.collect`, the loop's collection (the readings its consumer
  group has not acknowledged, decoded, the batch stored and the training table checked, the marks recorded,
  then the entries acknowledged).
- ``pandas``: the script: ``pandas.read_csv`` / ``read_parquet`` / ``read_sql`` (SQLAlchemy engine made in
  the timed part, as a script run per collection makes it; for incremental, ``WHERE ts > :watermark`` with
  the watermark read from and written back to a JSON file) / ``requests.Session`` following the API's next
  links, ``response.json()`` and ``pandas.json_normalize`` — then ``DataFrame.to_parquet`` of the rows read
  (pyarrow's defaults: snappy, no profile, no digest). That is the least that stores what tidal stores.

Equal correctness is checked, not assumed: after the timing, each side's stored rows are read back (tidal's
snapshot bytes, the baseline's Parquet file) and compared cell by cell; for incremental SQL both must hold
exactly the new rows and keep the same watermark. A case whose sides differ is marked ``NO`` and the bench
exits 1. Each case runs ``--reps`` times per side, alternating sides, each rep into a fresh workspace/folder
(a content-addressed store would skip a snapshot it already holds); the table shows the median.

Cases: ``csv``, ``parquet``, ``sqlite``, ``postgres`` (whole table), ``sqlite-incr``, ``postgres-incr`` (the
rows past the watermark: ``--rows`` already collected, ``--rows/10`` new), ``api`` (a JSON API served by a
subprocess of this script on 127.0.0.1, HTTP/1.1 keep-alive, pages of 500 nested records with a next link in
the body, pre-rendered so that the server costs both sides the same), ``stream`` (``--api-rows`` readings in a
Redis stream, each side through a consumer group of its own; redis-py's XREADGROUP/XACK in a loop, json.loads
and to_parquet for the script; ``$TIDAL_BENCH_REDIS_URL``, else the Redis on 127.0.0.1:6379). PostgreSQL is read from
``$TIDAL_BENCH_POSTGRES_URL`` (else ``$TIDAL_TEST_POSTGRES_URL``); without one its cases are skipped.

Adding a source (the stream, say): write one ``Case`` — ``setup`` makes the data and returns a context,
``tidal`` and ``baseline`` collect it into a rep's folder and return the ``Stored`` they wrote — and add it
to ``CASES``. The rest (timing, checking, the table, the JSON) is shared.

Run with ``make bench`` (requests is in .venv-bench: bench/requirements.txt), or
``python bench/ingest.py [--rows 500000] [--api-rows 50000] [--reps 3] [--only csv,api] [--quick]``;
writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

RESULTS = Path(__file__).resolve().parent / "results" / "ingest.json"
AIM = 1.0  # tidal rows/s over the script's, at equal correctness
SIDES = {
    "tidal": "the collect step: source read, canonical Parquet (zstd 3) + sha256 + statistics profile, put into "
             "the artifact store (atomic write) and the snapshot into the metadata store; incremental: the batch "
             "and the watermark, recorded in the state (the training table is made by a run, not a collection)",
    "pandas": "read_csv / read_parquet / read_sql (WHERE ts > :watermark, the watermark kept in a JSON file) / "
              "requests + json_normalize following the next links, then DataFrame.to_parquet (snappy)",
}
API_PAGE = 500

SPEC = """version: 1
name: ingest
data: {data}
model: {{estimator: sklearn.linear_model.LogisticRegression}}
"""


# -- the data ---------------------------------------------------------------------------------------------

def make_rows(n: int, start: int = 0) -> Any:
    """``n`` sensor readings with ids ``start`` .. ``start + n - 1``; the same rows for the same ids."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(20260101 + start)
    ids = np.arange(start, start + n, dtype="int64")
    temp = rng.normal(20.0, 5.0, n).round(3)
    temp[rng.random(n) < 0.02] = np.nan
    count = pd.array(rng.integers(0, 1000, n), dtype="Int64")
    count[rng.random(n) < 0.05] = pd.NA
    return pd.DataFrame({
        "id": ids,
        # one reading a second, strictly increasing with the id: the incremental column
        "ts": pd.Timestamp("2026-01-01") + pd.to_timedelta(ids, unit="s"),
        "sensor": np.char.add("sensor-", (ids * 7919 % 250).astype(str)),
        "site": np.array(["north", "south", "east", "west", "dock", "roof"])[ids % 6],
        "value": rng.normal(0.0, 1.0, n).round(6),
        "temp": temp,
        "count": count,
        "ok": rng.random(n) < 0.97,
        "note": np.char.add("reading ", rng.integers(0, 10**9, n).astype(str)),
    })


def api_records(n: int) -> list[dict[str, Any]]:
    """``n`` records as an API nests them (``sensor.name``, ``sensor.site`` after flattening)."""
    df = make_rows(n)
    return [{"id": int(r.id), "ts": r.ts.isoformat(), "sensor": {"name": r.sensor, "site": r.site},
             "value": float(r.value), "temp": None if r.temp != r.temp else float(r.temp),
             "ok": bool(r.ok), "note": r.note} for r in df.itertuples(index=False)]


# -- what a side stored, and the check that both stored the same -------------------------------------------

@dataclass
class Stored:
    """What one side wrote: how to read its rows back, and the watermark it kept (incremental cases)."""

    rows: int
    read_back: Callable[[], Any]
    watermark: Any = None


def same_rows(a: Any, b: Any) -> str | None:
    """None when the two frames hold the same rows, cell by cell (dtypes may differ: an object column of str
    and a str column are the same data); else what differs."""
    import pandas as pd

    if len(a) != len(b):
        return f"{len(a)} rows against {len(b)}"
    if list(a.columns) != list(b.columns):
        return f"columns {list(a.columns)} against {list(b.columns)}"
    a = a.sort_values("id", kind="stable").reset_index(drop=True)
    b = b.sort_values("id", kind="stable").reset_index(drop=True)
    for name in a.columns:
        left, right = a[name], b[name]
        if left.dtype != right.dtype and (pd.api.types.is_object_dtype(left.dtype)
                                          or pd.api.types.is_object_dtype(right.dtype)):
            left, right = left.astype("str"), right.astype("str")
        try:
            pd.testing.assert_series_equal(left, right, check_dtype=False, check_categorical=False,
                                           check_index_type=False)
        except AssertionError as exc:
            return f"column {name!r}: {' '.join(str(exc).split())[:200]}"
    return None


# -- the tidal side ---------------------------------------------------------------------------------------

def _workspace(folder: Path, data: dict[str, Any]) -> Any:
    from tidal import Workspace

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tidal.yaml").write_text(SPEC.format(data=json.dumps(data)))
    return Workspace.open(folder)


def tidal_collect(folder: Path, data: dict[str, Any]) -> Callable[[], Stored]:
    """The collect step of ``tidal run`` on ``data`` (tidal.yaml's data section), in a fresh workspace; returns
    the timed part."""
    from tidal.data import steps

    ws = _workspace(folder, data)

    def run() -> Stored:
        info, payload = steps.collect(ws.spec.data, base_dir=folder, project=ws.spec.name,
                                      created_at=datetime.now(UTC))
        ws.artifacts.put(payload)
        ws.store.put_snapshot(info)
        return Stored(info.rows, lambda: _read_snapshot(ws, info.digest))

    return run


def tidal_increment(folder: Path, data: dict[str, Any], previous: tuple[Any, bytes],
                    watermark: dict[str, Any]) -> Callable[[], Stored]:
    """One incremental collection (``data.incremental``) as ``tidal loop``'s scheduled collection makes it
    (:meth:`tidal.loop.incremental.IncrementalCollect.collect`, then ``commit``): the rows past the watermark,
    their batch snapshot stored, the batch and watermark recorded in the state and the event. The workspace
    already holds the collection before (``previous``: its batch snapshot, untimed), as the state lists it."""
    from tidal.loop.incremental import IncrementalCollect, read_state, state_key

    ws = _workspace(folder, data)
    info, payload = previous
    ws.artifacts.put(payload)
    ws.store.put_snapshot(info)
    ws.store.put_state(state_key(ws.spec), {"watermark": watermark, "batches": [
        {"snapshot": info.digest, "rows": info.rows, "watermark": watermark,
         "collected_at": info.created_at.isoformat(), "run_id": "bench"}]})

    def run() -> Stored:
        collector = IncrementalCollect(ws.spec, folder, ws.store, ws.artifacts, ws.clock, {})
        inc = collector.collect("bench")
        collector.commit()
        assert inc.batch is not None, inc.message
        digest = inc.batch[0].digest
        return Stored(inc.new_rows, lambda: _read_snapshot(ws, digest),
                      str(read_state(ws.store, ws.spec)["watermark"]["value"]))

    return run


def _read_snapshot(ws: Any, digest: str) -> Any:
    from tidal.data.snapshot import read_snapshot_bytes

    return read_snapshot_bytes(ws.artifacts.get(digest))


# -- the cases --------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One source: ``setup(root, args)`` makes its data (untimed) and returns a context, or a str saying why the
    case is skipped; ``tidal(ctx, folder)`` and ``baseline(ctx, folder)`` return the timed part of one rep
    (anything before it, such as opening a workspace, is untimed)."""

    name: str
    what: str
    setup: Callable[[Path, argparse.Namespace], Any]
    tidal: Callable[[Any, Path], Callable[[], Stored]]
    baseline: Callable[[Any, Path], Callable[[], Stored]]
    teardown: Callable[[Any], None] = field(default=lambda ctx: None)


def _parquet_out(folder: Path, df: Any, name: str = "rows.parquet") -> Stored:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    df.to_parquet(path, index=False)
    return Stored(len(df), lambda: pd.read_parquet(path))


# files

def _file_setup(kind: str) -> Callable[[Path, argparse.Namespace], Any]:
    def setup(root: Path, args: argparse.Namespace) -> Any:
        path = root / f"rows.{kind}"
        df = make_rows(args.rows)
        df.to_csv(path, index=False) if kind == "csv" else df.to_parquet(path, index=False)
        return path

    return setup


def _csv_baseline(path: Path, folder: Path) -> Callable[[], Stored]:
    import pandas as pd

    return lambda: _parquet_out(folder, pd.read_csv(path))


def _parquet_baseline(path: Path, folder: Path) -> Callable[[], Stored]:
    import pandas as pd

    return lambda: _parquet_out(folder, pd.read_parquet(path))


# SQL

@dataclass
class SqlTable:
    url: str
    table: str
    rows: int
    new_rows: int = 0
    watermark: Any = None  # the baseline's, as its JSON file holds it (incremental cases)
    previous: Any = None  # tidal's batch snapshot collected before the timed one (incremental cases)
    tidal_mark: dict[str, Any] | None = None


def _postgres_url() -> str | None:
    return os.environ.get("TIDAL_BENCH_POSTGRES_URL") or os.environ.get("TIDAL_TEST_POSTGRES_URL") or None


def _load_table(url: str, table: str, df: Any) -> None:
    """``df`` into a new table (PostgreSQL by COPY: to_sql row by row would take minutes)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            import io

            df.head(0).to_sql(table, engine, index=False)
            text = io.StringIO()
            df.to_csv(text, index=False, header=False)
            with engine.begin() as conn:
                cursor = conn.connection.dbapi_connection.cursor()
                with cursor.copy(f'COPY "{table}" FROM STDIN WITH (FORMAT csv)') as copy:
                    copy.write(text.getvalue())
        else:
            df.to_sql(table, engine, index=False, chunksize=50_000)
    finally:
        engine.dispose()


def _sql_setup(backend: str, incremental: bool) -> Callable[[Path, argparse.Namespace], Any]:
    def setup(root: Path, args: argparse.Namespace) -> Any:
        if backend == "postgres":
            url = _postgres_url()
            if url is None:
                return "no PostgreSQL: set TIDAL_BENCH_POSTGRES_URL"
        else:
            url = f"sqlite:///{root / 'rows.db'}"
        table = f"bench_ingest_{uuid.uuid4().hex[:10]}"
        new = max(args.rows // 10, 1) if incremental else 0
        try:
            _load_table(url, table, make_rows(args.rows + new))
        except Exception as exc:  # the server is down, the driver missing: say so, run the rest
            return f"cannot load the table: {type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
        ctx = SqlTable(url, table, args.rows + new, new)
        if incremental:
            # the collection before: every row up to --rows, by each side as it collects (untimed)
            from tidal.data.incremental import encode_watermark
            from tidal.data.snapshot import make_snapshot
            from tidal.data.sources.sql import read_after

            first = read_after(url, base_dir=root, query=f'SELECT * FROM "{table}" WHERE id < {args.rows}',
                               column="ts", after=None)
            ctx.previous = make_snapshot(first.sort_values("ts", kind="stable").reset_index(drop=True),
                                         project="ingest", source=url, created_at=datetime.now(UTC))
            ctx.tidal_mark = encode_watermark(first["ts"].max())
            ctx.watermark = ctx.tidal_mark["value"]
        return ctx

    return setup


def _sql_teardown(ctx: Any) -> None:
    if not isinstance(ctx, SqlTable) or ctx.url.startswith("sqlite"):
        return
    import sqlalchemy as sa

    engine = sa.create_engine(ctx.url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{ctx.table}"')
    engine.dispose()


def _sql_data(ctx: SqlTable, incremental: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"source": ctx.url, "query": f'SELECT * FROM "{ctx.table}"', "target": "ok"}
    if incremental:
        data["incremental"] = {"column": "ts"}
    return data


def _sql_tidal(ctx: SqlTable, folder: Path) -> Callable[[], Stored]:
    return tidal_collect(folder, _sql_data(ctx, False))


def _sql_tidal_incr(ctx: SqlTable, folder: Path) -> Callable[[], Stored]:
    assert ctx.tidal_mark is not None
    return tidal_increment(folder, _sql_data(ctx, True), ctx.previous, ctx.tidal_mark)


def _sql_baseline(ctx: SqlTable, folder: Path) -> Callable[[], Stored]:
    def run() -> Stored:
        import pandas as pd
        import sqlalchemy as sa

        engine = sa.create_engine(ctx.url)
        with engine.connect() as conn:
            df = pd.read_sql(sa.text(f'SELECT * FROM "{ctx.table}"'), conn)
        engine.dispose()
        return _parquet_out(folder, df)

    return run


def _sql_baseline_incr(ctx: SqlTable, folder: Path) -> Callable[[], Stored]:
    folder.mkdir(parents=True, exist_ok=True)
    state = folder / "watermark.json"
    state.write_text(json.dumps({"watermark": ctx.watermark}))

    def run() -> Stored:
        import pandas as pd
        import sqlalchemy as sa

        mark = json.loads(state.read_text())["watermark"]
        if ctx.url.startswith("postgresql"):
            mark = datetime.fromisoformat(mark)  # bound as a timestamp, as the column is
        engine = sa.create_engine(ctx.url)
        with engine.connect() as conn:
            df = pd.read_sql(sa.text(f'SELECT * FROM "{ctx.table}" WHERE ts > :mark ORDER BY ts'), conn,
                             params={"mark": mark})
        engine.dispose()
        top = df["ts"].max()
        kept = top.isoformat() if hasattr(top, "isoformat") else str(top)
        stored = _parquet_out(folder, df, "batch.parquet")
        state.write_text(json.dumps({"watermark": kept}))
        stored.watermark = json.loads(state.read_text())["watermark"]
        return stored

    return run


# the API

@dataclass
class Api:
    url: str
    process: subprocess.Popen[bytes]


def _api_setup(root: Path, args: argparse.Namespace) -> Any:
    port_file = root / "api.port"
    proc = subprocess.Popen([sys.executable, __file__, "--serve-api", str(args.api_rows), "--port-file",
                             str(port_file)])
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            return "the API server did not start"
        time.sleep(0.05)
    return Api(f"http://127.0.0.1:{port_file.read_text().strip()}/readings", proc)


def _api_teardown(ctx: Any) -> None:
    if isinstance(ctx, Api):
        ctx.process.terminate()
        ctx.process.wait(10)


def _api_tidal(ctx: Api, folder: Path) -> Callable[[], Stored]:
    return tidal_collect(folder, {"source": {"http": ctx.url, "records": "data",
                                             "paginate": {"kind": "link", "next": "links.next"}},
                                  "target": "ok"})


def _api_baseline(ctx: Api, folder: Path) -> Callable[[], Stored]:
    def run() -> Stored:
        import pandas as pd
        import requests

        records: list[dict[str, Any]] = []
        url: str | None = ctx.url
        with requests.Session() as session:
            while url:
                answer = session.get(url, timeout=10)
                answer.raise_for_status()
                body = answer.json()
                records.extend(body["data"])
                nxt = body["links"]["next"]
                url = urljoin(answer.url, nxt) if nxt else None
        return _parquet_out(folder, pd.json_normalize(records))

    return run


def serve_api(n: int, port_file: Path) -> None:
    """The JSON API of the ``api`` case: pages of ``API_PAGE`` records, ``links.next`` a relative link,
    rendered before the first request so that answering costs both sides the same (a memcpy)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    records = api_records(n)
    pages: dict[str, bytes] = {}
    count = max(1, -(-n // API_PAGE))
    for number in range(count):
        nxt = f"/readings?page={number + 1}" if number + 1 < count else None
        body = {"data": records[number * API_PAGE:(number + 1) * API_PAGE], "links": {"next": nxt}}
        pages["/readings" if number == 0 else f"/readings?page={number}"] = json.dumps(body).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: both clients reuse one connection

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = pages.get(self.path)
            status = 200 if body is not None else 404
            body = body if body is not None else b'{"error": "no such page"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


# a stream (Redis Streams)

@dataclass
class Stream:
    url: str
    key: str
    rows: int


def stream_records(n: int) -> list[dict[str, Any]]:
    """``n`` readings as a sensor sends them: one flat JSON object each."""
    df = make_rows(n)
    return [{"id": int(r.id), "ts": r.ts.isoformat(), "sensor": r.sensor, "site": r.site, "value": float(r.value),
             "temp": None if r.temp != r.temp else float(r.temp), "ok": bool(r.ok), "note": r.note}
            for r in df.itertuples(index=False)]


def _stream_setup(root: Path, args: argparse.Namespace) -> Any:
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install 'tidal[stream]')"
    url = os.environ.get("TIDAL_BENCH_REDIS_URL") or "redis://127.0.0.1:6379/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        return f"no Redis answers at {url} (set TIDAL_BENCH_REDIS_URL)"
    key = f"tidal-bench:{uuid.uuid4().hex[:12]}:readings"
    pipe = client.pipeline(transaction=False)
    for i, record in enumerate(stream_records(args.api_rows)):
        pipe.xadd(key, {"data": json.dumps(record)})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    client.close()
    return Stream(url, key, args.api_rows)


def _stream_teardown(ctx: Any) -> None:
    import redis

    client = redis.Redis.from_url(ctx.url)
    client.delete(ctx.key)  # the bench's own key (a uuid of its own), and nothing else
    client.close()


def _stream_tidal(ctx: Stream, folder: Path) -> Callable[[], Stored]:
    """``tidal loop``'s collection of a stream: the readings its consumer group has not acknowledged, read,
    decoded and snapshotted as a batch (the training table checked, not stored), recorded, then acknowledged.
    A consumer group of its own per rep, so that each rep reads every reading."""
    from tidal.loop.stream import StreamCollect

    ws = _workspace(folder, {"source": {"redis": ctx.url, "stream": ctx.key, "group": f"tidal-{folder.name}",
                                        "max_readings": ctx.rows + 1}, "target": "ok"})

    def run() -> Stored:
        collector = StreamCollect(ws.spec, folder, ws.store, ws.artifacts, ws.clock, {})
        inc = collector.collect("bench")
        collector.commit()
        assert inc.batch is not None, inc.message
        digest = inc.batch[0].digest
        return Stored(inc.new_rows, lambda: _read_snapshot(ws, digest).drop(columns=["stream_id"]),
                      inc.marks[ctx.key])

    return run


def _stream_baseline(ctx: Stream, folder: Path) -> Callable[[], Stored]:
    """redis-py in a loop: XREADGROUP 10,000 at a time, json.loads each reading, XACK, then one DataFrame to
    Parquet; the last entry id kept in a JSON file (the offset a restarted script resumes from)."""
    import pandas as pd
    import redis

    def run() -> Stored:
        client = redis.Redis.from_url(ctx.url, decode_responses=True)
        group = f"pandas-{folder.name}"
        client.xgroup_create(ctx.key, group, id="0")
        rows: list[dict[str, Any]] = []
        last = None
        while True:
            got = client.xreadgroup(group, "bench", {ctx.key: ">"}, count=10_000)
            if not got or not got[0][1]:
                break
            entries = got[0][1]
            rows.extend(json.loads(fields["data"]) for _, fields in entries)
            ids = [entry_id for entry_id, _ in entries]
            client.xack(ctx.key, group, *ids)
            last = ids[-1]
        client.close()
        stored = _parquet_out(folder, pd.DataFrame(rows))
        (folder / "offset.json").write_text(json.dumps({"last": last}))
        stored.watermark = last
        return stored

    return run


CASES: list[Case] = [
    Case("csv", "CSV file", _file_setup("csv"), lambda p, d: tidal_collect(d, {"source": str(p), "target": "ok"}),
         _csv_baseline),
    Case("parquet", "Parquet file", _file_setup("parquet"),
         lambda p, d: tidal_collect(d, {"source": str(p), "target": "ok"}), _parquet_baseline),
    Case("sqlite", "SQLite, whole table", _sql_setup("sqlite", False), _sql_tidal, _sql_baseline),
    Case("postgres", "PostgreSQL, whole table", _sql_setup("postgres", False), _sql_tidal, _sql_baseline,
         _sql_teardown),
    Case("sqlite-incr", "SQLite, rows past the watermark", _sql_setup("sqlite", True), _sql_tidal_incr,
         _sql_baseline_incr),
    Case("postgres-incr", "PostgreSQL, rows past the watermark", _sql_setup("postgres", True), _sql_tidal_incr,
         _sql_baseline_incr, _sql_teardown),
    Case("api", "JSON API, paginated", _api_setup, _api_tidal, _api_baseline, _api_teardown),
    Case("stream", "Redis Streams, a consumer group", _stream_setup, _stream_tidal, _stream_baseline,
         _stream_teardown),
]


# -- running ----------------------------------------------------------------------------------------------

def run_case(case: Case, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    ctx = case.setup(root, args)
    if isinstance(ctx, str):
        return {"case": case.name, "what": case.what, "skipped": ctx}
    try:
        seconds: dict[str, list[float]] = {"tidal": [], "pandas": []}
        cpu: dict[str, list[float]] = {"tidal": [], "pandas": []}
        last: dict[str, Stored] = {}
        for rep in range(args.reps):
            for side, make in (("tidal", case.tidal), ("pandas", case.baseline)):
                folder = root / f"{case.name}-{side}-{rep}"
                timed = make(ctx, folder)
                gc.collect()
                start, start_cpu = time.perf_counter(), time.process_time()
                last[side] = timed()
                seconds[side].append(time.perf_counter() - start)
                cpu[side].append(time.process_time() - start_cpu)
                if rep < args.reps - 1:
                    last.pop(side)
                    shutil.rmtree(folder, ignore_errors=True)
        tidal, base = last["tidal"], last["pandas"]
        differs = same_rows(tidal.read_back(), base.read_back())
        if differs is None and tidal.watermark != base.watermark:
            differs = f"watermark {tidal.watermark!r} against {base.watermark!r}"
    finally:
        case.teardown(ctx)
    out: dict[str, Any] = {"case": case.name, "what": case.what, "rows": tidal.rows, "same_rows": differs is None,
                           "seconds": {k: statistics.median(v) for k, v in seconds.items()}, "all_seconds": seconds,
                           "cpu_seconds": {k: statistics.median(v) for k, v in cpu.items()}}
    if differs is not None:
        out["differs"] = differs
    if tidal.watermark is not None:
        out["watermark"] = tidal.watermark
    out["rows_per_s"] = {k: tidal.rows / v for k, v in out["seconds"].items()}
    out["ratio"] = out["rows_per_s"]["tidal"] / out["rows_per_s"]["pandas"]
    # CPU seconds of this process (all its threads; not a server's): steadier than the wall clock on a busy machine
    out["cpu_ratio"] = out["cpu_seconds"]["pandas"] / max(out["cpu_seconds"]["tidal"], 1e-9)
    return out


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"{'case':<15}{'rows':>10}{'tidal rows/s':>15}{'pandas rows/s':>15}{'tidal/pandas':>14}{'by CPU':>8}"
          "  same rows")
    for r in results:
        if "skipped" in r:
            print(f"{r['case']:<15}  skipped: {r['skipped']}")
            continue
        same = "yes" if r["same_rows"] else f"NO ({r['differs']})"
        print(f"{r['case']:<15}{r['rows']:>10,}{r['rows_per_s']['tidal']:>15,.0f}{r['rows_per_s']['pandas']:>15,.0f}"
              f"{r['ratio']:>13.2f}x{r['cpu_ratio']:>7.2f}x  {same}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="rows of the files and SQL tables (500,000)")
    parser.add_argument("--api-rows", type=int, default=None, help="records the API serves (50,000)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per side, the median shown (3)")
    parser.add_argument("--only", default="", help="the cases to run, comma-separated (all by default)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 1,000 rows, 1,000 records, 1 rep (unless given)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--serve-api", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_api is not None:
        serve_api(args.serve_api, Path(args.port_file))
        return 0
    quick = {"rows": 1_000, "api_rows": 1_000, "reps": 1}
    full = {"rows": 500_000, "api_rows": 50_000, "reps": 3}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    names = [n for n in args.only.split(",") if n] or [c.name for c in CASES]
    unknown = sorted(set(names) - {c.name for c in CASES})
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)} (cases: {', '.join(c.name for c in CASES)})")
    import pandas  # noqa: F401  (imported before any timing, as are the two sides' libraries below)
    import requests  # noqa: F401
    import sqlalchemy  # noqa: F401

    import tidal.data.steps  # noqa: F401

    print(f"ingest: {args.rows:,} rows (SQL incremental: {max(args.rows // 10, 1):,} new on top), "
          f"{args.api_rows:,} API records; median of {args.reps}; {platform.machine()}, {os.cpu_count()} cores",
          flush=True)
    results = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tidal-bench-ingest-") as tmp:
        for case in (c for c in CASES if c.name in names):
            print(f"  {case.name} ...", flush=True)
            results.append(run_case(case, Path(tmp), args))
    load_after = os.getloadavg()
    print()
    print_table(results)
    print(f"  aim: tidal/pandas >= {AIM:g}x at equal correctness (wall clock; 'by CPU': pandas' CPU seconds over "
          f"tidal's, in this process); load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "rows": args.rows, "api_rows": args.api_rows, "reps": args.reps, "aim": AIM, "sides": SIDES,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "load_average_before_after": [load_before[0], load_after[0]]},
        "results": results}, indent=2, default=str))
    print(f"wrote {out}")
    return 0 if all(r.get("same_rows", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
