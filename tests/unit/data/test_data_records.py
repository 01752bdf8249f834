"""JSON records as a table (tidal.data.records): the frame pandas.json_normalize gives, built faster."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tidal.data.records import field_names, flatten_record, records_frame

CASES: list[list[dict[str, Any]]] = [
    # nested objects, a list kept as a value, an empty object dropped, a field only some records have
    [{"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": [1, 2], "g": {}}, {"a": None, "b": {"c": None}, "h": "x"}],
    # the plain values first, then the flattened ones, as pandas orders them
    [{"sensor": {"name": "s-1", "site": "dock"}, "id": 7, "value": 0.5}],
    # empty keys and keys that start with the separator
    [{"": {"a": 1, ".b": 2}, ".x": {"y": 1}, "z": {"": {"": 5}}}],
    # flat records of mixed types: ints, floats, bools, text, nulls, ISO times as text
    [{"x": 1, "t": "2026-01-01T00:00:00"}, {"y": 2.5, "t": None}, {"x": True, "t": "2026-01-02T00:00:00+02:00"}],
    [{"n": {"m": {"k": {}}}, "q": 1}],
    [],
]


@pytest.mark.parametrize("records", CASES)
def test_records_frame_is_what_json_normalize_gives(records: list[dict[str, Any]]) -> None:
    pd.testing.assert_frame_equal(records_frame(records), pd.json_normalize(records))


def test_a_flat_record_is_passed_as_it_is_and_a_nested_one_is_flattened() -> None:
    flat = {"id": 1, "ok": True, "tags": ["a", "b"]}
    assert flatten_record(flat) is flat
    nested = {"sensor": {"site": "dock", "at": {"lat": 1.5}}, "id": 2}
    assert flatten_record(nested) == {"id": 2, "sensor.site": "dock", "sensor.at.lat": 1.5}
    assert list(flatten_record(nested)) == ["id", "sensor.site", "sensor.at.lat"]


def test_field_names_are_every_records_keys() -> None:
    assert field_names([{"a": 1}, {"b": 2, "a": 3}]) == {"a", "b"}
