"""Server-side errors are logged once per distinct error per interval, with a traceback, and their repeats
counted in one line (issue #9: a full disk once logged a traceback per request, 30 MB in 30 s)."""

from __future__ import annotations

import logging
import time

import pytest

from tidal.core.errors import StorageError
from tidal.serve.errors import ErrorLog


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tidal.test"]


def test_one_traceback_per_distinct_error_and_a_count_of_the_repeats(caplog: pytest.LogCaptureFixture) -> None:
    log = ErrorLog(logging.getLogger("tidal.test"), interval=0.5, max_distinct=3)
    with caplog.at_level(logging.INFO, logger="tidal.test"):
        full = StorageError("appending predictions failed on the log: database or disk is full")
        answers = [log.report("/predict (prediction log)", full, status=503, message="not stored") for _ in range(100)]
        assert {a.status for a in answers} == {503} and {a.message for a in answers} == {"not stored"}
        assert len({a.error_id for a in answers}) == 1  # a repeat carries the id of the logged occurrence
        logged = records(caplog)
        assert len(logged) == 1 and logged[0].exc_info and answers[0].error_id in logged[0].getMessage()

        # the same exception elsewhere, or another message, is another error; past max_distinct, one line says
        # that more are counted, not logged
        others = [log.report(f"/feedback {i}", ValueError(f"bad {i}")) for i in range(5)]
        logged = records(caplog)
        assert len(logged) == 4 and sum(bool(r.exc_info) for r in logged) == 3, [r.getMessage() for r in logged]
        assert "counted, not logged" in logged[-1].getMessage()
        assert others[3].error_id == others[4].error_id and others[3].error_id in logged[-1].getMessage()

        time.sleep(0.8)  # the interval ends: the repeats are counted in one line each, without waiting for more
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any("99 more" in r.getMessage() for r in records(caplog)):
            time.sleep(0.05)
        summaries = [r.getMessage() for r in records(caplog)[4:]]
        assert any("repeated 99 more times" in s and answers[0].error_id in s and "disk is full" in s
                   for s in summaries), summaries
        assert any("repeated 2 more times" in s and others[3].error_id in s for s in summaries), summaries
        assert not any(r.exc_info for r in records(caplog)[4:])

        again = log.report("/predict (prediction log)", full, status=503, message="not stored")
        assert again.error_id != answers[0].error_id  # a new interval: logged again, with a new id
        assert records(caplog)[-1].exc_info
    log.close()


def test_close_counts_what_is_pending(caplog: pytest.LogCaptureFixture) -> None:
    log = ErrorLog(logging.getLogger("tidal.test"), interval=60)
    with caplog.at_level(logging.INFO, logger="tidal.test"):
        for _ in range(7):
            log.report("/predict", RuntimeError("boom"))
        log.close()  # at shutdown, the repeats of the current interval are counted too
    lines = [r.getMessage() for r in records(caplog)]
    assert len(lines) == 2 and "repeated 6 more times" in lines[1], lines
