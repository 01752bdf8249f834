"""A full disk under the prediction log (issue #9, point 6).

While the disk is full every prediction is refused with a 503 and an error id (nothing unstored is
answered), and the server log gets a bounded number of lines: one with a traceback per distinct error per
interval, not one per request (a full disk once wrote 33,354 tracebacks, 30 MB, in 30 s). When space
returns, requests are answered again and the WAL checkpoints, which fail meanwhile, resume.

:func:`test_a_full_disk` fills a real filesystem: a tmpfs of a few MB mounted for the test, which needs
root. Where mounting is not permitted it is skipped, and :func:`test_a_full_database` (which runs
everywhere) stands in for it: it makes SQLite raise the same SQLITE_FULL error ("database or disk is full")
with ``PRAGMA max_page_count``, in process, on the connection the log appends with; that covers the
answers and the log lines, not the checkpointer's thread (tests/contract/test_wal_checkpointer.py does).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.server import ServerProcess, eventually
from tests.serve.test_app import running
from tests.serve.test_http import ROW

pytestmark = pytest.mark.slow  # real servers, a few seconds each

REQUESTS = 300
ROWS = [{**ROW, "period": i / 20} for i in range(20)]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs, mounted for this test only."""
    where = tmp_path / "disk"
    where.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}): test_a_full_database covers the same errors")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): test_a_full_database covers the same "
                    "errors")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def fill(where: Path) -> Path:
    """Write a file until the filesystem has no space left; returns it."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return filler


def test_a_full_disk(project: Path, disk: Path) -> None:
    db = disk / "predictions.db"
    srv = ServerProcess(project, env={"TIDAL_PREDICTIONS_URL": f"sqlite:///{db}"}).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as http:
            for _ in range(30):  # a WAL with room in it: after a checkpoint, new commits reuse its space
                assert http.post("/predict", json={"instances": ROWS}).status_code == 200
            time.sleep(1.0)  # the background checkpoint copies the WAL into the database
            before_fill = len(srv.log_text().splitlines())
            filler = fill(disk)
            statuses: Counter[int] = Counter()
            ids: set[str] = set()
            start = time.monotonic()
            for _ in range(REQUESTS):
                resp = http.post("/predict", json={"instances": ROWS})
                statuses[resp.status_code] += 1
                if resp.status_code == 503:
                    body = resp.json()
                    assert "could not be stored" in body["error"] and body["error_id"]
                    ids.add(body["error_id"])
            took = time.monotonic() - start
            time.sleep(1.0)  # the checkpointer has tried meanwhile
            full = srv.log_text().splitlines()[before_fill:]

            filler.unlink()
            first = eventually(lambda: http.post("/predict", json={"instances": ROWS}).status_code == 200, 10,
                               "an answer once space returned")
            after = Counter(http.post("/predict", json={"instances": ROWS}).status_code for _ in range(20))
            eventually(lambda: "checkpoints of" in srv.log_text() and "resumed" in srv.log_text(), 15,
                       "the WAL checkpoints resuming")
    finally:
        srv.stop()
    log = srv.log_text()
    text = "\n".join(full)
    print(f"disk full: {dict(statuses)} in {took:.1f} s, {len(ids)} error ids; {len(full)} log lines, "
          f"{text.count('Traceback')} tracebacks, {len(text)} bytes; after: {dict(after)}")
    assert set(statuses) <= {200, 503} and statuses[503] >= REQUESTS - 50, statuses
    assert first and after == Counter({200: 20}), after
    assert len(ids) <= 3, ids  # a repeated error carries the id of the occurrence that was logged
    assert len([ln for ln in full if " ERROR [" in ln]) <= 2, text[:3000]  # one per distinct error
    assert text.count("Traceback (most recent call last)") <= 4, text[:3000]  # each with its cause
    assert len(full) <= 120, text[:3000]  # one traceback (~30 lines) per distinct error, not one per request
    for error_id in ids:
        assert error_id in text  # each id a client got is in the log, with its traceback
    assert "checkpoints of" in text  # the checkpointer failed while the disk was full ...
    resumed = [ln for ln in log.splitlines() if "checkpoints of" in ln and "resumed" in ln]
    assert len(resumed) == 1, resumed  # ... and came back
    repeats = [ln for ln in log.splitlines() if "more time" in ln and "could not be stored" in ln]
    assert repeats, log[-3000:]  # the repeats are counted (here when the server stopped)


def test_a_full_database(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The same SQLITE_FULL error without a full disk: ``PRAGMA max_page_count`` caps the database at the
    pages it has, on the connection the app's log appends with (a quiet single-process server appends small
    requests on the event loop's thread, which is the test's thread here)."""
    from tidal.serve import create_app

    async def scenario() -> tuple[Counter[int], set[str], Counter[int]]:
        app = create_app(project)
        async with running(app) as http:
            assert (await http.post("/predict", json={"instances": [ROW]})).status_code == 200
            # this thread's connection (the one inline appends use), at the driver level
            conn = app.service.log._conns.get().connection.dbapi_connection
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
            statuses: Counter[int] = Counter()
            ids: set[str] = set()
            for _ in range(REQUESTS):
                resp = await http.post("/predict", json={"instances": ROWS})
                statuses[resp.status_code] += 1
                if resp.status_code == 503:
                    ids.add(resp.json()["error_id"])
            conn.execute("PRAGMA max_page_count = 1073741823")
            after = Counter([(await http.post("/predict", json={"instances": ROWS})).status_code for _ in range(20)])
        return statuses, ids, after

    with caplog.at_level(logging.INFO, logger="tidal"):
        statuses, ids, after = asyncio.run(scenario())
    errors = [r for r in caplog.records if r.name.startswith("tidal") and r.levelno >= logging.WARNING]
    with_trace = [r for r in errors if r.exc_info]
    assert statuses[503] >= REQUESTS - 5 and set(statuses) <= {200, 503}, statuses
    assert after == Counter({200: 20}), after
    assert len(ids) == 1 and len(with_trace) == 1, (ids, [r.getMessage() for r in errors][:5])
    assert "database or disk is full" in with_trace[0].getMessage()
    assert len(errors) <= 3, [r.getMessage() for r in errors]
    repeats = [r.getMessage() for r in caplog.records if "more time" in r.getMessage()]
    assert any(str(statuses[503] - 1) in line for line in repeats), repeats
