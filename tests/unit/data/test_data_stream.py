"""The pure parts of the stream source: the spec's keys, entry ids in order, entries decoded into rows (several
column kinds), readings joined to labels. The broker's side is tested against real brokers in
tests/e2e/test_stream_source.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from tidal.core.errors import SourceError, SpecError
from tidal.data.sources.stream import Entry, entry_key
from tidal.data.stream import _duration, build_table, decode, join_labels, same_kinds
from tidal.spec import parse_spec
from tidal.spec.source import RedisStreamSpec, StreamLabelsSpec, source_label

BASE = """\
version: 1
name: sensors
data:
  source: {source}
  target: failed
{more}
model:
  estimator: sklearn.linear_model.LogisticRegression
"""


def _spec(source: str, more: str = "") -> object:
    return parse_spec(BASE.format(source=source, more=more))


def test_the_spec_reads_a_stream_with_its_defaults() -> None:
    spec = _spec('{redis: "redis://:${REDIS_PASSWORD}@broker:6379/0", stream: readings, retry_for: 500ms}')
    source = spec.data.source  # type: ignore[attr-defined]
    assert isinstance(source, RedisStreamSpec)
    assert (source.group, source.consumer, source.field, source.retry_for, source.on_error) == \
        ("tidal", "tidal", "data", 0.5, "refuse")
    assert (source.claim_idle, source.max_deliveries) == (600.0, None)  # claim after 10m; no delivery limit
    # the lineage names the broker with the password masked (the placeholder too), and the stream
    assert source_label(source) == "redis://:***@broker:6379/0 stream readings"


@pytest.mark.parametrize(("source", "more", "needle"), [
    ('{redis: "redis://:hunter2@broker:6379/0", stream: r}', "", "the URL holds a password"),
    ('{redis: "redis://broker:6379/0", stream: r, password: hunter2}', "", "the password is written out"),
    ('{redis: "http://broker:6379", stream: r}', "", "expected a redis:// or rediss:// URL"),
    ('{redis: "redis://broker:6379", stream: r, on_error: ignore}', "", "on_error"),
    ('{redis: "redis://broker:6379", stream: r, colour: red}', "", "colour"),
    ('{redis: "redis://broker:6379"}', "", "stream"),
    ('{redis: "redis://broker:6379", stream: r}', "  incremental: {column: id}", "data.incremental was given"),
    ('{redis: "redis://broker:6379", stream: r}', "  query: SELECT 1", "data.query was given"),
    ('{redis: "redis://b:6379", http: "http://h/x", stream: r}', "", "exactly one of the keys http, redis"),
])
def test_the_spec_refuses_a_bad_stream_source(source: str, more: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle) as err:
        _spec(source, more)
    assert "hunter2" not in str(err.value)


def test_entry_ids_compare_in_stream_order() -> None:
    assert entry_key("9-0") < entry_key("10-0") < entry_key("10-1") < entry_key("1733380000000-0")


CONFIG = RedisStreamSpec(redis="redis://h:6379", stream="readings")


def _entries(*bodies: object) -> list[Entry]:
    return [Entry(id=f"{i + 1}-0", fields={"data": b if isinstance(b, str) else json.dumps(b)})
            for i, b in enumerate(bodies)]


def test_entries_become_rows_with_their_kinds() -> None:
    got = decode(CONFIG, _entries({"temp": 21.5, "site": "north", "at": "2026-12-01T08:00:00+02:00", "ok": True,
                                   "gps": {"lat": 52.1}},
                                  {"temp": 19, "site": "south", "at": "2026-12-01T09:30:00Z", "ok": False}),
                 "readings", time="at")
    frame = got.frame
    assert list(frame.columns) == ["stream_id", "temp", "site", "at", "ok", "gps.lat"]
    assert frame["stream_id"].tolist() == ["1-0", "2-0"]
    assert frame["temp"].dtype == "float64" and frame["ok"].dtype == "bool"
    assert frame["site"].tolist() == ["north", "south"]
    assert str(frame["at"].dt.tz) == "UTC"
    assert frame["at"].tolist() == [pd.Timestamp(datetime(2026, 12, 1, 6, 0, tzinfo=UTC)),
                                    pd.Timestamp(datetime(2026, 12, 1, 9, 30, tzinfo=UTC))]
    assert frame["gps.lat"].isna().tolist() == [False, True]


def test_flat_fields_are_read_as_json_where_they_are_json() -> None:
    config = RedisStreamSpec(redis="redis://h:6379", stream="readings", field=None)
    got = decode(config, [Entry(id="5-0", fields={"temp": "21.5", "site": "north", "n": "3"})], "readings")
    assert got.frame.iloc[0].to_dict() == {"stream_id": "5-0", "temp": 21.5, "site": "north", "n": 3}


@pytest.mark.parametrize(("body", "needle"), [
    ("temp=21.5", "entry 2-0: the field 'data' is not JSON"),
    ("[1, 2]", "entry 2-0: the field 'data' holds a JSON list, not an object"),
])
def test_an_entry_that_is_not_a_json_object_is_named_or_skipped(body: str, needle: str) -> None:
    entries = _entries({"temp": 1.0}, body, {"temp": 2.0})
    with pytest.raises(SourceError, match=needle) as err:
        decode(CONFIG, entries, "readings")
    assert "nothing was stored or acknowledged" in str(err.value) and "\n" not in str(err.value)
    skip = CONFIG.model_copy(update={"on_error": "skip"})
    got = decode(skip, entries, "readings")
    assert got.frame["temp"].tolist() == [1.0, 2.0] and got.skipped[0].startswith("2-0 (")


def test_an_entry_without_the_field_or_deleted_since() -> None:
    entries = [Entry(id="1-0", fields={"body": "{}"}), Entry(id="2-0", fields=None)]
    with pytest.raises(SourceError, match=r"entry 1-0: has no field 'data' \(its fields: body\)"):
        decode(CONFIG, entries, "readings")
    assert decode(CONFIG, entries[1:], "readings").deleted == ["2-0"]


def test_labels_join_by_id_the_last_one_wins_and_unlabelled_readings_wait() -> None:
    config = CONFIG.model_copy(update={"labels": StreamLabelsSpec(stream="labels", id="rid")})
    readings = [decode(config, _entries(*({"rid": i, "temp": float(i)} for i in range(5))), "readings").frame]
    labels = [decode(config, _entries({"rid": 0, "failed": 1}, {"rid": 1, "failed": 0}, {"rid": 0, "failed": 0},
                                      {"rid": 3, "failed": 1, "note": "x"}), "labels").frame]
    table, waiting = join_labels(config, readings, labels, target="failed")
    assert table.to_dict("list") == {"rid": [0, 1, 3], "temp": [0.0, 1.0, 3.0], "failed": [0, 0, 1]}
    assert waiting == 2
    with pytest.raises(SourceError, match="the labels on stream 'labels' have no column 'broken'"):
        join_labels(config, readings, labels, target="broken")


def test_no_labelled_reading_is_one_line() -> None:
    config = CONFIG.model_copy(update={"labels": StreamLabelsSpec(stream="labels", id="rid")})
    spec = _spec('{redis: "redis://h:6379", stream: readings, labels: {stream: labels, id: rid}}')
    readings = [decode(config, _entries({"rid": 1, "temp": 1.0}), "readings").frame]
    with pytest.raises(SourceError, match="none of the 1 readings has a label yet"):
        build_table(spec.data, readings, [], datetime.now(UTC))  # type: ignore[attr-defined]


def test_a_column_that_changes_kind_between_batches_is_named() -> None:
    one = decode(CONFIG, _entries({"temp": 21.5, "site": "north"}), "readings").frame
    two = decode(CONFIG, [Entry(id="7-0", fields={"data": json.dumps({"temp": "hot", "site": None})})],
                 "readings").frame
    three = decode(CONFIG, [Entry(id="8-0", fields={"data": json.dumps({"temp": 20, "site": "south"})})],
                   "readings").frame
    same_kinds(CONFIG, [one, three], "readings")  # an int after a float: both numbers; a null is any kind
    with pytest.raises(SourceError, match="stream 'readings': the readings from entry 7-0 on hold text in 'temp', "
                                          "which held numbers before"):
        same_kinds(CONFIG, [one, two], "readings")
    spec = _spec('{redis: "redis://h:6379", stream: readings}', "  drop: [temp]")
    table, _ = build_table(spec.data, [one, two], [], datetime.now(UTC))  # type: ignore[attr-defined]
    assert list(table.columns) == ["site"]  # data.drop: the column may change as it likes


@pytest.mark.parametrize(("written", "seconds", "shown"), [
    ("10m", 600.0, "10m"), ("90s", 90.0, "90s"), ("2h", 7200.0, "2h"), ("100ms", 0.1, "100ms"), ("1.5s", 1.5, "1.5s"),
    ("0", 0.0, None),
])
def test_claim_idle_is_a_duration_shown_as_written(written: str, seconds: float, shown: str | None) -> None:
    source = RedisStreamSpec(redis="redis://broker:6379", stream="r", claim_idle=written)
    assert source.claim_idle == seconds  # 0: never claimed
    if shown is not None:
        assert _duration(source.claim_idle) == shown
