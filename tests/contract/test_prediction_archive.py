"""The archive of the PredictionLog contract (retention, issue #16): every adapter (memory, SQLite, PostgreSQL)
moves old predictions into Parquet files in a real artifact store (a folder) and passes the same tests.

Predictions are made at controlled times over several days; after ``archive`` the log and the archive
together hold every prediction exactly once; a label that arrives for an archived prediction is accepted
and read back; an unknown id is still refused; archiving again is harmless, and a day archived twice holds
both runs' predictions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tidal.core.batches import PredictionBatch
from tidal.core.entities import Feedback, Prediction
from tidal.core.errors import FeedbackRejected, PredictionNotFound, StorageError
from tidal.core.ids import new_ids
from tidal.core.ports import ArtifactStore, PredictionLog
from tidal.storage import open_artifact_store, open_prediction_log
from tidal.storage.testing import ArchiveFiles, read_archive_file

from ._make import NESTED

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 4
PER_DAY = 6


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    return open_artifact_store(str(tmp_path / "artifacts"))


@pytest.fixture
def alog(log_url: str, artifacts: ArtifactStore) -> Iterator[PredictionLog]:
    """An empty prediction log that archives into ``artifacts``, once per implementation."""
    opened = open_prediction_log(log_url, artifacts=artifacts)
    try:
        yield opened
    finally:
        opened.close()


def at(day: int, minute: int) -> datetime:
    return DAY0 + timedelta(days=day, hours=6, minutes=minute)


def make(day: int, i: int, model: str = "churn", **kw: Any) -> Prediction:
    fields: dict[str, Any] = dict(id=new_ids(1)[0], time=at(day, i), model=model, version=1 + day % 2,
                                  inputs={"x": float(i), "day": day}, output=i % 2, proba=[0.4, 0.6])
    fields.update(kw)
    return Prediction(**fields)


def fill(log: PredictionLog, model: str = "churn") -> list[Prediction]:
    """PER_DAY predictions on each of DAYS days; the first of each day labelled with it."""
    made = []
    for day in range(DAYS):
        for i in range(PER_DAY):
            label: dict[str, Any] = {"label": i % 2, "label_time": at(day, 30)} if i == 0 else {}
            made.append(make(day, i, model, **label))
    log.append(made)
    return made


def everything(log: PredictionLog, **kw: Any) -> list[Prediction]:
    return log.window(served=None, archived=True, **kw)


def test_archive_moves_old_days_and_no_prediction_is_lost_or_doubled(alog: PredictionLog) -> None:
    made = fill(alog)
    cutoff = DAY0 + timedelta(days=2)  # days 0 and 1 go
    outcome = alog.archive(cutoff)
    assert outcome.moved == 2 * PER_DAY and outcome.unreadable_left == 0
    assert [(f.day, f.model, f.rows, f.labels) for f in outcome.files] == [
        (DAY0.date(), "churn", PER_DAY, 1), ((DAY0 + timedelta(days=1)).date(), "churn", PER_DAY, 1)]
    assert alog.count(served=None) == (DAYS - 2) * PER_DAY
    assert [p.id for p in alog.window(served=None)] == [p.id for p in made[2 * PER_DAY:]]
    assert sorted(p.id for p in everything(alog)) == sorted(p.id for p in made)
    assert alog.count(served=None, archived=True) == alog.count(archived=True) == len(made)
    assert alog.count(labelled=True, archived=True) == DAYS and alog.count(labelled=True) == DAYS - 2
    assert alog.count(labelled=False, archived=True) == len(made) - DAYS
    assert alog.count(served=False, archived=True) == 0
    assert alog.count(version=1, archived=True) == sum(p.version == 1 for p in made)  # read from the files
    assert alog.count(since=at(1, 3), archived=True) == len(made) - PER_DAY - 3
    days = alog.days()
    assert [(d.day, d.logged, d.archived) for d in days] == [
        ((DAY0 + timedelta(days=d)).date(), 0 if d < 2 else PER_DAY, PER_DAY if d < 2 else 0) for d in range(DAYS)]
    assert sum(d.logged + d.archived for d in days) == len(made)
    assert [d.archived_labels + d.logged_labels for d in days] == [1] * DAYS
    assert all(d.path and f.digest in d.path for d, f in zip(days, outcome.files, strict=False))
    # archiving again is harmless
    again = alog.archive(cutoff)
    assert again.moved == 0 and again.files == ()
    assert alog.days() == days


def test_an_archived_prediction_reads_back_as_it_was_logged(alog: PredictionLog) -> None:
    p = Prediction(id="pred-" + new_ids(1)[0], time=at(0, 1), model="élec2", version=7, inputs=NESTED,
                   output={"class": "UP", "rank": [1, 2]}, proba=[0.1, 0.9], deployment="canary", served=False,
                   request_id="req-1", label="UP", label_time=at(0, 40))
    q = make(0, 2, model="élec2", proba=None, output=12.5)
    alog.append([p, q])
    alog.archive(DAY0 + timedelta(days=1))
    assert alog.count(served=None) == 0
    assert alog.get(p.id) == p and alog.get(q.id) == q
    assert everything(alog) == [p, q]
    with pytest.raises(PredictionNotFound):
        alog.get("no-such-" + new_ids(1)[0])
    # the file is Parquet that pandas reads
    (entry,) = [d for d in alog.days() if d.archived]
    assert entry.path is not None
    frame = pd.read_parquet(entry.path)
    assert list(frame["id"]) == [p.id, q.id] and frame["label"].notna().sum() == 1
    assert set(frame.columns) >= {"id", "time", "model", "version", "served", "inputs", "output", "label",
                                  "label_time"}
    assert read_archive_file(Path(entry.path).read_bytes(), entry.path)[0]["id"] == p.id


def test_a_late_label_for_an_archived_prediction_is_accepted_and_read_back(alog: PredictionLog) -> None:
    made = fill(alog)
    alog.archive(DAY0 + timedelta(days=2))
    old, recent = made[3], made[-1]  # archived (day 0), still in the log (day 3)
    late = at(40, 0)
    assert alog.add_feedback([Feedback(prediction_id=old.id, label=1, time=late),
                              Feedback(prediction_id=recent.id, label=0, time=late)]) == 2
    got = alog.get(old.id)
    assert (got.label, got.label_time) == (1, late)
    labelled = alog.window(labelled=True, archived=True)
    assert [p.id for p in labelled] == [made[0].id, old.id, made[PER_DAY].id, made[2 * PER_DAY].id,
                                        made[3 * PER_DAY].id, recent.id]
    assert [p.id for p in alog.window(labelled=True)] == [made[2 * PER_DAY].id, made[3 * PER_DAY].id, recent.id]
    assert {p.id for p in alog.window(labelled=False, archived=True)} == (
        {p.id for p in made} - {p.id for p in labelled})
    assert [d.archived_labels for d in alog.days()][:2] == [2, 1]
    assert alog.count(labelled=True, archived=True) == DAYS + 2  # the loop's total only grows
    # an unknown id is still refused, and nothing of its batch is stored
    for missing in (new_ids(1)[0], made[1].id[:-4] + "ffff", "not-an-id"):
        with pytest.raises(FeedbackRejected) as err:
            alog.add_feedback([Feedback(prediction_id=made[1].id, label=1, time=late),
                               Feedback(prediction_id=missing, label=1, time=late)])
        assert err.value.reason == "unknown" and err.value.index == 1
    assert alog.get(made[1].id).label is None
    # a second label is a duplicate, unless overwriting; a label the file holds counts too
    with pytest.raises(FeedbackRejected) as dup:
        alog.add_feedback([Feedback(prediction_id=old.id, label=0, time=late)])
    assert dup.value.reason == "duplicate"
    with pytest.raises(FeedbackRejected):
        alog.add_feedback([Feedback(prediction_id=made[0].id, label=0, time=late)])
    assert alog.add_feedback([Feedback(prediction_id=made[0].id, label=5, time=late)], overwrite=True) == 1
    assert alog.get(made[0].id).label == 5
    assert [d.archived_labels for d in alog.days()][:2] == [2, 1]  # replaced, not added
    assert alog.count(labelled=True, archived=True) == DAYS + 2


def test_a_day_archived_twice_keeps_the_first_files_rows(alog: PredictionLog) -> None:
    made = fill(alog)
    first = alog.archive(DAY0 + timedelta(days=1)).files[0]
    alog.add_feedback([Feedback(prediction_id=made[2].id, label=1, time=at(5, 0))])  # a late label first
    later = [make(0, 50 + i) for i in range(3)]  # predictions for day 0 that arrive after it was archived
    alog.append(later)
    second = alog.archive(DAY0 + timedelta(days=1))
    (merged,) = second.files
    assert second.moved == 3 and merged.day == first.day and merged.digest != first.digest
    assert merged.rows == PER_DAY + 3 and merged.labels == 1 and merged.late_labels == 1
    day0 = [p for p in everything(alog) if p.time < DAY0 + timedelta(days=1)]
    assert [p.id for p in day0] == [p.id for p in made[:PER_DAY]] + [p.id for p in later]
    assert alog.get(made[2].id).label == 1  # the late label still finds its prediction in the new file
    assert len(everything(alog)) == len(made) + 3


def test_a_crash_between_the_file_and_its_record_loses_nothing(
        alog: PredictionLog, monkeypatch: pytest.MonkeyPatch) -> None:
    made = fill(alog)
    written: list[str] = []
    real_write = ArchiveFiles.write

    def write_then_die(self: ArchiveFiles, rows: Any) -> tuple[str, str]:
        digest, _path = real_write(self, rows)
        written.append(digest)
        raise RuntimeError("killed after the file was written")

    monkeypatch.setattr(ArchiveFiles, "write", write_then_die)
    with pytest.raises(RuntimeError):
        alog.archive(DAY0 + timedelta(days=1))
    monkeypatch.undo()
    assert alog.count(served=None) == len(made)  # nothing left the log
    assert all(d.archived == 0 for d in alog.days())  # and nothing points at the orphan file
    outcome = alog.archive(DAY0 + timedelta(days=1))
    assert [f.digest for f in outcome.files] == written  # the same rows again: the same file
    assert sorted(p.id for p in everything(alog)) == sorted(p.id for p in made)


def test_counts_of_the_archive_keep_served_and_shadow_predictions_apart(alog: PredictionLog) -> None:
    served, shadow = make(0, 1), make(0, 2, served=False)
    alog.append([served, shadow, make(0, 3, served=False, label=1, label_time=at(0, 9))])
    alog.archive(DAY0 + timedelta(days=1))
    alog.add_feedback([Feedback(prediction_id=shadow.id, label=0, time=at(2, 0)),
                       Feedback(prediction_id=served.id, label=1, time=at(2, 0))])
    assert (alog.count(archived=True), alog.count(served=False, archived=True)) == (1, 2)
    assert alog.count(labelled=True, archived=True) == 1
    assert alog.count(labelled=True, served=False, archived=True) == 2
    assert alog.count(labelled=True, served=None, archived=True) == 3
    assert alog.count(labelled=False, served=None, archived=True) == 0


def test_only_the_named_model_is_archived_and_windows_filter_archives(alog: PredictionLog) -> None:
    churn, other = fill(alog, "churn"), fill(alog, "other")
    alog.archive(DAY0 + timedelta(days=2), model="other")
    assert alog.count(model="churn", served=None) == len(churn)
    assert alog.count(model="other", served=None) == 2 * PER_DAY
    assert len(alog.window(model="other", served=None, archived=True)) == len(other)
    window = alog.window(model="other", served=None, archived=True, since=at(1, 0), until=at(2, 3))
    assert [p.id for p in window] == [p.id for p in other[PER_DAY:2 * PER_DAY + 3]]
    assert [p.id for p in alog.window(model="other", version=1, archived=True)] == [
        p.id for p in other if p.version == 1]
    assert [p.id for p in alog.window(model="other", archived=True, last=PER_DAY + 2)] == [
        p.id for p in other[-PER_DAY - 2:]]
    assert [d.model for d in alog.days(model="other")] == ["other"] * DAYS


def test_a_served_request_of_a_range_of_ids_is_archived_and_takes_late_labels(alog: PredictionLog) -> None:
    ids = new_ids(5)
    batch = PredictionBatch(ids=ids, time=at(0, 5), model="churn", version=1, inputs=[{"x": i} for i in range(5)],
                            outputs=[i % 2 for i in range(5)])
    alog.append(batch)
    alog.archive(DAY0 + timedelta(days=1))
    assert alog.count() == 0
    assert alog.add_feedback([Feedback(prediction_id=ids[3], label=1, time=at(3, 0))]) == 1
    assert [(p.id, p.label) for p in alog.window(labelled=True, archived=True)] == [(ids[3], 1)]
    alog.append(batch)  # the same request again, after archiving: the log holds it once more, on its own
    assert alog.count() == 5


def test_archiving_without_an_artifact_store_is_refused(log: PredictionLog) -> None:
    log.append([make(0, 1)])
    with pytest.raises(StorageError, match="artifact store"):
        log.archive(DAY0 + timedelta(days=1))
    assert log.count() == 1


def test_a_label_that_arrives_while_its_day_is_archived_is_archived_with_it(
        sql_url: str, artifacts: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQL logs archive a day in two transactions (read, then delete) around the file's write: a label stored
    in between makes the delete roll back and the day start again, so the label is in the file."""
    log = open_prediction_log(sql_url, artifacts=artifacts)
    try:
        made = fill(log)
        real_write = ArchiveFiles.write
        labelled: list[int] = []

        def write_while_a_label_arrives(self: ArchiveFiles, rows: Any) -> tuple[str, str]:
            if not labelled:  # the first attempt only
                labelled.append(log.add_feedback([Feedback(prediction_id=made[4].id, label=1, time=at(0, 59))]))
            return real_write(self, rows)

        monkeypatch.setattr(ArchiveFiles, "write", write_while_a_label_arrives)
        outcome = log.archive(DAY0 + timedelta(days=1))
        assert labelled == [1]
        assert outcome.moved == PER_DAY and outcome.files[0].labels == 2
        assert log.get(made[4].id).label == 1
        assert len(log.window(labelled=True, archived=True)) == DAYS + 1
    finally:
        log.close()


def test_an_archive_file_that_is_not_one_is_reported(artifacts: ArtifactStore) -> None:
    digest = artifacts.put(b"not parquet")
    with pytest.raises(StorageError, match="cannot be read"):
        read_archive_file(artifacts.get(digest), digest)


def test_two_archivers_at_once_lose_and_double_nothing(
        sql_url: str, artifacts: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second archiver (another process: another log on the same database) archives the day while the first
    writes its file, with a prediction for that day that arrived in between: the first one's delete finds its
    batches gone, rolls back and finds nothing left to move."""
    first, second = (open_prediction_log(sql_url, artifacts=artifacts) for _ in range(2))
    try:
        made = fill(first)
        extra = make(0, 55)
        real_write = ArchiveFiles.write
        calls: list[int] = []

        def write_while_another_archives(self: ArchiveFiles, rows: Any) -> tuple[str, str]:
            calls.append(len(rows))
            if len(calls) == 1:
                second.append([extra])
                monkeypatch.setattr(ArchiveFiles, "write", real_write)
                assert second.archive(DAY0 + timedelta(days=1)).moved == PER_DAY + 1
            return real_write(self, rows)

        monkeypatch.setattr(ArchiveFiles, "write", write_while_another_archives)
        outcome = first.archive(DAY0 + timedelta(days=1))
        assert calls == [PER_DAY] and outcome.moved == 0
        (day0, *_) = first.days()
        assert (day0.logged, day0.archived) == (0, PER_DAY + 1)
        assert sorted(p.id for p in everything(first)) == sorted(p.id for p in [*made, extra])
    finally:
        first.close()
        second.close()
